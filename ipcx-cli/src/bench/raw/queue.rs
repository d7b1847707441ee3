//! Standalone-queue rows, `queue(mq)` and `queue(sysv-mq)`: ipcx's
//! [`ByteProducer`]/[`ByteConsumer`] on `?pattern=queue` endpoints against
//! the raw `mq_send`/`mq_receive` and `msgsnd`/`msgrcv` loops of
//! `super::mq` and `super::sysv_mq`.
//!
//! Each peer owns a producer on one queue and a consumer on the other (up:
//! client to server, down: server to client), so the round trip and the
//! one-producer-to-one-consumer throughput are measured as for every other
//! row. The server creates both queues sized like the raw ones (POSIX:
//! `capacity = min(10, msg_max)`, messages of the benchmark's size; System
//! V: the kernel's `msgmnb`), announces them, and removes them when done.
//! A standalone-queue message is one kernel message, so sizes beyond the
//! kernel's per-message limit (less the 16-byte header) are skipped.

use ipcx::queue::{self, ByteConsumer, ByteProducer, HEADER_LEN, Open};
use ipcx::{Deadline, Endpoint};

use crate::bench::measure::Link;

/// How the comparison is made (table footnote).
pub const NOTE: &str = "queue(mq), queue(sysv-mq): ipcx::queue ByteProducer/ByteConsumer on ?pattern=queue endpoints (one kernel message per message, with a 16-byte header), against raw mq_send/mq_receive and msgsnd/msgrcv; sizes beyond the kernel's per-message limit are skipped";

fn limit(path: &str, default: usize) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Whether a `size`-byte message fits one kernel message of the row
/// `label` (other rows: always).
pub fn fits(label: &str, size: usize) -> bool {
    match label {
        "queue(mq)" => size + HEADER_LEN <= limit("/proc/sys/fs/mqueue/msgsize_max", 8192),
        "queue(sysv-mq)" => size + HEADER_LEN <= limit("/proc/sys/kernel/msgmax", 8192),
        _ => true,
    }
}

/// The endpoint without its query, for the raw baselines.
fn base(address: &str) -> &str {
    address.split('?').next().unwrap_or(address)
}

/// `mq:/NAME` for the row's endpoints.
pub fn mq_address() -> String {
    format!("mq:/{}", super::unique("Q"))
}

/// `sysv-mq:/tmp/NAME` for the row's endpoints.
pub fn sysv_address() -> String {
    format!("sysv-mq:/tmp/{}", super::unique("S"))
}

/// The raw POSIX baseline: that of `super::mq`.
pub fn raw_mq_server(
    address: &str,
    size: usize,
    ready: &dyn Fn(&str),
) -> Result<Box<dyn Link>, String> {
    super::mq::server(base(address), size, ready)
}

/// The raw System V baseline: that of `super::sysv_mq`.
pub fn raw_sysv_server(
    address: &str,
    size: usize,
    ready: &dyn Fn(&str),
) -> Result<Box<dyn Link>, String> {
    super::sysv_mq::server(base(address), size, ready)
}

/// The raw POSIX client.
pub fn raw_mq_client(address: &str) -> Result<Box<dyn Link>, String> {
    super::mq::client(address)
}

/// The raw System V client.
pub fn raw_sysv_client(address: &str) -> Result<Box<dyn Link>, String> {
    super::sysv_mq::client(address)
}

/// One peer's two queues.
struct QueueLink {
    tx: ByteProducer,
    rx: ByteConsumer,
    /// The server's: removed when done.
    owned: Vec<Endpoint>,
}

impl Link for QueueLink {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.tx.send(msg).map_err(|e| e.to_string())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, _size: usize) -> Result<(), String> {
        let d = self
            .rx
            .recv_until(Deadline::Never)
            .map_err(|e| e.to_string())?;
        buf.clear();
        buf.extend_from_slice(d.payload);
        Ok(())
    }
}

impl Drop for QueueLink {
    fn drop(&mut self) {
        // Removing a System V queue discards what it holds: give the client
        // up to a second to read the last acknowledgement (down, the
        // second) first.
        if let Some(down) = self.owned.get(1) {
            for _ in 0..1000 {
                match queue::stat(down) {
                    Ok(i) if i.status.messages > 0 => {
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                    _ => break,
                }
            }
        }
        for ep in &self.owned {
            let _ = queue::remove(ep);
            if ep.scheme() == ipcx::Scheme::SysvMq {
                let _ = std::fs::remove_file(ep.address());
            }
        }
    }
}

fn parse(s: &str) -> Result<Endpoint, String> {
    s.parse()
        .map_err(|e: ipcx::EndpointError| format!("{s}: {e}"))
}

fn endpoints(address: &str) -> Result<(Endpoint, Endpoint), String> {
    let (up, down) = address
        .split_once(' ')
        .ok_or_else(|| format!("bad queue address {address:?}"))?;
    Ok((parse(up)?, parse(down)?))
}

/// The ipcx server: creates the two queues for `size`-byte messages.
pub fn server(address: &str, size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let base = base(address);
    let mut query = format!("pattern=queue&max_message_size={}", size.max(1));
    if base.starts_with("mq:") {
        let depth = limit("/proc/sys/fs/mqueue/msg_max", 10).min(10);
        query.push_str(&format!("&capacity={depth}"));
    }
    let up = parse(&format!("{base}.up?{query}"))?;
    let down = parse(&format!("{base}.down?{query}"))?;
    let mut owned = Vec::new();
    let rx = ByteConsumer::open_with(&up, Open::Create, ipcx::TypeTag::BYTES)
        .map_err(|e| e.to_string())?;
    owned.push(up.clone());
    let tx = match ByteProducer::create(&down) {
        Ok(tx) => tx,
        Err(e) => {
            let _ = queue::remove(&up);
            return Err(e.to_string());
        }
    };
    owned.push(down.clone());
    ready(&format!("{up} {down}"));
    Ok(Box::new(QueueLink { tx, rx, owned }))
}

/// The ipcx client: opens the queues its server announced.
pub fn client(address: &str) -> Result<Box<dyn Link>, String> {
    let (up, down) = endpoints(address)?;
    let tx = ByteProducer::open_with(&up, Open::Existing, ipcx::TypeTag::BYTES, None)
        .map_err(|e| e.to_string())?;
    let rx = ByteConsumer::open_with(&down, Open::Existing, ipcx::TypeTag::BYTES)
        .map_err(|e| e.to_string())?;
    Ok(Box::new(QueueLink {
        tx,
        rx,
        owned: Vec::new(),
    }))
}

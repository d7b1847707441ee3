//! Raw POSIX message queues: two queues (`mq_open(3)`), `mq_send(3)` and
//! `mq_receive(3)` of fixed-size messages.
//!
//! A kernel message is at most `/proc/sys/fs/mqueue/msgsize_max` bytes
//! (8 KiB by default), so a larger benchmark message goes as a run of
//! chunks of that size, received until the known message size has
//! arrived. ipcx fragments too, into 4160-byte units by default, and adds its
//! fragment headers and a handshake; both use queues of
//! `min(10, msg_max)` messages.

use nix::mqueue::{MQ_OFlag, MqAttr, MqdT, mq_open, mq_receive, mq_send, mq_unlink};
use nix::sys::stat::Mode;

use crate::bench::measure::Link;

/// How the comparison is made (table footnote).
pub const NOTE: &str = "mq, sysv-mq: a message larger than the kernel's per-message limit (msgsize_max / msgmax, 8 KiB here) goes as chunks of that size in the raw baseline; ipcx fragments into its 4160-byte units";

fn limit(path: &str, default: i64) -> i64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn names(base: &str) -> (String, String) {
    (format!("{base}.up"), format!("{base}.down"))
}

struct Queues {
    up: String,
    down: String,
    send: MqdT,
    recv: MqdT,
    unit: usize,
    chunk: Vec<u8>,
    unlink: bool,
}

impl Link for Queues {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        for part in msg.chunks(self.unit) {
            loop {
                match mq_send(&self.send, part, 0) {
                    Ok(()) => break,
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(e) => return Err(format!("mq_send: {e}")),
                }
            }
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<(), String> {
        buf.clear();
        let mut prio = 0;
        while buf.len() < size {
            let n = match mq_receive(&self.recv, &mut self.chunk, &mut prio) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(format!("mq_receive: {e}")),
            };
            buf.extend_from_slice(&self.chunk[..n]);
        }
        Ok(())
    }
}

impl Drop for Queues {
    fn drop(&mut self) {
        if self.unlink {
            let _ = mq_unlink(self.up.as_str());
            let _ = mq_unlink(self.down.as_str());
        }
    }
}

/// The kernel message size used for `size`-byte messages, and the depth.
fn sizing(size: usize) -> (usize, i64) {
    let max = limit("/proc/sys/fs/mqueue/msgsize_max", 8192) as usize;
    let depth = limit("/proc/sys/fs/mqueue/msg_max", 10).min(10);
    (size.clamp(1, max), depth)
}

fn open(name: &str, flags: MQ_OFlag, attr: Option<&MqAttr>) -> Result<MqdT, String> {
    mq_open(name, flags, Mode::S_IRUSR | Mode::S_IWUSR, attr)
        .map_err(|e| format!("mq_open {name}: {e}"))
}

pub fn server(endpoint: &str, size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let (unit, depth) = sizing(size);
    let base = format!("/{}.raw", endpoint.trim_start_matches("mq:/"));
    let (up, down) = names(&base);
    let attr = MqAttr::new(0, depth, unit as i64, 0);
    let create = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL;
    let recv = open(&up, create | MQ_OFlag::O_RDONLY, Some(&attr))?;
    let send = open(&down, create | MQ_OFlag::O_WRONLY, Some(&attr))?;
    // The unit rides in the announced address so the client sizes alike.
    ready(&format!("{base} {unit}"));
    Ok(Box::new(Queues {
        up,
        down,
        send,
        recv,
        unit,
        chunk: vec![0; unit],
        unlink: true,
    }))
}

pub fn client(address: &str) -> Result<Box<dyn Link>, String> {
    let (base, unit) = address
        .split_once(' ')
        .and_then(|(b, u)| Some((b, u.parse::<usize>().ok()?)))
        .ok_or_else(|| format!("bad raw mq address {address:?}"))?;
    let (up, down) = names(base);
    let send = open(&up, MQ_OFlag::O_WRONLY, None)?;
    let recv = open(&down, MQ_OFlag::O_RDONLY, None)?;
    // Both names are open on both sides now: the client unlinks them, the
    // server does again on drop (whichever comes first wins).
    let _ = mq_unlink(up.as_str());
    let _ = mq_unlink(down.as_str());
    Ok(Box::new(Queues {
        up,
        down,
        send,
        recv,
        unit,
        chunk: vec![0; unit],
        unlink: false,
    }))
}

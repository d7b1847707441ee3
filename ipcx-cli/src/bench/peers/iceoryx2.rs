//! `iceoryx2`: two publish–subscribe services of `[u8]` slices, "ping"
//! (client to server) and "pong" (server to client), on shared memory.
//! Messages are written into a loaned sample and sent; the receiver polls
//! `receive` in a spin (iceoryx2 does not block by default), like ipcx's
//! `wait=spin`. No overflow: a full subscriber queue makes the publisher
//! retry, so throughput counts delivered messages only.

use std::time::Instant;

use ::iceoryx2::node::Node;
use ::iceoryx2::port::publisher::Publisher;
use ::iceoryx2::port::subscriber::Subscriber;
use ::iceoryx2::prelude::*;
use ::iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use super::PEER_TIMEOUT;
use crate::bench::measure::Link;

/// The table's footnote for this row.
pub const NOTE: &str = "iceoryx2: publish-subscribe of [u8] slices over shared memory, one service per direction, loan_slice_uninit + write_from_slice + send, the receiver polling receive() (no overflow: the publisher retries when the queue is full); raw = the shm(spin) row's polling ring; cross-core only";

/// First byte of the message that ends a measurement (as in `measure`).
const STOP: u8 = 1;

/// Subscriber queue depth for messages of `size` bytes: deep for small
/// messages, bounded to about 16 MiB of samples for large ones.
fn depth(size: usize) -> usize {
    ((16 << 20) / size.max(1)).clamp(4, 256)
}

struct Iox {
    publisher: Publisher<ipc::Service, [u8], ()>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    _ping: PortFactory<ipc::Service, [u8], ()>,
    _pong: PortFactory<ipc::Service, [u8], ()>,
    /// Set when the stop message went out and nothing came back yet.
    stop_unanswered: bool,
    /// Dropped last: the ports and services belong to it.
    _node: Node<ipc::Service>,
}

impl Iox {
    fn open(prefix: &str, size: usize, server: bool) -> Result<Iox, String> {
        // Its notices (such as running without a config file) would mix
        // with the benchmark's progress lines.
        set_log_level(LogLevel::Error);
        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .map_err(|e| format!("iceoryx2 node: {e:?}"))?;
        let service = |dir: &str| -> Result<PortFactory<ipc::Service, [u8], ()>, String> {
            let name = format!("{prefix}/{dir}");
            let sname: ServiceName = name
                .as_str()
                .try_into()
                .map_err(|e| format!("iceoryx2 service name {name}: {e:?}"))?;
            let b = node
                .service_builder(&sname)
                .publish_subscribe::<[u8]>()
                .enable_safe_overflow(false)
                .subscriber_max_buffer_size(depth(size))
                .history_size(0)
                .max_publishers(1)
                .max_subscribers(1)
                .max_nodes(2);
            if server {
                b.create()
                    .map_err(|e| format!("iceoryx2 creating service {name}: {e:?}"))
            } else {
                b.open()
                    .map_err(|e| format!("iceoryx2 opening service {name}: {e:?}"))
            }
        };
        let ping = service("ping")?;
        let pong = service("pong")?;
        let (out, inc) = if server {
            (&pong, &ping)
        } else {
            (&ping, &pong)
        };
        let subscriber = inc
            .subscriber_builder()
            .buffer_size(depth(size))
            .create()
            .map_err(|e| format!("iceoryx2 subscriber: {e:?}"))?;
        let publisher = out
            .publisher_builder()
            .initial_max_slice_len(size.max(1))
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(|e| format!("iceoryx2 publisher: {e:?}"))?;
        Ok(Iox {
            publisher,
            subscriber,
            _ping: ping,
            _pong: pong,
            stop_unanswered: false,
            _node: node,
        })
    }

    /// Polls for one message and hands its payload to `f`.
    #[inline]
    fn poll<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Result<R, String> {
        let mut spins: u32 = 0;
        let mut since: Option<Instant> = None;
        loop {
            if let Some(sample) = self
                .subscriber
                .receive()
                .map_err(|e| format!("iceoryx2 receive: {e:?}"))?
            {
                self.stop_unanswered = false;
                return Ok(f(sample.payload()));
            }
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins % 4096 == 0 {
                let t = *since.get_or_insert_with(Instant::now);
                if t.elapsed() > PEER_TIMEOUT {
                    return Err("iceoryx2: no message from the peer for 10 s".to_string());
                }
            }
        }
    }
}

impl Link for Iox {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        let sample = self
            .publisher
            .loan_slice_uninit(msg.len())
            .map_err(|e| format!("iceoryx2 loan: {e:?}"))?;
        sample
            .write_from_slice(msg)
            .send()
            .map_err(|e| format!("iceoryx2 send: {e:?}"))?;
        if msg.first() == Some(&STOP) {
            self.stop_unanswered = true;
        }
        Ok(())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, _size: usize) -> Result<(), String> {
        self.poll(|p| {
            buf.clear();
            buf.extend_from_slice(p);
        })
    }

    #[inline]
    fn serve_one(&mut self, buf: &mut Vec<u8>, size: usize, echo: bool) -> Result<bool, String> {
        self.recv(buf, size)?;
        let stop = buf.first() == Some(&STOP);
        // The stop message is echoed too in a round-trip run, so that the
        // client sees it arrive before it drops its publisher.
        if echo {
            self.send(buf)?;
            self.stop_unanswered = false;
        }
        Ok(stop)
    }
}

impl Drop for Iox {
    fn drop(&mut self) {
        // A client that ended a round-trip run waits (briefly) for the
        // server to take the stop message before its shared memory goes.
        if self.stop_unanswered {
            let start = Instant::now();
            while start.elapsed() < std::time::Duration::from_secs(1) {
                if let Ok(Some(_)) = self.subscriber.receive() {
                    break;
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// Creates both services, announces their name prefix, serves the client.
pub fn server(prefix: &str, size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let link = Iox::open(&format!("ipcx-bench/{prefix}"), size, true)?;
    ready(&format!("{prefix}\t{size}"));
    Ok(Box::new(link))
}

/// Opens the services the server announced.
pub fn client(address: &str) -> Result<Box<dyn Link>, String> {
    let (prefix, size) = address
        .split_once('\t')
        .ok_or_else(|| format!("bad iceoryx2 address {address:?}"))?;
    let size: usize = size.parse().map_err(|_| "iceoryx2 message size")?;
    Iox::open(&format!("ipcx-bench/{prefix}"), size, false).map(|l| Box::new(l) as Box<dyn Link>)
}

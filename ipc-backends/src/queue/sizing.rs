//! How big a connection's queues are — the unit (the largest kernel
//! message a side sends) and the queue length — within the kernel's
//! limits, and what to say when the kernel's budget for queues is spent.
//!
//! POSIX queues are charged up front against the creating user's
//! `RLIMIT_MSGQUEUE` (default 800 KiB): `capacity × (unit + 96)` bytes per
//! queue, two per connection, charged to the client. With the default
//! 10 × 4160-byte units a connection costs 85,120 bytes, so nine fit.
//! The first POSIX queue a process creates raises its soft limit to the
//! hard one (allowed to any process), and the error when the budget is
//! spent names the numbers and the remedies. Smaller queues are the
//! caller's choice (`capacity=`, `max_message_size=`), not the default:
//! they trade throughput (more fragments per message, less buffering)
//! for count (see ARCHITECTURE.md, `queue/`).

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use ipc_core::handshake::MAX_HELLO_LEN;
use ipc_core::{Endpoint, Error, Result};

use crate::fragment::{DEFAULT_UNIT, FIRST_HEADER, MIN_UNIT};
use crate::sys::limits::proc_limit;
use crate::sys::{mqueue, sysv_msg};

/// Default length of a POSIX queue, in messages.
const DEFAULT_CAPACITY: usize = 10;
/// What the kernel adds to each message of a POSIX queue in its
/// accounting against `RLIMIT_MSGQUEUE`: a `struct msg_msg` and a priority
/// tree node, 48 bytes each on 64-bit Linux (`ipc/mqueue.c`).
const KERNEL_BYTES_PER_MESSAGE: u64 = 96;

/// The sizes of one connection's queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizing {
    /// The largest kernel message this side sends.
    pub unit: usize,
    /// Queue length in messages; `None`: the kernel's default.
    pub capacity: Option<usize>,
}

/// The unit for `endpoint`: one message of its `max_message_size` with
/// the first fragment's header, kept between a hello and [`DEFAULT_UNIT`],
/// at most `largest` (the kernel's limit, published at `source`).
fn unit(endpoint: &Endpoint, largest: u64, source: &str) -> Result<usize> {
    let max = endpoint.options().max_message_size;
    let want = (max + FIRST_HEADER).clamp(MAX_HELLO_LEN + FIRST_HEADER, DEFAULT_UNIT);
    let unit = want.min(usize::try_from(largest).unwrap_or(usize::MAX));
    if unit < MIN_UNIT {
        return Err(Error::Limit {
            endpoint: endpoint.to_string(),
            option: "max_message_size",
            value: max as u64,
            limit: largest,
            source_of_limit: format!("{source}, bytes per queue message"),
            fix: format!(
                "queue messages of at least {MIN_UNIT} bytes are needed; raise {source} (as root)"
            ),
        });
    }
    Ok(unit)
}

/// Bytes one connection's two POSIX queues of `capacity` messages of
/// `unit` bytes take from `RLIMIT_MSGQUEUE`.
pub fn posix_connection_bytes(unit: usize, capacity: usize) -> u64 {
    2 * capacity as u64 * (unit as u64 + KERNEL_BYTES_PER_MESSAGE)
}

/// Bytes a connection with the default sizing takes from
/// `RLIMIT_MSGQUEUE`.
pub fn posix_default_connection_bytes() -> u64 {
    let size_max = proc_limit(mqueue::MSGSIZE_MAX_PATH).unwrap_or(8192) as usize;
    posix_connection_bytes(DEFAULT_UNIT.min(size_max), posix_default_capacity())
}

/// Raises this process's soft `RLIMIT_MSGQUEUE` to its hard limit, once.
fn raise_limit() {
    static RAISED: Once = Once::new();
    RAISED.call_once(|| match mqueue::raise_rlimit_msgqueue() {
        Ok(limit) => tracing::debug!(limit, "RLIMIT_MSGQUEUE"),
        Err(e) => tracing::debug!(error = %e, "RLIMIT_MSGQUEUE not raised"),
    });
}

/// Connections whose queues this process created and still holds.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// One connection's queues created by this process (counted while held,
/// for the error when the budget is spent).
#[derive(Debug)]
pub(crate) struct Charge(());

impl Charge {
    pub(crate) fn new() -> Charge {
        HELD.fetch_add(1, Ordering::Relaxed);
        Charge(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The default length of a POSIX queue within `msg_max`.
pub(crate) fn posix_default_capacity() -> usize {
    raise_limit();
    let msg_max = proc_limit(mqueue::MSG_MAX_PATH).unwrap_or(DEFAULT_CAPACITY as u64);
    DEFAULT_CAPACITY.min(msg_max as usize).max(1)
}

/// Sizes of a POSIX queue pair: `capacity` at most `msg_max` messages
/// (default 10), the unit at most `msgsize_max`.
pub(crate) fn posix(endpoint: &Endpoint) -> Result<Sizing> {
    raise_limit();
    let msg_max = proc_limit(mqueue::MSG_MAX_PATH).unwrap_or(DEFAULT_CAPACITY as u64);
    let size_max = proc_limit(mqueue::MSGSIZE_MAX_PATH).unwrap_or(8192);
    let capacity = match endpoint.options().capacity {
        Some(c) if c as u64 > msg_max => {
            return Err(Error::Limit {
                endpoint: endpoint.to_string(),
                option: "capacity",
                value: c as u64,
                limit: msg_max,
                source_of_limit: format!("{}, messages per queue", mqueue::MSG_MAX_PATH),
                fix: format!(
                    "lower capacity to at most {msg_max} or raise {} (as root)",
                    mqueue::MSG_MAX_PATH
                ),
            });
        }
        Some(c) => c.max(1),
        None => posix_default_capacity(),
    };
    Ok(Sizing {
        unit: unit(endpoint, size_max, mqueue::MSGSIZE_MAX_PATH)?,
        capacity: Some(capacity),
    })
}

/// Sizes of a System V queue pair: the unit at most `msgmax` (and
/// `msgmnb`), `capacity` units at most `msgmnb` bytes; without `capacity`
/// a queue keeps the kernel's default of `msgmnb` bytes.
pub(crate) fn sysv(endpoint: &Endpoint) -> Result<Sizing> {
    let msgmax = proc_limit(sysv_msg::MSGMAX_PATH).unwrap_or(8192);
    let msgmnb = proc_limit(sysv_msg::MSGMNB_PATH).unwrap_or(16384);
    let unit = unit(endpoint, msgmax.min(msgmnb), sysv_msg::MSGMAX_PATH)?;
    let capacity = match endpoint.options().capacity {
        None => None,
        Some(c) => {
            let most = msgmnb as usize / unit;
            if c.max(1) > most {
                return Err(Error::Limit {
                    endpoint: endpoint.to_string(),
                    option: "capacity",
                    value: c as u64,
                    limit: most as u64,
                    source_of_limit: format!(
                        "{} = {msgmnb} bytes per queue, {unit}-byte messages",
                        sysv_msg::MSGMNB_PATH
                    ),
                    fix: format!(
                        "lower capacity to at most {most} or raise {} (as root)",
                        sysv_msg::MSGMNB_PATH
                    ),
                });
            }
            Some(c.max(1))
        }
    };
    Ok(Sizing { unit, capacity })
}

/// The largest System V message a receiver accepts: whatever unit the
/// peer chose, up to the kernel's `msgmax`.
pub(crate) fn sysv_receive_max(unit: usize) -> usize {
    (proc_limit(sysv_msg::MSGMAX_PATH).unwrap_or(8192) as usize).max(unit)
}

/// The error of creating POSIX queue `name` for `endpoint` with `sizing`:
/// what ran out, how much a connection takes, and what to change.
pub(crate) fn posix_create_error(
    endpoint: &Endpoint,
    name: &str,
    sizing: &Sizing,
    e: std::io::Error,
) -> Error {
    let context = match e.raw_os_error() {
        Some(libc::EMFILE) => queue_memory_spent(endpoint, name, sizing),
        Some(libc::ENOSPC) => format!(
            "{endpoint}: mq_open {name}: the system-wide number of POSIX queues is at its limit ({} = {}); close connections or raise it (as root)",
            mqueue::QUEUES_MAX_PATH,
            proc_limit(mqueue::QUEUES_MAX_PATH).map_or("?".into(), |n| n.to_string())
        ),
        _ => format!("{endpoint}: mq_open {name}"),
    };
    Error::io(context, e)
}

/// `mq_open` failed with `EMFILE`: on Linux that is this user's queue
/// memory (`RLIMIT_MSGQUEUE`), unless the process is out of descriptors.
fn queue_memory_spent(endpoint: &Endpoint, name: &str, sizing: &Sizing) -> String {
    let capacity = sizing.capacity.unwrap_or(DEFAULT_CAPACITY);
    let per_connection = posix_connection_bytes(sizing.unit, capacity);
    let limit = mqueue::rlimit_msgqueue().filter(|&l| l < u64::MAX / 2);
    let Some(limit) = limit else {
        return format!(
            "{endpoint}: mq_open {name}: this process is out of file descriptors (RLIMIT_NOFILE, ulimit -n); close connections or raise ulimit -n"
        );
    };
    let hard = mqueue::rlimit_msgqueue_hard().unwrap_or(limit);
    // What a small queue pair costs: 3 messages of 1 KiB.
    let small = posix_connection_bytes(1024 + FIRST_HEADER, 3);
    format!(
        "{endpoint}: mq_open {name}: this user's POSIX queue memory is used up. \
         RLIMIT_MSGQUEUE is {limit} bytes per user (hard limit {hard}); each connection \
         holds two queues of {capacity} messages of {} bytes, {per_connection} bytes with \
         the kernel's bookkeeping, so {} connections fit, and this process holds {} \
         (queues of this user's other processes count too); a hundred such \
         connections would need {} bytes. To fit more: close \
         connections; ask for smaller queues (capacity=3&max_message_size=1024 costs \
         {small} bytes, {} connections); or raise the limit: `ulimit -q BYTES` in the \
         shell that starts the client (up to the hard limit), `msgqueue` in \
         /etc/security/limits.conf or LimitMSGQUEUE= in a systemd unit, or setrlimit \
         with CAP_SYS_RESOURCE. (If the process is out of descriptors instead: ulimit -n.)",
        sizing.unit,
        limit / per_connection.max(1),
        HELD.load(Ordering::Relaxed),
        100 * per_connection,
        limit / small.max(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn units_and_capacities() {
        let s = posix(&ep("mq:/x")).unwrap();
        assert!(s.unit >= MIN_UNIT && s.unit <= DEFAULT_UNIT);
        assert!(s.capacity.is_some_and(|c| c >= 1));
        let small = posix(&ep("mq:/x?max_message_size=10")).unwrap();
        assert_eq!(small.unit, MAX_HELLO_LEN + FIRST_HEADER);
        let e = posix(&ep("mq:/x?capacity=1000000")).unwrap_err();
        assert!(e.to_string().contains("msg_max"), "{e}");
        assert_eq!(sysv(&ep("sysv-mq:/tmp/x")).unwrap().capacity, None);
        let e = sysv(&ep("sysv-mq:/tmp/x?capacity=1000000")).unwrap_err();
        assert!(e.to_string().contains("msgmnb"), "{e}");
    }

    #[test]
    fn memory_error_names_the_budget() {
        let sizing = Sizing {
            unit: DEFAULT_UNIT,
            capacity: Some(10),
        };
        let e = posix_create_error(
            &ep("mq:/x"),
            "/ipcx.x.1.0.up",
            &sizing,
            std::io::Error::from_raw_os_error(libc::EMFILE),
        )
        .to_string();
        assert!(!e.contains("capacity=0"), "{e}");
        if let Some(l) = mqueue::rlimit_msgqueue().filter(|&l| l < u64::MAX / 2) {
            assert!(e.contains(&format!("RLIMIT_MSGQUEUE is {l} bytes")), "{e}");
            assert!(e.contains("two queues of 10 messages"), "{e}");
            assert!(e.contains(&format!("{DEFAULT_UNIT} bytes")), "{e}");
            let per = posix_connection_bytes(DEFAULT_UNIT, 10);
            assert!(e.contains(&format!("{per} bytes with")), "{e}");
            assert!(
                e.contains(&format!(
                    "a hundred such connections would need {}",
                    100 * per
                )),
                "{e}"
            );
            assert!(e.contains("ulimit -q"), "{e}");
        }
    }
}

//! `mq:/NAME?pattern=queue` on a POSIX message queue named `/NAME`
//! ([mq_overview(7)]): one kernel message per ipcx message, priorities
//! as the kernel orders them (highest first, oldest first within one).
//!
//! [mq_overview(7)]: https://man7.org/linux/man-pages/man7/mq_overview.7.html

use ipc_core::{Deadline, Endpoint, Error, Result};

use super::{HEADER_LEN, KernelLimit, Open, Role, Status};
use crate::sys::Context;
use crate::sys::limits::proc_limit;
use crate::sys::mqueue::{self, Access, Mq, Op};

/// Default length of a queue, in messages (the kernel's `msg_default`).
const DEFAULT_CAPACITY: u64 = 10;
/// The kernel's default largest message when `/proc` does not say.
const DEFAULT_MSGSIZE: u64 = 8192;

/// An open POSIX queue.
#[derive(Debug)]
pub(super) struct PosixQueue {
    q: Mq,
    name: String,
    /// Bytes per kernel message, header included.
    msgsize: usize,
}

/// The kernel name of the queue of `endpoint`: its address (`/jobs`).
pub(super) fn name(endpoint: &Endpoint) -> String {
    endpoint.address().to_string()
}

/// The record id of the queue (its name without the slash).
pub(super) fn record_id(endpoint: &Endpoint) -> String {
    endpoint.address().trim_start_matches('/').to_string()
}

fn access(role: Role) -> Access {
    match role {
        Role::Producer => Access::Write,
        Role::Consumer | Role::Admin => Access::Read,
    }
}

/// Bytes per kernel message for a new queue: `max_message_size` plus the
/// header when the endpoint gives one, else the kernel's `msgsize_max`.
/// Checked against `msgsize_max` even for a process the kernel would let
/// exceed it: the queue must serve unprivileged openers too.
fn msgsize(endpoint: &Endpoint) -> Result<u64> {
    let size_max = proc_limit(mqueue::MSGSIZE_MAX_PATH).unwrap_or(DEFAULT_MSGSIZE);
    let given = endpoint.options().max_message_size;
    if given == ipc_core::endpoint::DEFAULT_MAX_MESSAGE_SIZE {
        return Ok(size_max);
    }
    let want = (given + HEADER_LEN) as u64;
    if want > size_max {
        return Err(size_error(endpoint, want, size_max));
    }
    Ok(want)
}

fn size_error(endpoint: &Endpoint, size: u64, size_max: u64) -> Error {
    let header = HEADER_LEN as u64;
    Error::Limit {
        endpoint: endpoint.to_string(),
        option: "max_message_size",
        value: size - header,
        limit: size_max.saturating_sub(header),
        source_of_limit: format!(
            "{} = {size_max} bytes per message, {HEADER_LEN} of them the ipcx header",
            mqueue::MSGSIZE_MAX_PATH
        ),
        fix: format!(
            "lower max_message_size to at most {} or raise {} (as root)",
            size_max.saturating_sub(header),
            mqueue::MSGSIZE_MAX_PATH
        ),
    }
}

fn capacity(endpoint: &Endpoint) -> u64 {
    match endpoint.options().capacity {
        Some(c) => c as u64,
        None => DEFAULT_CAPACITY.min(proc_limit(mqueue::MSG_MAX_PATH).unwrap_or(DEFAULT_CAPACITY)),
    }
}

impl PosixQueue {
    /// Opens (and per `open`, creates) the queue; `true` beside it when
    /// this call created it.
    pub(super) fn open(endpoint: &Endpoint, open: Open, role: Role) -> Result<(PosixQueue, bool)> {
        let name = name(endpoint);
        let (cap, size) = (capacity(endpoint), msgsize(endpoint)?);
        // Another process may create or remove the queue between our two
        // calls; a few rounds settle it.
        for _ in 0..8 {
            if open != Open::Existing {
                match Mq::create(
                    &name,
                    access(role),
                    endpoint.options().mode,
                    cap as usize,
                    size as usize,
                ) {
                    Ok(q) => return Ok((PosixQueue::wrap(q, name)?, true)),
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) && open == Open::Create => {
                        return Err(super::exists(endpoint));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(create_error(endpoint, &name, cap, size, e)),
                }
            }
            match Mq::open(&name, access(role)) {
                Ok(q) => return Ok((PosixQueue::wrap(q, name)?, false)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && open == Open::Existing => {
                    return Err(super::missing(endpoint));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    return Err(Error::PermissionDenied(format!(
                        "{endpoint}: mq_open {name}: the queue's mode does not let this user {}",
                        if role == Role::Producer {
                            "send"
                        } else {
                            "receive"
                        }
                    )));
                }
                Err(e) => return Err(Error::io(format!("{endpoint}: mq_open {name}"), e)),
            }
        }
        Err(Error::io(
            format!("{endpoint}: mq_open {name}: the queue kept being created and removed"),
            std::io::Error::from_raw_os_error(libc::EAGAIN),
        ))
    }

    fn wrap(q: Mq, name: String) -> Result<PosixQueue> {
        let attr = q.attr().context(|| format!("mq_getattr {name}"))?;
        Ok(PosixQueue {
            q,
            msgsize: attr.message_size,
            name,
        })
    }

    /// Bytes per kernel message, header included.
    pub(super) fn message_size(&self) -> usize {
        self.msgsize
    }

    /// The limit a message larger than the queue's size runs into.
    pub(super) fn limit(&self) -> KernelLimit {
        let kernel = proc_limit(mqueue::MSGSIZE_MAX_PATH).unwrap_or(DEFAULT_MSGSIZE) as usize;
        KernelLimit {
            at_kernel_limit: self.msgsize >= kernel,
            source: format!(
                "{} = {kernel} bytes per message, {HEADER_LEN} of them the ipcx header",
                mqueue::MSGSIZE_MAX_PATH
            ),
            raise: format!(
                "raise {} (as root) and recreate the queue with a larger max_message_size",
                mqueue::MSGSIZE_MAX_PATH
            ),
        }
    }

    /// `dev:ino` of the queue's file: the same only for the same queue.
    pub(super) fn object(&self) -> Result<String> {
        let st = self
            .q
            .file_status()
            .context(|| format!("fstat {}", self.name))?;
        Ok(format!("{}:{}", st.identity.0, st.identity.1))
    }

    pub(super) fn mode(&self) -> Result<u32> {
        Ok(self
            .q
            .file_status()
            .context(|| format!("fstat {}", self.name))?
            .mode)
    }

    /// The queue's descriptor.
    pub(super) fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.q)
    }

    /// Sends one kernel message; `false` when the deadline passed first.
    pub(super) fn send(&self, msg: &[u8], priority: u32, deadline: Deadline) -> Result<bool> {
        match self.q.send_until(msg, priority, deadline) {
            Ok(Op::Done(_)) => Ok(true),
            Ok(Op::WouldBlock) => Ok(false),
            Err(e) => Err(Error::io(format!("mq_send {}", self.name), e)),
        }
    }

    /// Receives one kernel message into `buf`: its length and priority, or
    /// `None` when the deadline passed first.
    pub(super) fn recv(
        &self,
        buf: &mut Vec<u8>,
        deadline: Deadline,
    ) -> Result<Option<(usize, u32)>> {
        if buf.len() < self.msgsize {
            buf.resize(self.msgsize, 0);
        }
        match self.q.receive_until(buf, deadline) {
            Ok((Op::Done(n), prio)) => Ok(Some((n, prio))),
            Ok((Op::WouldBlock, _)) => Ok(None),
            Err(e) => Err(Error::io(format!("mq_receive {}", self.name), e)),
        }
    }

    pub(super) fn status(&self) -> Result<Status> {
        let a = self
            .q
            .attr()
            .context(|| format!("mq_getattr {}", self.name))?;
        let f = self
            .q
            .file_status()
            .context(|| format!("fstat {}", self.name))?;
        Ok(Status {
            messages: a.queued,
            bytes: None,
            capacity_messages: Some(a.capacity),
            capacity_bytes: None,
            message_size: a.message_size,
            mode: f.mode,
            owner_uid: f.uid,
            last_sender: None,
            last_receiver: None,
            jetstream: None,
        })
    }

    /// Unlinks the queue: handles open now keep working until closed.
    pub(super) fn remove(endpoint: &Endpoint) -> Result<bool> {
        let name = name(endpoint);
        match mqueue::unlink(&name) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(Error::io(format!("{endpoint}: mq_unlink {name}"), e)),
        }
    }
}

/// Why creating the queue failed, naming the limit it ran into.
fn create_error(endpoint: &Endpoint, name: &str, cap: u64, size: u64, e: std::io::Error) -> Error {
    let msg_max = proc_limit(mqueue::MSG_MAX_PATH).unwrap_or(DEFAULT_CAPACITY);
    let size_max = proc_limit(mqueue::MSGSIZE_MAX_PATH).unwrap_or(DEFAULT_MSGSIZE);
    match e.raw_os_error() {
        Some(libc::EINVAL) if size > size_max => size_error(endpoint, size, size_max),
        Some(libc::EINVAL) if cap > msg_max => Error::Limit {
            endpoint: endpoint.to_string(),
            option: "capacity",
            value: cap,
            limit: msg_max,
            source_of_limit: format!("{}, messages per queue", mqueue::MSG_MAX_PATH),
            fix: format!(
                "lower capacity to at most {msg_max} or raise {} (as root)",
                mqueue::MSG_MAX_PATH
            ),
        },
        Some(libc::EMFILE) => {
            let limit = mqueue::rlimit_msgqueue().unwrap_or(0);
            // The kernel charges each message its size plus about 96 bytes
            // of bookkeeping (ipc/mqueue.c).
            let need = cap * (size + 96);
            Error::Limit {
                endpoint: endpoint.to_string(),
                option: "capacity",
                value: cap,
                limit: limit / (size + 96).max(1),
                source_of_limit: format!(
                    "RLIMIT_MSGQUEUE (ulimit -q) = {limit} bytes of queue memory per user, shared by all of this user's queues; this one needs about {need} for {cap} messages of {size} bytes"
                ),
                fix:
                    "lower capacity= or max_message_size=, remove unused queues, or raise ulimit -q"
                        .into(),
            }
        }
        _ => Error::io(format!("{endpoint}: mq_open {name} (create)"), e),
    }
}

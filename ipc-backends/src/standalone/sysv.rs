//! `sysv-mq:PATH?pattern=queue` on the System V message queue under key
//! `ftok(PATH, 'q')` ([sysvipc(7)]): one kernel message per ipcx message.
//!
//! Priorities ride in `mtype`: priority `p` is sent as type
//! `PRIO_LEVELS - p`, and a receive asks for the lowest type first
//! (`msgrcv` with a negative `msgtyp`), oldest first within one type — the
//! same order as a POSIX queue. The kernel finds the lowest type by
//! walking the queue, so a receive costs a walk over the queued messages
//! unless the first one has the highest priority.
//!
//! [sysvipc(7)]: https://man7.org/linux/man-pages/man7/sysvipc.7.html

use std::time::Duration;

use ipc_core::{Deadline, Endpoint, Error, Result};

use super::{HEADER_LEN, KernelLimit, Open, PRIORITY_LEVELS, Role, Status};
use crate::sys::limits::proc_limit;
use crate::sys::sysv_msg::{self, MsgBuf, MsgQueue, Op};

/// `ftok` project id of standalone queues (connections use `'x'`).
const PROJECT: u8 = b'q';
/// The kernel's `msgmax` when `/proc` does not say.
const DEFAULT_MSGMAX: u64 = 8192;
/// Longest sleep of a timed wait between two tries (System V queues
/// cannot be polled).
const MAX_NAP: Duration = Duration::from_millis(5);

/// An open System V queue (never removed on drop: it outlives us).
#[derive(Debug)]
pub(super) struct SysvQueue {
    q: MsgQueue,
    name: String,
    /// Largest kernel message this handle sends, header included.
    msgsize: usize,
    buf: MsgBuf,
}

/// The kernel's `msgmax`, read once per process: a receive asks for this
/// much, and a message longer than it (the limit raised since) is asked
/// for again with more room (`E2BIG`), so a stale value costs nothing but
/// that retry. Reading `/proc` per message cost four system calls each.
fn msgmax() -> u64 {
    static MSGMAX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MSGMAX.get_or_init(|| proc_limit(sysv_msg::MSGMAX_PATH).unwrap_or(DEFAULT_MSGMAX))
}

/// The queue's key; the key file must exist.
fn key(endpoint: &Endpoint) -> Result<libc::key_t> {
    let path = endpoint.address();
    sysv_msg::key_of(path, PROJECT).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            super::missing(endpoint)
        } else {
            Error::io(format!("{endpoint}: ftok {path}"), e)
        }
    })
}

/// The record id of the queue: its key in hex.
pub(super) fn record_id(endpoint: &Endpoint) -> Result<String> {
    Ok(format!("{:08x}", key(endpoint)?))
}

/// Creates the empty key file at the endpoint's path if none is there.
fn key_file(endpoint: &Endpoint) -> Result<()> {
    let path = endpoint.address();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(format!("{endpoint}: create {path}"), e)),
    }
}

/// Bytes per kernel message this handle sends, header included, within
/// `msgmax`.
fn msgsize(endpoint: &Endpoint) -> Result<usize> {
    let max = msgmax();
    let given = endpoint.options().max_message_size;
    if given == ipc_core::endpoint::DEFAULT_MAX_MESSAGE_SIZE {
        return Ok(max as usize);
    }
    let want = (given + HEADER_LEN) as u64;
    if want > max {
        return Err(Error::Limit {
            endpoint: endpoint.to_string(),
            option: "max_message_size",
            value: given as u64,
            limit: max - HEADER_LEN as u64,
            source_of_limit: format!(
                "{} = {max} bytes per message, {HEADER_LEN} of them the ipcx header",
                sysv_msg::MSGMAX_PATH
            ),
            fix: format!(
                "lower max_message_size to at most {} or raise {} (as root)",
                max - HEADER_LEN as u64,
                sysv_msg::MSGMAX_PATH
            ),
        });
    }
    Ok(want as usize)
}

impl SysvQueue {
    /// Opens (and per `open`, creates) the queue; `true` beside it when
    /// this call created it.
    pub(super) fn open(endpoint: &Endpoint, open: Open, role: Role) -> Result<(SysvQueue, bool)> {
        let msgsize = msgsize(endpoint)?;
        if open != Open::Existing {
            key_file(endpoint)?;
        }
        let k = key(endpoint)?;
        let wrap = |q: MsgQueue| SysvQueue {
            name: format!("System V queue {} (key {k:#010x})", q.id()),
            q,
            msgsize,
            buf: MsgBuf::default(),
        };
        for _ in 0..8 {
            if open != Open::Existing {
                match MsgQueue::create(Some(k), endpoint.options().mode) {
                    Ok(q) => {
                        q.set_owned(false);
                        let q = wrap(q);
                        if let Err(e) = q.size(endpoint) {
                            let _ = q.q.remove();
                            return Err(e);
                        }
                        return Ok((q, true));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) && open == Open::Create => {
                        return Err(super::exists(endpoint));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                        return Err(Error::io(
                            format!(
                                "{endpoint}: msgget: the system-wide number of System V queues is at its limit ({} = {}); remove unused queues or raise it (as root)",
                                sysv_msg::MSGMNI_PATH,
                                proc_limit(sysv_msg::MSGMNI_PATH)
                                    .map_or("?".into(), |n| n.to_string())
                            ),
                            e,
                        ));
                    }
                    Err(e) => return Err(Error::io(format!("{endpoint}: msgget (create)"), e)),
                }
            }
            match MsgQueue::open(k) {
                Ok(q) => return Ok((wrap(q), false)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && open == Open::Existing => {
                    return Err(super::missing(endpoint));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                    return Err(Error::PermissionDenied(format!(
                        "{endpoint}: msgget: the queue's mode does not let this user {}",
                        if role == Role::Producer {
                            "send"
                        } else {
                            "receive"
                        }
                    )));
                }
                Err(e) => return Err(Error::io(format!("{endpoint}: msgget"), e)),
            }
        }
        Err(Error::io(
            format!("{endpoint}: msgget: the queue kept being created and removed"),
            std::io::Error::from_raw_os_error(libc::EAGAIN),
        ))
    }

    /// Sets a new queue's byte capacity from `capacity=` (messages of the
    /// largest size); without it the kernel's `msgmnb` stays.
    fn size(&self, endpoint: &Endpoint) -> Result<()> {
        let Some(c) = endpoint.options().capacity else {
            return Ok(());
        };
        let bytes = c.saturating_mul(self.msgsize);
        let msgmnb = proc_limit(sysv_msg::MSGMNB_PATH).unwrap_or(16384);
        match self.q.set_capacity(bytes) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Err(Error::Limit {
                endpoint: endpoint.to_string(),
                option: "capacity",
                value: c as u64,
                limit: msgmnb / self.msgsize as u64,
                source_of_limit: format!(
                    "{} = {msgmnb} bytes per queue for unprivileged users, {}-byte messages",
                    sysv_msg::MSGMNB_PATH,
                    self.msgsize
                ),
                fix: format!(
                    "lower capacity or max_message_size, or raise {} (as root)",
                    sysv_msg::MSGMNB_PATH
                ),
            }),
            Err(e) => Err(Error::io(format!("{endpoint}: msgctl IPC_SET"), e)),
        }
    }

    pub(super) fn message_size(&self) -> usize {
        self.msgsize
    }

    pub(super) fn limit(&self) -> KernelLimit {
        let max = msgmax() as usize;
        KernelLimit {
            at_kernel_limit: self.msgsize >= max,
            source: format!(
                "{} = {max} bytes per message, {HEADER_LEN} of them the ipcx header",
                sysv_msg::MSGMAX_PATH
            ),
            raise: format!(
                "raise {} (as root) and max_message_size on the producers' endpoint",
                sysv_msg::MSGMAX_PATH
            ),
        }
    }

    /// The msqid: another queue under the same key gets another one.
    pub(super) fn object(&self) -> String {
        self.q.id().to_string()
    }

    pub(super) fn mode(&self) -> Result<u32> {
        Ok(self.status()?.mode)
    }

    fn removed(&self) -> Error {
        Error::io(
            format!(
                "{}: the queue was removed (ipcx queue rm, or ipcrm)",
                self.name
            ),
            std::io::Error::from_raw_os_error(libc::EIDRM),
        )
    }

    pub(super) fn send(&mut self, msg: &[u8], priority: u32, deadline: Deadline) -> Result<bool> {
        let mtype = libc::c_long::from(PRIORITY_LEVELS - priority);
        let mut nap = Duration::from_micros(100);
        loop {
            let nowait = deadline != Deadline::Never;
            match self.q.send_typed(&mut self.buf, mtype, &[msg], nowait) {
                Ok(Op::Done(_)) => return Ok(true),
                Ok(Op::Removed) => return Err(self.removed()),
                Ok(Op::WouldBlock) => {}
                Err(e) => return Err(Error::io(format!("msgsnd {}", self.name), e)),
            }
            if !wait(&deadline, &mut nap) {
                return Ok(false);
            }
        }
    }

    pub(super) fn recv(
        &mut self,
        out: &mut Vec<u8>,
        deadline: Deadline,
    ) -> Result<Option<(usize, u32)>> {
        let mut nap = Duration::from_micros(100);
        let mut max = (msgmax() as usize).max(self.msgsize);
        loop {
            let nowait = deadline != Deadline::Never;
            match self
                .q
                .receive_typed(&mut self.buf, max, -libc::c_long::MAX, nowait)
            {
                Ok(Op::Done(n)) => {
                    if out.len() < n {
                        out.resize(n, 0);
                    }
                    out[..n].copy_from_slice(&self.buf.text_mut()[..n]);
                    let t = self.buf.mtype();
                    let prio = match u32::try_from(t) {
                        Ok(t) if (1..=PRIORITY_LEVELS).contains(&t) => PRIORITY_LEVELS - t,
                        _ => 0,
                    };
                    return Ok(Some((n, prio)));
                }
                Ok(Op::Removed) => return Err(self.removed()),
                Ok(Op::WouldBlock) => {}
                // A message longer than we asked for (msgmax was raised
                // after we read it): ask for more.
                Err(e) if e.raw_os_error() == Some(libc::E2BIG) && max < 1 << 30 => {
                    max *= 2;
                    continue;
                }
                Err(e) => return Err(Error::io(format!("msgrcv {}", self.name), e)),
            }
            if !wait(&deadline, &mut nap) {
                return Ok(None);
            }
        }
    }

    pub(super) fn status(&self) -> Result<Status> {
        let s = self
            .q
            .status()
            .map_err(|e| Error::io(format!("msgctl IPC_STAT {}", self.name), e))?;
        Ok(Status {
            messages: s.messages,
            bytes: Some(s.bytes),
            capacity_messages: None,
            capacity_bytes: Some(s.capacity),
            message_size: self.msgsize,
            mode: s.mode,
            owner_uid: s.owner_uid,
            last_sender: (s.last_sender != 0).then_some(s.last_sender),
            last_receiver: (s.last_receiver != 0).then_some(s.last_receiver),
            jetstream: None,
        })
    }

    /// Removes the queue (waking blocked callers) and the key file when
    /// it is the empty file ipcx made.
    pub(super) fn remove(endpoint: &Endpoint) -> Result<bool> {
        let k = match key(endpoint) {
            Ok(k) => k,
            Err(_) => return Ok(false),
        };
        let found = match MsgQueue::open(k) {
            Ok(q) => {
                q.remove()
                    .map_err(|e| Error::io(format!("{endpoint}: msgctl IPC_RMID"), e))?;
                true
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
            Err(e) => return Err(Error::io(format!("{endpoint}: msgget"), e)),
        };
        let path = endpoint.address();
        let empty_ours = std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.is_file() && m.len() == 0 && m.uid() == crate::sys::process::uid()
        });
        if empty_ours {
            let _ = std::fs::remove_file(path);
        }
        Ok(found)
    }
}

/// Sleeps before the next try of a timed wait, backing off to
/// [`MAX_NAP`]; `false` once the deadline has passed.
fn wait(deadline: &Deadline, nap: &mut Duration) -> bool {
    let Some(left) = deadline.remaining() else {
        // Never: the call itself blocked and returned early (EINTR-free
        // paths only return when done), so try again at once.
        return true;
    };
    if left.is_zero() {
        return false;
    }
    std::thread::sleep((*nap).min(left));
    *nap = (*nap * 2).min(MAX_NAP);
    true
}

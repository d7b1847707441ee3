//! POSIX message queues ([mq_overview(7)]): open with attributes, send and
//! receive with a bounded wait, kernel limits. On Linux a queue descriptor is
//! a file descriptor, so it can be polled with [`super::fd::wait_any`].
//!
//! [mq_overview(7)]: https://man7.org/linux/man-pages/man7/mq_overview.7.html

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, MqdT, mq_attr_member_t};
use nix::sys::stat::Mode;
use nix::sys::time::TimeSpec;

use ipc_core::Deadline;

/// Where the kernel's limit on a queue's length (in messages) lives.
pub const MSG_MAX_PATH: &str = "/proc/sys/fs/mqueue/msg_max";
/// Where the kernel's limit on a queue's message size lives.
pub const MSGSIZE_MAX_PATH: &str = "/proc/sys/fs/mqueue/msgsize_max";
/// Where the kernel's limit on the number of queues (system-wide) lives.
pub const QUEUES_MAX_PATH: &str = "/proc/sys/fs/mqueue/queues_max";

/// The calling process's `RLIMIT_MSGQUEUE` (bytes of queue memory per user).
pub fn rlimit_msgqueue() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE)
        .ok()
        .map(|(soft, _)| soft)
}

/// The hard `RLIMIT_MSGQUEUE`: how far an unprivileged process may raise
/// its own.
pub fn rlimit_msgqueue_hard() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE)
        .ok()
        .map(|(_, hard)| hard)
}

/// Raises the soft `RLIMIT_MSGQUEUE` to the hard one (what any process
/// may do); returns the soft limit now in force.
///
/// # Errors
/// The error of `getrlimit`/`setrlimit`.
pub fn raise_rlimit_msgqueue() -> std::io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_MSGQUEUE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_MSGQUEUE, hard, hard)?;
    }
    Ok(soft.max(hard))
}

/// An open queue descriptor; closed on drop, deliberately not `Clone`.
/// The descriptor blocks, but every call is timed: `send`/`receive` return
/// at once when they would wait (callers then wait with `poll(2)`, beside
/// the peer's pidfd), and `receive_within` waits in the kernel for a
/// bounded slice.
#[derive(Debug)]
pub struct Mq(MqdT);

/// How to open a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Receive only.
    Read,
    /// Send only.
    Write,
}

/// Outcome of a non-blocking send or receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Done; for a receive, the message length.
    Done(usize),
    /// The queue is full (send) or empty (receive).
    WouldBlock,
}

/// A queue's attributes ([mq_getattr(3)]).
///
/// [mq_getattr(3)]: https://man7.org/linux/man-pages/man3/mq_getattr.3.html
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Most messages it holds.
    pub capacity: usize,
    /// Largest message, in bytes.
    pub message_size: usize,
    /// Messages queued now.
    pub queued: usize,
}

impl Mq {
    /// Creates queue `name` (which starts with '/') exclusively with `mode`
    /// and room for `capacity` messages of `msgsize` bytes, and opens it.
    ///
    /// # Errors
    /// The OS error of [mq_open(3)]: `EEXIST` when it exists, `EINVAL` when
    /// an attribute exceeds a limit, `EMFILE` when `RLIMIT_MSGQUEUE` is spent.
    ///
    /// [mq_open(3)]: https://man7.org/linux/man-pages/man3/mq_open.3.html
    pub fn create(
        name: &str,
        access: Access,
        mode: u32,
        capacity: usize,
        msgsize: usize,
    ) -> io::Result<Mq> {
        let attr = MqAttr::new(
            0,
            capacity as mq_attr_member_t,
            msgsize as mq_attr_member_t,
            0,
        );
        let flags = MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | flags_of(access);
        let mode = Mode::from_bits_truncate(mode & 0o777);
        let q = Mq(nix::mqueue::mq_open(name, flags, mode, Some(&attr))?);
        // mq_open narrows the mode by the umask; set exactly what was asked.
        nix::sys::stat::fchmod(q.as_fd(), mode)?;
        Ok(q)
    }

    /// Opens existing queue `name`.
    ///
    /// # Errors
    /// The OS error of [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html)
    /// (`ENOENT` when there is none).
    pub fn open(name: &str, access: Access) -> io::Result<Mq> {
        Ok(Mq(nix::mqueue::mq_open(
            name,
            flags_of(access),
            Mode::empty(),
            None,
        )?))
    }

    /// The queue's attributes.
    ///
    /// # Errors
    /// The OS error of `mq_getattr(3)`.
    pub fn attr(&self) -> io::Result<Attr> {
        let a = nix::mqueue::mq_getattr(&self.0)?;
        let n = |v: mq_attr_member_t| usize::try_from(v).unwrap_or(0);
        Ok(Attr {
            capacity: n(a.maxmsg()),
            message_size: n(a.msgsize()),
            queued: n(a.curmsgs()),
        })
    }

    /// Sends one message if there is room.
    ///
    /// # Errors
    /// OS errors other than a full queue (`EMSGSIZE` when `msg` is longer
    /// than the queue's message size).
    pub fn send(&self, msg: &[u8]) -> io::Result<Op> {
        // A deadline long past makes the blocking descriptor's send return
        // at once when the queue is full.
        self.send_by(msg, &EXPIRED)
    }

    /// Sends one message, waiting in the kernel at most `within` for room
    /// (one call when room comes).
    ///
    /// # Errors
    /// As [`Mq::send`].
    pub fn send_within(&self, msg: &[u8], within: Duration) -> io::Result<Op> {
        // The clock of the mq_timed* calls is CLOCK_REALTIME.
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
        self.send_by(msg, &(now + TimeSpec::from_duration(within)))
    }

    fn send_by(&self, msg: &[u8], until: &TimeSpec) -> io::Result<Op> {
        loop {
            // nix has no mq_timedsend.
            // SAFETY: `msg` is valid for reads of `msg.len()` bytes during
            // the call; `until` is a live timespec; the descriptor is an
            // open queue owned by self.
            let r = unsafe {
                libc::mq_timedsend(
                    self.0.as_raw_fd(),
                    msg.as_ptr().cast(),
                    msg.len(),
                    0,
                    until.as_ref(),
                )
            };
            match Errno::result(r) {
                Ok(_) => return Ok(Op::Done(msg.len())),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN | Errno::ETIMEDOUT) => return Ok(Op::WouldBlock),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives one message into `buf` if one is queued. `buf` must be at
    /// least the queue's message size long.
    ///
    /// # Errors
    /// OS errors other than an empty queue.
    pub fn receive(&self, buf: &mut [u8]) -> io::Result<Op> {
        self.receive_by(buf, &EXPIRED)
    }

    /// Receives one message into `buf`, waiting in the kernel at most
    /// `within` for one to arrive (one call when it does).
    ///
    /// # Errors
    /// OS errors other than an empty queue.
    pub fn receive_within(&self, buf: &mut [u8], within: Duration) -> io::Result<Op> {
        // The clock of the mq_timed* calls is CLOCK_REALTIME.
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
        self.receive_by(buf, &(now + TimeSpec::from_duration(within)))
    }

    fn receive_by(&self, buf: &mut [u8], until: &TimeSpec) -> io::Result<Op> {
        loop {
            let mut prio = 0;
            match nix::mqueue::mq_timedreceive(&self.0, buf, &mut prio, until) {
                Ok(n) => return Ok(Op::Done(n)),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN | Errno::ETIMEDOUT) => return Ok(Op::WouldBlock),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Standalone queues: sends and receives with a priority and a deadline,
/// and what identifies the queue object.
impl Mq {
    /// Sends one message with `priority`, waiting for room until
    /// `deadline` (`Never`: as long as it takes, in `mq_send`).
    ///
    /// # Errors
    /// OS errors other than a full queue at the deadline (`EMSGSIZE` when
    /// `msg` is longer than the queue's message size, `EINVAL` for a
    /// priority at or above `MQ_PRIO_MAX`).
    pub fn send_until(&self, msg: &[u8], priority: u32, deadline: Deadline) -> io::Result<Op> {
        let until = realtime_deadline(deadline)?;
        loop {
            let r = match &until {
                // SAFETY: `msg` is valid for reads of `msg.len()` bytes
                // during the call; the descriptor is an open queue owned by
                // self.
                None => unsafe {
                    libc::mq_send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), priority)
                },
                // SAFETY: as above; `t` is a live timespec.
                Some(t) => unsafe {
                    libc::mq_timedsend(
                        self.0.as_raw_fd(),
                        msg.as_ptr().cast(),
                        msg.len(),
                        priority,
                        t.as_ref(),
                    )
                },
            };
            match Errno::result(r) {
                Ok(_) => return Ok(Op::Done(msg.len())),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN | Errno::ETIMEDOUT) => return Ok(Op::WouldBlock),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Receives the oldest message of the highest priority into `buf`
    /// (at least the queue's message size long), waiting until `deadline`;
    /// returns its priority beside the outcome.
    ///
    /// # Errors
    /// OS errors other than an empty queue at the deadline.
    pub fn receive_until(&self, buf: &mut [u8], deadline: Deadline) -> io::Result<(Op, u32)> {
        let until = realtime_deadline(deadline)?;
        loop {
            let mut prio = 0;
            let r = match &until {
                // SAFETY: `buf` is valid for writes of `buf.len()` bytes and
                // `prio` for one u32 during the call; the descriptor is an
                // open queue owned by self.
                None => unsafe {
                    libc::mq_receive(
                        self.0.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut prio,
                    )
                },
                // SAFETY: as above; `t` is a live timespec.
                Some(t) => unsafe {
                    libc::mq_timedreceive(
                        self.0.as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        &mut prio,
                        t.as_ref(),
                    )
                },
            };
            match Errno::result(r) {
                Ok(n) => return Ok((Op::Done(n as usize), prio)),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN | Errno::ETIMEDOUT) => return Ok((Op::WouldBlock, 0)),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The queue's permission bits, owner uid and identity (device and
    /// inode of its file in the mqueue file system).
    ///
    /// # Errors
    /// The OS error of `fstat(2)`.
    pub fn file_status(&self) -> io::Result<FileStatus> {
        let st = nix::sys::stat::fstat(self.0.as_fd())?;
        Ok(FileStatus {
            mode: st.st_mode & 0o777,
            uid: st.st_uid,
            identity: (st.st_dev, st.st_ino),
        })
    }
}

/// What `fstat(2)` says about a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStatus {
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Device and inode: the same only for the same queue object.
    pub identity: (u64, u64),
}

/// The highest priority plus one ([sysconf(3)] `MQ_PRIO_MAX`; 32768 on
/// Linux).
///
/// [sysconf(3)]: https://man7.org/linux/man-pages/man3/sysconf.3.html
pub const PRIO_LEVELS: u32 = 32768;

/// `deadline` as the absolute `CLOCK_REALTIME` time the `mq_timed*` calls
/// take; `None` for `Never`.
fn realtime_deadline(deadline: Deadline) -> io::Result<Option<TimeSpec>> {
    Ok(match deadline.remaining() {
        None => None,
        Some(d) if d.is_zero() => Some(EXPIRED),
        Some(d) => {
            let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
            Some(now + TimeSpec::from_duration(d))
        }
    })
}

/// An absolute time long past: a timed call with it returns at once when it
/// would have to wait (the descriptors are blocking, so that the common
/// case of a waiting receiver takes one call; see [`Mq::receive_within`]).
const EXPIRED: TimeSpec = TimeSpec::new(0, 0);

impl AsFd for Mq {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Drop for Mq {
    fn drop(&mut self) {
        // MqdT does not close itself, and mq_close would need it by value;
        // on Linux the queue descriptor is a file descriptor.
        let _ = nix::unistd::close(self.0.as_raw_fd());
    }
}

/// Removes queue `name`. Queues still open stay usable until closed.
///
/// # Errors
/// The OS error of [mq_unlink(3)](https://man7.org/linux/man-pages/man3/mq_unlink.3.html).
pub fn unlink(name: &str) -> io::Result<()> {
    nix::mqueue::mq_unlink(name)?;
    Ok(())
}

/// Bytes queued in queue `name`, as the mqueue filesystem shows them
/// (`QSIZE:` of `/dev/mqueue/NAME`); `None` when the queue or the
/// filesystem is not there.
pub fn queued_bytes(name: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/dev/mqueue/{}", name.trim_start_matches('/')))
        .ok()?
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("QSIZE:")?.parse().ok())
}

fn flags_of(access: Access) -> MQ_OFlag {
    MQ_OFlag::O_CLOEXEC
        | match access {
            Access::Read => MQ_OFlag::O_RDONLY,
            Access::Write => MQ_OFlag::O_WRONLY,
        }
}

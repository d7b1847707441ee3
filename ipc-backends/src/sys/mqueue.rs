//! POSIX message queues ([mq_overview(7)]): open with attributes, send and
//! receive with a bounded wait, kernel limits. On Linux a queue descriptor is
//! a file descriptor, so it can be polled with [`super::fd::wait_any`].
//!
//! [mq_overview(7)]: https://man7.org/linux/man-pages/man7/mq_overview.7.html

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;

/// Where the kernel's limits on queues live.
pub const MSG_MAX_PATH: &str = "/proc/sys/fs/mqueue/msg_max";
/// Where the kernel's limit on a queue's message size lives.
pub const MSGSIZE_MAX_PATH: &str = "/proc/sys/fs/mqueue/msgsize_max";

/// Reads one number from a `/proc/sys` file.
pub fn proc_limit(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The calling process's `RLIMIT_MSGQUEUE` (bytes of queue memory per user).
pub fn rlimit_msgqueue() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_MSGQUEUE)
        .ok()
        .map(|(soft, _)| soft)
}

/// An open queue descriptor; closed on drop. The descriptor blocks, but
/// every call is timed: `send`/`receive` return at once when they would
/// wait (callers then wait with `poll(2)`, beside the peer's pidfd), and
/// `receive_within` waits in the kernel for a bounded slice.
#[derive(Debug)]
pub struct Mq(OwnedFd);

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
        let mut attr: libc::mq_attr = zeroed_attr();
        attr.mq_maxmsg = capacity as libc::c_long;
        attr.mq_msgsize = msgsize as libc::c_long;
        let flags = libc::O_CREAT | libc::O_EXCL | flags_of(access);
        let q = open(name, flags, mode, Some(&attr))?;
        // mq_open narrows the mode by the umask; set exactly what was asked.
        nix::sys::stat::fchmod(&q.0, nix::sys::stat::Mode::from_bits_truncate(mode & 0o777))?;
        Ok(q)
    }

    /// Opens existing queue `name`.
    ///
    /// # Errors
    /// The OS error of [mq_open(3)](https://man7.org/linux/man-pages/man3/mq_open.3.html).
    pub fn open(name: &str, access: Access) -> io::Result<Mq> {
        open(name, flags_of(access), 0, None)
    }

    /// `(capacity, message size, messages queued now)`.
    ///
    /// # Errors
    /// The OS error of `mq_getattr(3)`.
    pub fn attr(&self) -> io::Result<(usize, usize, usize)> {
        let mut attr = zeroed_attr();
        // SAFETY: the descriptor is an open queue (owned by self) and
        // mq_getattr writes one mq_attr through the pointer, which points at
        // a live local of that type.
        let r = unsafe { libc::mq_getattr(self.0.as_raw_fd(), &mut attr) };
        if r == -1 {
            return Err(io::Error::last_os_error());
        }
        let n = |v: libc::c_long| usize::try_from(v).unwrap_or(0);
        Ok((n(attr.mq_maxmsg), n(attr.mq_msgsize), n(attr.mq_curmsgs)))
    }

    /// Sends one message if there is room.
    ///
    /// # Errors
    /// OS errors other than a full queue (`EMSGSIZE` when `msg` is longer
    /// than the queue's message size).
    pub fn send(&self, msg: &[u8]) -> io::Result<Op> {
        self.send_by(msg, &EXPIRED)
    }

    fn send_by(&self, msg: &[u8], until: &libc::timespec) -> io::Result<Op> {
        loop {
            // SAFETY: `msg` is valid for reads of `msg.len()` bytes during
            // the call; `until` is a live timespec; the descriptor is an
            // open queue owned by self.
            let r = unsafe {
                libc::mq_timedsend(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0, until)
            };
            if r == 0 {
                return Ok(Op::Done(msg.len()));
            }
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EAGAIN | Errno::ETIMEDOUT => return Ok(Op::WouldBlock),
                e => return Err(e.into()),
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
        let until = realtime_after(within)?;
        self.receive_by(buf, &until)
    }

    fn receive_by(&self, buf: &mut [u8], until: &libc::timespec) -> io::Result<Op> {
        loop {
            let mut prio = 0;
            // SAFETY: mq_timedreceive writes at most `buf.len()` bytes into
            // `buf`; `prio` and `until` are live locals; the descriptor is an
            // open queue owned by self.
            let r = unsafe {
                libc::mq_timedreceive(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut prio,
                    until,
                )
            };
            if r >= 0 {
                return Ok(Op::Done(r as usize));
            }
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::EAGAIN | Errno::ETIMEDOUT => return Ok(Op::WouldBlock),
                e => return Err(e.into()),
            }
        }
    }
}

/// An absolute time long past: a timed call with it returns at once when it
/// would have to wait (the descriptors are blocking, so that the common
/// case of a waiting receiver takes one call; see [`Mq::receive_within`]).
const EXPIRED: libc::timespec = libc::timespec {
    tv_sec: 0,
    tv_nsec: 0,
};

/// `CLOCK_REALTIME` (the clock of the `mq_timed*` calls) plus `d`.
fn realtime_after(d: Duration) -> io::Result<libc::timespec> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME)?;
    let nanos = now.tv_nsec() as u64 + u64::from(d.subsec_nanos());
    Ok(libc::timespec {
        tv_sec: now.tv_sec()
            + d.as_secs() as libc::time_t
            + (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
    })
}

impl AsFd for Mq {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
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

fn flags_of(access: Access) -> libc::c_int {
    libc::O_CLOEXEC
        | match access {
            Access::Read => libc::O_RDONLY,
            Access::Write => libc::O_WRONLY,
        }
}

fn zeroed_attr() -> libc::mq_attr {
    // SAFETY: mq_attr is a plain C struct of integers (and padding) for
    // which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

fn open(name: &str, flags: libc::c_int, mode: u32, attr: Option<&libc::mq_attr>) -> io::Result<Mq> {
    let cname =
        std::ffi::CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let attr_ptr = attr.map_or(std::ptr::null(), |a| a as *const libc::mq_attr);
    // SAFETY: `cname` is a NUL-terminated string that outlives the call;
    // `attr_ptr` is null or points at a live mq_attr; mode and attr are
    // passed as the variadic arguments mq_open reads when O_CREAT is set.
    let fd = unsafe { libc::mq_open(cname.as_ptr(), flags, mode as libc::mode_t, attr_ptr) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: on Linux mqd_t is a descriptor; mq_open returned a fresh one
    // that nothing else owns.
    Ok(Mq(unsafe { OwnedFd::from_raw_fd(fd) }))
}

//! Waiting on file descriptors with a deadline.

use std::os::fd::{AsFd, BorrowedFd};

use std::io;

use ipc_core::Deadline;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// What to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// Readable (or hung up).
    Read,
    /// Writable (or in error).
    Write,
}

impl Interest {
    fn flags(self) -> PollFlags {
        match self {
            Interest::Read => PollFlags::POLLIN,
            Interest::Write => PollFlags::POLLOUT,
        }
    }
}

/// Which of the descriptors given to [`wait_any`] became ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// The descriptor at this index.
    Index(usize),
    /// The deadline passed first.
    TimedOut,
}

/// Waits until `fd` is ready for `interest` or the deadline passes.
/// Returns `false` on timeout. Hang-up and error states count as ready, so
/// the following read or write reports them.
///
/// # Errors
/// The OS error of `poll(2)`, other than `EINTR`.
pub fn wait(fd: BorrowedFd<'_>, interest: Interest, deadline: Deadline) -> io::Result<bool> {
    Ok(wait_any(&[(fd, interest)], deadline)? != Ready::TimedOut)
}

/// Waits until any of `fds` is ready or the deadline passes.
///
/// # Errors
/// The OS error of `poll(2)`, other than `EINTR`.
pub fn wait_any(fds: &[(BorrowedFd<'_>, Interest)], deadline: Deadline) -> io::Result<Ready> {
    loop {
        let mut pfds: Vec<PollFd<'_>> = fds
            .iter()
            .map(|(fd, i)| PollFd::new(fd.as_fd(), i.flags()))
            .collect();
        let timeout = match deadline.remaining() {
            None => PollTimeout::NONE,
            // Round up so a sub-millisecond remainder does not spin.
            Some(d) => {
                let ms = d.as_micros().div_ceil(1000);
                PollTimeout::try_from(ms.min(i32::MAX as u128) as i32).unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(&mut pfds, timeout) {
            Ok(0) => {
                if deadline.expired() {
                    return Ok(Ready::TimedOut);
                }
            }
            Ok(_) => {
                let idx = pfds
                    .iter()
                    .position(|p| p.revents().is_some_and(|r| !r.is_empty()))
                    .unwrap_or(0);
                return Ok(Ready::Index(idx));
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// The owner uid of an open file (a FIFO, a POSIX queue, …).
///
/// # Errors
/// The OS error of `fstat(2)`.
pub fn owner(fd: BorrowedFd<'_>) -> std::io::Result<u32> {
    Ok(nix::sys::stat::fstat(fd)?.st_uid)
}

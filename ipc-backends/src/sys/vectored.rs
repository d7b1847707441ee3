//! Many slices in one system call: `writev(2)` on a pipe or FIFO end,
//! `sendmsg(2)` on a stream socket. What a batch of frames goes out with.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd};

use nix::errno::Errno;
use nix::sys::socket::{self, MsgFlags};

use super::socket::Io;

/// The most slices one call takes (`IOV_MAX` on Linux).
pub const MAX_SLICES: usize = 1024;

/// Writes `slices` (at most [`MAX_SLICES`]) to a pipe or FIFO end with one
/// `writev(2)`; blocking or not as the descriptor is. `EINTR` is retried.
///
/// # Errors
/// OS errors other than would-block and no-reader.
pub fn write(fd: BorrowedFd<'_>, slices: &[IoSlice<'_>]) -> io::Result<Io> {
    loop {
        match nix::sys::uio::writev(fd, slices) {
            Ok(n) => return Ok(Io::Done(n)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Io::WouldBlock),
            Err(Errno::EPIPE) => return Ok(Io::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends `slices` (at most [`MAX_SLICES`]) on a stream socket with one
/// `sendmsg(2)`, without `SIGPIPE`; non-blocking when `nonblock`. `EINTR`
/// is retried.
///
/// # Errors
/// OS errors other than would-block and peer-gone.
pub fn send(fd: BorrowedFd<'_>, slices: &[IoSlice<'_>], nonblock: bool) -> io::Result<Io> {
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if nonblock {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        match socket::sendmsg::<()>(fd.as_raw_fd(), slices, &[], flags, None) {
            Ok(n) => return Ok(Io::Done(n)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Io::WouldBlock),
            Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN | Errno::ESHUTDOWN) => {
                return Ok(Io::Closed);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

//! Passing a descriptor over a Unix socket (`SCM_RIGHTS`, [unix(7)]).
//!
//! [unix(7)]: https://man7.org/linux/man-pages/man7/unix.7.html

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

/// Sends `byte` with `fd` attached, non-blocking. `Ok(false)` when the
/// socket buffer is full (nothing sent).
///
/// # Errors
/// The OS error of `sendmsg(2)`.
pub fn send_fd(sock: BorrowedFd<'_>, byte: u8, fd: BorrowedFd<'_>) -> std::io::Result<bool> {
    let data = [byte];
    let iov = [IoSlice::new(&data)];
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &iov,
            &cmsg,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            None,
        ) {
            Ok(_) => return Ok(true),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
    }
}

/// What [`recv_fd`] got.
#[derive(Debug)]
pub enum Received {
    /// Nothing yet.
    WouldBlock,
    /// The peer closed the socket.
    Closed,
    /// One byte and the descriptor sent with it, if any.
    Byte(u8, Option<OwnedFd>),
}

/// Receives one byte and at most one passed descriptor, non-blocking.
/// Extra descriptors a peer may attach are closed.
///
/// # Errors
/// The OS error of `recvmsg(2)`.
pub fn recv_fd(sock: BorrowedFd<'_>) -> std::io::Result<Received> {
    let mut data = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    loop {
        let mut iov = [IoSliceMut::new(&mut data)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Received::WouldBlock),
            Err(Errno::ECONNRESET) => return Ok(Received::Closed),
            Err(e) => return Err(e.into()),
        };
        let mut got: Option<OwnedFd> = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the kernel installed `raw` in our table for this
                    // message; nothing else owns it, so taking ownership (and
                    // closing extras on drop) is sound.
                    let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                    if got.is_none() {
                        got = Some(owned);
                    }
                }
            }
        }
        if msg.bytes == 0 {
            return Ok(Received::Closed);
        }
        return Ok(Received::Byte(data[0], got));
    }
}

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
    send_fds(sock, byte, &[fd])
}

/// Sends `byte` with every descriptor of `fds` attached (at most
/// [`MAX_FDS`]), non-blocking. `Ok(false)` when the socket buffer is full
/// (nothing sent).
///
/// # Errors
/// The OS error of `sendmsg(2)`.
pub fn send_fds(sock: BorrowedFd<'_>, byte: u8, fds: &[BorrowedFd<'_>]) -> std::io::Result<bool> {
    debug_assert!(fds.len() <= MAX_FDS);
    let data = [byte];
    let iov = [IoSlice::new(&data)];
    let fds: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
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

/// The most descriptors one message carries here.
pub const MAX_FDS: usize = 4;

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
    Ok(match recv_fds(sock)? {
        ReceivedMany::WouldBlock => Received::WouldBlock,
        ReceivedMany::Closed => Received::Closed,
        ReceivedMany::Byte(b, fds) => Received::Byte(b, fds.into_iter().next()),
    })
}

/// What [`recv_fds`] got.
#[derive(Debug)]
pub enum ReceivedMany {
    /// Nothing yet.
    WouldBlock,
    /// The peer closed the socket.
    Closed,
    /// One byte and the descriptors sent with it (at most [`MAX_FDS`]).
    Byte(u8, Vec<OwnedFd>),
}

/// Receives one byte and the descriptors sent with it, non-blocking.
///
/// # Errors
/// The OS error of `recvmsg(2)`.
pub fn recv_fds(sock: BorrowedFd<'_>) -> std::io::Result<ReceivedMany> {
    let mut data = [0u8; 1];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
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
            Err(Errno::EAGAIN) => return Ok(ReceivedMany::WouldBlock),
            Err(Errno::ECONNRESET) => return Ok(ReceivedMany::Closed),
            Err(e) => return Err(e.into()),
        };
        let mut got: Vec<OwnedFd> = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for raw in fds {
                    // SAFETY: the kernel installed `raw` in our table for this
                    // message; nothing else owns it, so taking ownership (and
                    // closing it on drop) is sound.
                    got.push(unsafe { OwnedFd::from_raw_fd(raw) });
                }
            }
        }
        if msg.bytes == 0 {
            return Ok(ReceivedMany::Closed);
        }
        return Ok(ReceivedMany::Byte(data[0], got));
    }
}

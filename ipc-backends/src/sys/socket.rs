//! Unix and TCP stream sockets.

use std::io;
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    self, AddressFamily, Backlog, Shutdown, SockFlag, SockType, UnixAddr, sockopt,
};

/// Backlog of listening sockets; the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 1024;

/// Where a Unix socket lives.
#[derive(Debug, Clone, Copy)]
pub enum UnixName<'a> {
    /// A file path.
    Path(&'a str),
    /// An abstract-namespace name (without the leading NUL).
    Abstract(&'a str),
}

fn unix_addr(name: UnixName<'_>) -> nix::Result<UnixAddr> {
    match name {
        UnixName::Path(p) => UnixAddr::new(p),
        UnixName::Abstract(n) => UnixAddr::new_abstract(n.as_bytes()),
    }
}

fn unix_socket(flags: SockFlag) -> nix::Result<OwnedFd> {
    socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | flags,
        None,
    )
}

/// The identity of a socket file, to remove only our own on drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

/// The identity of the file at `path`, if any.
pub fn file_id(path: &str) -> Option<FileId> {
    std::fs::symlink_metadata(path).ok().map(|m| FileId {
        dev: m.dev(),
        ino: m.ino(),
    })
}

/// Why [`unix_listen`] failed.
#[derive(Debug)]
pub enum ListenError {
    /// A live listener already serves this address.
    InUse,
    /// A non-socket file sits at the path.
    NotASocket,
    /// Another failure, with the call's name.
    Os(&'static str, io::Error),
}

/// Binds and listens on a Unix stream socket, non-blocking (for
/// `accept` with a deadline), with `mode` on its file. The permission bits
/// are set before `listen(2)`, so no client can connect through wider ones.
/// A socket file left by a dead listener (connecting to it is refused) is
/// removed and the bind retried once.
///
/// # Errors
/// [`ListenError`].
pub fn unix_listen(name: UnixName<'_>, mode: u32) -> Result<OwnedFd, ListenError> {
    let addr = unix_addr(name).map_err(|e| ListenError::Os("socket address", e.into()))?;
    let fd =
        unix_socket(SockFlag::SOCK_NONBLOCK).map_err(|e| ListenError::Os("socket", e.into()))?;
    match socket::bind(fd.as_raw_fd(), &addr) {
        Ok(()) => {}
        Err(Errno::EADDRINUSE) => {
            let UnixName::Path(path) = name else {
                return bind_abstract_again(&fd, &addr).and_then(|()| {
                    socket::listen(&fd, Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN))
                        .map_err(|e| ListenError::Os("listen", e.into()))?;
                    Ok(fd)
                });
            };
            reclaim_stale(path, &addr)?;
            socket::bind(fd.as_raw_fd(), &addr).map_err(|e| match e {
                Errno::EADDRINUSE => ListenError::InUse,
                e => ListenError::Os("bind", e.into()),
            })?;
        }
        Err(e) => return Err(ListenError::Os("bind", e.into())),
    }
    if let UnixName::Path(path) = name {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ListenError::Os("chmod", e))?;
    }
    socket::listen(&fd, Backlog::new(BACKLOG).unwrap_or(Backlog::MAXCONN))
        .map_err(|e| ListenError::Os("listen", e.into()))?;
    Ok(fd)
}

fn reclaim_stale(path: &str, addr: &UnixAddr) -> Result<(), ListenError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| ListenError::Os("stat", e))?;
    if !meta.file_type().is_socket() {
        return Err(ListenError::NotASocket);
    }
    let probe = unix_socket(SockFlag::empty()).map_err(|e| ListenError::Os("socket", e.into()))?;
    match socket::connect(probe.as_raw_fd(), addr) {
        Ok(()) => Err(ListenError::InUse),
        Err(Errno::ECONNREFUSED) => std::fs::remove_file(path).or_else(|e| match e.kind() {
            io::ErrorKind::NotFound => Ok(()),
            _ => Err(ListenError::Os("unlink stale socket", e)),
        }),
        Err(e) => Err(ListenError::Os("connect (stale check)", e.into())),
    }
}

/// Binds an abstract name that was in use once more, a few times over
/// 100 ms: a listener that just closed may still have its socket held by a
/// child process between `fork` and `exec` (the descriptor is close-on-exec,
/// so only for that moment). A name still in use after that is a live
/// listener's.
fn bind_abstract_again(fd: &OwnedFd, addr: &UnixAddr) -> Result<(), ListenError> {
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(5));
        match socket::bind(fd.as_raw_fd(), addr) {
            Ok(()) => return Ok(()),
            Err(Errno::EADDRINUSE) => {}
            Err(e) => return Err(ListenError::Os("bind", e.into())),
        }
    }
    Err(ListenError::InUse)
}

/// Connects a blocking Unix stream socket.
///
/// # Errors
/// The OS error of `socket(2)` or `connect(2)`.
pub fn unix_connect(name: UnixName<'_>) -> io::Result<OwnedFd> {
    let addr = unix_addr(name)?;
    let fd = unix_socket(SockFlag::empty())?;
    loop {
        match socket::connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return Ok(fd),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Accepts one connection from a non-blocking listener; the new socket is
/// blocking and close-on-exec. `Ok(None)` when none is pending.
///
/// # Errors
/// The OS error of `accept4(2)`.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    loop {
        match socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            // SAFETY: accept4 returned a fresh descriptor that nothing else owns.
            Ok(raw) => return Ok(Some(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })),
            Err(Errno::EAGAIN) => return Ok(None),
            // The client gave up between poll and accept: try the next one.
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The kernel-verified (pid, uid) of a Unix socket's peer (`SO_PEERCRED`).
///
/// # Errors
/// The OS error of `getsockopt(2)`.
pub fn peer_credentials(fd: BorrowedFd<'_>) -> io::Result<(u32, u32)> {
    let cred = socket::getsockopt(&fd, sockopt::PeerCredentials)?;
    Ok((cred.pid() as u32, cred.uid()))
}

/// Binds a non-blocking TCP listener (with `SO_REUSEADDR`, as std does).
///
/// # Errors
/// The OS error of resolving, binding or listening.
pub fn tcp_listen(address: &str) -> io::Result<(OwnedFd, String)> {
    let l = TcpListener::bind(address)?;
    l.set_nonblocking(true)?;
    let local = l.local_addr()?.to_string();
    Ok((l.into(), local))
}

/// Connects a blocking TCP socket with `TCP_NODELAY`, trying each resolved
/// address within `timeout`.
///
/// # Errors
/// The last OS error.
pub fn tcp_connect(address: &str, timeout: Duration) -> io::Result<OwnedFd> {
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        "the host name resolved to no address",
    );
    for a in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s.into());
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Sets `TCP_NODELAY` on an accepted TCP socket.
///
/// # Errors
/// The OS error of `setsockopt(2)`.
pub fn set_nodelay(fd: BorrowedFd<'_>) -> io::Result<()> {
    socket::setsockopt(&fd, sockopt::TcpNoDelay, &true)?;
    Ok(())
}

/// Outcome of one send or receive call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// This many bytes moved (0 from a receive means end of stream).
    Done(usize),
    /// The call would have blocked.
    WouldBlock,
    /// The peer is gone (`EPIPE`, `ECONNRESET`).
    Closed,
}

fn outcome(r: isize) -> io::Result<Io> {
    match Errno::result(r) {
        Ok(n) => Ok(Io::Done(n as usize)),
        Err(Errno::EAGAIN) => Ok(Io::WouldBlock),
        Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN | Errno::ESHUTDOWN) => {
            Ok(Io::Closed)
        }
        Err(e) => Err(e.into()),
    }
}

/// Sends `a` then `b` (which may be empty) in one call — `send(2)` for one
/// slice, `sendmsg(2)` for two — never raising `SIGPIPE`; non-blocking when
/// `nonblock`. `EINTR` is retried.
///
/// # Errors
/// OS errors other than would-block and peer-gone.
#[inline]
pub fn send_two(fd: BorrowedFd<'_>, a: &[u8], b: &[u8], nonblock: bool) -> io::Result<Io> {
    let mut flags = libc::MSG_NOSIGNAL;
    if nonblock {
        flags |= libc::MSG_DONTWAIT;
    }
    loop {
        let r = if b.is_empty() {
            // SAFETY: `a` is valid for reads of `a.len()` bytes during the
            // call; send(2) only reads them.
            unsafe { libc::send(fd.as_raw_fd(), a.as_ptr().cast(), a.len(), flags) }
        } else {
            let mut iov = [io::IoSlice::new(a), io::IoSlice::new(b)];
            // SAFETY: an all-zero msghdr is valid (no name, no control).
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_mut_ptr().cast();
            msg.msg_iovlen = 2;
            // SAFETY: `IoSlice` is ABI-compatible with `struct iovec`; the
            // two slices are valid for reads during the call, which only
            // reads them.
            unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags) }
        };
        match Errno::result(r) {
            Ok(n) => return Ok(Io::Done(n as usize)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Io::WouldBlock),
            Err(Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN | Errno::ESHUTDOWN) => {
                return Ok(Io::Closed);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receives into possibly uninitialised memory; non-blocking when
/// `nonblock`. Returns the count of bytes written to the front of `buf`.
/// `EINTR` is retried.
///
/// # Errors
/// OS errors other than would-block and peer-gone.
pub fn recv_uninit(
    fd: BorrowedFd<'_>,
    buf: &mut [MaybeUninit<u8>],
    nonblock: bool,
) -> io::Result<Io> {
    let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
        // duration of the call; recv writes at most that many and never
        // reads them, so uninitialised memory is fine.
        let r = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        match outcome(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Receives into `a` and then `b` (possibly uninitialised) in one
/// `recvmsg(2)`; non-blocking when `nonblock`. Returns the count of bytes
/// written, `a` first. `EINTR` is retried.
///
/// # Errors
/// OS errors other than would-block and peer-gone.
pub fn recv_two_uninit(
    fd: BorrowedFd<'_>,
    a: &mut [MaybeUninit<u8>],
    b: &mut [MaybeUninit<u8>],
    nonblock: bool,
) -> io::Result<Io> {
    let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
    let mut iov = [
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ];
    loop {
        // SAFETY: an all-zero msghdr is valid (no name, no control data).
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov.as_mut_ptr();
        msg.msg_iovlen = 2;
        // SAFETY: the two iovecs describe memory valid for writes of their
        // lengths for the duration of the call (borrowed mutably above);
        // recvmsg(2) writes at most that much and never reads it.
        let r = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags) };
        match outcome(r) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Shuts down one or both directions; errors (the peer already gone) are
/// ignored, as there is nothing left to tell.
pub fn shutdown(fd: BorrowedFd<'_>, how: Shutdown) {
    let _ = socket::shutdown(fd.as_raw_fd(), how);
}

pub use nix::sys::socket::Shutdown as How;

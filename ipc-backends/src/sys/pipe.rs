//! Anonymous pipes and named FIFOs: creation, non-blocking reads and writes,
//! and handing pipe ends to a child process.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::stat::Mode;

pub use super::socket::Io;

/// `PIPE_BUF`: writes up to this size to a pipe or FIFO are atomic.
pub const PIPE_BUF: usize = libc::PIPE_BUF;

/// Creates a pipe, both ends close-on-exec and non-blocking.
/// Returns `(read end, write end)`.
///
/// # Errors
/// The OS error of [pipe2(2)](https://man7.org/linux/man-pages/man2/pipe2.2.html).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?)
}

/// Sets or clears `O_NONBLOCK` on `fd`'s open file description.
///
/// # Errors
/// The OS error of `fcntl(2)`.
pub fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    let flags = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    fcntl(fd, FcntlArg::F_SETFL(flags))?;
    Ok(())
}

/// Sets close-on-exec on `fd`.
///
/// # Errors
/// The OS error of `fcntl(2)`.
pub fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Takes ownership of an inherited descriptor number, checking that it is
/// open and a pipe or FIFO.
///
/// # Errors
/// `EBADF` when the number is not open, `EINVAL` when it is not a pipe.
pub fn adopt_inherited(raw: RawFd) -> io::Result<OwnedFd> {
    let st = nix::sys::stat::fstat(
        // SAFETY: fstat only reads the descriptor number; an invalid one
        // fails with EBADF instead of touching memory.
        unsafe { BorrowedFd::borrow_raw(raw) },
    )?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: the descriptor is open (fstat succeeded), was inherited for
    // this purpose (named in the environment by our parent), and ownership
    // is taken once: the caller removes the environment variable.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Arranges for `fds` to survive `exec` in the child `cmd` will start: their
/// close-on-exec flag is cleared in the child only, after `fork`.
pub fn inherit_in_child(cmd: &mut Command, fds: [RawFd; 2]) {
    let hook = move || {
        for fd in fds {
            // SAFETY: fcntl on a descriptor number touches no memory.
            Errno::result(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) })?;
        }
        Ok(())
    };
    // The caller keeps both descriptors open until spawn forks.
    // SAFETY: between fork and exec the hook only calls fcntl(2), which is
    // async-signal-safe: no allocation, no lock; the descriptors are open.
    unsafe {
        cmd.pre_exec(hook);
    }
}

/// Bytes waiting in a pipe or FIFO (`FIONREAD`): a look that, unlike
/// `poll(2)`, leaves no mark on the pipe (a polled pipe wakes its wait
/// queue at every later write).
///
/// # Errors
/// The OS error of `ioctl(2)`.
pub fn waiting_bytes(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one `int` through the pointer, which points
    // at `n`, live for the call.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n) };
    Errno::result(r)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Reads into possibly uninitialised memory without blocking. `Io::Done(0)`
/// is end of file (every writer closed). `EINTR` is retried.
///
/// # Errors
/// OS errors other than would-block.
pub fn read_uninit(fd: BorrowedFd<'_>, buf: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<Io> {
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes during the
        // call; read(2) writes at most that many and never reads them.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        match Errno::result(r) {
            Ok(n) => return Ok(Io::Done(n as usize)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Io::WouldBlock),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads into `a` and then `b` (possibly uninitialised) in one
/// `readv(2)`. Non-blocking or not as the descriptor is. `Io::Done(0)` is
/// end of file. `EINTR` is retried.
///
/// # Errors
/// OS errors other than would-block.
pub fn read_two_uninit(
    fd: BorrowedFd<'_>,
    a: &mut [std::mem::MaybeUninit<u8>],
    b: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<Io> {
    let iov = [
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
        // SAFETY: both iovecs describe memory valid for writes of their
        // lengths for the duration of the call (borrowed mutably above);
        // readv(2) writes at most that much and never reads it.
        let r = unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), 2) };
        match Errno::result(r) {
            Ok(n) => return Ok(Io::Done(n as usize)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Io::WouldBlock),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes `a` then `b` (which may be empty) in one call — `write(2)` for
/// one slice, `writev(2)` for two. `Io::Closed` when no reader is left
/// (`EPIPE`; Rust programs ignore `SIGPIPE`, so no signal is raised).
///
/// # Errors
/// OS errors other than would-block and no-reader.
#[inline]
pub fn write_two(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<Io> {
    loop {
        let r = if b.is_empty() {
            // SAFETY: `a` is valid for reads of `a.len()` bytes during the
            // call; write(2) only reads them.
            unsafe { libc::write(fd.as_raw_fd(), a.as_ptr().cast(), a.len()) }
        } else {
            let iov = [io::IoSlice::new(a), io::IoSlice::new(b)];
            // SAFETY: `IoSlice` is ABI-compatible with `struct iovec`, and
            // both slices are valid for reads during the call.
            unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr().cast(), 2) }
        };
        match Errno::result(r) {
            Ok(n) => return Ok(Io::Done(n as usize)),
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) => return Ok(Io::WouldBlock),
            Err(Errno::EPIPE) => return Ok(Io::Closed),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates a FIFO at `path` with exactly `mode` (not narrowed by the
/// umask). Fails with `EEXIST` when anything is at `path`.
///
/// # Errors
/// The OS error of `mkfifo(3)` or `chmod(2)`.
pub fn mkfifo(path: &str, mode: u32) -> io::Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o600 & mode))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o777))
}

/// How to open a FIFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FifoEnd {
    /// Read end. Opening never waits.
    Read,
    /// Write end. Fails with `ENXIO` while nobody has the read end open.
    Write,
    /// Both ends (a listener that must not see end of file between clients).
    Both,
}

/// Opens the FIFO at `path` non-blocking and close-on-exec, refusing
/// anything that is not a FIFO and following no symlink.
///
/// # Errors
/// The OS error of `open(2)`; `EINVAL` when `path` is not a FIFO.
pub fn open_fifo(path: &str, end: FifoEnd) -> io::Result<OwnedFd> {
    let access = match end {
        FifoEnd::Read => OFlag::O_RDONLY,
        FifoEnd::Write => OFlag::O_WRONLY,
        FifoEnd::Both => OFlag::O_RDWR,
    };
    let fd = nix::fcntl::open(
        path,
        access | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    let st = nix::sys::stat::fstat(&fd)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFIFO {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(fd)
}

/// Owner uid of the file at `path`, and whether it is a FIFO (no symlink
/// followed). `None` when nothing is there.
pub fn fifo_at(path: &str) -> Option<(bool, u32)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    use std::os::unix::fs::FileTypeExt;
    Some((m.file_type().is_fifo(), m.uid()))
}

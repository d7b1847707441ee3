//! Processes: our ids, peer liveness, start times and pidfds.
//!
//! A pid alone does not name a process for long: once it exits the number
//! can be reused. ipcx records a peer's pid together with its start time
//! (field 22 of `/proc/PID/stat`, in clock ticks since boot) and treats a
//! pid whose start time differs as dead.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use std::io;

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

/// This process's id.
#[inline]
pub fn pid() -> u32 {
    use std::sync::atomic::Ordering;
    match PID.load(Ordering::Relaxed) {
        0 => pid_slow(),
        cached => cached,
    }
}

#[cold]
#[inline(never)]
fn pid_slow() -> u32 {
    use std::sync::atomic::Ordering;
    FORGET_ON_FORK.call_once(|| {
        // SAFETY: pthread_atfork takes plain function pointers; the child
        // handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(forget_pid)) };
    });
    let pid = std::process::id();
    PID.store(pid, Ordering::Relaxed);
    pid
}

/// This process's pid once asked (`getpid(2)` is a system call each time,
/// and a lock records its holder on every acquisition); 0 until then and
/// again in a forked child.
static PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
static FORGET_ON_FORK: std::sync::Once = std::sync::Once::new();

extern "C" fn forget_pid() {
    PID.store(0, std::sync::atomic::Ordering::Relaxed);
    START.store(0, std::sync::atomic::Ordering::Relaxed);
}

/// This process's start time once read (it never changes; a listener
/// records it in every segment and registry record it creates); 0 until
/// then and again in a forked child.
static START: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// This process's effective user id.
pub fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The start time of process `pid` in clock ticks since boot, or `None` if
/// it does not exist. This process's own is read once.
pub fn start_time(pid: u32) -> Option<u64> {
    use std::sync::atomic::Ordering;
    if pid != self::pid() {
        return read_start_time(pid);
    }
    match START.load(Ordering::Relaxed) {
        0 => {
            let t = read_start_time(pid)?;
            START.store(t, Ordering::Relaxed);
            Some(t)
        }
        cached => Some(cached),
    }
}

/// [`start_time`] read from `/proc/PID/stat`.
fn read_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: skip past
    // the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // After ')': field 3 is the state; the start time is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether process `pid` lives and, if `started` is given, is the same
/// process that had that start time.
pub fn alive(pid: u32, started: Option<u64>) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match kill(Pid::from_raw(raw), None) {
        Ok(()) | Err(Errno::EPERM) => {}
        Err(_) => return false,
    }
    match started {
        None => true,
        // A zombie still has its /proc entry; count it as dead.
        Some(t) => start_time(pid) == Some(t) && !is_zombie(pid),
    }
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace()
                .next()
                .map(|st| st == "Z" || st == "X")
        })
        .unwrap_or(true)
}

/// A descriptor that becomes readable when its process exits
/// ([pidfd_open(2)]).
///
/// [pidfd_open(2)]: https://man7.org/linux/man-pages/man2/pidfd_open.2.html
#[derive(Debug)]
pub struct PidFd(OwnedFd);

impl PidFd {
    /// Opens a pidfd for `pid`; `Ok(None)` if the process no longer exists.
    ///
    /// # Errors
    /// The OS error of `pidfd_open` (`ENOSYS` before Linux 5.3).
    pub fn open(pid: u32) -> io::Result<Option<PidFd>> {
        let Ok(raw_pid) = i32::try_from(pid) else {
            return Ok(None);
        };
        // SAFETY: pidfd_open takes a pid and flags by value and returns a new
        // descriptor (always close-on-exec) or -1; no memory is passed.
        match Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) }) {
            // SAFETY: the call returned a fresh descriptor (not -1) that
            // nothing else owns; it fits in i32 because descriptors are ints.
            Ok(fd) => Ok(Some(PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))),
            Err(Errno::ESRCH) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether the process has exited (non-blocking).
    ///
    /// # Errors
    /// The OS error of `poll(2)`.
    pub fn exited(&self) -> io::Result<bool> {
        super::fd::wait(
            self.0.as_fd(),
            super::fd::Interest::Read,
            ipc_core::Deadline::Now,
        )
    }
}

impl AsFd for PidFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = pid();
        let t = start_time(me).expect("own start time");
        assert_eq!(start_time(me), read_start_time(me), "the cached one");
        assert!(alive(me, Some(t)));
        assert!(!alive(me, Some(t + 1)));
        assert!(!alive(0, None));
        let fd = PidFd::open(me).unwrap().unwrap();
        assert!(!fd.exited().unwrap());
    }

    #[test]
    fn exited_child() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let fd = PidFd::open(pid).unwrap().unwrap();
        child.wait().unwrap();
        assert!(fd.exited().unwrap());
        assert!(!alive(pid, start_time(pid)) || start_time(pid).is_none());
    }
}

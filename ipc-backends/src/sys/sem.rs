//! POSIX named semaphores ([sem_overview(7)]): [`NamedSem`], a handle
//! closed on drop, and [`unlink`].
//!
//! Every call returns `nix::Result`, mapped through `Errno::result`; the
//! callers add the endpoint with [`Context`](super::Context).
//!
//! [sem_overview(7)]: https://man7.org/linux/man-pages/man7/sem_overview.7.html

use std::ffi::CString;
use std::ptr::NonNull;
use std::time::Duration;

use nix::errno::Errno;

use super::clock;

/// A semaphore operation with the C ABI of `sem_wait`/`sem_post`: 0, or
/// -1 with `errno` set. Lets a caller pick the operation once, at open,
/// and call it without a branch on the kind of semaphore.
pub type RawOp = unsafe extern "C" fn(*mut libc::sem_t) -> libc::c_int;

/// [sem_wait(3)] as a [`RawOp`] (restart it after `EINTR`).
///
/// [sem_wait(3)]: https://man7.org/linux/man-pages/man3/sem_wait.3.html
pub const WAIT: RawOp = libc::sem_wait;

/// [sem_post(3)] as a [`RawOp`].
///
/// [sem_post(3)]: https://man7.org/linux/man-pages/man3/sem_post.3.html
pub const POST: RawOp = libc::sem_post;

/// An open named semaphore, closed ([sem_close(3)]) on drop. Not `Clone`:
/// one owner closes once.
///
/// [sem_close(3)]: https://man7.org/linux/man-pages/man3/sem_close.3.html
#[derive(Debug)]
pub struct NamedSem {
    sem: NonNull<libc::sem_t>,
}

// SAFETY: a `sem_t` mapped by sem_open is made for concurrent use by any
// thread of any process; the handle only passes its address to the
// thread-safe sem_* calls.
unsafe impl Send for NamedSem {}
// SAFETY: as for `Send`: every method takes `&self` and calls thread-safe
// functions.
unsafe impl Sync for NamedSem {}

fn c_name(name: &str) -> nix::Result<CString> {
    CString::new(name).map_err(|_| Errno::EINVAL)
}

impl NamedSem {
    /// Creates `name` exclusively (`O_CREAT | O_EXCL`) with `mode` and
    /// `initial` units ([sem_open(3)]). The mode is applied exactly, not
    /// narrowed by the umask.
    ///
    /// [sem_open(3)]: https://man7.org/linux/man-pages/man3/sem_open.3.html
    ///
    /// # Errors
    /// `EEXIST` when the name is taken, `EINVAL` above `SEM_VALUE_MAX`.
    pub fn create(name: &str, mode: u32, initial: u32) -> nix::Result<NamedSem> {
        let c = c_name(name)?;
        // SAFETY: `c` is a valid C string; for O_CREAT the variadic
        // arguments are a mode_t (promoted to c_uint) and an unsigned int,
        // as sem_open(3) specifies. The result is checked for SEM_FAILED.
        let p = unsafe {
            libc::sem_open(
                c.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                mode as libc::c_uint,
                initial as libc::c_uint,
            )
        };
        let sem = Self::checked(p)?;
        // glibc keeps named semaphores as /dev/shm/sem.NAME; set the mode
        // exactly (the umask may have narrowed it).
        let file = format!("/dev/shm/sem.{}", name.trim_start_matches('/'));
        if let Ok(path) = CString::new(file) {
            // SAFETY: `path` is a valid C string; chmod takes values only.
            let r = unsafe { libc::chmod(path.as_ptr(), (mode & 0o777) as libc::mode_t) };
            if let Err(e) = Errno::result(r) {
                drop(sem);
                let _ = unlink(name);
                return Err(e);
            }
        }
        Ok(sem)
    }

    /// Opens the existing semaphore `name`.
    ///
    /// # Errors
    /// `ENOENT` when it does not exist, `EACCES` when its mode refuses us.
    pub fn open(name: &str) -> nix::Result<NamedSem> {
        let c = c_name(name)?;
        // SAFETY: `c` is a valid C string; without O_CREAT no variadic
        // argument is read. The result is checked for SEM_FAILED.
        let p = unsafe { libc::sem_open(c.as_ptr(), 0) };
        Self::checked(p)
    }

    fn checked(p: *mut libc::sem_t) -> nix::Result<NamedSem> {
        if p == libc::SEM_FAILED {
            return Err(Errno::last());
        }
        NonNull::new(p)
            .map(|sem| NamedSem { sem })
            .ok_or(Errno::EINVAL)
    }

    /// The mapped `sem_t`, for callers that call `sem_wait`/`sem_post`
    /// themselves; valid while this handle lives.
    pub fn as_ptr(&self) -> NonNull<libc::sem_t> {
        self.sem
    }

    /// Takes one unit if there is one at once.
    ///
    /// # Errors
    /// `EAGAIN` when the value is 0.
    #[inline]
    pub fn try_wait(&self) -> nix::Result<()> {
        loop {
            // SAFETY: `sem` is the open semaphore this handle owns.
            match Errno::result(unsafe { libc::sem_trywait(self.sem.as_ptr()) }) {
                Err(Errno::EINTR) => continue,
                r => return r.map(drop),
            }
        }
    }

    /// Takes one unit, sleeping at most `timeout` ([sem_timedwait(3)],
    /// whose deadline is on `CLOCK_REALTIME`; it is recomputed after a
    /// signal).
    ///
    /// [sem_timedwait(3)]: https://man7.org/linux/man-pages/man3/sem_timedwait.3.html
    ///
    /// # Errors
    /// `ETIMEDOUT` when the time ran out.
    pub fn wait_timeout(&self, timeout: Duration) -> nix::Result<()> {
        let deadline = clock::realtime_after(timeout)?;
        loop {
            // SAFETY: `sem` is the open semaphore this handle owns;
            // `deadline` is a valid timespec on our stack.
            match Errno::result(unsafe { libc::sem_timedwait(self.sem.as_ptr(), &deadline) }) {
                Err(Errno::EINTR) => continue,
                r => return r.map(drop),
            }
        }
    }

    /// The current value ([sem_getvalue(3)]; 0 while processes wait).
    ///
    /// [sem_getvalue(3)]: https://man7.org/linux/man-pages/man3/sem_getvalue.3.html
    ///
    /// # Errors
    /// The OS error (none expected on a valid handle).
    pub fn value(&self) -> nix::Result<u32> {
        let mut v: libc::c_int = 0;
        // SAFETY: `sem` is the open semaphore this handle owns; `v` is a
        // writable int on our stack.
        Errno::result(unsafe { libc::sem_getvalue(self.sem.as_ptr(), &mut v) })?;
        Ok(v.max(0) as u32)
    }
}

impl Drop for NamedSem {
    fn drop(&mut self) {
        // SAFETY: `sem` came from sem_open and is closed once, here;
        // nothing uses it after drop.
        unsafe { libc::sem_close(self.sem.as_ptr()) };
    }
}

/// Removes the name `name` ([sem_unlink(3)]); handles already open keep
/// working.
///
/// [sem_unlink(3)]: https://man7.org/linux/man-pages/man3/sem_unlink.3.html
///
/// # Errors
/// `ENOENT` when it does not exist.
pub fn unlink(name: &str) -> nix::Result<()> {
    let c = c_name(name)?;
    // SAFETY: `c` is a valid C string.
    Errno::result(unsafe { libc::sem_unlink(c.as_ptr()) }).map(drop)
}

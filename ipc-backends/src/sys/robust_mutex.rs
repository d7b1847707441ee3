//! A robust, process-shared pthread mutex living in shared memory
//! ([pthread_mutexattr_setrobust(3)]): when its holder dies, the kernel
//! releases it and the next locker is told so (`EOWNERDEAD`), and must
//! mark it consistent ([pthread_mutex_consistent(3)]) or it becomes
//! unusable (`ENOTRECOVERABLE`).
//!
//! [pthread_mutexattr_setrobust(3)]: https://man7.org/linux/man-pages/man3/pthread_mutexattr_setrobust.3.html
//! [pthread_mutex_consistent(3)]: https://man7.org/linux/man-pages/man3/pthread_mutex_consistent.3.html

use std::cell::UnsafeCell;
use std::time::Duration;

use nix::errno::Errno;

use super::clock;

/// The mutex as it lies in a shared segment. Never moved or copied: it is
/// only ever reached through a pointer into the mapping.
#[repr(transparent)]
pub struct RobustMutex(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a process-shared pthread mutex is made to be used concurrently
// by threads of any process; every method passes its address to the
// thread-safe pthread_mutex_* calls.
unsafe impl Sync for RobustMutex {}

/// How a lock was acquired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    /// The previous holder unlocked it.
    Clean,
    /// The previous holder died holding it: the protected state may be
    /// half-written. Call [`RobustMutex::consistent`] before unlocking, or
    /// the mutex becomes unusable.
    OwnerDied,
}

impl RobustMutex {
    /// Initialises a mutex in place: robust, process-shared, error-checking
    /// (a second lock from the holding thread is `EDEADLK`, not a hang).
    ///
    /// # Safety
    /// - `at` is valid for writes of a `RobustMutex` and suitably aligned;
    /// - no process uses the mutex yet (it is not initialised twice while
    ///   in use).
    ///
    /// # Errors
    /// The failing pthread call's error.
    pub unsafe fn init(at: *mut RobustMutex) -> nix::Result<()> {
        let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
        // SAFETY: `attr` is writable storage for one attribute object,
        // initialised by this call on success.
        Errno::result(unsafe { libc::pthread_mutexattr_init(attr.as_mut_ptr()) })?;
        let a = attr.as_mut_ptr();
        // SAFETY: `a` was initialised above; each call takes it and a value;
        // the target `at` is valid for writes (caller's precondition); the
        // attribute object is destroyed once, after use.
        let r = unsafe {
            let r = Errno::result(libc::pthread_mutexattr_setpshared(
                a,
                libc::PTHREAD_PROCESS_SHARED,
            ))
            .and_then(|_| {
                Errno::result(libc::pthread_mutexattr_setrobust(
                    a,
                    libc::PTHREAD_MUTEX_ROBUST,
                ))
            })
            .and_then(|_| {
                Errno::result(libc::pthread_mutexattr_settype(
                    a,
                    libc::PTHREAD_MUTEX_ERRORCHECK,
                ))
            })
            .and_then(|_| Errno::result(libc::pthread_mutex_init((*at).0.get(), a)));
            libc::pthread_mutexattr_destroy(a);
            r
        };
        r.map(drop)
    }

    #[inline]
    fn raw(&self) -> *mut libc::pthread_mutex_t {
        self.0.get()
    }

    /// Locks: sleeps until free (`None`), tries once (`Some(ZERO)`), or
    /// sleeps at most `timeout`.
    ///
    /// # Errors
    /// `EBUSY` (try), `ETIMEDOUT`, `ENOTRECOVERABLE` when an earlier
    /// `OwnerDied` was never made consistent, `EDEADLK` when this thread
    /// holds it already.
    #[inline]
    pub fn lock(&self, timeout: Option<Duration>) -> nix::Result<Acquired> {
        let r = match timeout {
            // SAFETY: `self` is an initialised mutex (it is only reached
            // inside a segment whose creator ran `init`).
            None => unsafe { libc::pthread_mutex_lock(self.raw()) },
            // SAFETY: as above.
            Some(Duration::ZERO) => unsafe { libc::pthread_mutex_trylock(self.raw()) },
            Some(t) => {
                let deadline = clock::realtime_after(t)?;
                // SAFETY: as above; `deadline` is a valid timespec on our
                // stack.
                unsafe { libc::pthread_mutex_timedlock(self.raw(), &deadline) }
            }
        };
        // pthread functions return the error number instead of setting errno.
        match r {
            0 => Ok(Acquired::Clean),
            libc::EOWNERDEAD => Ok(Acquired::OwnerDied),
            e => Err(Errno::from_raw(e)),
        }
    }

    /// Marks the state consistent again after [`Acquired::OwnerDied`]; to
    /// be called by the holder before it unlocks.
    ///
    /// # Errors
    /// `EINVAL` when the mutex was not in the owner-died state.
    pub fn consistent(&self) -> nix::Result<()> {
        // SAFETY: an initialised mutex, held by this thread (caller's
        // protocol: only the guard that acquired it calls this).
        match unsafe { libc::pthread_mutex_consistent(self.raw()) } {
            0 => Ok(()),
            e => Err(Errno::from_raw(e)),
        }
    }

    /// Unlocks.
    ///
    /// # Errors
    /// `EPERM` when this thread does not hold it.
    #[inline]
    pub fn unlock(&self) -> nix::Result<()> {
        // SAFETY: an initialised mutex; error-checking type, so unlocking
        // one we do not hold is an error, not undefined behaviour.
        match unsafe { libc::pthread_mutex_unlock(self.raw()) } {
            0 => Ok(()),
            e => Err(Errno::from_raw(e)),
        }
    }
}

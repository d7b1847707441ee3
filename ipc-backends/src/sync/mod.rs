//! Cross-process semaphores and locks, named by endpoints.
//!
//! - [`Semaphore`] on `sem:/NAME` (a POSIX named semaphore) or
//!   `sysv-sem:PATH` (a System V semaphore, key `ftok(PATH, 's')`):
//!   counting units, `wait`/`post`. Created exclusively with `mode=`
//!   (default `0600`); the initial value is given to
//!   [`create`](Semaphore::create), not in the endpoint.
//! - [`Mutex`] on `shm:/NAME` or `sysv-shm:PATH`: a robust process-shared
//!   pthread mutex in a small named segment. When its holder dies, the next
//!   [`lock`](Mutex::lock) says so with [`OwnerDied`] (as
//!   `std::sync::PoisonError` does for a panic), so the state it guards can
//!   be repaired.
//!
//! Both are named objects that persist until [`Semaphore::remove`] /
//! [`Mutex::remove`]: dropping a handle closes it only.
//!
//! # Which one for locking?
//!
//! A POSIX semaphore is **not** given back when a process dies holding a
//! unit: the kernel keeps no record of who took it. For mutual exclusion
//! between processes that may crash, use [`Mutex`] (the next locker is
//! told) or `sysv-sem:` (waits carry `SEM_UNDO`, so the kernel gives back
//! the units a dead process held). On `sysv-sem:` a post returns a unit the
//! same handle took (cancelling its undo record) or, beyond that, adds a
//! new unit that outlives the poster: a producer may signal and exit.
//!
//! These endpoints are not channels: `ipcx::listen("sem:/x")` is refused
//! with [`Error::Unsupported`].
//!
//! # Examples
//!
//! ```no_run
//! use ipc_backends::sync::Semaphore;
//! # fn main() -> ipc_core::Result<()> {
//! let ep = "sysv-sem:/tmp/printer".parse()?;
//! let slots = Semaphore::create(&ep, 2)?; // two printers
//! slots.wait()?; // in any process: Semaphore::open(&ep)?.wait()
//! // ... print ...
//! slots.post()?;
//! slots.remove()?;
//! # Ok(()) }
//! ```

pub(crate) mod limits;
pub(crate) mod mutex;
pub(crate) mod semaphore;

use std::fmt;

use ipc_core::Error;
use nix::errno::Errno;

pub use mutex::{Mutex, MutexGuard};
pub use semaphore::Semaphore;
pub(crate) use semaphore::ensure_key_file;

/// What a lock returns once acquired: the guard, or the guard wrapped in
/// [`OwnerDied`] when the previous holder died holding the lock.
pub type LockResult<G> = std::result::Result<G, OwnerDied<G>>;

/// The previous holder of a lock died while holding it (the kernel
/// released the lock: pthread's `EOWNERDEAD`). The lock is now held by the
/// caller; the state it guards may be half-updated.
///
/// Take the guard with [`into_inner`](Self::into_inner), which marks the
/// lock consistent again (`pthread_mutex_consistent`): the caller accepts
/// the state as it is or repairs it. Dropping an `OwnerDied` without
/// taking the guard declares the state beyond repair: the lock becomes
/// unusable (every later lock fails with `ENOTRECOVERABLE`) until it is
/// removed and created again.
///
/// ```no_run
/// # use ipc_backends::sync::Mutex;
/// # fn main() -> ipc_core::Result<()> {
/// let m = Mutex::open(&"shm:/jobs".parse()?)?;
/// let guard = m.lock()?.unwrap_or_else(|died| {
///     eprintln!("the last holder died; checking the job table");
///     died.into_inner()
/// });
/// # drop(guard); Ok(()) }
/// ```
pub struct OwnerDied<G: Guard> {
    guard: G,
}

impl<G: Guard> OwnerDied<G> {
    pub(crate) fn new(guard: G) -> Self {
        OwnerDied { guard }
    }

    /// The guard, with the lock marked consistent again.
    pub fn into_inner(self) -> G {
        self.guard.mark_consistent();
        self.guard
    }

    /// The guard, to look at the state before deciding.
    pub fn get_ref(&self) -> &G {
        &self.guard
    }

    /// The guard, to repair the state before [`into_inner`](Self::into_inner).
    pub fn get_mut(&mut self) -> &mut G {
        &mut self.guard
    }
}

impl<G: Guard> fmt::Debug for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnerDied").finish_non_exhaustive()
    }
}

impl<G: Guard> fmt::Display for OwnerDied<G> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the previous holder of the lock died while holding it")
    }
}

impl<G: Guard> std::error::Error for OwnerDied<G> {}

/// A guard of a robust lock ([`MutexGuard`], the region guard of
/// `ipcx::shared`). Sealed: implemented by ipcx only.
pub trait Guard: sealed::Sealed {
    #[doc(hidden)]
    fn mark_consistent(&self);
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Maps a failed OS call on `endpoint` to the error callers act on:
/// `EAGAIN`/`EBUSY` → `WouldBlock`, `ETIMEDOUT` → `Timeout`, `EEXIST` →
/// `AddrInUse`, `EACCES`/`EPERM` → `PermissionDenied`, the rest `Io` with
/// `hint` (what the errno means here) appended.
pub(crate) fn os_error(endpoint: &dyn fmt::Display, call: &str, e: Errno, hint: &str) -> Error {
    match e {
        Errno::EAGAIN | Errno::EBUSY => Error::WouldBlock,
        Errno::ETIMEDOUT => Error::Timeout,
        Errno::EEXIST => Error::AddrInUse {
            endpoint: endpoint.to_string(),
            owner: None,
            detail: format!(
                "{call}: an object of that name exists; open it, or remove it first (ipcx::sync / ipcx::shared `remove`)"
            ),
        },
        Errno::EACCES | Errno::EPERM => Error::PermissionDenied(format!(
            "{endpoint}: {call}: {e}: its mode does not let this user in; create it with mode=0660 (or wider) for other users"
        )),
        _ => {
            let sep = if hint.is_empty() { "" } else { " — " };
            Error::io(format!("{endpoint}: {call}{sep}{hint}"), e.into())
        }
    }
}

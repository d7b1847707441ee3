//! [`Mutex`]: a robust process-shared lock in a named segment.

use std::fmt;
use std::time::Duration;

use ipc_core::handshake::TypeTag;
use ipc_core::{Endpoint, Result};

use super::{Guard, LockResult, OwnerDied, sealed};
use crate::shared::segment::{Layout, Segment};
use crate::sys::robust_mutex::Acquired;

/// The `ftok` project id of `sysv-shm:` mutex keys.
pub(crate) const PROJ: u8 = b'm';

/// The type name in a mutex segment's header.
pub(crate) const TYPE_NAME: &str = "ipcx::sync::Mutex";

fn layout() -> Layout {
    Layout {
        tag: TypeTag::new(TYPE_NAME, 0x6970_6378_6d75_7478),
        size: 0,
        align: 1,
    }
}

/// A lock shared between processes that survives its holder's death,
/// named by a `shm:/NAME` (the POSIX object `/ipcx.mutex.NAME`) or
/// `sysv-shm:PATH` (key `ftok(PATH, 'm')`) endpoint. Not `Clone`; `Send`
/// and `Sync`.
///
/// A robust, process-shared, error-checking pthread mutex: when a holder
/// dies (SIGKILL included), the kernel releases it and the next `lock`
/// returns [`OwnerDied`]. Locking twice from one thread is an error, not a
/// deadlock. The lock is held by a thread: a guard is not `Send`.
///
/// # Examples
///
/// ```no_run
/// use ipc_backends::sync::Mutex;
/// # fn main() -> ipc_core::Result<()> {
/// let ep = "shm:/jobs".parse()?;
/// let m = Mutex::create(&ep)?; // others: Mutex::open(&ep)?
/// {
///     let _guard = m.lock()?.unwrap_or_else(|died| died.into_inner());
///     // ... critical section ...
/// }
/// m.remove()?;
/// # Ok(()) }
/// ```
pub struct Mutex {
    seg: Segment,
}

impl fmt::Debug for Mutex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("endpoint", &self.seg.endpoint().to_string())
            .finish()
    }
}

impl Mutex {
    /// Creates the mutex exclusively, unlocked, with the endpoint's `mode`
    /// (default `0600`).
    ///
    /// # Errors
    /// [`AddrInUse`](ipc_core::Error::AddrInUse) when it exists;
    /// [`Unsupported`](ipc_core::Error::Unsupported) for an endpoint other
    /// than `shm:`/`sysv-shm:`.
    pub fn create(endpoint: &Endpoint) -> Result<Mutex> {
        Segment::create(endpoint, "mutex", PROJ, &layout(), |_| {}).map(|seg| Mutex { seg })
    }

    /// Opens an existing mutex.
    ///
    /// # Errors
    /// [`Io`](ipc_core::Error::Io) (`ENOENT`) when there is none;
    /// [`SchemaMismatch`](ipc_core::Error::SchemaMismatch) when the name
    /// holds something else.
    pub fn open(endpoint: &Endpoint) -> Result<Mutex> {
        Segment::open(endpoint, "mutex", PROJ, &layout()).map(|seg| Mutex { seg })
    }

    /// The endpoint it was opened with.
    pub fn endpoint(&self) -> &Endpoint {
        self.seg.endpoint()
    }

    /// Takes the lock. Unlike a region's, a mutex segment has no readers
    /// that need to know who writes: nothing is recorded besides the
    /// kernel's own owner field of the robust mutex.
    #[inline]
    fn acquire(&self, timeout: Option<Duration>) -> Result<LockResult<MutexGuard<'_>>> {
        let how = self.seg.lock(timeout)?;
        let guard = MutexGuard {
            mutex: self,
            _not_send: std::marker::PhantomData,
        };
        Ok(match how {
            Acquired::Clean => Ok(guard),
            Acquired::OwnerDied => Err(OwnerDied::new(guard)),
        })
    }

    /// Locks, sleeping until the lock is free.
    ///
    /// # Errors
    /// The outer error: [`Io`](ipc_core::Error::Io) when this thread holds
    /// the lock already, or the lock is not recoverable. The inner
    /// [`OwnerDied`]: the previous holder died holding it.
    #[inline]
    pub fn lock(&self) -> Result<LockResult<MutexGuard<'_>>> {
        self.acquire(None)
    }

    /// Locks if the lock is free at once.
    ///
    /// # Errors
    /// As [`lock`](Self::lock); [`WouldBlock`](ipc_core::Error::WouldBlock)
    /// when it is held.
    #[inline]
    pub fn try_lock(&self) -> Result<LockResult<MutexGuard<'_>>> {
        self.acquire(Some(Duration::ZERO))
    }

    /// Locks, sleeping at most `timeout`.
    ///
    /// # Errors
    /// As [`lock`](Self::lock); [`Timeout`](ipc_core::Error::Timeout) when
    /// the time ran out.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockResult<MutexGuard<'_>>> {
        self.acquire(Some(timeout.max(Duration::from_nanos(1))))
    }

    /// Removes the mutex's name; handles already open keep working.
    ///
    /// # Errors
    /// [`Io`](ipc_core::Error::Io) when it was removed already.
    pub fn remove(self) -> Result<()> {
        self.seg.remove()
    }
}

/// The lock of a [`Mutex`], released on drop. Not `Send`: the thread that
/// locked unlocks.
pub struct MutexGuard<'a> {
    mutex: &'a Mutex,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl fmt::Debug for MutexGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard").finish_non_exhaustive()
    }
}

impl sealed::Sealed for MutexGuard<'_> {}

impl Guard for MutexGuard<'_> {
    fn mark_consistent(&self) {
        self.mutex.seg.mark_consistent();
    }
}

impl Drop for MutexGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.mutex.seg.unlock();
    }
}

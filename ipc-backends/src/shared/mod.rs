//! Shared state: a zero-copy value in a named segment, written under a
//! robust lock and read without blocking the writer.
//!
//! A [`Region<T>`] holds one `T` — a `#[derive(IpcMessage)]`
//! `#[ipc(zero_copy)]` type: checked layout, no padding, no pointers — on a
//! `shm:/NAME` endpoint (the POSIX object `/ipcx.region.NAME`) or a
//! `sysv-shm:PATH` endpoint (a System V segment, key `ftok(PATH, 'r')`).
//! The segment starts with a header naming the type (name, fingerprint,
//! size, alignment), so opening it as another type is refused with
//! [`Error::SchemaMismatch`] naming both.
//!
//! - [`lock`](Region::lock) gives a guard that derefs to `&mut T` in the
//!   segment. The lock is a robust pthread mutex: if a holder dies, the
//!   next `lock` returns [`OwnerDied`] with the last value written.
//! - [`read`](Region::read) gives a consistent copy without taking the
//!   lock (a seqlock: it retries while a write is in progress or happened
//!   during the copy), so readers never slow a writer down. Types with
//!   invalid bit patterns are validated. [`read_into`](Region::read_into)
//!   does the same into a value of the caller's, with one copy (for large
//!   values, where returning by value costs a move more).
//! - [`write`](Region::write) replaces the value under the lock.
//!
//! A region persists until [`remove`](Region::remove)d. The protocol and
//! when to use a region rather than a queue or a channel:
//! `docs/shared-state.md`.
//!
//! # Examples
//!
//! ```no_run
//! use ipc_core::IpcMessage;
//! use ipc_backends::shared::Region;
//!
//! #[derive(IpcMessage, Clone, Copy, Debug, Default)]
//! #[ipc(zero_copy)]
//! #[repr(C)]
//! struct Counter {
//!     hits: u64,
//! }
//!
//! # fn main() -> ipc_core::Result<()> {
//! let ep = "shm:/hits".parse()?;
//! let region = Region::create(&ep, Counter::default())?; // others: Region::<Counter>::open(&ep)?
//! region.lock()?.unwrap_or_else(|died| died.into_inner()).hits += 1;
//! assert_eq!(region.read()?.hits, 1);
//! region.remove()?;
//! # Ok(()) }
//! ```

pub(crate) mod segment;
mod seqlock;

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;
use std::time::Duration;

use ipc_core::message::ZeroCopy;
use ipc_core::{Endpoint, Error, IpcMessage, Result};

use crate::sync::{Guard, LockResult, OwnerDied, sealed};
use crate::sys::robust_mutex::Acquired;
use segment::{Layout, Segment, alive, me};

/// The `ftok` project id of `sysv-shm:` region keys.
pub(crate) const PROJ: u8 = b'r';

/// How long `read` spins on a write in progress before it starts
/// checking that the writer is alive.
const SPINS_BEFORE_CHECK: u32 = 1 << 12;

fn layout<T: IpcMessage + ZeroCopy>() -> Layout {
    let () = T::LAYOUT_CHECK;
    Layout {
        tag: T::type_tag(),
        size: size_of::<T>(),
        align: align_of::<T>(),
    }
}

/// One `T` shared between processes: locked writes, lock-free reads. See
/// the [module docs](self). Not `Clone`; `Send` and `Sync`.
pub struct Region<T> {
    seg: Segment,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Region<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Region")
            .field("endpoint", &self.seg.endpoint().to_string())
            .field("type", &std::any::type_name::<T>())
            .finish()
    }
}

impl<T: IpcMessage + ZeroCopy> Region<T> {
    /// Creates the region exclusively, holding `initial`, with the
    /// endpoint's `mode` (default `0600`). Other options of the endpoint
    /// (ring sizes and the like) do not apply to regions and are ignored.
    ///
    /// # Errors
    /// [`Error::AddrInUse`] when it exists; [`Error::Unsupported`] for an
    /// endpoint other than `shm:`/`sysv-shm:`; [`Error::Io`] naming
    /// `kernel.shmmax`/`shmmni` when a limit refuses it.
    pub fn create(endpoint: &Endpoint, initial: T) -> Result<Region<T>> {
        let seg = Segment::create(endpoint, "region", PROJ, &layout::<T>(), |data| {
            // SAFETY: `data` is the region's data, aligned for `T` (the
            // offset is a multiple of its alignment, the mapping
            // page-aligned), `size_of::<T>()` bytes, not yet visible to any
            // other process.
            unsafe { data.cast::<T>().write(initial) }
        })?;
        Ok(Region {
            seg,
            _t: PhantomData,
        })
    }

    /// Opens an existing region of `T`.
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] when it holds another type (both named);
    /// [`Error::Io`] (`ENOENT`) when there is none; [`Error::Protocol`]
    /// when the name holds something that is not an ipcx region.
    pub fn open(endpoint: &Endpoint) -> Result<Region<T>> {
        Segment::open(endpoint, "region", PROJ, &layout::<T>()).map(|seg| Region {
            seg,
            _t: PhantomData,
        })
    }

    /// The endpoint it was opened with.
    pub fn endpoint(&self) -> &Endpoint {
        self.seg.endpoint()
    }

    #[inline]
    fn acquire(&self, timeout: Option<Duration>) -> Result<LockResult<RegionGuard<'_, T>>> {
        let how = self.seg.lock(timeout)?;
        let h = self.seg.header();
        h.writer_pid.store(me(), Ordering::Relaxed);
        seqlock::begin_write(&h.seq);
        let guard = RegionGuard {
            region: self,
            _not_send: PhantomData,
        };
        // Under the lock no one else writes; check the bytes before handing
        // out `&mut T` (a dead writer may have left a half-written value).
        // SAFETY: the data is `size_of::<T>()` bytes in the mapping, and
        // while we hold the lock nobody writes it.
        let bytes = unsafe { std::slice::from_raw_parts(self.seg.data(), size_of::<T>()) };
        let valid = if T::EVERY_BIT_PATTERN_VALID {
            Ok(())
        } else {
            T::validate(bytes)
        };
        if let Err(e) = valid {
            if how == Acquired::OwnerDied {
                guard.mark_consistent();
            }
            drop(guard);
            return Err(Error::Decode {
                type_name: T::NAME,
                reason: format!(
                    "{}: the region holds an invalid value ({e}); write() a new one",
                    self.endpoint()
                ),
            });
        }
        Ok(match how {
            Acquired::Clean => Ok(guard),
            Acquired::OwnerDied => Err(OwnerDied::new(guard)),
        })
    }

    /// Locks, sleeping until the lock is free; the guard derefs to the
    /// value in the segment.
    ///
    /// # Errors
    /// The outer error: [`Error::Io`] when this thread holds the lock
    /// already or it is not recoverable; [`Error::Decode`] when the value is
    /// not a valid `T`. The inner [`OwnerDied`]: the previous holder died
    /// holding the lock (the value is the last it wrote, maybe half).
    #[inline]
    pub fn lock(&self) -> Result<LockResult<RegionGuard<'_, T>>> {
        self.acquire(None)
    }

    /// Locks if the lock is free at once.
    ///
    /// # Errors
    /// As [`lock`](Self::lock); [`Error::WouldBlock`] when it is held.
    #[inline]
    pub fn try_lock(&self) -> Result<LockResult<RegionGuard<'_, T>>> {
        self.acquire(Some(Duration::ZERO))
    }

    /// Locks, sleeping at most `timeout`.
    ///
    /// # Errors
    /// As [`lock`](Self::lock); [`Error::Timeout`] when the time ran out.
    pub fn lock_timeout(&self, timeout: Duration) -> Result<LockResult<RegionGuard<'_, T>>> {
        self.acquire(Some(timeout.max(Duration::from_nanos(1))))
    }

    /// Replaces the value under the lock. A previous holder's death does
    /// not matter here: the new value repairs the state.
    ///
    /// # Errors
    /// As [`lock`](Self::lock), but never [`Error::Decode`].
    #[inline]
    pub fn write(&self, value: T) -> Result<()> {
        let how = self.seg.lock(None)?;
        let h = self.seg.header();
        h.writer_pid.store(me(), Ordering::Relaxed);
        seqlock::begin_write(&h.seq);
        // SAFETY: the data is aligned for `T` and `size_of::<T>()` bytes in
        // the mapping; we hold the lock, so no other writer touches it
        // (readers only load it atomically and discard torn copies).
        unsafe { self.seg.data().cast::<T>().write(value) };
        seqlock::end_write(&h.seq);
        if how == Acquired::OwnerDied {
            self.seg.mark_consistent();
        }
        self.seg.unlock();
        Ok(())
    }

    /// A consistent copy of the value, taken without the lock: never
    /// blocks a writer, retries while one is writing. (So a thread that
    /// holds the region's guard must read through the guard: `read` would
    /// wait for its own write to end.)
    ///
    /// # Errors
    /// [`Error::OwnerDied`] when a writer died in the middle of a write and
    /// nobody has locked since (the value may be half-written: `lock()` to
    /// repair it); [`Error::Decode`] when the value is not a valid `T`.
    #[inline]
    pub fn read(&self) -> Result<T> {
        if T::EVERY_BIT_PATTERN_VALID && size_of::<T>() >= seqlock::IN_PLACE_MIN {
            return self.read_in_place();
        }
        let h = self.seg.header();
        // The fast path: one attempt, inlined into the caller, copying
        // straight into the value returned. Retries, sleeps and the check
        // for a dead writer are out of line.
        if let Some(s) = seqlock::read_begin(&h.seq) {
            let mut out = MaybeUninit::<T>::uninit();
            // SAFETY: the data is `size_of::<T>()` bytes in the mapping,
            // 64-aligned; `out` is a separate local of the same size.
            unsafe { seqlock::copy_racy(self.seg.data().cast::<T>(), out.as_mut_ptr()) };
            if seqlock::read_validate(&h.seq, s) {
                // SAFETY: every byte of `out` was written by the copy, which
                // is consistent; a type whose every bit pattern is valid
                // needs no more, another is checked first.
                return unsafe { self.checked(out) };
            }
        }
        self.read_contended()
    }

    /// `read` of a large `T` whose every bit pattern is valid: the copy is
    /// made straight into the `Ok` that is returned, zeroed first, where
    /// copying into a local and moving that into the `Result` would be a
    /// second pass through `memcpy` (see `seqlock::IN_PLACE_MIN`).
    #[inline(always)]
    fn read_in_place(&self) -> Result<T> {
        // SAFETY: every bit pattern of `T` is valid (checked by the
        // caller), so all-zero bytes are a `T`.
        let mut r: Result<T> = Ok(unsafe { MaybeUninit::<T>::zeroed().assume_init() });
        let h = self.seg.header();
        let fresh = match (&mut r, seqlock::read_begin(&h.seq)) {
            (Ok(v), Some(s)) => {
                // SAFETY: the data is `size_of::<T>()` bytes in the
                // mapping, 64-aligned; `v` is a separate value of the same
                // size. A torn copy is still a valid `T` (every bit
                // pattern is), and it is replaced below unless validated.
                unsafe { seqlock::copy_racy(self.seg.data().cast::<T>(), v as *mut T) };
                seqlock::read_validate(&h.seq, s)
            }
            _ => false,
        };
        if !fresh {
            r = self.read_contended();
        }
        r
    }

    /// [`read`](Self::read) into `out`: the value is copied from the
    /// segment straight into `out`, once, where `read` returns it by value
    /// (for a large `T`, one move more unless the compiler elides it). For
    /// a type with invalid bit patterns the copy is validated before it
    /// reaches `out`. On error `out` holds a valid but unspecified `T`.
    ///
    /// # Errors
    /// As [`read`](Self::read).
    #[inline]
    pub fn read_into(&self, out: &mut T) -> Result<()> {
        if !T::EVERY_BIT_PATTERN_VALID {
            // A torn copy may be no `T` at all: never let one reach `out`.
            *out = self.read()?;
            return Ok(());
        }
        let h = self.seg.header();
        if let Some(s) = seqlock::read_begin(&h.seq) {
            // SAFETY: the data is `size_of::<T>()` bytes in the mapping,
            // 64-aligned; `out` is valid for writes of a `T`. It does not
            // overlap the data: a `&mut` into the segment comes only from a
            // guard, which keeps the sequence odd, so no copy is made while
            // one exists. Any bytes are a valid `T` (EVERY_BIT_PATTERN_VALID),
            // so even a torn copy leaves `out` valid.
            unsafe { seqlock::copy_racy(self.seg.data().cast::<T>(), out as *mut T) };
            if seqlock::read_validate(&h.seq, s) {
                return Ok(());
            }
        }
        *out = self.read_contended()?;
        Ok(())
    }

    /// Turns a consistent copy into a `T`: validated when `T` has invalid
    /// bit patterns (a `bool`, `char` or enum inside), as is.
    ///
    /// # Safety
    /// - every byte of `out` is initialised.
    #[inline(always)]
    unsafe fn checked(&self, out: MaybeUninit<T>) -> Result<T> {
        if !T::EVERY_BIT_PATTERN_VALID {
            // SAFETY: all `size_of::<T>()` bytes of `out` are initialised
            // (caller's precondition); viewing them as bytes is sound.
            let bytes =
                unsafe { std::slice::from_raw_parts(out.as_ptr().cast::<u8>(), size_of::<T>()) };
            T::validate(bytes)?;
        }
        // SAFETY: every byte is initialised, and the bytes are a valid `T`:
        // any pattern is (EVERY_BIT_PATTERN_VALID, ZeroCopy's contract), or
        // `validate` accepted them.
        Ok(unsafe { out.assume_init() })
    }

    /// `read` when a write was in progress or happened during the copy:
    /// spins, then sleeps a little between attempts, and gives up if the
    /// writer is gone while the sequence stays odd.
    #[cold]
    #[inline(never)]
    fn read_contended(&self) -> Result<T> {
        let h = self.seg.header();
        let mut spins = 0u32;
        loop {
            if let Some(s) = seqlock::read_begin(&h.seq) {
                let mut out = MaybeUninit::<T>::uninit();
                // SAFETY: as in `read`.
                unsafe { seqlock::copy_racy(self.seg.data().cast::<T>(), out.as_mut_ptr()) };
                if seqlock::read_validate(&h.seq, s) {
                    // SAFETY: as in `read`.
                    return unsafe { self.checked(out) };
                }
            }
            spins += 1;
            if spins < SPINS_BEFORE_CHECK {
                std::hint::spin_loop();
                continue;
            }
            let pid = h.writer_pid.load(Ordering::Relaxed);
            let seq = h.seq.load(Ordering::Acquire);
            if seq % 2 == 1 && !alive(pid) && h.seq.load(Ordering::Acquire) == seq {
                return Err(Error::OwnerDied {
                    object: self.endpoint().to_string(),
                    pid: Some(pid),
                });
            }
            std::thread::sleep(Duration::from_micros(50));
            spins = SPINS_BEFORE_CHECK / 2;
        }
    }

    /// Removes the region's name; processes that have it open keep using
    /// it until they drop their handle.
    ///
    /// # Errors
    /// [`Error::Io`] when it was removed already.
    pub fn remove(self) -> Result<()> {
        self.seg.remove()
    }
}

/// The lock of a [`Region`]: derefs to the value in the segment; the write
/// is published to readers, and the lock released, on drop. Not `Send`.
pub struct RegionGuard<'a, T> {
    region: &'a Region<T>,
    _not_send: PhantomData<*const ()>,
}

impl<T> RegionGuard<'_, T> {
    #[inline]
    fn ptr(&self) -> *mut T {
        self.region.seg.data().cast::<T>()
    }
}

impl<T: fmt::Debug> fmt::Debug for RegionGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: as in `Deref`.
        fmt::Debug::fmt(unsafe { &*self.ptr() }, f)
    }
}

impl<T> Deref for RegionGuard<'_, T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the data is aligned for `T`, in the mapping (which
        // outlives the guard through `region`), validated as a `T` when
        // the lock was taken, and while we hold the lock no one else
        // writes it.
        unsafe { &*self.ptr() }
    }
}

impl<T> DerefMut for RegionGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `Deref`; `&mut self` makes this the only reference
        // handed out by this guard, and the lock keeps other writers out
        // (readers load the bytes atomically and discard torn copies).
        unsafe { &mut *self.ptr() }
    }
}

impl<T> sealed::Sealed for RegionGuard<'_, T> {}

impl<T> Guard for RegionGuard<'_, T> {
    fn mark_consistent(&self) {
        self.region.seg.mark_consistent();
    }
}

impl<T> Drop for RegionGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        seqlock::end_write(&self.region.seg.header().seq);
        self.region.seg.unlock();
    }
}

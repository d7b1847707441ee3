//! The seqlock of a region: writers (holding the robust mutex) make the
//! sequence odd while they write; readers copy the data without any lock
//! and keep the copy only if the sequence was even and unchanged around
//! it. The protocol and its orderings: `docs/shared-state.md`.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering, fence};

/// Starts a write (the caller holds the mutex). A sequence left odd by a
/// writer that died mid-write stays odd: this write finishes it.
#[inline]
pub(crate) fn begin_write(seq: &AtomicU64) {
    let s = seq.load(Ordering::Relaxed);
    if s % 2 == 0 {
        seq.store(s + 1, Ordering::Relaxed);
    }
    // Orders the odd store before every data store that follows: a reader
    // that sees any of the new data then sees the odd (or a later) value
    // on its second load.
    fence(Ordering::Release);
}

/// Ends a write: the data stores happen before the even value.
#[inline]
pub(crate) fn end_write(seq: &AtomicU64) {
    let s = seq.load(Ordering::Relaxed);
    seq.store(s + 1, Ordering::Release);
}

/// The sequence if no write is in progress (even), with acquire ordering:
/// the data loads that follow see at least that write.
#[inline]
pub(crate) fn read_begin(seq: &AtomicU64) -> Option<u64> {
    let s = seq.load(Ordering::Acquire);
    (s % 2 == 0).then_some(s)
}

/// Whether the copy made since `read_begin` returned `s` is consistent.
#[inline]
pub(crate) fn read_validate(seq: &AtomicU64, s: u64) -> bool {
    // Orders the data loads before the second sequence load.
    fence(Ordering::Acquire);
    seq.load(Ordering::Relaxed) == s
}

/// Copies a `T` from shared memory that a writer may be changing, with
/// relaxed atomic loads (never a plain read racing a write): whole words,
/// then bytes for the rest. The size is known at compile time, so the
/// loop is unrolled where that pays. The copy may be torn; the caller
/// validates it with [`read_validate`] before treating it as a `T`.
///
/// # Safety
/// - `src` is valid for reads of `size_of::<T>()` bytes for the call and
///   8-aligned (region data is aligned to 64 bytes);
/// - `dst` is valid for writes of `size_of::<T>()` bytes and does not
///   overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_racy<T>(src: *const T, dst: *mut T) {
    let len = size_of::<T>();
    let (src, dst) = (src.cast::<u8>(), dst.cast::<u8>());
    debug_assert_eq!(src as usize % align_of::<AtomicU64>(), 0);
    let words = len / 8;
    for w in 0..words {
        let i = w * 8;
        // SAFETY: `src + i .. src + i + 8` is in bounds (w < len / 8) and
        // 8-aligned (src aligned, i a multiple of 8); the memory is touched
        // by other processes only through atomics or the writer's stores,
        // which the seqlock validation guards against.
        let v = unsafe { AtomicU64::from_ptr(src.add(i).cast_mut().cast::<u64>()) }
            .load(Ordering::Relaxed);
        // SAFETY: `dst + i .. dst + i + 8` is in bounds of the caller's
        // buffer, which no one else accesses; unaligned write.
        unsafe { dst.add(i).cast::<u64>().write_unaligned(v) };
    }
    for i in words * 8..len {
        // SAFETY: `src + i` is in bounds; any address is aligned for u8.
        let b = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
        // SAFETY: `dst + i` is in bounds of the caller's buffer.
        unsafe { dst.add(i).write(b) };
    }
}

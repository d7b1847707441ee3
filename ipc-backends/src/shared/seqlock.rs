//! The seqlock of a region: writers (holding the robust mutex) make the
//! sequence odd while they write; readers copy the data without any lock
//! and keep the copy only if the sequence was even and unchanged around
//! it. The protocol and its orderings: `docs/shared-state.md`.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering, fence};

/// Starts a write (the caller holds the mutex). A sequence left odd by a
/// writer that died mid-write stays odd: this write finishes it.
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
pub(crate) fn end_write(seq: &AtomicU64) {
    let s = seq.load(Ordering::Relaxed);
    seq.store(s + 1, Ordering::Release);
}

/// The sequence if no write is in progress (even), with acquire ordering:
/// the data loads that follow see at least that write.
pub(crate) fn read_begin(seq: &AtomicU64) -> Option<u64> {
    let s = seq.load(Ordering::Acquire);
    (s % 2 == 0).then_some(s)
}

/// Whether the copy made since `read_begin` returned `s` is consistent.
pub(crate) fn read_validate(seq: &AtomicU64, s: u64) -> bool {
    // Orders the data loads before the second sequence load.
    fence(Ordering::Acquire);
    seq.load(Ordering::Relaxed) == s
}

/// Copies `len` bytes from shared memory that a writer may be changing,
/// with relaxed atomic loads (never a plain read racing a write). The copy
/// may be torn; the caller validates it with [`read_validate`].
///
/// # Safety
/// - `src` is valid for reads of `len` bytes for the call, `dst` for
///   writes of `len` bytes, and they do not overlap.
pub(crate) unsafe fn copy_racy(src: *const u8, dst: *mut u8, len: usize) {
    let mut i = 0;
    // Whole words where `src` is word-aligned (region data is aligned to
    // at least 64 bytes), bytes for the rest.
    if (src as usize) % align_of::<AtomicU64>() == 0 {
        while i + 8 <= len {
            // SAFETY: `src + i` is in bounds (i + 8 <= len), 8-aligned
            // (src aligned, i a multiple of 8), and memory touched by other
            // processes only through atomics or the writer's stores, which
            // the seqlock validation guards against.
            let w = unsafe { AtomicU64::from_ptr(src.add(i).cast_mut().cast::<u64>()) }
                .load(Ordering::Relaxed);
            // SAFETY: `dst + i .. dst + i + 8` is in bounds of the caller's
            // buffer, which no one else accesses; unaligned write.
            unsafe { dst.add(i).cast::<u64>().write_unaligned(w) };
            i += 8;
        }
    }
    while i < len {
        // SAFETY: `src + i` is in bounds; any address is aligned for u8.
        let b = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
        // SAFETY: `dst + i` is in bounds of the caller's buffer.
        unsafe { dst.add(i).write(b) };
        i += 1;
    }
}

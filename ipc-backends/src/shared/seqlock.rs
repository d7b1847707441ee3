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
/// loads that are each atomic (never a plain Rust read racing a write):
/// on x86-64, whole 64-byte blocks with 16-byte SSE2 loads in an `asm!`
/// loop, then 8-byte words with relaxed `AtomicU64` loads, then bytes with
/// relaxed `AtomicU8` loads; elsewhere words and bytes only. The size is
/// known at compile time, so the branches fold away. The copy may be torn;
/// the caller validates it with [`read_validate`] before treating it as a
/// `T`.
///
/// Why this is sound, and why not `memcpy` or `read_volatile`: the writer
/// stores the value with plain stores under the lock, and a reader's copy
/// overlaps them in time. In the Rust (C++) memory model a plain or
/// volatile load that races a store is a data race, undefined behaviour
/// even when the value read is thrown away, so a seqlock reader must not
/// copy with `ptr::copy_nonoverlapping` or `read_volatile`. Relaxed atomic
/// loads are defined (the value may be stale or torn across words, which
/// the sequence check catches), but the compiler never merges them into
/// vector loads, so a 4 KiB copy is 512 load/store pairs. Inline assembly
/// is opaque to the compiler: its loads are machine loads with the
/// hardware's semantics, and an aligned 16-byte SSE load reads each byte
/// exactly once, atomically — what a sequence of relaxed byte loads would
/// do, which is the only behaviour the program relies on. The `asm!` block
/// is not `pure`/`nomem`, so the compiler keeps it between the acquire
/// load of the sequence and the acquire fence, and x86 keeps loads in
/// order (TSO), so the second sequence load cannot pass the block's loads.
///
/// # Safety
/// - `src` is valid for reads of `size_of::<T>()` bytes for the call and
///   64-aligned (region data is aligned to 64 bytes);
/// - `dst` is valid for writes of `size_of::<T>()` bytes and does not
///   overlap `src`.
#[inline(always)]
pub(crate) unsafe fn copy_racy<T>(src: *const T, dst: *mut T) {
    let len = size_of::<T>();
    let (src, dst) = (src.cast::<u8>(), dst.cast::<u8>());
    debug_assert_eq!(src as usize % 64, 0);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if len >= BLOCK_MIN {
        let blocks = len / 64;
        // SAFETY: `blocks * 64 <= len` bytes from `src` (64-aligned) and
        // `dst` are in bounds, as the caller guarantees.
        unsafe { copy_blocks(src, dst, blocks) };
        done = blocks * 64;
    }
    let words = (len - done) / 8;
    for w in 0..words {
        let i = done + w * 8;
        // SAFETY: `src + i .. src + i + 8` is in bounds (i + 8 <= len) and
        // 8-aligned (src 64-aligned, i a multiple of 8); the memory is
        // touched by other processes only through atomics or the writer's
        // stores, which the seqlock validation guards against.
        let v = unsafe { AtomicU64::from_ptr(src.add(i).cast_mut().cast::<u64>()) }
            .load(Ordering::Relaxed);
        // SAFETY: `dst + i .. dst + i + 8` is in bounds of the caller's
        // buffer, which no one else accesses; unaligned write.
        unsafe { dst.add(i).cast::<u64>().write_unaligned(v) };
    }
    for i in done + words * 8..len {
        // SAFETY: `src + i` is in bounds; any address is aligned for u8.
        let b = unsafe { AtomicU8::from_ptr(src.add(i).cast_mut()) }.load(Ordering::Relaxed);
        // SAFETY: `dst + i` is in bounds of the caller's buffer.
        unsafe { dst.add(i).write(b) };
    }
}

/// From this size on, `Region::read` of a type whose every bit pattern is
/// valid copies straight into the `Result` it returns, zeroed first,
/// instead of moving a local copy into it. The move is a `memcpy` call,
/// and glibc's `rep movsb` runs several times slower on some x86 machines
/// when the destination lies a few bytes past the source modulo 4 KiB
/// (4K aliasing) — as a local and the `Result` right after it on the
/// stack do. Zeroing is stores only.
pub(crate) const IN_PLACE_MIN: usize = 256;

/// From this size on the block copy is used: below it the unrolled word
/// loads are as few instructions.
#[cfg(target_arch = "x86_64")]
const BLOCK_MIN: usize = 256;

/// Copies `blocks` 64-byte blocks from `src` (64-aligned) to `dst`: each
/// block is four aligned 16-byte SSE2 loads in an `asm!` block, stored to
/// `dst` by ordinary (unaligned) vector stores, 12 instructions per 64
/// bytes where word-wise relaxed loads take about 20. Only the loads need
/// the assembly (they race the writer); the stores are to the caller's
/// own memory, and leaving them to the compiler keeps `dst`'s address out
/// of the assembly, so the compiler may place a value read into a local
/// straight where it ends up instead of copying it there.
///
/// # Safety
/// - `src` is valid for reads and `dst` for writes of `blocks * 64` bytes;
///   `src` is 16-aligned; they do not overlap.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn copy_blocks(src: *const u8, dst: *mut u8, blocks: usize) {
    use std::arch::x86_64::__m128i;
    for b in 0..blocks {
        let (x0, x1, x2, x3): (__m128i, __m128i, __m128i, __m128i);
        // SAFETY: reads the 64 bytes at `src + 64 b` (in bounds and
        // 16-aligned, as `movdqa` needs, per the caller); touches no stack
        // and writes only the four output registers. SSE2 is part of
        // x86-64. The loads race the writer's stores only at the machine
        // level, where each byte is read atomically (see `copy_racy`).
        unsafe {
            std::arch::asm!(
                "movdqa {x0}, xmmword ptr [{src}]",
                "movdqa {x1}, xmmword ptr [{src} + 16]",
                "movdqa {x2}, xmmword ptr [{src} + 32]",
                "movdqa {x3}, xmmword ptr [{src} + 48]",
                src = in(reg) src.add(b * 64),
                x0 = out(xmm_reg) x0,
                x1 = out(xmm_reg) x1,
                x2 = out(xmm_reg) x2,
                x3 = out(xmm_reg) x3,
                options(nostack, preserves_flags),
            );
        }
        let d = dst.wrapping_add(b * 64).cast::<__m128i>();
        // SAFETY: `dst + 64 b .. + 64` is in bounds of the caller's buffer,
        // which no one else accesses; unaligned stores.
        unsafe {
            d.write_unaligned(x0);
            d.add(1).write_unaligned(x1);
            d.add(2).write_unaligned(x2);
            d.add(3).write_unaligned(x3);
        }
    }
}

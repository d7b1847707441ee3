//! One single-producer, single-consumer byte ring in shared memory.
//!
//! Positions (`head`, `tail`) are byte counts since the connection began;
//! the offset in the ring is `position % capacity`. The producer owns
//! `head`, the consumer owns `tail`: each keeps its own copy in a local and
//! only publishes it, so the only values read from the peer are the peer's
//! index and record headers, each read once and checked by the pure
//! functions [`check_head`], [`check_tail`] and [`decode_header`] (a
//! fuzzer calls [`validate`]).
//!
//! A record is an 8-byte header (`len: u32`, `kind: u32`, little-endian)
//! and, for a message, `len` payload bytes padded to a multiple of 8. The
//! payload may wrap around the end of the ring; a message larger than the
//! ring streams through it in chunks. A `PAD` record skips to the start of
//! the ring so a loaned payload is contiguous.
//!
//! Every record starts at a multiple of 8 bytes from the ring's start, and
//! the ring starts at a page-aligned offset of a page-aligned mapping, so
//! every payload address is a multiple of [`PAYLOAD_ALIGN`].

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use ipc_core::Batch;
use ipc_core::batch::Regions;

/// Record kind: a message.
pub const KIND_MESSAGE: u32 = 1;
/// Record kind: padding to the end of the ring.
pub const KIND_PAD: u32 = 2;
/// The alignment every payload address has (in the producer's and in the
/// consumer's mapping): types aligned to at most this can be viewed in
/// place.
pub const PAYLOAD_ALIGN: usize = 8;
/// Bytes of a record header.
pub const RECORD_HEADER: u64 = 8;
/// A `*_sleeping` word: the waiter may be asleep on the futex.
pub const SLEEPING_BLOCKED: u32 = 1;
/// A `*_sleeping` word: the waiter waits asynchronously, on its doorbell
/// (an eventfd the peer received at rendezvous).
pub const SLEEPING_ASYNC: u32 = 2;

/// The shared state of one ring. Each group sits on its own pair of cache
/// lines (against adjacent-line prefetch): `head` (producer, every
/// publish), `tail` (consumer, every release), the two wake-up groups, and
/// the flags written once at connect and once at close, which both sides
/// read often and so must not share a line with an index.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct Control {
    /// Bytes ever published by the producer.
    pub head: AtomicU64,
    _pad0: [u8; 120],
    /// Bytes ever consumed by the consumer.
    pub tail: AtomicU64,
    _pad1: [u8; 120],
    /// Nonzero while the consumer may be waiting for data (consumer
    /// writes): [`SLEEPING_BLOCKED`] on the futex,
    /// [`SLEEPING_ASYNC`] on its doorbell.
    pub data_sleeping: AtomicU32,
    /// Bumped by the producer for each data wake-up; the futex word.
    pub data_seq: AtomicU32,
    _pad2: [u8; 120],
    /// Nonzero while the producer may be waiting for space (producer
    /// writes), as `data_sleeping`.
    pub space_sleeping: AtomicU32,
    /// Bumped by the consumer for each space wake-up; the futex word.
    pub space_seq: AtomicU32,
    _pad3: [u8; 120],
    /// Set by the producer when it will write no more.
    pub producer_closed: AtomicU32,
    /// Set by the consumer when it will read no more.
    pub consumer_closed: AtomicU32,
    /// Set by the producer before the connection carries messages when it
    /// never sleeps waiting for space (`wait=spin`).
    pub producer_spins: AtomicU32,
    /// Set by the consumer before the connection carries messages when it
    /// never sleeps waiting for data (`wait=spin`).
    pub consumer_spins: AtomicU32,
    _pad4: [u8; 112],
}

const _: () = assert!(std::mem::size_of::<Control>() == 640);

/// Bytes a message of `len` bytes takes in the ring, header included.
#[inline]
pub fn record_size(len: u64) -> u64 {
    // RECORD_HEADER + len rounded up to a multiple of 8, in two
    // instructions.
    (len + RECORD_HEADER + 7) & !7
}

/// A way the peer broke the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// The producer's head is behind what it published before, or further
    /// ahead than the ring holds.
    Head {
        /// Our tail.
        tail: u64,
        /// The head seen before.
        before: u64,
        /// The head read now.
        now: u64,
    },
    /// The consumer's tail went backwards or past our head.
    Tail {
        /// Our head.
        head: u64,
        /// The tail seen before.
        before: u64,
        /// The tail read now.
        now: u64,
    },
    /// A record header is torn: fewer than 8 bytes published at a record
    /// boundary.
    TornHeader(u64),
    /// A record kind we do not know.
    Kind(u32),
    /// A message longer than the connection's limit.
    TooLong {
        /// Its announced length.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// A padding record where none can be, or not yet complete.
    Pad(u64),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Head { tail, before, now } => write!(
                f,
                "the peer moved the ring head from {before} to {now} (tail {tail})"
            ),
            Violation::Tail { head, before, now } => write!(
                f,
                "the peer moved the ring tail from {before} to {now} (head {head})"
            ),
            Violation::TornHeader(a) => {
                write!(f, "only {a} bytes of a record header were published")
            }
            Violation::Kind(k) => write!(f, "unknown record kind {k}"),
            Violation::TooLong { len, max } => write!(
                f,
                "the peer announced a {len}-byte message, above max_message_size {max}"
            ),
            Violation::Pad(a) => write!(f, "invalid padding record with {a} bytes available"),
        }
    }
}

/// Checks a head read from the segment: it may only grow, and never past
/// `tail + capacity`. Returns the bytes available to read.
///
/// # Errors
/// [`Violation::Head`].
pub fn check_head(capacity: u64, tail: u64, before: u64, now: u64) -> Result<u64, Violation> {
    match now.checked_sub(tail) {
        Some(avail) if now >= before && avail <= capacity => Ok(avail),
        _ => Err(Violation::Head { tail, before, now }),
    }
}

/// Checks a tail read from the segment: it may only grow, and never past
/// `head`. Returns the bytes free to write.
///
/// # Errors
/// [`Violation::Tail`].
pub fn check_tail(capacity: u64, head: u64, before: u64, now: u64) -> Result<u64, Violation> {
    if now < before || now > head || head - now > capacity {
        return Err(Violation::Tail { head, before, now });
    }
    Ok(capacity - (head - now))
}

/// The next record, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing published yet.
    Empty,
    /// A message of this many bytes follows the header.
    Message(u64),
    /// Skip this many bytes (header included) to the start of the ring.
    Pad(u64),
}

/// Decodes the header `word` at record boundary `tail` with `avail` bytes
/// published (`avail >= 8`, or 0 for an empty ring, in which case `word`
/// is ignored).
///
/// # Errors
/// The [`Violation`] found.
pub fn decode_header(
    capacity: u64,
    max_message: u64,
    tail: u64,
    avail: u64,
    word: u64,
) -> Result<Next, Violation> {
    if avail == 0 {
        return Ok(Next::Empty);
    }
    if avail < RECORD_HEADER {
        return Err(Violation::TornHeader(avail));
    }
    let len = word & 0xffff_ffff;
    let kind = (word >> 32) as u32;
    match kind {
        KIND_MESSAGE => {
            if len > max_message {
                return Err(Violation::TooLong {
                    len,
                    max: max_message,
                });
            }
            Ok(Next::Message(len))
        }
        KIND_PAD => {
            let offset = tail % capacity;
            let skip = capacity - offset;
            // A pad at the ring start would skip a whole ring; a pad is
            // published together with the record after it.
            if offset == 0 || skip > avail || len != 0 {
                return Err(Violation::Pad(avail));
            }
            Ok(Next::Pad(skip))
        }
        other => Err(Violation::Kind(other)),
    }
}

/// Everything a consumer reads from the peer before acting, for fuzzing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// Ring bytes (a power of two, multiple of 8).
    pub capacity: u64,
    /// The connection's largest message.
    pub max_message: u64,
    /// Our tail (a multiple of 8: a record boundary).
    pub tail: u64,
    /// The head we saw last.
    pub head_before: u64,
    /// The head read now.
    pub head: u64,
    /// The header word at `tail`.
    pub word: u64,
}

/// Validates a consumer's view of the ring: the pure function a fuzzer
/// calls. On `Ok`, acting on the result stays in bounds: a message's
/// length is at most `max_message`, a pad's skip at most what is available.
///
/// # Errors
/// The [`Violation`] found.
pub fn validate(v: &View) -> Result<Next, Violation> {
    let avail = check_head(v.capacity, v.tail, v.head_before, v.head)?;
    decode_header(v.capacity, v.max_message, v.tail, avail, v.word)
}

/// Publishes `value` to `index`, then reports whether the other side has
/// announced it may be waiting (`sleeping` nonzero: [`SLEEPING_BLOCKED`]
/// or [`SLEEPING_ASYNC`]). The SeqCst fence orders the
/// publication before the read of the flag; the sleeper orders its flag
/// before its re-check of the index the same way, so one of the two sees
/// the other (see `docs/shm-architecture.md`). When the other side
/// announced at connect that it never sleeps (`peer_spins`), there is no
/// one to wake and the fence is skipped.
pub fn publish(index: &AtomicU64, value: u64, sleeping: &AtomicU32, peer_spins: bool) -> bool {
    index.store(value, Ordering::Release);
    if peer_spins {
        return false;
    }
    fence(Ordering::SeqCst);
    sleeping.load(Ordering::Relaxed) != 0
}

/// A ring's memory: control block and data.
#[derive(Debug, Clone, Copy)]
pub struct RingMem {
    /// The control block.
    pub control: *const Control,
    /// The first data byte.
    pub data: *mut u8,
    /// Data bytes: a power of two, at least 4096.
    pub capacity: u64,
}

// SAFETY: a RingMem is only a pair of addresses into a mapping kept alive by
// the owner of the Producer/Consumer that holds it; it does not own or
// alias Rust-managed memory.
unsafe impl Send for RingMem {}

impl RingMem {
    /// The offset of position `pos` in the data area: `pos % capacity`
    /// for the power-of-two capacity, without a division. Below
    /// `capacity` whatever `capacity` is.
    fn offset(&self, pos: u64) -> u64 {
        pos & (self.capacity - 1)
    }

    /// Reads the record header at `pos`, a record boundary: a multiple of
    /// 8, so the 8 bytes never wrap (the capacity is a multiple of 8).
    ///
    /// # Safety
    /// - `pos % 8 == 0`.
    unsafe fn header_at(&self, pos: u64) -> u64 {
        debug_assert_eq!(pos % 8, 0);
        // SAFETY: `offset(pos) <= capacity - 8` as both are multiples of 8,
        // so the 8 bytes lie in the data area. A peer rewriting them makes
        // the word garbage (validated by the caller), never out of bounds.
        let b = unsafe {
            self.data
                .add(self.offset(pos) as usize)
                .cast::<[u8; 8]>()
                .read_unaligned()
        };
        u64::from_le_bytes(b)
    }

    /// Writes a record header at `pos`, a record boundary.
    ///
    /// # Safety
    /// - `pos % 8 == 0`, and the 8 bytes at `pos` are ours (free).
    unsafe fn set_header_at(&self, pos: u64, word: u64) {
        debug_assert_eq!(pos % 8, 0);
        // SAFETY: in bounds as in `header_at`; the caller owns the bytes.
        unsafe {
            self.data
                .add(self.offset(pos) as usize)
                .cast::<[u8; 8]>()
                .write_unaligned(word.to_le_bytes());
        }
    }

    fn control(&self) -> &Control {
        // SAFETY: `control` points into a live mapping for as long as the
        // owning channel holds the mapping (constructor precondition of
        // Producer/Consumer); Control holds only atomics.
        unsafe { &*self.control }
    }

    /// Copies `src` into the ring at `pos`, wrapping at the end.
    ///
    /// # Safety
    /// - `src.len() <= capacity`, and the bytes from `pos` are ours (free).
    unsafe fn write_at(&self, pos: u64, src: &[u8]) {
        let off = self.offset(pos) as usize;
        let first = src.len().min(self.capacity as usize - off);
        // SAFETY: `off + first <= capacity` and `src.len() - first <= off`
        // (because src.len() <= capacity), so both copies stay inside the
        // data area; the source is a distinct Rust slice, so no overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data.add(off), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), self.data, src.len() - first);
        }
    }

    /// Copies out of the ring at `pos` into `dst`, wrapping at the end.
    ///
    /// # Safety
    /// - `dst.len() <= capacity`.
    unsafe fn read_at(&self, pos: u64, dst: &mut [u8]) {
        let off = self.offset(pos) as usize;
        let first = dst.len().min(self.capacity as usize - off);
        // A peer that breaks the protocol and writes these bytes meanwhile
        // makes the copy garbage, never out of bounds.
        // SAFETY: as in `write_at`, both ranges are inside the data area and
        // `dst` is a distinct Rust slice.
        unsafe {
            std::ptr::copy_nonoverlapping(self.data.add(off), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.data,
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }
}

/// The writing end of a ring, in this process.
#[derive(Debug)]
pub struct Producer {
    mem: RingMem,
    head: u64,
    /// The consumer's tail as last read and validated: a lower bound of
    /// the real one, so the free space it gives is never too large.
    tail_seen: u64,
    /// The consumer announced it never sleeps: no wake check on publish.
    peer_spins: bool,
}

impl Producer {
    /// A producer over `mem`, starting at position 0.
    ///
    /// # Safety
    /// - `mem` must describe a live shared mapping (control block and
    ///   `capacity` data bytes) that outlives the producer, with no other
    ///   producer for this ring.
    pub unsafe fn new(mem: RingMem, peer_spins: bool) -> Producer {
        Producer {
            mem,
            head: 0,
            tail_seen: 0,
            peer_spins,
        }
    }

    /// The control block.
    pub fn control(&self) -> &Control {
        self.mem.control()
    }

    /// Ring bytes.
    pub fn capacity(&self) -> u64 {
        self.mem.capacity
    }

    /// Bytes free as of the tail last read, without touching the shared
    /// line: at most the real free space.
    pub fn free_cached(&self) -> u64 {
        self.mem.capacity - (self.head - self.tail_seen).min(self.mem.capacity)
    }

    /// Bytes free, reading the consumer's tail only when the cached view
    /// has fewer than `need`.
    ///
    /// # Errors
    /// [`Violation::Tail`].
    pub fn free_for(&mut self, need: u64) -> Result<u64, Violation> {
        match self.free_cached() {
            free if free >= need => Ok(free),
            _ => self.free(),
        }
    }

    /// Reads the consumer's tail once, validates it, returns bytes free.
    ///
    /// # Errors
    /// [`Violation::Tail`].
    pub fn free(&mut self) -> Result<u64, Violation> {
        let now = self.control().tail.load(Ordering::Acquire);
        let free = check_tail(self.mem.capacity, self.head, self.tail_seen, now)?;
        self.tail_seen = now;
        Ok(free)
    }

    /// Writes up to `free` bytes of `src` (the caller got `free` from
    /// [`free`](Self::free) and has written nothing since); returns how
    /// many. Unpublished until [`publish`](Self::publish).
    pub fn push(&mut self, src: &[u8], free: u64) -> usize {
        let n = src.len().min(free as usize);
        // SAFETY: `n <= free <= capacity`, and the `free` bytes from `head`
        // were released by the consumer (validated tail), so they are ours.
        unsafe { self.mem.write_at(self.head, &src[..n]) };
        self.head += n as u64;
        n
    }

    /// Publishes what was pushed; `true` when the consumer may be waiting
    /// and must be woken.
    pub fn publish(&mut self) -> bool {
        let c = self.mem.control();
        publish(&c.head, self.head, &c.data_sleeping, self.peer_spins)
    }

    /// Writes a whole message record (header, `msg`, zero padding) at the
    /// head when it does not wrap; `false`, writing nothing, when it does.
    /// The caller has checked that `record_size(msg.len())` bytes are free
    /// (as for [`push`](Self::push)). Unpublished until
    /// [`publish`](Self::publish).
    pub fn push_contiguous(&mut self, msg: &[u8]) -> bool {
        let len = msg.len() as u64;
        let record = record_size(len);
        let off = self.mem.offset(self.head);
        if off + record > self.mem.capacity {
            return false;
        }
        let word = (u64::from(KIND_MESSAGE) << 32) | len;
        // SAFETY: `off + record <= capacity`: header, payload and padding lie
        // in the data area, in bytes nobody reads before we publish (caller's
        // check); `msg` is a distinct slice, so the copy cannot overlap.
        unsafe {
            let at = self.mem.data.add(off as usize);
            // The record's last word zeroed first, then header and payload
            // over it: what is left of it is the padding (0 to 7 bytes), at
            // the cost of one store where `write_bytes` of the padding was
            // a call to `memset`, 15 to 19 instructions a message even for
            // none.
            at.add((record - 8) as usize)
                .cast::<[u8; 8]>()
                .write_unaligned([0; 8]);
            at.cast::<[u8; 8]>().write_unaligned(word.to_le_bytes());
            let body = at.add(RECORD_HEADER as usize);
            std::ptr::copy_nonoverlapping(msg.as_ptr(), body, msg.len());
        }
        self.head += record;
        true
    }

    /// Writes whole message records for the first of `msgs` that fit, one
    /// after the other, in the room before the ring's end that the tail
    /// last read leaves (as [`push_contiguous`](Self::push_contiguous)
    /// each, without looking at the tail again); returns how many.
    /// Unpublished until [`publish`](Self::publish).
    pub fn push_run(&mut self, msgs: &[&[u8]]) -> usize {
        let off = self.mem.offset(self.head);
        let room = self.free_cached().min(self.mem.capacity - off);
        // SAFETY: `off < capacity`: inside the data area.
        let base = unsafe { self.mem.data.add(off as usize) };
        let mut used = 0;
        let mut n = 0;
        for msg in msgs {
            let len = msg.len() as u64;
            let record = record_size(len);
            if record > room - used {
                break;
            }
            // SAFETY: `used + record <= room`: the record lies before the
            // ring's end, in bytes the consumer released (as of the tail
            // last read) and nobody reads before we publish; `msg` is a
            // distinct slice. The padding as in `push_contiguous`.
            unsafe {
                let at = base.add(used as usize);
                at.add((record - 8) as usize)
                    .cast::<[u8; 8]>()
                    .write_unaligned([0; 8]);
                let word = (u64::from(KIND_MESSAGE) << 32) | len;
                at.cast::<[u8; 8]>().write_unaligned(word.to_le_bytes());
                let body = at.add(RECORD_HEADER as usize);
                std::ptr::copy_nonoverlapping(msg.as_ptr(), body, msg.len());
            }
            used += record;
            n += 1;
        }
        self.head += used;
        n
    }

    /// Contiguous room for a record of `record` bytes at the head, writing
    /// a pad first when the ring end is too close: the payload address, or
    /// `None` when not enough is free. `free` as for [`push`](Self::push).
    pub fn reserve_contiguous(&mut self, record: u64, free: u64) -> Option<Reserved> {
        let off = self.mem.offset(self.head);
        let to_end = self.mem.capacity - off;
        let (pad, start) = if to_end >= record {
            (0, off)
        } else {
            (to_end, 0)
        };
        if pad + record > free {
            return None;
        }
        // SAFETY: `start + record <= capacity` (record fits before the end,
        // or starts at 0 and record <= capacity as pad + record <= free <=
        // capacity), so the address is inside the data area.
        let payload = unsafe { self.mem.data.add((start + RECORD_HEADER) as usize) };
        Some(Reserved { pad, payload })
    }

    /// Writes the headers of a reserved record of `len` payload bytes and
    /// advances the head past it (unpublished).
    pub fn commit_reserved(&mut self, r: &Reserved, len: u64) {
        if r.pad > 0 {
            // SAFETY: `pad >= 8` bytes from head, a record boundary, are
            // reserved, so the pad header fits before the end.
            unsafe { self.mem.set_header_at(self.head, u64::from(KIND_PAD) << 32) };
            self.head += r.pad;
        }
        let word = (u64::from(KIND_MESSAGE) << 32) | len;
        // SAFETY: the record's header slot at `head`, a record boundary,
        // was reserved.
        unsafe { self.mem.set_header_at(self.head, word) };
        self.head += record_size(len);
    }
}

/// Room reserved by [`Producer::reserve_contiguous`].
#[derive(Debug, Clone, Copy)]
pub struct Reserved {
    /// Bytes of padding record before it (0 for none).
    pub pad: u64,
    /// Where the payload goes.
    pub payload: *mut u8,
}

/// The reading end of a ring, in this process.
#[derive(Debug)]
pub struct Consumer {
    mem: RingMem,
    max_message: u64,
    tail: u64,
    /// The producer's head as last read and validated: everything before
    /// it is published, so it may be read without looking again.
    head_seen: u64,
    /// The producer announced it never sleeps: no wake check on release.
    peer_spins: bool,
}

impl Consumer {
    /// A consumer over `mem`, starting at position 0.
    ///
    /// # Safety
    /// - As for [`Producer::new`], with no other consumer for this ring.
    pub unsafe fn new(mem: RingMem, max_message: u64, peer_spins: bool) -> Consumer {
        Consumer {
            mem,
            max_message,
            tail: 0,
            head_seen: 0,
            peer_spins,
        }
    }

    /// The control block.
    pub fn control(&self) -> &Control {
        self.mem.control()
    }

    /// Bytes published as of the head last read, without touching the
    /// shared line.
    pub fn available_cached(&self) -> u64 {
        self.head_seen.saturating_sub(self.tail)
    }

    /// Reads the producer's head once, validates it, returns bytes
    /// available.
    ///
    /// # Errors
    /// [`Violation::Head`].
    pub fn available(&mut self) -> Result<u64, Violation> {
        let now = self.control().head.load(Ordering::Acquire);
        let avail = check_head(self.mem.capacity, self.tail, self.head_seen, now)?;
        self.head_seen = now;
        Ok(avail)
    }

    /// Decodes the record at the tail (a record boundary) given `avail`.
    ///
    /// # Errors
    /// The [`Violation`] found.
    pub fn next(&self, avail: u64) -> Result<Next, Violation> {
        let word = if avail >= RECORD_HEADER {
            // SAFETY: the tail is a record boundary (a multiple of 8);
            // reading published bytes.
            unsafe { self.mem.header_at(self.tail) }
        } else {
            0
        };
        decode_header(self.mem.capacity, self.max_message, self.tail, avail, word)
    }

    /// The message at the tail when the whole record is among the
    /// `avail` bytes published and lies unwrapped: its payload and
    /// length. `None` for anything else (nothing, a pad, a wrapped or
    /// streamed record, a violation), which [`next`](Self::next) sorts
    /// out.
    #[inline]
    pub fn whole_message(&self, avail: u64) -> Option<(*const u8, u64)> {
        if avail < RECORD_HEADER {
            return None;
        }
        // SAFETY: as in `next`.
        let word = unsafe { self.mem.header_at(self.tail) };
        let len = word & 0xffff_ffff;
        if (word >> 32) as u32 != KIND_MESSAGE || len > self.max_message {
            return None;
        }
        self.contiguous(len, avail).map(|p| (p, len))
    }

    /// Takes the run of whole, unwrapped message records at the tail
    /// among the `avail` bytes published, up to `max` messages in `batch`
    /// in all, with one copy for the run (the headers and padding go along
    /// but are never handed out), and skips them; returns the bytes
    /// taken. 0 when the tail holds anything else (nothing, a pad, a
    /// wrapped or streamed record, a violation), which
    /// [`next`](Self::next) sorts out. The space is released at the next
    /// [`release`](Self::release).
    pub fn take_run(&mut self, avail: u64, max: usize, batch: &mut Batch) -> u64 {
        let off = self.mem.offset(self.tail);
        let span = avail.min(self.mem.capacity - off) as usize;
        let max_message = self.max_message;
        // SAFETY: `off < capacity`: inside the data area.
        let region = unsafe { self.mem.data.add(off as usize) }.cast_const();
        if !region.cast::<u64>().is_aligned() {
            // Not at a record boundary of a page-aligned ring (never,
            // between records): the reads below are of aligned words.
            return 0;
        }
        let mut used = 0;
        let scan = |run: &mut Regions<'_>| {
            while run.len() < max && span - used >= RECORD_HEADER as usize {
                // SAFETY: `used + 8 <= span`: the word lies in the region,
                // 8-aligned (`region` is, checked above, and `used` is a
                // multiple of 8). Read once (volatile): a peer
                // that rewrites it meanwhile cannot make the checks below
                // and the record's size disagree.
                let word = u64::from_le(unsafe {
                    std::ptr::read_volatile(region.add(used).cast::<u64>())
                });
                let len = word & 0xffff_ffff;
                if (word >> 32) as u32 != KIND_MESSAGE || len > max_message {
                    break;
                }
                let record = record_size(len) as usize;
                if record > span - used {
                    break;
                }
                run.message(used + RECORD_HEADER as usize, len as usize);
                used += record;
            }
            used
        };
        // SAFETY: `off + span <= capacity`: `span` bytes from `region` lie
        // in the data area, published bytes, ours until we release the
        // space.
        unsafe { batch.push_region(region, span, scan) };
        self.tail += used as u64;
        used as u64
    }

    /// Copies up to `avail` bytes into `dst`; returns how many. The space
    /// is released at the next [`release`](Self::release).
    pub fn pull(&mut self, dst: &mut [u8], avail: u64) -> usize {
        let n = dst.len().min(avail as usize);
        // SAFETY: `n <= avail <= capacity` (validated head).
        unsafe { self.mem.read_at(self.tail, &mut dst[..n]) };
        self.tail += n as u64;
        n
    }

    /// Skips `n <= avail` bytes.
    pub fn skip(&mut self, n: u64) {
        self.tail += n;
    }

    /// The payload of a message of `len` bytes whose header is at the tail,
    /// if the whole record is published (`avail`) and does not wrap.
    pub fn contiguous(&self, len: u64, avail: u64) -> Option<*const u8> {
        let off = self.mem.offset(self.tail);
        let rec = record_size(len);
        if rec > avail || off + rec > self.mem.capacity {
            return None;
        }
        // SAFETY: off + rec <= capacity: inside the data area.
        Some(unsafe { self.mem.data.add((off + RECORD_HEADER) as usize) }.cast_const())
    }

    /// Publishes the tail; `true` when the producer may be waiting and
    /// must be woken.
    pub fn release(&mut self) -> bool {
        let c = self.mem.control();
        publish(&c.tail, self.tail, &c.space_sleeping, self.peer_spins)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's padding is zero whatever the ring held there before,
    /// for every payload length modulo 8, and the payload is intact.
    #[test]
    fn pushed_records_are_padded_with_zeros() {
        // SAFETY: a `Control` of atomics and byte arrays is valid zeroed.
        let control: Box<Control> = Box::new(unsafe { std::mem::zeroed() });
        let mut data = vec![0xffu8; 4096];
        let base = data.as_mut_ptr();
        let mem = RingMem {
            control: &*control,
            data: base,
            capacity: 4096,
        };
        // SAFETY: `data` is only read through `base` from here on, between
        // the producer's writes.
        let ring = |from: usize, to: usize| unsafe {
            std::slice::from_raw_parts(base.add(from), to - from).to_vec()
        };
        // SAFETY: `control` and `data` outlive the producer, its only one.
        let mut tx = unsafe { Producer::new(mem, false) };
        let msgs: Vec<Vec<u8>> = (0..=17u64)
            .map(|len| (0..len).map(|i| 0x10 + i as u8).collect())
            .collect();
        // Each record as `push_contiguous` writes it, then as `push_run`
        // writes a run of them.
        for msg in &msgs {
            assert!(tx.push_contiguous(msg));
        }
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        assert_eq!(tx.push_run(&refs), msgs.len());
        let mut at = 0;
        for msg in msgs.iter().chain(&msgs) {
            let len = msg.len() as u64;
            let record = record_size(len) as usize;
            let bytes = ring(at, at + record);
            let word = u64::from_le_bytes(bytes[..8].try_into().unwrap());
            assert_eq!(word, (u64::from(KIND_MESSAGE) << 32) | len);
            assert_eq!(&bytes[8..8 + len as usize], &msg[..], "payload of {len}");
            assert!(
                bytes[8 + len as usize..].iter().all(|&b| b == 0),
                "padding of {len} at {at}: {bytes:?}"
            );
            at += record;
        }
        assert_eq!(tx.head, at as u64);
        // The bytes after the last record are untouched.
        assert!(ring(at, 4096).iter().all(|&b| b == 0xff));
        drop(data);
    }

    #[test]
    fn heads_and_tails() {
        assert_eq!(check_head(64, 0, 0, 0), Ok(0));
        assert_eq!(check_head(64, 8, 8, 72), Ok(64));
        assert!(check_head(64, 8, 8, 73).is_err());
        assert!(check_head(64, 8, 16, 8).is_err());
        assert!(check_head(64, 8, 8, 0).is_err());
        assert!(check_head(64, 0, 0, u64::MAX).is_err());
        assert_eq!(check_tail(64, 64, 0, 0), Ok(0));
        assert_eq!(check_tail(64, 64, 0, 64), Ok(64));
        assert!(check_tail(64, 64, 8, 0).is_err());
        assert!(check_tail(64, 64, 0, 65).is_err());
        assert!(check_tail(64, 200, 0, 100).is_err());
    }

    #[test]
    fn headers() {
        let msg = |len: u64| (u64::from(KIND_MESSAGE) << 32) | len;
        let pad = u64::from(KIND_PAD) << 32;
        assert_eq!(decode_header(64, 10, 0, 0, 12345), Ok(Next::Empty));
        assert_eq!(decode_header(64, 10, 0, 16, msg(10)), Ok(Next::Message(10)));
        assert!(decode_header(64, 10, 0, 16, msg(11)).is_err());
        assert!(decode_header(64, 10, 0, 4, msg(1)).is_err());
        assert_eq!(decode_header(64, 10, 48, 32, pad), Ok(Next::Pad(16)));
        assert!(decode_header(64, 10, 48, 8, pad).is_err());
        assert!(decode_header(64, 10, 64, 32, pad).is_err());
        assert!(decode_header(64, 10, 48, 32, pad | 1).is_err());
        assert!(decode_header(64, 10, 0, 16, 7 << 32).is_err());
    }

    /// Exhaustive small-domain check of the pure validator: whatever it
    /// accepts keeps every later access in bounds.
    #[test]
    fn validate_accepts_only_in_bounds() {
        let cap = 64;
        let max = 40;
        let words: Vec<u64> = [0u64, 1, 8, 40, 41, 56, 64, 0xffff_ffff]
            .iter()
            .flat_map(|&l| [0u32, 1, 2, 3, u32::MAX].map(|k| (u64::from(k) << 32) | l))
            .collect();
        for tail in (0..=128).step_by(8) {
            for head_before in tail..=tail + 8 {
                for head in [
                    0,
                    tail,
                    tail + 3,
                    tail + 8,
                    tail + 16,
                    tail + 64,
                    tail + 65,
                    u64::MAX,
                ] {
                    for &word in &words {
                        let v = View {
                            capacity: cap,
                            max_message: max,
                            tail,
                            head_before,
                            head,
                            word,
                        };
                        match validate(&v) {
                            Ok(Next::Message(len)) => assert!(len <= max),
                            Ok(Next::Pad(skip)) => {
                                assert!(skip <= head - tail && skip < cap && skip % 8 == 0)
                            }
                            Ok(Next::Empty) => assert_eq!(head, tail),
                            Err(_) => {}
                        }
                    }
                }
            }
        }
    }
}

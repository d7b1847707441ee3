//! Shared memory: the ring validator, a consumer over a ring the peer
//! scribbles on, and the segment header validator.

use std::sync::atomic::Ordering;

use ipc_core::Batch;

use super::Input;
use crate::shm::ring::{
    self, Consumer, Control, Next, RECORD_HEADER, RingMem, View, check_tail, record_size,
};
use crate::shm::segment::{self, FIELDS_LEN, Layout, MAX_RING, MIN_RING, validate_header};

/// Input: the six `u64` fields of a [`View`].
///
/// [`ring::validate`] must not panic on any view; on a view as a consumer
/// holds it (power-of-two capacity, tail on a record boundary) what it
/// accepts must keep the consumer in bounds.
pub fn shm_ring(data: &[u8]) {
    let mut input = Input::new(data);
    let raw = View {
        capacity: input.u64(),
        max_message: input.u64(),
        tail: input.u64(),
        head_before: input.u64(),
        head: input.u64(),
        word: input.u64(),
    };
    let _ = ring::validate(&raw);
    let _ = check_tail(raw.capacity, raw.head, raw.head_before, raw.tail);

    let v = View {
        capacity: 1 << (3 + raw.capacity % 28),
        max_message: raw.max_message & 0xffff_ffff,
        tail: raw.tail & !7,
        ..raw
    };
    match ring::validate(&v) {
        Ok(next) => {
            assert!(v.head >= v.head_before && v.head >= v.tail);
            let avail = v.head - v.tail;
            assert!(avail <= v.capacity);
            match next {
                Next::Empty => assert_eq!(avail, 0),
                Next::Message(len) => {
                    assert!(len <= v.max_message && avail >= RECORD_HEADER);
                }
                Next::Pad(skip) => {
                    assert!(skip >= RECORD_HEADER && skip <= avail && skip < v.capacity);
                    assert_eq!((v.tail + skip) % v.capacity, 0);
                }
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    // The producer's side: a tail read from the consumer.
    if let Ok(free) = check_tail(v.capacity, v.head, v.head_before, v.tail) {
        assert!(free <= v.capacity && v.tail <= v.head && v.tail >= v.head_before);
    }
}

/// Ring bytes of [`shm_consumer`]'s ring: the smallest a segment has.
const CONSUMER_RING: u64 = MIN_RING;

/// Input: the connection's `max_message_size` as a `u16`, then operations,
/// each an opcode byte: `0` the peer publishes `u16` more bytes; `1` the
/// peer sets its head to any `u64`; `2` the peer writes a length byte's
/// worth of bytes at a `u16` offset; `3` this side takes one step of a
/// receive (as the shared-memory receiver does), or with the opcode's top
/// bit set one step of a batched receive (a run of records taken at once,
/// at most `1 + (opcode >> 2) % 32` messages).
///
/// Whatever the peer does, each step must stay inside the ring (the
/// address sanitizer checks every access; a payload view is also checked
/// here) and deliver nothing over the limit; a violation ends the
/// connection.
pub fn shm_consumer(data: &[u8]) {
    let mut input = Input::new(data);
    let max = u64::from(input.u16());
    let ring = HeapRing::new(CONSUMER_RING);
    // SAFETY: `ring` outlives `consumer` (declared before it, so dropped
    // after) and nothing else consumes from it.
    let mut consumer = unsafe { Consumer::new(ring.mem, max, true) };
    let mut head = 0u64;
    let mut body = 0u64;
    let mut batch = Batch::new();
    while let Some(op) = input.next() {
        match op % 4 {
            0 => {
                head = head.wrapping_add(u64::from(input.u16()));
                ring.control().head.store(head, Ordering::Release);
            }
            1 => {
                head = input.u64();
                ring.control().head.store(head, Ordering::Release);
            }
            2 => {
                let at = u64::from(input.u16());
                let n = usize::from(input.u8());
                ring.write(at, input.take(n));
            }
            _ if op & 0x80 != 0 => {
                let most = 1 + usize::from(op >> 2) % 32;
                if batch_step(&mut consumer, &ring, &mut body, max, &mut batch, most).is_err() {
                    return;
                }
            }
            _ => {
                if step(&mut consumer, &ring, &mut body, max).is_err() {
                    return;
                }
            }
        }
    }
}

/// One step of the receiver: the rest of a message body being streamed,
/// else the next record.
fn step(
    c: &mut Consumer,
    ring: &HeapRing,
    body: &mut u64,
    max: u64,
) -> Result<(), ring::Violation> {
    let avail = match c.available_cached() {
        0 => c.available()?,
        n => n,
    };
    if avail == 0 {
        return Ok(());
    }
    if *body > 0 {
        let mut chunk = vec![0u8; (*body).min(avail) as usize];
        let n = c.pull(&mut chunk, avail);
        assert!(n as u64 <= avail && n > 0);
        *body -= n as u64;
    } else {
        match c.next(avail)? {
            Next::Empty => panic!("Empty with {avail} bytes available"),
            Next::Pad(skip) => {
                assert!(skip <= avail);
                c.skip(skip);
            }
            Next::Message(len) => {
                assert!(len <= max);
                if let Some(payload) = c.contiguous(len, avail) {
                    let start = payload as usize - ring.mem.data as usize;
                    assert!(start as u64 + len <= ring.mem.capacity);
                    // SAFETY: `len` bytes from `payload` lie inside the data
                    // area (asserted just above), which lives as long as `ring`.
                    let view = unsafe { std::slice::from_raw_parts(payload, len as usize) };
                    std::hint::black_box(view.to_vec());
                    c.skip(record_size(len));
                } else {
                    c.skip(RECORD_HEADER);
                    *body = record_size(len) - RECORD_HEADER;
                }
            }
        }
    }
    c.release();
    Ok(())
}

/// One step of a batched receive: a run of whole records at the tail
/// taken at once (at most `most` messages), else one step as
/// [`step`] takes it.
fn batch_step(
    c: &mut Consumer,
    ring: &HeapRing,
    body: &mut u64,
    max: u64,
    batch: &mut Batch,
    most: usize,
) -> Result<(), ring::Violation> {
    if *body > 0 {
        return step(c, ring, body, max);
    }
    let avail = match c.available_cached() {
        0 => c.available()?,
        n => n,
    };
    batch.clear();
    let taken = c.take_run(avail, most, batch);
    if taken == 0 {
        assert!(batch.is_empty());
        return step(c, ring, body, max);
    }
    assert!(taken <= avail && taken % 8 == 0, "took {taken} of {avail}");
    assert!((1..=most).contains(&batch.len()));
    let mut framed = 0;
    for m in batch.iter() {
        assert!(m.len() as u64 <= max);
        framed += record_size(m.len() as u64);
    }
    assert_eq!(framed, taken, "the run is its records");
    c.release();
    Ok(())
}

/// A ring on the heap, exactly `capacity` data bytes long (a multiple of
/// 8), so the address sanitizer sees any access past it.
struct HeapRing {
    control: Box<Control>,
    mem: RingMem,
}

impl HeapRing {
    fn new(capacity: u64) -> HeapRing {
        let layout = std::alloc::Layout::new::<Control>();
        // SAFETY: `Control` is not zero-sized.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<Control>();
        if raw.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        // SAFETY: `raw` is a fresh allocation of `Control`'s layout from the
        // global allocator, as `Box` needs; all-zero bytes are a valid
        // `Control`, which holds only atomics and byte arrays.
        let control = unsafe { Box::from_raw(raw) };
        // Words, so the data area is 8-aligned as a mapped ring's is.
        let words = vec![0u64; capacity as usize / 8].into_boxed_slice();
        let data = Box::into_raw(words).cast::<u8>();
        let mem = RingMem {
            control: &raw const *control,
            data,
            capacity,
        };
        HeapRing { control, mem }
    }

    fn control(&self) -> &Control {
        &self.control
    }

    /// The peer writes `bytes` at ring offset `at`, wrapping at the end.
    fn write(&self, at: u64, bytes: &[u8]) {
        let cap = self.mem.capacity as usize;
        for (i, &b) in bytes.iter().enumerate() {
            let off = (at as usize + i) % cap;
            // SAFETY: `off < capacity`, inside the data allocation; the
            // consumer holds no reference into it between its steps.
            unsafe { self.mem.data.add(off).write(b) };
        }
    }
}

impl Drop for HeapRing {
    fn drop(&mut self) {
        let len = self.mem.capacity as usize / 8;
        let slice = std::ptr::slice_from_raw_parts_mut(self.mem.data.cast::<u64>(), len);
        // SAFETY: `data` came from `Box::into_raw` of a boxed slice of
        // `capacity / 8` words in `new` and is freed only here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// Input: the 64 header bytes, then the segment's size and the
/// `max_message_size` agreed in the handshake, as `u64`s.
///
/// What [`validate_header`] accepts must describe rings that fit in the
/// segment, and re-encode to the same fields.
pub fn shm_header(data: &[u8]) {
    let mut input = Input::new(data);
    let fields: [u8; FIELDS_LEN] = input.array();
    let object_size = input.u64();
    let max = input.u64();
    let layout: Layout = match validate_header(&fields, object_size, max) {
        Ok(l) => l,
        Err(reason) => {
            assert!(!reason.is_empty());
            return;
        }
    };
    let cap = layout.ring_capacity;
    assert!(cap.is_power_of_two() && (MIN_RING..=MAX_RING).contains(&cap));
    assert_eq!(layout.max_message_size, max);
    assert!(layout.segment_size() <= object_size);
    assert_eq!(layout.ring_offset(1) + cap, layout.segment_size());
    assert!(layout.ring_offset(0) >= segment::HEADER_SIZE as u64);
    // Bytes 56.. are the unused `refs` word and zero fill, not validated.
    let encoded = layout.encode();
    assert_eq!(
        encoded[..segment::REFS_OFFSET],
        fields[..segment::REFS_OFFSET]
    );
    assert_eq!(validate_header(&encoded, object_size, max), Ok(layout));
}

//! The segment: a one-page header, then one ring per direction.
//!
//! The byte-by-byte layout is in `docs/wire-format.md`. The listener writes
//! the header before the client can see the segment; the client reads it
//! once into locals ([`validate_header`]) and never reads it again.

use super::ring::Control;

/// First eight bytes of a segment.
pub const MAGIC: [u8; 8] = *b"IPCXSHM\0";
/// Version of this layout.
pub const LAYOUT_VERSION: u32 = 2;
/// Bytes before the first ring: the header and both control blocks.
pub const HEADER_SIZE: usize = 4096;
/// Size of the fixed header fields read by [`validate_header`].
pub const FIELDS_LEN: usize = 64;
/// Offset of the control block of ring `i` (0: listener to client, 1:
/// client to listener).
pub const CONTROL_OFFSET: [usize; 2] = [1024, 2048];
/// Offset of the `refs` word: written as 2 and read by no one (an older
/// `sysv-shm:` counted its sides there to choose which removed the
/// semaphore set); the fields before it are the validated ones.
pub const REFS_OFFSET: usize = 56;
/// Smallest ring, bytes.
pub const MIN_RING: u64 = 4096;
/// Largest ring, bytes.
pub const MAX_RING: u64 = 1 << 30;

/// What a header says, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of each ring: a power of two in `MIN_RING..=MAX_RING`.
    pub ring_capacity: u64,
    /// The connection's largest message.
    pub max_message_size: u64,
    /// The listener's pid.
    pub listener_pid: u32,
    /// The client's pid.
    pub client_pid: u32,
    /// The listener's start time (clock ticks since boot).
    pub listener_start: u64,
    /// The client's start time.
    pub client_start: u64,
}

impl Layout {
    /// Total bytes of a segment with this layout.
    pub fn segment_size(&self) -> u64 {
        HEADER_SIZE as u64 + 2 * self.ring_capacity
    }

    /// Offset of ring `i`'s data.
    pub fn ring_offset(&self, i: usize) -> u64 {
        HEADER_SIZE as u64 + i as u64 * self.ring_capacity
    }

    /// The header fields, little-endian.
    pub fn encode(&self) -> [u8; FIELDS_LEN] {
        let mut b = [0u8; FIELDS_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(HEADER_SIZE as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.ring_capacity.to_le_bytes());
        b[24..32].copy_from_slice(&self.max_message_size.to_le_bytes());
        b[32..36].copy_from_slice(&self.listener_pid.to_le_bytes());
        b[36..40].copy_from_slice(&self.client_pid.to_le_bytes());
        b[40..48].copy_from_slice(&self.listener_start.to_le_bytes());
        b[48..56].copy_from_slice(&self.client_start.to_le_bytes());
        b[56..60].copy_from_slice(&2u32.to_le_bytes());
        b
    }
}

/// Validates a segment header read once from memory of `object_size`
/// bytes, for a connection whose handshake agreed on `max_message_size`.
/// Pure: a fuzzer can call it with any bytes.
///
/// # Errors
/// What is wrong, for an [`Error::Protocol`](ipc_core::Error::Protocol).
pub fn validate_header(
    fields: &[u8; FIELDS_LEN],
    object_size: u64,
    max_message_size: u64,
) -> Result<Layout, String> {
    let u32_at =
        |i: usize| u32::from_le_bytes([fields[i], fields[i + 1], fields[i + 2], fields[i + 3]]);
    let u64_at = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&fields[i..i + 8]);
        u64::from_le_bytes(w)
    };
    if fields[0..8] != MAGIC {
        return Err("segment does not start with the ipcx magic".into());
    }
    let version = u32_at(8);
    if version != LAYOUT_VERSION {
        return Err(format!(
            "segment layout version {version}, this side speaks {LAYOUT_VERSION}; run the same ipcx version on both sides"
        ));
    }
    let header = u32_at(12);
    if header as usize != HEADER_SIZE {
        return Err(format!(
            "segment header size {header}, expected {HEADER_SIZE}"
        ));
    }
    let cap = u64_at(16);
    if !cap.is_power_of_two() || !(MIN_RING..=MAX_RING).contains(&cap) {
        return Err(format!(
            "ring capacity {cap} is not a power of two in {MIN_RING}..={MAX_RING}"
        ));
    }
    let max = u64_at(24);
    if max != max_message_size {
        return Err(format!(
            "segment says max_message_size {max}, the handshake agreed on {max_message_size}"
        ));
    }
    let layout = Layout {
        ring_capacity: cap,
        max_message_size: max,
        listener_pid: u32_at(32),
        client_pid: u32_at(36),
        listener_start: u64_at(40),
        client_start: u64_at(48),
    };
    if object_size < layout.segment_size() {
        return Err(format!(
            "segment is {object_size} bytes, its header needs {}",
            layout.segment_size()
        ));
    }
    Ok(layout)
}

/// The control block of ring `i` in a segment starting at `base`.
///
/// # Safety
/// - `base` must point to a live mapping of at least [`HEADER_SIZE`] bytes,
///   page-aligned, that outlives `'a`.
pub unsafe fn control<'a>(base: *mut u8, i: usize) -> &'a Control {
    // `Control` holds only atomics: any bits are valid and shared access is
    // what they are for. The offsets are asserted below to fit the header.
    // SAFETY: CONTROL_OFFSET[i] + size_of::<Control>() <= HEADER_SIZE, in
    // the mapping; page-aligned `base` gives the 128-byte alignment needed.
    unsafe { &*base.add(CONTROL_OFFSET[i]).cast::<Control>() }
}

const _: () = assert!(CONTROL_OFFSET[1] + std::mem::size_of::<Control>() <= HEADER_SIZE);
const _: () = assert!(CONTROL_OFFSET[0] + std::mem::size_of::<Control>() <= CONTROL_OFFSET[1]);
const _: () = assert!(FIELDS_LEN <= CONTROL_OFFSET[0]);

#[cfg(test)]
mod tests {
    use super::*;

    fn good() -> Layout {
        Layout {
            ring_capacity: 1 << 16,
            max_message_size: 1000,
            listener_pid: 1,
            client_pid: 2,
            listener_start: 3,
            client_start: 4,
        }
    }

    #[test]
    fn round_trip() {
        let l = good();
        assert_eq!(validate_header(&l.encode(), l.segment_size(), 1000), Ok(l));
    }

    #[test]
    fn corrupted_headers_are_refused() {
        let l = good();
        let size = l.segment_size();
        let mut cases = Vec::new();
        for (at, val) in [
            (0usize, 0u8),
            (8, 9),
            (12, 1),
            (16, 3),
            (18, 0xff),
            (23, 0x80),
            (24, 1),
        ] {
            let mut b = l.encode();
            b[at] ^= val | 1;
            cases.push(b);
        }
        for b in &cases {
            assert!(validate_header(b, size, 1000).is_err(), "{b:?}");
        }
        assert!(validate_header(&l.encode(), size - 1, 1000).is_err());
        // Every single-byte corruption is either refused or harmless.
        for i in 0..FIELDS_LEN {
            for v in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut b = l.encode();
                b[i] = v;
                if let Ok(got) = validate_header(&b, size, 1000) {
                    assert!(got.segment_size() <= size);
                }
            }
        }
    }
}

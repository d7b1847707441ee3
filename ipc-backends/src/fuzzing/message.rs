//! Typed messages: what a typed receiver decodes from the peer's bytes.

use std::collections::BTreeMap;

use ipc_core::message::{postcard_decode, postcard_encode, zero_copy_bytes, zero_copy_ref};
use ipc_core::{Error, IpcMessage};

use super::Input;

/// A zero-copy message with every kind of field that has invalid bit
/// patterns (`bool`, `char`, an enum) beside ones that have none.
#[derive(IpcMessage, Clone, Copy, Debug)]
#[ipc(zero_copy, crate = "ipc_core")]
#[repr(C)]
struct Tick {
    price: f64,
    qty: u32,
    symbol: [char; 2],
    live: bool,
    side: Side,
    venue: [u16; 5],
}

#[derive(IpcMessage, Clone, Copy, Debug)]
#[ipc(zero_copy, crate = "ipc_core")]
#[repr(u8)]
enum Side {
    Buy = b'B',
    Sell = b'S',
}

/// A postcard message of the shapes serde decodes with lengths and tags.
type Order = (
    u64,
    String,
    Vec<(bool, char)>,
    Option<i16>,
    BTreeMap<u8, Vec<u8>>,
    Result<f32, [u32; 2]>,
);

/// Input: messages, each a selector byte (even: the zero-copy `Tick`;
/// odd: the postcard `Order`), a length byte and that many bytes (one
/// input can hold many, which keeps the committed corpus small).
///
/// Decoding never panics and fails only with `Decode`; a decoded zero-copy
/// message is exactly its bytes (also viewed in place when aligned, and
/// refused when not); a decoded postcard message re-encodes to bytes that
/// decode to the same encoding.
pub fn message(data: &[u8]) {
    let mut input = Input::new(data);
    while let Some(selector) = input.next() {
        let len = usize::from(input.u8());
        let bytes = input.take(len);
        if selector % 2 == 0 {
            tick(bytes);
        } else {
            order(bytes);
        }
    }
}

fn tick(bytes: &[u8]) {
    let decoded = Tick::decode(bytes);
    // The same bytes at an 8-byte-aligned address, and one byte past it.
    let mut words = vec![0u64; bytes.len().div_ceil(8) + 1];
    // SAFETY: `words` owns `8 * words.len() >= bytes.len() + 1` initialised
    // bytes, and a `u64` buffer may be viewed as bytes.
    let aligned =
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8) };
    aligned[..bytes.len()].copy_from_slice(bytes);
    let in_place = zero_copy_ref::<Tick>(&aligned[..bytes.len()]);
    assert_eq!(decoded.is_ok(), in_place.is_ok());
    match decoded {
        Ok(t) => {
            assert_eq!(zero_copy_bytes(&t), bytes);
            let mut encoded = Vec::new();
            t.encode(&mut encoded).expect("zero-copy encode");
            assert_eq!(encoded, bytes);
            let view = in_place.expect("same bytes, aligned");
            assert_eq!(zero_copy_bytes(view), bytes);
            aligned.copy_within(..bytes.len(), 1);
            assert!(zero_copy_ref::<Tick>(&aligned[1..=bytes.len()]).is_err());
        }
        Err(e) => decode_error(&e),
    }
}

fn order(bytes: &[u8]) {
    match postcard_decode::<Order>(bytes, "Order") {
        Ok(o) => {
            let mut once = Vec::new();
            postcard_encode(&o, &mut once, "Order").expect("postcard encode");
            assert!(once.len() <= bytes.len(), "re-encoding grew");
            let again: Order = postcard_decode(&once, "Order").expect("re-encoded order");
            let mut twice = Vec::new();
            postcard_encode(&again, &mut twice, "Order").expect("postcard encode");
            assert_eq!(once, twice);
        }
        Err(e) => decode_error(&e),
    }
}

fn decode_error(e: &Error) {
    assert!(matches!(e, Error::Decode { .. }), "{e:?}");
    assert!(!e.to_string().is_empty());
}

/// Valid inputs: a tick, an order, each behind its selector.
pub(super) fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let t = Tick {
        price: 101.25,
        qty: 7,
        symbol: ['€', 'x'],
        live: true,
        side: Side::Sell,
        venue: [1, 2, 3, 4, 5],
    };
    let mut tick = vec![0, size_of::<Tick>() as u8];
    tick.extend_from_slice(zero_copy_bytes(&t));
    let o: Order = (
        42,
        "ORD-1".into(),
        vec![(true, 'é'), (false, '\0')],
        Some(-3),
        BTreeMap::from([(1, vec![9, 9]), (200, Vec::new())]),
        Err([5, 6]),
    );
    let mut order = Vec::new();
    postcard_encode(&o, &mut order, "Order").expect("postcard encode");
    order.splice(0..0, [1, order.len() as u8]);
    vec![("tick", tick), ("order", order)]
}

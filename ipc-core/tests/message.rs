//! Derived messages: fingerprints, round trips and hostile input.

use std::collections::BTreeMap;

use ipc_core::message::{Encoding, IpcMessage, TypeFingerprint, zero_copy_bytes, zero_copy_ref};
use ipc_core::{Error, ZeroCopy};
use serde::{Deserialize, Serialize};

#[track_caller]
fn round_trip<T: IpcMessage + PartialEq + std::fmt::Debug>(value: &T) {
    let mut buf = vec![0xAA];
    value.encode(&mut buf).unwrap();
    assert_eq!(buf[0], 0xAA, "encode must append");
    assert_eq!(&T::decode(&buf[1..]).unwrap(), value);
}

#[track_caller]
fn decode_error<T: IpcMessage + std::fmt::Debug>(bytes: &[u8]) -> String {
    match T::decode(bytes) {
        Err(Error::Decode { type_name, reason }) => {
            assert_eq!(type_name, T::NAME);
            let text = Error::Decode { type_name, reason }.to_string();
            assert!(text.contains(T::NAME), "{text}");
            text
        }
        other => panic!("expected a decode error for {bytes:?}, got {other:?}"),
    }
}

// --- fingerprints ----------------------------------------------------------

mod a {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Order {
        pub id: u64,
        pub items: Vec<String>,
    }
    #[derive(IpcMessage, Clone, Copy)]
    #[ipc(zero_copy)]
    #[repr(C)]
    pub struct Tick {
        pub price: f64,
        pub qty: u32,
        pub side: u8,
        pub _pad: [u8; 3],
    }
}

mod b {
    use super::*;
    /// Same definition, another module, other derives and comments.
    #[derive(IpcMessage, Serialize, Deserialize, Debug, Clone)]
    pub struct Order {
        pub id: u64,
        // Items, by name.
        pub items: Vec<String>,
    }
    #[derive(IpcMessage, Clone, Copy, Debug)]
    #[ipc(zero_copy)]
    #[repr(C)]
    pub struct Tick {
        pub price: f64,
        pub qty: u32,
        pub side: u8,
        pub _pad: [u8; 3],
    }
}

mod renamed_type {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    #[ipc(name = "shop.Order")]
    pub struct Order {
        pub id: u64,
        pub items: Vec<String>,
    }
}

mod renamed_field {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Order {
        pub ident: u64,
        pub items: Vec<String>,
    }
}

mod reordered {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Order {
        pub items: Vec<String>,
        pub id: u64,
    }
}

mod retyped {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Order {
        pub id: u32,
        pub items: Vec<String>,
    }
}

mod added {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Order {
        pub id: u64,
        pub items: Vec<String>,
        pub note: Option<String>,
    }
}

mod zero_copy_order {
    use super::*;
    #[derive(IpcMessage, Clone, Copy)]
    #[ipc(zero_copy)]
    #[repr(C)]
    pub struct Order {
        pub id: u64,
        pub items: [u8; 8],
    }
    #[derive(IpcMessage, Serialize, Deserialize)]
    #[ipc(name = "Order")]
    pub struct SameNamePostcard {
        pub id: u64,
        pub items: [u8; 8],
    }
}

mod tuple_and_unit {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
    pub struct Order(pub u64, pub Vec<String>);
    #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
    pub struct Ping;
}

#[test]
fn identical_definitions_have_equal_fingerprints() {
    assert_eq!(a::Order::FINGERPRINT, b::Order::FINGERPRINT);
    assert_eq!(a::Tick::FINGERPRINT, b::Tick::FINGERPRINT);
    assert_eq!(a::Order::type_tag(), b::Order::type_tag());
    assert_eq!(a::Order::NAME, "Order");
    assert_eq!(renamed_type::Order::NAME, "shop.Order");
    assert_eq!(a::Order::ENCODING, Encoding::Postcard);
    assert_eq!(a::Tick::ENCODING, Encoding::ZeroCopy);
}

#[test]
fn every_change_changes_the_fingerprint() {
    let variants = [
        ("original", a::Order::FINGERPRINT),
        ("renamed type", renamed_type::Order::FINGERPRINT),
        ("renamed field", renamed_field::Order::FINGERPRINT),
        ("reordered fields", reordered::Order::FINGERPRINT),
        ("retyped field", retyped::Order::FINGERPRINT),
        ("added field", added::Order::FINGERPRINT),
        ("zero-copy encoding", zero_copy_order::Order::FINGERPRINT),
        (
            "postcard encoding",
            zero_copy_order::SameNamePostcard::FINGERPRINT,
        ),
        ("tuple struct", tuple_and_unit::Order::FINGERPRINT),
        ("unit struct", tuple_and_unit::Ping::FINGERPRINT),
    ];
    for (i, (what, fp)) in variants.iter().enumerate() {
        assert_ne!(*fp, 0, "{what}");
        for (other, fp2) in &variants[i + 1..] {
            assert_ne!(fp, fp2, "{what} and {other} share a fingerprint");
        }
    }
    // Same name, same fields, only the encoding differs.
    assert_eq!(
        zero_copy_order::Order::NAME,
        zero_copy_order::SameNamePostcard::NAME
    );
}

mod nested_v1 {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Line {
        pub sku: u32,
    }
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Order {
        pub lines: Vec<Line>,
    }
}

mod nested_v2 {
    use super::*;
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Line {
        pub sku: u64,
    }
    #[derive(IpcMessage, Serialize, Deserialize)]
    pub struct Order {
        pub lines: Vec<Line>,
    }
}

#[test]
fn nested_changes_propagate() {
    assert_ne!(nested_v1::Line::FINGERPRINT, nested_v2::Line::FINGERPRINT);
    assert_ne!(nested_v1::Order::FINGERPRINT, nested_v2::Order::FINGERPRINT);
    assert_eq!(
        nested_v1::Line::TYPE_FINGERPRINT,
        nested_v1::Line::FINGERPRINT
    );
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
struct Wrapper<T> {
    inner: T,
}

#[test]
fn generic_instances_differ() {
    assert_ne!(Wrapper::<u32>::FINGERPRINT, Wrapper::<u64>::FINGERPRINT);
    assert_eq!(Wrapper::<u32>::NAME, Wrapper::<u64>::NAME);
}

#[test]
fn fingerprints_are_constants() {
    const FP: u64 = b::Tick::FINGERPRINT;
    const _: () = assert!(FP != 0);
    assert_eq!(FP, a::Tick::FINGERPRINT);
}

// --- postcard round trips --------------------------------------------------

#[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Command {
    Stop,
    Move { x: i32, y: i32 },
    Say(String),
    Batch(Vec<Command2>),
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Command2 {
    tag: Option<char>,
    weights: BTreeMap<String, f64>,
    grid: [[u8; 3]; 2],
    pair: (u16, bool),
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
struct Empty {}

#[test]
fn postcard_round_trips() {
    round_trip(&Command::Stop);
    round_trip(&Command::Move { x: -3, y: 9 });
    round_trip(&Command::Say("héllo".into()));
    round_trip(&Command::Batch(vec![Command2 {
        tag: Some('λ'),
        weights: [("a".to_string(), 0.5)].into_iter().collect(),
        grid: [[1, 2, 3], [4, 5, 6]],
        pair: (7, true),
    }]));
    round_trip(&Wrapper {
        inner: vec![1u8, 2, 3],
    });
    round_trip(&Wrapper {
        inner: Wrapper {
            inner: String::from("x"),
        },
    });
    round_trip(&tuple_and_unit::Order(1, vec!["a".into()]));
    round_trip(&tuple_and_unit::Ping);
    round_trip(&Empty {});
}

#[test]
fn postcard_garbage_is_a_decode_error() {
    let mut buf = Vec::new();
    Command::Say("hello".into()).encode(&mut buf).unwrap();
    for cut in 0..buf.len() {
        decode_error::<Command>(&buf[..cut]);
    }
    let mut longer = buf.clone();
    longer.push(0);
    assert!(decode_error::<Command>(&longer).contains("left over"));
    decode_error::<Command>(&[0xff, 0xff, 0xff]);
    decode_error::<Command>(&[2, 2, 0xff, 0xfe]); // Say with invalid UTF-8
    // A length prefix far beyond the input must not allocate or panic.
    decode_error::<Command>(&[3, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    decode_error::<Empty>(&[1]);
}

// --- zero-copy ---------------------------------------------------------------

#[derive(IpcMessage, Clone, Copy, Debug, PartialEq, Eq)]
#[ipc(zero_copy)]
#[repr(u8)]
enum Side {
    Buy = 1,
    Sell = 7,
}

#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "market.Quote")]
#[repr(C)]
struct Quote {
    price: f64,
    levels: [u32; 4],
    qty: u32,
    side: Side,
    live: bool,
    _pad: [u8; 2],
}

#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy)]
#[repr(C)]
struct Pair<T: ZeroCopy> {
    a: T,
    b: T,
}

#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy)]
#[repr(transparent)]
struct Meters(f64);

#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy)]
#[repr(C)]
struct Unit;

fn quote() -> Quote {
    Quote {
        price: 101.25,
        levels: [1, 2, 3, 4],
        qty: 10,
        side: Side::Sell,
        live: true,
        _pad: [0; 2],
    }
}

#[test]
fn zero_copy_round_trips() {
    round_trip(&quote());
    round_trip(&Side::Buy);
    round_trip(&Pair { a: 1u16, b: 2 });
    round_trip(&Pair {
        a: Side::Buy,
        b: Side::Sell,
    });
    round_trip(&Meters(3.5));
    round_trip(&Unit);
    let mut buf = Vec::new();
    Unit.encode(&mut buf).unwrap();
    assert!(buf.is_empty());
    quote().encode(&mut buf).unwrap();
    assert_eq!(buf.len(), std::mem::size_of::<Quote>());
    assert_eq!(buf, zero_copy_bytes(&quote()));
}

#[test]
fn zero_copy_fingerprints_include_layout() {
    assert_ne!(Pair::<u16>::FINGERPRINT, Pair::<u32>::FINGERPRINT);
    assert_ne!(Pair::<u16>::FINGERPRINT, Pair::<i16>::FINGERPRINT);
    assert_eq!(Quote::NAME, "market.Quote");
}

#[test]
fn zero_copy_in_place() {
    let q = quote();
    let bytes = zero_copy_bytes(&q);
    let view: &Quote = zero_copy_ref(bytes).unwrap();
    assert_eq!(*view, q);
}

#[test]
fn zero_copy_invalid_bit_patterns_are_decode_errors() {
    let q = quote();
    let good = zero_copy_bytes(&q).to_vec();
    let side = std::mem::offset_of!(Quote, side);
    let live = std::mem::offset_of!(Quote, live);

    let mut bad_side = good.clone();
    bad_side[side] = 3;
    let text = decode_error::<Quote>(&bad_side);
    assert!(
        text.contains("field `side`") && text.contains('3'),
        "{text}"
    );

    let mut bad_bool = good.clone();
    bad_bool[live] = 2;
    let text = decode_error::<Quote>(&bad_bool);
    assert!(
        text.contains("field `live`") && text.contains("bool"),
        "{text}"
    );

    decode_error::<Side>(&[0]);
    decode_error::<Side>(&[1, 1]);
    decode_error::<Pair<Side>>(&[1, 9]);
    decode_error::<Quote>(&good[..good.len() - 1]);
    decode_error::<Quote>(&[]);
    decode_error::<Unit>(&[0]);
    assert!(matches!(
        zero_copy_ref::<Quote>(&bad_bool),
        Err(Error::Decode { .. })
    ));
}

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

// --- any field type --------------------------------------------------------

mod fields {
    use std::cmp::Reverse;
    use std::collections::HashSet;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
    use std::num::{NonZeroU32, Wrapping};
    use std::ops::Range;
    use std::path::PathBuf;
    use std::time::{Duration, SystemTime};

    use ipc_core::message::{IpcMessage, TypeFingerprint};
    use serde::{Deserialize, Serialize};

    /// A nested type that is not a message.
    #[derive(TypeFingerprint, Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Customer {
        pub name: String,
        pub tier: Tier,
    }

    #[derive(TypeFingerprint, Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub enum Tier {
        Basic,
        Gold { since: SystemTime },
    }

    /// A type from a crate that does not know ipcx.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Foreign<T>(pub T);

    #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq, Clone)]
    pub struct Order {
        pub at: SystemTime,
        pub customer: Customer,
        pub from: IpAddr,
        pub peer: SocketAddr,
        pub spool: PathBuf,
        pub window: (u8, String, Duration, Ipv6Addr),
        pub count: NonZeroU32,
        pub seq: Wrapping<u16>,
        pub rank: Reverse<i8>,
        pub span: Range<u32>,
        pub gateways: HashSet<Ipv4Addr>,
        pub outcome: Result<(), String>,
        pub nothing: (),
        #[ipc(opaque)]
        pub extra: Foreign<u8>,
        #[ipc(fingerprint = "legacy-v2")]
        pub legacy: Foreign<String>,
    }

    pub fn order() -> Order {
        Order {
            at: SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 123),
            customer: Customer {
                name: "Ada".into(),
                tier: Tier::Gold {
                    since: SystemTime::UNIX_EPOCH,
                },
            },
            from: IpAddr::V6(Ipv6Addr::LOCALHOST),
            peer: "10.0.0.1:8080".parse().unwrap(),
            spool: PathBuf::from("/var/spool/orders"),
            window: (
                3,
                "w".into(),
                Duration::from_millis(5),
                Ipv6Addr::UNSPECIFIED,
            ),
            count: NonZeroU32::new(9).unwrap(),
            seq: Wrapping(65_535),
            rank: Reverse(-1),
            span: 4..8,
            gateways: [Ipv4Addr::new(192, 168, 0, 1)].into_iter().collect(),
            outcome: Err("late".into()),
            nothing: (),
            extra: Foreign(1),
            legacy: Foreign("old".into()),
        }
    }

    /// The same, as a message: `#[derive(TypeFingerprint)]` agrees with it.
    pub mod as_message {
        use super::*;
        #[derive(IpcMessage, Serialize, Deserialize)]
        pub struct Customer {
            pub name: String,
            pub tier: super::Tier,
        }
    }

    pub mod customer_v2 {
        use super::*;
        #[derive(TypeFingerprint, Serialize, Deserialize)]
        pub struct Customer {
            pub name: String,
            pub tier: u8,
        }
    }

    /// Opaque fields: what changes the fingerprint and what does not.
    pub mod opaque {
        use super::*;
        #[derive(IpcMessage, Serialize, Deserialize)]
        #[ipc(name = "Opaque")]
        pub struct Base {
            #[ipc(opaque)]
            pub extra: Foreign<u8>,
        }
        #[derive(IpcMessage, Serialize, Deserialize)]
        #[ipc(name = "Opaque")]
        pub struct InnerRetyped {
            #[ipc(opaque)]
            pub extra: Foreign<u64>,
        }
        #[derive(IpcMessage, Serialize, Deserialize)]
        #[ipc(name = "Opaque")]
        pub struct FieldRenamed {
            #[ipc(opaque)]
            pub more: Foreign<u8>,
        }
        #[derive(IpcMessage, Serialize, Deserialize)]
        #[ipc(name = "Opaque")]
        pub struct Named {
            #[ipc(fingerprint = "Foreign")]
            pub extra: Foreign<u8>,
        }
        #[derive(IpcMessage, Serialize, Deserialize)]
        #[ipc(name = "Opaque")]
        pub struct Versioned {
            #[ipc(fingerprint = "foreign-v2")]
            pub extra: Foreign<u8>,
        }
        #[derive(IpcMessage, Serialize, Deserialize)]
        #[ipc(name = "Opaque")]
        pub struct Structural {
            pub extra: (u8,),
        }
    }
}

#[test]
fn messages_with_std_nested_and_opaque_fields_round_trip() {
    round_trip(&fields::order());
    let mut other = fields::order();
    other.customer.tier = fields::Tier::Basic;
    other.outcome = Ok(());
    round_trip(&other);
}

#[test]
fn std_field_types_have_distinct_fingerprints() {
    use std::cmp::Reverse;
    use std::ffi::OsString;
    use std::net::*;
    use std::num::*;
    use std::ops::{Range, RangeInclusive};
    use std::path::{Path, PathBuf};
    use std::time::{Duration, SystemTime};

    let all = [
        ("SystemTime", SystemTime::TYPE_FINGERPRINT),
        ("Duration", Duration::TYPE_FINGERPRINT),
        ("IpAddr", IpAddr::TYPE_FINGERPRINT),
        ("Ipv4Addr", Ipv4Addr::TYPE_FINGERPRINT),
        ("Ipv6Addr", Ipv6Addr::TYPE_FINGERPRINT),
        ("SocketAddr", SocketAddr::TYPE_FINGERPRINT),
        ("SocketAddrV4", SocketAddrV4::TYPE_FINGERPRINT),
        ("SocketAddrV6", SocketAddrV6::TYPE_FINGERPRINT),
        ("PathBuf", PathBuf::TYPE_FINGERPRINT),
        ("OsString", OsString::TYPE_FINGERPRINT),
        ("String", String::TYPE_FINGERPRINT),
        ("[u8; 4]", <[u8; 4]>::TYPE_FINGERPRINT),
        ("[u8; 16]", <[u8; 16]>::TYPE_FINGERPRINT),
        ("u32", u32::TYPE_FINGERPRINT),
        ("NonZeroU32", NonZeroU32::TYPE_FINGERPRINT),
        ("NonZeroU64", NonZeroU64::TYPE_FINGERPRINT),
        ("NonZeroI32", NonZeroI32::TYPE_FINGERPRINT),
        ("Wrapping<u32>", <Wrapping<u32>>::TYPE_FINGERPRINT),
        ("Reverse<u32>", <Reverse<u32>>::TYPE_FINGERPRINT),
        ("Range<u32>", <Range<u32>>::TYPE_FINGERPRINT),
        ("Range<u64>", <Range<u64>>::TYPE_FINGERPRINT),
        (
            "RangeInclusive<u32>",
            <RangeInclusive<u32>>::TYPE_FINGERPRINT,
        ),
        ("(u32, u32)", <(u32, u32)>::TYPE_FINGERPRINT),
        ("()", <()>::TYPE_FINGERPRINT),
        ("(u32,)", <(u32,)>::TYPE_FINGERPRINT),
        (
            "12-tuple",
            <(u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8, u8)>::TYPE_FINGERPRINT,
        ),
        ("Option<u32>", <Option<u32>>::TYPE_FINGERPRINT),
        ("Result<u32, ()>", <Result<u32, ()>>::TYPE_FINGERPRINT),
        ("Customer", fields::Customer::TYPE_FINGERPRINT),
        ("Tier", fields::Tier::TYPE_FINGERPRINT),
    ];
    for (i, (what, fp)) in all.iter().enumerate() {
        assert_ne!(*fp, 0, "{what}");
        for (other, fp2) in &all[i + 1..] {
            assert_ne!(fp, fp2, "{what} and {other} share a fingerprint");
        }
    }
    // Borrowed and owned forms, and pointers, are the same on the wire.
    assert_eq!(Path::TYPE_FINGERPRINT, PathBuf::TYPE_FINGERPRINT);
    assert_eq!(
        <Box<SystemTime>>::TYPE_FINGERPRINT,
        SystemTime::TYPE_FINGERPRINT
    );
}

#[test]
fn nested_derived_types_are_structural() {
    use fields::{Customer, Order, as_message, customer_v2};
    // `#[derive(TypeFingerprint)]` gives what `#[derive(IpcMessage)]` would.
    assert_eq!(
        Customer::TYPE_FINGERPRINT,
        as_message::Customer::FINGERPRINT
    );
    assert_ne!(
        Customer::TYPE_FINGERPRINT,
        customer_v2::Customer::TYPE_FINGERPRINT
    );
    assert_ne!(Order::FINGERPRINT, 0);
}

#[test]
fn opaque_fields_hide_their_type_but_not_their_name() {
    use fields::opaque::*;
    // What the escape hatch gives up: the type inside is not seen.
    assert_eq!(Base::FINGERPRINT, InnerRetyped::FINGERPRINT);
    // `opaque` is `fingerprint = "<the type's last path segment>"`.
    assert_eq!(Base::FINGERPRINT, Named::FINGERPRINT);
    // The field's name, a new version string, or a structural field still count.
    assert_ne!(Base::FINGERPRINT, FieldRenamed::FINGERPRINT);
    assert_ne!(Base::FINGERPRINT, Versioned::FINGERPRINT);
    assert_ne!(Base::FINGERPRINT, Structural::FINGERPRINT);
}

#[cfg(all(
    feature = "uuid",
    feature = "chrono",
    feature = "time",
    feature = "bytes",
    feature = "serde_json"
))]
mod ecosystem {
    use super::*;
    use ipc_core::message::Json;

    #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
    struct Event {
        id: uuid::Uuid,
        at: chrono::DateTime<chrono::Utc>,
        local: chrono::DateTime<chrono::FixedOffset>,
        day: chrono::NaiveDate,
        naive: chrono::NaiveDateTime,
        when: time::OffsetDateTime,
        plain: time::PrimitiveDateTime,
        body: bytes::Bytes,
        meta: Json,
    }

    #[test]
    fn ecosystem_types_round_trip() {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 5, 3).unwrap();
        let naive = day.and_hms_nano_opt(10, 20, 30, 400).unwrap();
        let date = time::Date::from_calendar_date(2024, time::Month::May, 3).unwrap();
        let plain = time::PrimitiveDateTime::new(date, time::Time::from_hms(1, 2, 3).unwrap());
        let event = Event {
            id: uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0),
            at: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
            local: chrono::DateTime::from_timestamp(1_700_000_000, 0)
                .unwrap()
                .with_timezone(&chrono::FixedOffset::east_opt(7200).unwrap()),
            day,
            naive,
            when: plain.assume_offset(time::UtcOffset::from_hms(-3, 0, 0).unwrap()),
            plain,
            body: bytes::Bytes::from_static(b"\x00\xffbytes"),
            meta: Json(serde_json::json!({"k": [1, 2.5, null, "s"], "nested": {"t": true}})),
        };
        round_trip(&event);
    }

    #[test]
    fn ecosystem_fingerprints_are_distinct() {
        let all = [
            uuid::Uuid::TYPE_FINGERPRINT,
            <chrono::DateTime<chrono::Utc>>::TYPE_FINGERPRINT,
            chrono::NaiveDateTime::TYPE_FINGERPRINT,
            chrono::NaiveDate::TYPE_FINGERPRINT,
            time::OffsetDateTime::TYPE_FINGERPRINT,
            time::PrimitiveDateTime::TYPE_FINGERPRINT,
            bytes::Bytes::TYPE_FINGERPRINT,
            Json::TYPE_FINGERPRINT,
            String::TYPE_FINGERPRINT,
            <Vec<u8>>::TYPE_FINGERPRINT,
            <[u8; 16]>::TYPE_FINGERPRINT,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Every time zone is sent the same way (an RFC 3339 string).
        assert_eq!(
            <chrono::DateTime<chrono::Utc>>::TYPE_FINGERPRINT,
            <chrono::DateTime<chrono::FixedOffset>>::TYPE_FINGERPRINT
        );
    }

    #[test]
    fn json_is_a_string_on_the_wire() {
        let value = Json(serde_json::json!({"a": 1}));
        let bytes = postcard::to_allocvec(&value).unwrap();
        assert_eq!(
            postcard::from_bytes::<String>(&bytes).unwrap(),
            r#"{"a":1}"#
        );
        // Human-readable formats see the plain value.
        assert_eq!(serde_json::to_string(&value).unwrap(), r#"{"a":1}"#);
        // A string that is not JSON is a decode error, not a panic.
        let bad = postcard::to_allocvec("{not json").unwrap();
        assert!(postcard::from_bytes::<Json>(&bad).is_err());
    }
}

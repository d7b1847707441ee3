//! Typed channels across processes: derived message types of every shape
//! round-trip on every transport, a peer announcing other types is refused
//! on both sides, and a message that does not decode leaves the channel
//! usable.
//!
//! Cases are instantiated per transport by [`typed!`], listed as
//! `typed::<transport>::<case>`. The peer is this test binary re-executed
//! with a role, as in the conformance suite.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::Duration;

use ipcx::{Endpoint, Error, IpcMessage, Sender};
use serde::{Deserialize, Serialize};

use crate::util::{self, Peer, report};

const CASE_LIMIT: Duration = Duration::from_secs(120);
const OP: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------- types --

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Point {
    x: i32,
    y: i32,
}

/// Nested: other derived types, containers, options, maps.
#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[ipc(name = "test.Order")]
pub struct Order {
    id: u64,
    items: Vec<String>,
    at: Point,
    route: Vec<Point>,
    note: Option<String>,
    tags: BTreeMap<String, u32>,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Tagged<T> {
    tag: u8,
    value: T,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Shape {
    Empty,
    Circle { r: f64 },
    Polygon(Vec<Point>),
    Labelled(String, Box<Point>),
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Arrays {
    small: [u16; 4],
    grid: [[u8; 3]; 2],
    empty: [u32; 0],
}

/// Zero bytes on the wire.
#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Nothing;

#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy)]
#[repr(u8)]
pub enum Side {
    Buy = 1,
    Sell = 2,
}

/// Plain data, moved as its raw bytes.
#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy)]
#[repr(C)]
pub struct Quote {
    price: f64,
    qty: u32,
    side: Side,
    live: bool,
    venue: [u8; 2],
}

fn samples_point() -> Vec<Point> {
    vec![
        Point { x: 0, y: 0 },
        Point { x: -1, y: i32::MAX },
        Point { x: i32::MIN, y: 42 },
    ]
}

fn samples_order() -> Vec<Order> {
    (0..20u64)
        .map(|i| Order {
            id: i,
            items: (0..i).map(|k| format!("item-{k}")).collect(),
            at: Point {
                x: i as i32,
                y: -(i as i32),
            },
            route: (0..i % 5).map(|k| Point { x: k as i32, y: 1 }).collect(),
            note: (i % 2 == 0).then(|| "x".repeat(i as usize * 100)),
            tags: (0..i % 3).map(|k| (format!("t{k}"), k as u32)).collect(),
        })
        .collect()
}

fn samples_generic() -> Vec<Tagged<Vec<Point>>> {
    vec![
        Tagged {
            tag: 0,
            value: vec![],
        },
        Tagged {
            tag: 9,
            value: samples_point(),
        },
    ]
}

fn samples_shape() -> Vec<Shape> {
    vec![
        Shape::Empty,
        Shape::Circle { r: 1.5 },
        Shape::Polygon(samples_point()),
        Shape::Labelled("box".into(), Box::new(Point { x: 1, y: 2 })),
    ]
}

fn samples_arrays() -> Vec<Arrays> {
    vec![Arrays {
        small: [1, 2, u16::MAX, 0],
        grid: [[1, 2, 3], [4, 5, 6]],
        empty: [],
    }]
}

fn samples_quote() -> Vec<Quote> {
    (0..100u32)
        .map(|i| Quote {
            price: f64::from(i) * 0.25,
            qty: i * 10,
            side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
            live: i % 3 != 0,
            venue: *b"XL",
        })
        .collect()
}

// ---------------------------------------------------------------- matrix --

/// Instantiates the typed cases for one transport: `transport => endpoint
/// expression`. `pipe:` is left out: it has no listener (one parent-child
/// pair made by `ipcx::spawn`).
macro_rules! typed {
    ($transport:ident => $endpoint:expr) => {
        matrix!(typed, $transport => $endpoint;
            nested generic enums arrays unit zero_copy split mismatch decode_error);
    };
}

typed!(unix => format!("unix:/tmp/{}.sock", crate::util::unique("tu")));
typed!(tcp => "tcp://127.0.0.1:0".to_string());
typed!(fifo => format!("fifo:/tmp/{}", crate::util::unique("tf")));
typed!(mq => format!("mq:/{}", crate::util::unique("tm")));
typed!(sysv_mq => format!("sysv-mq:/tmp/{}", crate::util::unique("ts")));
typed!(shm => format!("shm:/{}", crate::util::unique("th")));
typed!(sysv_shm => format!("sysv-shm:/tmp/{}", crate::util::unique("tv")));
#[cfg(feature = "nats")]
// No options: `decode_error` derives a second name by appending to the endpoint.
typed!(nats => crate::util::nats::endpoint("t", ""));

/// `pipe:` has no listener: one child started by `ipcx::typed::spawn`.
pub mod pipe {
    #[test]
    fn spawned() {
        crate::util::run_case(
            "typed::pipe::spawned",
            "pipe:".into(),
            super::CASE_LIMIT,
            super::spawned,
            super::run_role,
        );
    }
}

use crate::util::parse;

// ---------------------------------------------------------------- roles --

fn run_role() {
    let (role, ep, arg) = util::peer_params();
    if role == "child" {
        let mut ch = ipcx::typed::connect_parent::<Order, Order>().expect("connect_parent");
        while let Ok(m) = ch.recv() {
            ch.send(&m).expect("echo send");
        }
        return;
    }
    let ep = parse(&ep);
    match (role.as_str(), arg.as_str()) {
        ("echo", "point") => echo::<Point>(&ep),
        ("echo", "order") => echo::<Order>(&ep),
        ("echo", "generic") => echo::<Tagged<Vec<Point>>>(&ep),
        ("echo", "shape") => echo::<Shape>(&ep),
        ("echo", "arrays") => echo::<Arrays>(&ep),
        ("echo", "unit") => echo::<Nothing>(&ep),
        ("echo", "quote") => echo::<Quote>(&ep),
        ("connect", "point-shape") => report_connect::<Point, Shape>(&ep),
        ("connect", "point-order") => report_connect::<Point, Order>(&ep),
        ("raw", kind) => {
            // A raw byte peer (any type): sends what the parent's typed
            // receiver must reject, then a valid message.
            let mut ch = ipcx::connect(&ep).expect("connect raw");
            let mut good = Vec::new();
            match kind {
                "point" => {
                    ch.send(&[0xff, 0xff, 0xff]).expect("send garbage");
                    Point { x: 3, y: 4 }.encode(&mut good).expect("encode");
                }
                _ => {
                    ch.send(&[0u8; 5]).expect("send short");
                    let mut bad = Vec::new();
                    samples_quote()[1].encode(&mut bad).expect("encode");
                    bad[12] = 7; // `side` is 1 or 2
                    ch.send(&bad).expect("send bad side");
                    samples_quote()[2].encode(&mut good).expect("encode");
                }
            }
            ch.send(&good).expect("send good");
            util::await_parent();
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

/// Receives `T`s and sends each back until the parent leaves.
fn echo<T: IpcMessage>(ep: &Endpoint) {
    let mut ch = ipcx::connect_typed::<T, T>(ep).expect("connect typed");
    loop {
        match ch.recv() {
            Ok(m) => ch.send(&m).expect("echo send"),
            Err(Error::Disconnected) => return,
            Err(e) => panic!("echo recv: {e}"),
        }
    }
}

fn report_connect<Out: IpcMessage, In: IpcMessage>(ep: &Endpoint) {
    match ipcx::connect_typed::<Out, In>(ep) {
        Ok(ch) => report(format!("ok peer_sends={}", ch.peer().send.name)),
        Err(e @ Error::SchemaMismatch { .. }) => report(format!("mismatch={e}")),
        Err(e) => report(format!("other={e}")),
    }
}

// ---------------------------------------------------------------- cases --

/// Sends every sample to an echoing peer in another process and checks
/// what comes back.
fn round_trip<T: IpcMessage + PartialEq + Debug>(
    test: &'static str,
    ep: &str,
    kind: &str,
    samples: Vec<T>,
) {
    let mut l = ipcx::listen_typed::<T, T>(&parse(ep)).expect("listen typed");
    let peer = Peer::spawn(test, "echo", &l.endpoint().to_string(), kind);
    let mut ch = l.accept_timeout(OP).expect("accept");
    assert_eq!(ch.peer().send, T::type_tag());
    assert_eq!(ch.peer().recv, T::type_tag());
    for round in 0..3 {
        for s in &samples {
            ch.send(s).unwrap_or_else(|e| panic!("send {s:?}: {e}"));
            let back = ch
                .recv_timeout(OP)
                .unwrap_or_else(|e| panic!("recv {s:?}: {e}"));
            assert_eq!(&back, s, "round {round}");
        }
    }
    drop(ch);
    peer.expect_success();
}

fn nested(test: &'static str, ep: &str) {
    round_trip(test, ep, "order", samples_order());
}

fn generic(test: &'static str, ep: &str) {
    round_trip(test, ep, "generic", samples_generic());
}

fn enums(test: &'static str, ep: &str) {
    round_trip(test, ep, "shape", samples_shape());
}

fn arrays(test: &'static str, ep: &str) {
    round_trip(test, ep, "arrays", samples_arrays());
}

fn unit(test: &'static str, ep: &str) {
    let mut buf = Vec::new();
    Nothing.encode(&mut buf).expect("encode");
    assert!(buf.is_empty(), "a unit struct is zero bytes on the wire");
    round_trip(test, ep, "unit", vec![Nothing, Nothing]);
}

fn zero_copy(test: &'static str, ep: &str) {
    let q = samples_quote()[5];
    assert_eq!(
        q.wire_bytes().map(<[u8]>::len),
        Some(size_of::<Quote>()),
        "a zero-copy type is sent as its own bytes"
    );
    round_trip(test, ep, "quote", samples_quote());
}

/// Split halves on two threads: one sends while the other receives.
fn split(test: &'static str, ep: &str) {
    const N: usize = 2000;
    let mut l = ipcx::listen_typed::<Order, Order>(&parse(ep)).expect("listen typed");
    let peer = Peer::spawn(test, "echo", &l.endpoint().to_string(), "order");
    let (mut tx, mut rx) = l.accept_timeout(OP).expect("accept").split();
    let samples = samples_order();
    let expected = samples.clone();
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            tx.send(&samples[i % samples.len()]).expect("send");
        }
        tx
    });
    for i in 0..N {
        let m = rx.recv_timeout(OP).expect("recv");
        assert_eq!(m, expected[i % expected.len()], "message {i}");
    }
    drop(sender.join().expect("sender thread"));
    drop(rx);
    peer.expect_success();
}

/// A peer whose types differ is refused on both sides: the peer's error
/// names both types and both fingerprints, the listener logs its refusal
/// and hands out nothing; a matching peer is accepted afterwards.
fn mismatch(test: &'static str, ep: &str) {
    let mut l = ipcx::listen_typed::<Order, Point>(&parse(ep)).expect("listen typed");
    let at = l.endpoint().to_string();

    // The peer sends `Point` (we expect `Point`) but expects `Shape` (we send `Order`).
    let peer = Peer::spawn(test, "connect", &at, "point-shape");
    let fp = |t: ipcx::TypeTag| format!("{:#018x}", t.fingerprint);
    let (order_fp, shape_fp) = (fp(Order::type_tag()), fp(Shape::type_tag()));
    let text = peer.expect_value("mismatch");
    for needle in ["test.Order", "Shape", &order_fp, &shape_fp] {
        assert!(text.contains(needle), "peer error lacks {needle}: {text}");
    }
    peer.expect_success();
    // The listener refused it too: accept never returns it, and counts it.
    match l.accept_timeout(std::time::Duration::from_millis(500)) {
        Err(Error::Timeout) => {}
        other => panic!("listener accepted a mismatched peer: {other:?}"),
    }
    assert!(l.refused() >= 1, "refused = {}", l.refused());

    let peer = Peer::spawn(test, "connect", &at, "point-order");
    let ch = l
        .accept_timeout(OP)
        .expect("a matching peer after a refusal");
    assert_eq!(ch.peer().send, Point::type_tag());
    assert_eq!(peer.expect_line(), "ok peer_sends=test.Order");
    drop(ch);
    peer.expect_success();
}

/// A message that is not a valid value is a `Decode` error naming the
/// type; the next message is received intact.
fn decode_error(test: &'static str, ep: &str) {
    {
        let mut l = ipcx::listen_typed::<Point, Point>(&parse(ep)).expect("listen typed");
        let mut peer = Peer::spawn(test, "raw", &l.endpoint().to_string(), "point");
        let mut ch = l.accept_timeout(OP).expect("accept");
        match ch.recv_timeout(OP) {
            Err(Error::Decode { type_name, .. }) => assert_eq!(type_name, "Point"),
            other => panic!("garbage decoded as {other:?}"),
        }
        assert_eq!(ch.recv_timeout(OP).expect("next"), Point { x: 3, y: 4 });
        peer.tell("done");
        drop(ch);
        peer.expect_success();
    }
    let mut l = ipcx::listen_typed::<Quote, Quote>(&parse(&ep_again(ep))).expect("listen typed");
    let mut peer = Peer::spawn(test, "raw", &l.endpoint().to_string(), "quote");
    let mut ch = l.accept_timeout(OP).expect("accept");
    for what in ["length", "bit pattern"] {
        match ch.recv_timeout(OP) {
            Err(Error::Decode { type_name, reason }) => {
                assert_eq!(type_name, "Quote", "{what}: {reason}");
            }
            other => panic!("a bad {what} decoded as {other:?}"),
        }
    }
    assert_eq!(ch.recv_timeout(OP).expect("next"), samples_quote()[2]);
    peer.tell("done");
    drop(ch);
    peer.expect_success();
}

/// A fresh endpoint of the same transport as `ep`.
fn ep_again(ep: &str) -> String {
    format!("{ep}x")
        .replace(".sockx", "x.sock")
        .replace("127.0.0.1:0x", "127.0.0.1:0")
}

/// A child started already connected, typed, over `pipe:`.
fn spawned(test: &'static str, ep: &str) {
    let mut command = std::process::Command::new(std::env::current_exe().expect("current_exe"));
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
        .env(util::ROLE_VAR, "child")
        .stdout(std::process::Stdio::null());
    let (mut child, mut ch) =
        ipcx::typed::spawn::<Order, Order>(command, &parse(ep)).expect("spawn typed");
    for s in samples_order() {
        ch.send(&s).expect("send");
        assert_eq!(ch.recv_timeout(OP).expect("recv"), s);
    }
    drop(ch);
    assert!(child.wait().expect("wait").success(), "the child failed");
}

//! The seed corpus: small valid inputs for each target, built from the
//! real encoders so they follow the wire format as it changes.

use ipc_core::handshake::{Hello, Schema, TypeTag};

use crate::fragment::{CLOSE, MIN_UNIT, split};
use crate::shm::ring::{KIND_MESSAGE, KIND_PAD, record_size};
use crate::shm::segment::Layout;

/// Every seed: its target, a file name, and its bytes.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        out.push((target, format!("seed-{name}"), bytes));
    };

    let typed = Schema::new(TypeTag::new("Order", 7), TypeTag::new("Ack", 9));
    let bytes_hello = Hello::new(&Schema::bytes(), 4242, 1000, 4096).encode();
    let typed_hello = Hello::new(&typed, 4243, 1000, 1 << 20).encode();
    let long = "x".repeat(256);
    let long_hello = Hello::new(
        &Schema::new(TypeTag::new(long.clone(), 1), TypeTag::new(long, 2)),
        1,
        0,
        usize::MAX,
    )
    .encode();
    let future = Hello::new(&Schema::bytes().with_protocol_version(2), 1, 0, 64).encode();
    add("hello", "bytes", bytes_hello.clone());
    add("hello", "typed", typed_hello.clone());
    add("hello", "long-names", long_hello);
    add("hello", "version-2", future);

    let msgs: [&[u8]; 3] = [b"ping", b"", &[0xab; 300]];
    let frames = |msgs: &[&[u8]]| -> Vec<u8> {
        msgs.iter()
            .flat_map(|m| {
                (m.len() as u32)
                    .to_le_bytes()
                    .into_iter()
                    .chain(m.iter().copied())
            })
            .collect()
    };
    let stream = |flags: u8, max: u16, peer: &[u8]| -> Vec<u8> {
        let mut v = vec![flags];
        v.extend_from_slice(&max.to_le_bytes());
        v.extend_from_slice(peer);
        v
    };
    let mut over = frames(&msgs);
    over.extend_from_slice(&5000u32.to_le_bytes());
    let mut after_handshake = frames(&[&bytes_hello, &[0]]);
    after_handshake.extend_from_slice(&frames(&msgs));
    add("stream", "socket-frames", stream(0, 1000, &frames(&msgs)));
    add("stream", "pipe-frames", stream(1, 1000, &frames(&msgs)));
    add("stream", "try-recv-over-limit", stream(1 << 3, 1000, &over));
    add(
        "stream",
        "handshake-then-frames",
        stream(2, 4096, &after_handshake),
    );
    add(
        "stream",
        "typed-hello-refused",
        stream(2, 4096, &frames(&[&typed_hello, &[0]])),
    );

    let units = |msgs: &[&[u8]], close: bool| -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            for (head, hl, data) in split(m, MIN_UNIT) {
                v.push((hl + data.len()) as u8);
                v.extend_from_slice(&head[..hl]);
                v.extend_from_slice(data);
            }
        }
        if close {
            v.extend_from_slice(&[1, CLOSE]);
        }
        v
    };
    let fragment = |flags: u8, max: u16, units: &[u8]| stream(flags, max, units);
    add(
        "fragment",
        "messages-close",
        fragment(0, 1000, &units(&msgs, true)),
    );
    let mut waits = units(&msgs[..1], false);
    waits.push(0xff);
    waits.extend_from_slice(&units(&msgs[1..], false));
    waits.push(0xfe);
    add(
        "fragment",
        "empty-then-removed",
        fragment(1 << 2, 1000, &waits),
    );
    add(
        "fragment",
        "handshake-then-messages",
        fragment(2, 4096, &units(&[&bytes_hello, &[0], b"after"], true)),
    );

    let msg = |len: u64| (u64::from(KIND_MESSAGE) << 32) | len;
    let pad = u64::from(KIND_PAD) << 32;
    let view = |fields: [u64; 6]| fields.iter().flat_map(|f| f.to_le_bytes()).collect();
    add("shm_ring", "message", view([4096, 1000, 0, 0, 16, msg(8)]));
    add(
        "shm_ring",
        "pad",
        view([4096, 1000, 4088, 4088, 4088 + 24, pad]),
    );
    add("shm_ring", "empty", view([4096, 1000, 64, 64, 64, 0]));

    // Ops of shm_consumer: 0 publish u16, 1 set head u64, 2 write, 3 step
    // (with the top bit: a batched step).
    let mut ops = 1000u16.to_le_bytes().to_vec();
    let write = |ops: &mut Vec<u8>, at: u16, bytes: &[u8]| {
        ops.push(2);
        ops.extend_from_slice(&at.to_le_bytes());
        ops.push(bytes.len() as u8);
        ops.extend_from_slice(bytes);
    };
    let publish = |ops: &mut Vec<u8>, n: u64| {
        ops.push(0);
        ops.extend_from_slice(&(n as u16).to_le_bytes());
    };
    write(&mut ops, 0, &msg(5).to_le_bytes());
    write(&mut ops, 8, b"hello");
    publish(&mut ops, record_size(5));
    ops.push(3);
    add("shm_consumer", "one-message", ops.clone());
    // A message streamed in two parts, then a pad and a message at the start.
    let mut ops = 1000u16.to_le_bytes().to_vec();
    write(&mut ops, 0, &msg(1000).to_le_bytes());
    publish(&mut ops, 8 + 500);
    ops.extend_from_slice(&[3, 3]);
    publish(&mut ops, record_size(1000) - 508);
    ops.extend_from_slice(&[3, 3]);
    let skip_to = 4096 - 16;
    publish(&mut ops, skip_to - record_size(1000));
    write(&mut ops, skip_to as u16, &pad.to_le_bytes());
    write(&mut ops, 0, &msg(3).to_le_bytes());
    write(&mut ops, 8, b"abc");
    publish(&mut ops, 16 + record_size(3));
    ops.extend_from_slice(&[3, 3, 3, 3]);
    add("shm_consumer", "streamed-and-padded", ops);
    // Three messages taken by one batched step (opcode 3 | 0x80, at most
    // 1 + 8 messages), then a fourth past a pad by the next.
    let mut ops = 1000u16.to_le_bytes().to_vec();
    let mut at = 0u64;
    for m in [&b"one"[..], b"two", b"three"] {
        write(&mut ops, at as u16, &msg(m.len() as u64).to_le_bytes());
        write(&mut ops, at as u16 + 8, m);
        at += record_size(m.len() as u64);
    }
    publish(&mut ops, at);
    ops.push(0x80 | (8 << 2) | 3);
    write(&mut ops, at as u16, &pad.to_le_bytes());
    write(&mut ops, 0, &msg(4).to_le_bytes());
    write(&mut ops, 8, b"four");
    publish(&mut ops, 4096 - at + record_size(4));
    ops.extend_from_slice(&[0x83, 0x83]);
    add("shm_consumer", "batched-runs", ops);

    let layout = Layout {
        ring_capacity: 1 << 16,
        max_message_size: 1000,
        listener_pid: 10,
        client_pid: 20,
        listener_start: 30,
        client_start: 40,
    };
    let mut header = layout.encode().to_vec();
    header.extend_from_slice(&layout.segment_size().to_le_bytes());
    header.extend_from_slice(&1000u64.to_le_bytes());
    add("shm_header", "valid", header);

    let docs = [
        "pipe:",
        "fifo:/tmp/orders",
        "mq:/orders",
        "mq:/orders?capacity=8&max_message_size=65536",
        "sysv-mq:/var/run/orders",
        "shm:/orders?capacity=1048576&max_message_size=65536&wait=spin",
        "sysv-shm:/var/run/orders?wait=adaptive&spin_us=50",
        "unix:/run/orders.sock?mode=0660&allow_uid=1000,1001&connect_timeout=250ms",
        "unix:@orders?allow_uid=0",
        "tcp://127.0.0.1:7000",
        "tcp://[::1]:0?connect_timeout=2m",
    ];
    add("endpoint", "docs", docs.join("\n").into_bytes());

    for (name, bytes) in super::message::seeds() {
        add("message", name, bytes);
    }
    #[cfg(feature = "nats")]
    {
        use crate::nats::wire;
        add(
            "nats_frame",
            "hello",
            wire::with_body(wire::HELLO, &bytes_hello),
        );
        add("nats_frame", "verdict", vec![wire::VERDICT, 0]);
        add("nats_frame", "data", wire::data(1, b"ping"));
        add("nats_frame", "data-empty", wire::data(u64::MAX, b""));
        add("nats_frame", "credit", wire::credit(1024, 8 << 20));
        add("nats_frame", "blocked", vec![wire::BLOCKED]);
        add("nats_frame", "heartbeat", vec![wire::HEARTBEAT]);
        add("nats_frame", "close", wire::close(7));
        add("nats_frame", "credit-short", vec![wire::CREDIT, 1, 2]);
        add(
            "nats_frame",
            "connect",
            wire::connect_request("4YmVYkTLbFZMXdn6qSGAyy"),
        );
        add(
            "nats_frame",
            "connect-v0",
            b"4YmVYkTLbFZMXdn6qSGAyy".to_vec(),
        );
    }

    out
}

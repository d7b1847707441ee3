//! Batches through the typed layer and the async layer, across processes:
//! typed values sent and received in batches (interleaved with single
//! sends) on stream, shared-memory and queue transports; a message that
//! does not decode in the middle of a batch; the async `send_batch`,
//! `recv_batch` and a `Sink` fed many items then flushed, against a
//! blocking peer.
//!
//! The peer is this test binary re-executed with a role (`util::Peer`).

use std::time::Duration;

use ipcx::{Batch, Error, IpcMessage, Receiver as _, Sender as _};
use serde::{Deserialize, Serialize};

use crate::util::{self, Peer, report};

const CASE: Duration = Duration::from_secs(120);
const OP: Duration = Duration::from_secs(60);

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[ipc(name = "test.BatchOrder")]
pub struct Order {
    id: u64,
    item: String,
}

fn order(id: u64) -> Order {
    Order {
        id,
        item: "x".repeat((id % 97) as usize),
    }
}

fn endpoint(scheme: &str) -> String {
    match scheme {
        "unix" => format!("unix:/tmp/{}.sock", util::unique("lu")),
        "fifo" => format!("fifo:/tmp/{}", util::unique("lf")),
        "mq" => format!("mq:/{}", util::unique("lm")),
        "shm" => format!("shm:/{}?capacity=4096", util::unique("lh")),
        _ => format!("sysv-shm:/tmp/{}?capacity=4096", util::unique("lv")),
    }
}

// ------------------------------------------------------------- peers ---

fn play_peer() {
    let (role, ep, _arg) = util::peer_params();
    let ep = util::parse(&ep);
    match role.as_str() {
        "typed-batch-echo" => {
            let mut ch = ipcx::connect_typed::<Order, Order>(&ep).expect("connect typed");
            let mut got = Vec::new();
            loop {
                got.clear();
                match ch.recv_batch(&mut got, 16) {
                    Ok(n) => assert_eq!(n, got.len()),
                    Err(Error::Disconnected) => return,
                    Err(e) => panic!("typed echo recv_batch: {e}"),
                }
                ch.send_batch(&got).expect("typed echo send_batch");
            }
        }
        "garbage-in-a-batch" => {
            let mut ch = ipcx::connect(&ep).expect("connect");
            let encoded = |id| {
                let mut b = Vec::new();
                order(id).encode(&mut b).expect("encode");
                b
            };
            let (a, c, d) = (encoded(0), encoded(2), encoded(3));
            ch.send_batch(&[&a, &[0xff, 0xff, 0xff][..], &c, &d])
                .expect("send_batch");
            report("sent");
            util::await_parent();
        }
        "blocking-batch-echo" => {
            let mut ch = ipcx::connect(&ep).expect("connect");
            let mut batch = Batch::new();
            loop {
                match ch.recv_batch(&mut batch, 64) {
                    Ok(_) => {}
                    Err(Error::Disconnected) => return,
                    Err(e) => panic!("echo recv_batch: {e}"),
                }
                let msgs: Vec<&[u8]> = batch.iter().collect();
                match ch.send_batch(&msgs) {
                    Ok(()) => {}
                    Err(Error::Disconnected) => return,
                    Err(e) => panic!("echo send_batch: {e}"),
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

// ------------------------------------------------------------- cases ---

/// Typed values in batches, with single sends between them, echoed by a
/// peer that receives and sends in batches: all come back, in order.
fn typed_batches(test: &'static str, ep: String) {
    util::watchdog(CASE, test, move || {
        let mut l = ipcx::listen_typed::<Order, Order>(&util::parse(&ep)).expect("listen");
        let peer = Peer::spawn(test, "typed-batch-echo", &l.endpoint().to_string(), "");
        let ch = l.accept_timeout(OP).expect("accept");
        let (mut tx, mut rx) = ch.split();
        const N: u64 = 3000;
        let sender = std::thread::spawn(move || {
            let mut id = 0;
            while id < N {
                if id % 7 == 0 {
                    tx.send(&order(id)).expect("send");
                    id += 1;
                    continue;
                }
                let k = (id % 50 + 1).min(N - id);
                let batch: Vec<Order> = (id..id + k).map(order).collect();
                tx.send_batch(&batch).expect("send_batch");
                id += k;
            }
            tx
        });
        let mut got = Vec::new();
        while (got.len() as u64) < N {
            rx.recv_batch_until(&mut got, 32, ipcx::Deadline::after(OP))
                .unwrap_or_else(|e| panic!("recv_batch after {}: {e}", got.len()));
        }
        let tx = sender.join().expect("sender");
        for (i, o) in got.iter().enumerate() {
            assert_eq!(*o, order(i as u64), "value {i}");
        }
        drop((tx, rx));
        peer.expect_success();
    });
}

/// A message that does not decode in the middle of a batch: the values
/// before it come first, then its `Decode` error (once), then the values
/// after it; the channel goes on.
fn decode_error_in_a_batch(test: &'static str, ep: String) {
    util::watchdog(CASE, test, move || {
        let mut l = ipcx::listen_typed::<Order, Order>(&util::parse(&ep)).expect("listen");
        let mut peer = Peer::spawn(test, "garbage-in-a-batch", &l.endpoint().to_string(), "");
        let mut ch = l.accept_timeout(OP).expect("accept");
        assert_eq!(peer.expect_line(), "sent");
        let mut seen = Vec::new();
        let mut values = Vec::new();
        while values.len() < 3 {
            match ch.recv_batch_until(&mut values, 8, ipcx::Deadline::after(OP)) {
                Ok(n) => seen.push(format!("{n} values")),
                Err(Error::Decode { .. }) => seen.push(format!("Decode after {}", values.len())),
                Err(e) => panic!("recv_batch: {e} (so far {seen:?})"),
            }
        }
        let ids: Vec<u64> = values.iter().map(|o| o.id).collect();
        assert_eq!(ids, [0, 2, 3], "values around the bad message ({seen:?})");
        let errors: Vec<&String> = seen.iter().filter(|s| s.starts_with("Decode")).collect();
        assert_eq!(
            errors,
            ["Decode after 1"],
            "one Decode error, after the first value"
        );
        peer.tell("done");
        drop(ch);
        peer.expect_success();
    });
}

/// The async layer: `send_batch` and `recv_batch` against a blocking peer
/// that echoes in batches, then a `Sink` fed many items and flushed once;
/// everything comes back in order.
#[cfg(feature = "tokio")]
fn async_batches(test: &'static str, ep: String) {
    use futures_util::SinkExt;
    util::watchdog(CASE, test, move || {
        let rt = crate::util::current_thread();
        rt.block_on(async move {
            let ep = util::parse(&ep);
            let mut l = ipcx::tokio::listen(&ep).expect("listen");
            let peer = Peer::spawn(test, "blocking-batch-echo", &l.endpoint().to_string(), "");
            let ch = l.accept().await.expect("accept");
            let (mut tx, mut rx) = ch.split();
            const N: usize = 2000;
            let msgs: Vec<Vec<u8>> = (0..N as u64)
                .map(|i| util::make_message(&mut util::Rng::new(i), i, (i % 300) as usize))
                .collect();
            let sending = async {
                for chunk in msgs.chunks(64) {
                    let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
                    tx.send_batch(&refs).await.expect("send_batch");
                }
                // Then as a Sink: fed, and flushed once per 100.
                for chunk in msgs.chunks(100) {
                    for m in chunk {
                        tx.feed(m.clone()).await.expect("feed");
                    }
                    SinkExt::flush(&mut tx).await.expect("flush");
                }
                tx
            };
            let receiving = async {
                let mut batch = Batch::new();
                let mut got = 0;
                while got < 2 * N {
                    let n = tokio::time::timeout(OP, rx.recv_batch(&mut batch, 64))
                        .await
                        .expect("recv_batch timed out")
                        .expect("recv_batch");
                    assert_eq!(n, batch.len());
                    for m in &batch {
                        assert_eq!(util::check_message(m), (got % N) as u64, "message {got}");
                        got += 1;
                    }
                }
            };
            let (tx, ()) = tokio::join!(sending, receiving);
            drop((tx, rx));
            peer.expect_success();
        });
    });
}

macro_rules! batch_layer_cases {
    ($($name:ident: $case:ident on $scheme:literal;)*) => {$(
        #[test]
        fn $name() {
            if util::is_peer() {
                play_peer();
                return;
            }
            $case(concat!("batch_layers::", stringify!($name)), endpoint($scheme));
        }
    )*};
}

batch_layer_cases! {
    unix_typed_batches: typed_batches on "unix";
    fifo_typed_batches: typed_batches on "fifo";
    mq_typed_batches: typed_batches on "mq";
    shm_typed_batches: typed_batches on "shm";
    sysv_shm_typed_batches: typed_batches on "sysv-shm";
    unix_decode_error_in_a_batch: decode_error_in_a_batch on "unix";
    shm_decode_error_in_a_batch: decode_error_in_a_batch on "shm";
    mq_decode_error_in_a_batch: decode_error_in_a_batch on "mq";
}

#[cfg(feature = "tokio")]
batch_layer_cases! {
    unix_async_batches: async_batches on "unix";
    shm_async_batches: async_batches on "shm";
    sysv_shm_async_batches: async_batches on "sysv-shm";
    mq_async_batches: async_batches on "mq";
}

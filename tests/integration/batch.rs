//! Batches (`Sender::send_batch*`, `Receiver::recv_batch*`, the rules of
//! `ipc_core::batch`) on every transport, the two peers in different
//! processes: mixed sizes interleaved with single sends, a message too
//! large in the middle of a batch, a batch far beyond what the channel
//! holds with a reader that starts late, and a peer killed while a batch
//! is blocked. Peers and helpers are the conformance suite's.

use std::sync::mpsc;
use std::time::Duration;

use ipcx::{Batch, Channel, Error, Receiver, Sender};

use crate::conformance::{
    OP, connect, expect_disconnect_after_kill, open_pair, seq_message, seq_of,
};
use crate::util::{self, Rng, Route, report};

/// Longest a case may run before its watchdog fails it.
const CASE_LIMIT: Duration = Duration::from_secs(240);

/// Messages of [`BIG_LEN`] bytes in the batch that overflows every
/// channel: 24 MiB, beyond a pipe (64 KiB), a ring (default 64 KiB), a
/// queue (ten messages) and loopback TCP's buffers (at most 4 + 6 MiB).
const BIG_COUNT: u64 = 6000;
const BIG_LEN: usize = 4096;

matrix!(batch, unix => format!("unix:/tmp/{}.sock", crate::util::unique("bu")),
    by_type ipcx::backends::unix::Unix;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

matrix!(batch, tcp => "tcp://127.0.0.1:0".to_string(),
    by_type ipcx::backends::tcp::Tcp;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

matrix!(batch, fifo => format!("fifo:/tmp/{}", crate::util::unique("bf")),
    by_type ipcx::backends::fifo::Fifo;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

matrix!(batch, mq => format!("mq:/{}", crate::util::unique("bm")),
    by_type ipcx::backends::mq::Mq;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

matrix!(batch, sysv_mq => format!("sysv-mq:/tmp/{}", crate::util::unique("bs")),
    by_type ipcx::backends::sysv_mq::SysvMq;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

matrix!(batch, shm => format!("shm:/{}", crate::util::unique("bh")),
    by_type ipcx::backends::shm::Shm;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

matrix!(batch, sysv_shm => format!("sysv-shm:/tmp/{}", crate::util::unique("bv")),
    by_type ipcx::backends::shm::SysvShm;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

matrix!(batch, pipe => "pipe:".to_string(), by_endpoint;
    mixed_sizes_in_order oversize_refuses_the_batch beyond_capacity_slow_reader
    peer_killed_in_send_batch peer_killed_in_recv_batch);

// ---------------------------------------------------------------- roles --

/// The peer side of the cases, chosen by the role in the environment.
fn run_role<R: Route>() {
    let (role, ep, arg) = util::peer_params();
    match role.as_str() {
        "batch-echo" => {
            // Echoes what it receives, as it receives it: a batch in, the
            // same batch out.
            let mut ch = connect::<R>(&ep);
            let mut batch = Batch::new();
            loop {
                match ch.recv_batch(&mut batch, 16) {
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
        "slow-batch-reader" => {
            let mut ch = connect::<R>(&ep);
            report("connected");
            util::await_parent();
            let mut batch = Batch::new();
            let mut count = 0u64;
            loop {
                match ch.recv_batch_until(&mut batch, 64, ipcx::Deadline::after(OP)) {
                    Ok(n) => {
                        assert!((1..=64).contains(&n), "recv_batch took {n} of at most 64");
                        for m in &batch {
                            assert_eq!(m.len(), BIG_LEN, "message {count}: wrong length");
                            assert_eq!(seq_of(m), count, "message out of order");
                            assert!(m[8..].iter().all(|&b| b == 0xA5), "message {count} corrupt");
                            count += 1;
                        }
                    }
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("slow reader: {e}"),
                }
            }
            report(format!("count={count}"));
        }
        "hold" => {
            let _ch = connect::<R>(&ep);
            report("connected");
            util::await_parent();
        }
        "send-batch-hold" => {
            let n: usize = arg.parse().expect("N");
            let mut ch = connect::<R>(&ep);
            let msgs: Vec<Vec<u8>> = (0..n as u64).map(|i| seq_message(i, 32)).collect();
            let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
            ch.send_batch(&refs).expect("send_batch");
            report("sent");
            util::await_parent();
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

// ---------------------------------------------------------------- cases --

/// One step of a plan: a message sent alone, or a batch.
#[derive(Clone)]
enum Step {
    Single(Vec<u8>),
    Batch(Vec<Vec<u8>>),
}

/// A message of `len` bytes that says where it belongs: its index in the
/// plan in its first bytes (as far as they go), then a pattern.
fn numbered(index: u64, len: usize) -> Vec<u8> {
    let mut m: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + index) as u8).collect();
    let head = index.to_le_bytes();
    let n = len.min(8);
    m[..n].copy_from_slice(&head[..n]);
    m
}

/// Batches of mixed sizes (empty, one byte, small, 4 KiB, beyond a pipe's
/// capacity, up to the limit) interleaved with single sends, echoed back
/// by a peer that receives and sends in batches: every message comes back
/// whole and in order.
fn mixed_sizes_in_order<R: Route>(test: &'static str, ep: &str) {
    let (peer, ch, _l) = open_pair::<R>(test, "batch-echo", ep, None, "");
    let max = ch.max_message_size();
    let mut rng = Rng::new(0xBA7C4);
    let mut plan = Vec::new();
    let mut expected = Vec::new();
    let size = |rng: &mut Rng| -> usize {
        match rng.below(20) {
            0 => 0,
            1 => 1,
            2 => max,
            3 => 70_000.min(max),
            4..=6 => 4096,
            _ => rng.below(200) as usize,
        }
    };
    for _ in 0..60 {
        if rng.below(3) == 0 {
            let m = numbered(expected.len() as u64, size(&mut rng));
            expected.push(m.clone());
            plan.push(Step::Single(m));
        } else {
            let n = 1 + rng.below(40) as usize;
            let batch: Vec<Vec<u8>> = (0..n)
                .map(|_| {
                    let m = numbered(expected.len() as u64, size(&mut rng));
                    expected.push(m.clone());
                    m
                })
                .collect();
            plan.push(Step::Batch(batch));
        }
    }
    // An empty batch sends nothing and is no error.
    plan.push(Step::Batch(Vec::new()));
    let (mut tx, mut rx) = ch.split();
    let sender = std::thread::spawn(move || {
        for step in plan {
            match step {
                Step::Single(m) => tx.send(&m).expect("send"),
                Step::Batch(b) => {
                    let refs: Vec<&[u8]> = b.iter().map(Vec::as_slice).collect();
                    tx.send_batch(&refs).expect("send_batch");
                }
            }
        }
        tx
    });
    let mut batch = Batch::new();
    let mut got = 0;
    while got < expected.len() {
        let n = rx
            .recv_batch_until(&mut batch, 32, ipcx::Deadline::after(OP))
            .unwrap_or_else(|e| panic!("recv_batch after {got} messages: {e}"));
        assert!((1..=32).contains(&n), "recv_batch took {n} of at most 32");
        assert_eq!(n, batch.len());
        for m in &batch {
            assert!(
                m == expected[got].as_slice(),
                "message {got}: {} bytes came back, {} were sent (or its bytes differ)",
                m.len(),
                expected[got].len()
            );
            got += 1;
        }
    }
    let tx_back = sender.join().expect("sender");
    assert!(
        matches!(rx.try_recv_batch(&mut batch, 8), Err(Error::WouldBlock)),
        "more came back than was sent"
    );
    drop((tx_back, rx));
    peer.expect_success();
}

/// A message above the limit in the middle of a batch refuses the whole
/// batch before any byte moves: neither the messages before it nor those
/// after arrive, and the channel goes on.
fn oversize_refuses_the_batch<R: Route>(test: &'static str, ep: &str) {
    let (peer, mut ch, _l) = open_pair::<R>(test, "batch-echo", ep, None, "");
    let max = ch.max_message_size();
    let too_large = vec![7u8; max + 1];
    let refused: [&[u8]; 4] = [b"before-1", b"before-2", &too_large, b"after"];
    for result in [
        ch.send_batch(&refused).map(|()| refused.len()),
        ch.try_send_batch(&refused),
        ch.send_batch_timeout(&refused, Duration::from_millis(100)),
    ] {
        match result {
            Err(Error::MessageTooLarge { size, max: m }) => {
                assert_eq!(
                    (size, m),
                    (max + 1, max),
                    "the error names the first message too large"
                );
            }
            other => panic!("a batch with a message too large gave {other:?}"),
        }
    }
    ch.send_batch(&[b"next-1", b"next-2"]).expect("send_batch");
    ch.send(b"alone").expect("send");
    let mut got = Vec::new();
    let mut batch = Batch::new();
    while got.len() < 3 {
        ch.recv_batch_until(&mut batch, 8, ipcx::Deadline::after(OP))
            .expect("recv_batch");
        got.extend(batch.iter().map(<[u8]>::to_vec));
    }
    assert_eq!(
        got,
        [&b"next-1"[..], b"next-2", b"alone"],
        "a message of the refused batch was sent"
    );
    drop(ch);
    peer.expect_success();
}

/// A batch far larger than the channel holds, while the reader has not
/// started: a non-blocking batch sends a part and says how much; a timed
/// one sends no more than fits; the rest, sent blocking once the reader
/// runs, arrives whole and in order, each message exactly once.
fn beyond_capacity_slow_reader<R: Route>(test: &'static str, ep: &str) {
    let (mut peer, mut ch, _l) = open_pair::<R>(test, "slow-batch-reader", ep, None, "");
    assert_eq!(peer.expect_line(), "connected");
    let msgs: Vec<Vec<u8>> = (0..BIG_COUNT).map(|i| seq_message(i, BIG_LEN)).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let first = ch
        .try_send_batch(&refs)
        .expect("try_send_batch into an empty channel");
    assert!(
        first >= 1 && first < refs.len(),
        "try_send_batch into a channel nobody reads sent {first} of {}",
        refs.len()
    );
    let mut sent = first;
    match ch.send_batch_timeout(&refs[sent..], Duration::from_millis(20)) {
        Ok(n) => {
            assert!(
                n < refs.len() - sent,
                "a stalled reader took the whole batch"
            );
            sent += n;
        }
        Err(Error::Timeout) => {}
        Err(e) => panic!("send_batch_timeout: {e}"),
    }
    match ch.try_send_batch(&refs[sent..]) {
        Ok(n) => {
            assert!(
                n < refs.len() - sent,
                "a stalled reader took the whole batch"
            );
            sent += n;
        }
        Err(Error::WouldBlock) => {}
        Err(e) => panic!("try_send_batch: {e}"),
    }
    peer.tell("go");
    ch.send_batch(&refs[sent..]).expect("send_batch");
    drop(ch);
    assert_eq!(peer.expect_value("count"), BIG_COUNT.to_string());
    peer.expect_success();
}

/// A `send_batch` blocked on a full channel gets `Disconnected` when the
/// peer is killed.
fn peer_killed_in_send_batch<R: Route>(test: &'static str, ep: &str) {
    let (mut peer, mut ch, _l) = open_pair::<R>(test, "hold", ep, None, "");
    assert_eq!(peer.expect_line(), "connected");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let msgs: Vec<Vec<u8>> = (0..BIG_COUNT).map(|i| seq_message(i, BIG_LEN)).collect();
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        // Should the kernel find more room (TCP grows its windows), the
        // next batch blocks again.
        let end = loop {
            if let Err(e) = ch.send_batch(&refs) {
                break e;
            }
        };
        let _ = tx.send(Err(end.to_string()));
    });
    std::thread::sleep(Duration::from_millis(100));
    expect_disconnect_after_kill(&mut peer, rx, "send_batch");
}

/// A `recv_batch` blocked on an empty channel gets `Disconnected` when the
/// peer is killed, after taking what the peer sent before.
fn peer_killed_in_recv_batch<R: Route>(test: &'static str, ep: &str) {
    let (mut peer, mut ch, _l) = open_pair::<R>(test, "send-batch-hold", ep, None, "5");
    assert_eq!(peer.expect_line(), "sent");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut batch = Batch::new();
        let mut seqs = Vec::new();
        let end = loop {
            match ch.recv_batch(&mut batch, 64) {
                Ok(_) => seqs.extend(batch.iter().map(seq_of)),
                Err(e) => break e,
            }
        };
        let r = if seqs == [0, 1, 2, 3, 4] {
            Err(end.to_string())
        } else {
            Err(format!(
                "{end}, having received {seqs:?} of the 5 messages sent"
            ))
        };
        let _ = tx.send(r);
    });
    std::thread::sleep(Duration::from_millis(100));
    expect_disconnect_after_kill(&mut peer, rx, "recv_batch");
}

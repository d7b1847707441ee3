//! Unit tests of the shared-memory transport: two channels over one
//! mapping in this process (rings, limits, loans, a corrupting peer, the
//! sticky disconnect), and the rendezvous's errors.

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ipc_core::{Batch, Channel, Deadline, Endpoint, Error, PeerInfo, Receiver, Sender};

use super::channel::{self, Mapped, Side};
use super::handover::{announce_wait, write_header};
use super::segment::{self, Layout};
use super::shared::{self, Doorbells, LIVENESS_INTERVAL};
use super::{ShmChannel, posix, ring};
use crate::conn::watch;
use crate::sys::process;
use crate::sys::shm::Mapping;

mod rendezvous;

/// One segment mapped twice in this process, as the listener and the
/// client would map it, with what either side's channel needs.
struct Segment {
    ep: Endpoint,
    layout: Layout,
    maps: [Mapping; 2],
    peer: PeerInfo,
}

fn segment(cap: u64, max: usize, wait: &str) -> Segment {
    let layout = Layout {
        ring_capacity: cap,
        max_message_size: max as u64,
        listener_pid: process::pid(),
        client_pid: process::pid(),
        listener_start: 0,
        client_start: 0,
    };
    let size = layout.segment_size() as usize;
    let ep: Endpoint = format!("shm:/unit{}?wait={wait}", process::pid())
        .parse()
        .unwrap();
    let (fd, m0) = posix::create(&ep, size).unwrap();
    write_header(&m0, &layout);
    announce_wait(&m0, Side::Listener, ep.wait());
    announce_wait(&m0, Side::Client, ep.wait());
    let m1 = crate::sys::shm::map(fd.as_fd(), size).unwrap();
    let peer = PeerInfo {
        pid: process::pid(),
        uid: process::uid(),
        max_message_size: max,
        send: ipc_core::TypeTag::BYTES,
        recv: ipc_core::TypeTag::BYTES,
    };
    Segment {
        ep,
        layout,
        maps: [m0, m1],
        peer,
    }
}

fn mapped(layout: Layout, map: Mapping, doorbells: Doorbells) -> Mapped {
    Mapped {
        map,
        layout,
        doorbells,
    }
}

/// Two channels over one segment in this process, without a rendezvous:
/// the listener's side and the client's, plus the segment base for
/// corrupting. Each side's peer counts as gone once the other side is
/// dropped (its end of the socket pair closes).
fn pair(cap: u64, max: usize, wait: &str) -> (ShmChannel, ShmChannel, *mut u8) {
    let s = segment(cap, max, wait);
    let [m0, m1] = s.maps;
    let (d0, d1) = Doorbells::pair();
    let (m0, m1) = (mapped(s.layout, m0, d0), mapped(s.layout, m1, d1));
    let base = m1.map.ptr();
    let (a, b) = UnixStream::pair().unwrap();
    let c0 = channel::build(m0, a.into(), &s.ep, Side::Listener, s.peer.clone(), None);
    let c1 = channel::build(m1, b.into(), &s.ep, Side::Client, s.peer, None);
    (c0, c1, base)
}

/// The client's side alone. The listener is only its end of the socket
/// and its mapping: dropping the socket is its process dying (which
/// changes nothing in the segment); the mapping lets the test play it.
/// Its peer is this process, which the death watcher can never see exit:
/// the channel is built without it, so it polls (its fallback) and finds
/// the socket hung up within 10 ms.
fn lone_client(cap: u64, max: usize) -> (ShmChannel, UnixStream, Mapping) {
    let s = segment(cap, max, "block");
    let [m0, m1] = s.maps;
    let m1 = mapped(s.layout, m1, Doorbells::pair().1);
    let (a, b) = UnixStream::pair().unwrap();
    let c1 = watch::unavailable(|| channel::build(m1, b.into(), &s.ep, Side::Client, s.peer, None));
    assert_eq!(c1.shared().interval(), LIVENESS_INTERVAL, "polls");
    (c1, a, m0)
}

/// A client whose peer is process `peer` (a child of the test), built
/// with the death watcher or (`watched` false) without it. The socket's
/// other end is returned and must stay open: only the peer's death can
/// end the connection.
fn client_of(peer: &std::process::Child, watched: bool) -> (ShmChannel, UnixStream, Mapping) {
    let mut s = segment(4096, 5000, "block");
    s.peer.pid = peer.id();
    let start = process::start_time(peer.id());
    let [m0, m1] = s.maps;
    let m1 = mapped(s.layout, m1, Doorbells::pair().1);
    let (a, b) = UnixStream::pair().unwrap();
    let build = || channel::build(m1, b.into(), &s.ep, Side::Client, s.peer, start);
    let c = if watched {
        build()
    } else {
        watch::unavailable(build)
    };
    (c, a, m0)
}

/// Blocks in `recv` on `c` on a thread, kills `peer`, and returns how
/// long after the kill `recv` gave `Disconnected` (a watchdog fails the
/// test after 10 s: the safety interval is a minute).
fn disconnect_after_kill(mut c: ShmChannel, mut peer: std::process::Child) -> Duration {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(c.recv().map(drop));
    });
    std::thread::sleep(Duration::from_millis(50));
    let killed = std::time::Instant::now();
    peer.kill().unwrap();
    peer.wait().unwrap();
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(Err(Error::Disconnected)) => killed.elapsed(),
        Ok(other) => panic!("recv after the peer's SIGKILL gave {other:?}"),
        Err(_) => panic!("recv still blocked 10 s after the peer's SIGKILL"),
    }
}

fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep")
}

/// The death watcher wakes a receiver blocked on a futex when its peer
/// process is killed, although the socket stays open and the receiver's
/// own sleep would last a minute.
#[test]
fn the_watcher_wakes_a_blocked_receiver_when_the_peer_dies() {
    let peer = sleeper();
    let (c, _socket, _m0) = client_of(&peer, true);
    let interval = c.shared().interval();
    assert!(interval >= Duration::from_secs(60), "{interval:?}");
    let took = disconnect_after_kill(c, peer);
    eprintln!("watched: Disconnected {took:?} after SIGKILL");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Without the death watcher (no pidfds before Linux 5.3, out of
/// descriptors or threads) a blocked receiver polls its peer's liveness
/// every 10 ms: a killed peer is noticed within the contract's bound, the
/// socket still open.
#[test]
fn without_the_watcher_a_blocked_receiver_polls_for_the_peer() {
    let peer = sleeper();
    let (c, _socket, _m0) = client_of(&peer, false);
    assert_eq!(c.shared().interval(), LIVENESS_INTERVAL);
    assert!(c.shared().watch.is_none());
    let took = disconnect_after_kill(c, peer);
    eprintln!("unwatched: Disconnected {took:?} after SIGKILL");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Connections made together have safety intervals spread over half a
/// minute, so their safety wake-ups do not come together.
#[test]
fn safety_intervals_are_spread() {
    let all: Vec<Duration> = (0..100).map(|_| shared::safety_interval()).collect();
    let (lo, hi) = (all.iter().min().unwrap(), all.iter().max().unwrap());
    assert!(
        *lo >= Duration::from_secs(60) && *hi < Duration::from_secs(90),
        "{lo:?}..{hi:?}"
    );
    assert!(*hi - *lo > Duration::from_secs(25), "{lo:?}..{hi:?}");
    let mut distinct = all.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 90, "{} distinct of 100", distinct.len());
}

#[test]
fn messages_of_every_size_including_streamed() {
    for wait in ["block", "spin", "adaptive"] {
        let (mut a, mut b, _) = pair(4096, 100_000, wait);
        let t = std::thread::spawn(move || {
            for _ in 0..40 {
                let m = b.recv().unwrap();
                b.send(&m).unwrap();
            }
            b
        });
        for i in 0..40usize {
            let len = [0, 1, 7, 8, 9, 4088, 4089, 10_000, 99_999, 100_000][i % 10];
            let msg: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            a.send(&msg).unwrap();
            assert_eq!(a.recv().unwrap(), msg, "len {len} wait {wait}");
        }
        let _b = t.join().unwrap();
    }
}

#[test]
fn limits_deadlines_and_close() {
    let (mut a, mut b, _) = pair(4096, 5000, "adaptive");
    assert!(matches!(
        a.send(&[0; 5001]),
        Err(Error::MessageTooLarge {
            size: 5001,
            max: 5000
        })
    ));
    assert!(matches!(b.try_recv(), Err(Error::WouldBlock)));
    assert!(matches!(
        b.recv_timeout(Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    let mut sent = 0;
    loop {
        match a.try_send(&[7; 100]) {
            Ok(()) => sent += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(matches!(
        a.send_timeout(&[7; 100], Duration::from_millis(5)),
        Err(Error::Timeout)
    ));
    for _ in 0..sent {
        assert_eq!(b.recv().unwrap(), vec![7; 100]);
    }
    assert!(matches!(b.try_recv(), Err(Error::WouldBlock)));
    a.send(b"last").unwrap();
    drop(a);
    assert_eq!(b.recv().unwrap(), b"last");
    assert!(matches!(b.recv(), Err(Error::Disconnected)));
    assert!(matches!(b.send(b"x"), Err(Error::Disconnected)));
}

#[test]
fn loan_and_in_place() {
    let (mut a, mut b, _) = pair(4096, 5000, "block");
    assert!(matches!(
        a.loan(2041),
        Err(Error::MessageTooLarge { max: 2040, .. })
    ));
    for i in 0..100usize {
        let len = [0, 1, 100, 1000, 2040][i % 5];
        let mut l = a.loan(len).unwrap();
        l.fill(i as u8);
        l.send();
        let g = b.recv_in_place().unwrap();
        assert!(g.is_in_place());
        assert_eq!(&*g, &vec![i as u8; len][..]);
    }
    // A wrapped message is copied, still whole.
    a.send(&[1; 3000]).unwrap();
    drop(b.recv_in_place().unwrap());
    a.send(&[2; 3000]).unwrap();
    let g = b.recv_in_place().unwrap();
    assert_eq!(&*g, &[2; 3000][..]);
    drop(g);
    // A dropped loan sends nothing.
    let _ = a.loan(10).unwrap();
    assert!(matches!(b.try_recv(), Err(Error::WouldBlock)));
}

fn poke(base: *mut u8, offset: usize, value: u64) {
    // SAFETY: tests poke inside the header page of a live mapping of
    // at least HEADER_SIZE bytes; offsets are 8-aligned.
    unsafe { std::ptr::write_volatile(base.add(offset).cast::<u64>(), value) }
}

#[test]
fn corrupted_segments_are_protocol_errors() {
    let ring0_head = segment::CONTROL_OFFSET[0];
    let ring1_tail = segment::CONTROL_OFFSET[1] + 128;
    let data0 = segment::HEADER_SIZE;
    let msg = |len: u64| (u64::from(ring::KIND_MESSAGE) << 32) | len;
    type Case = (&'static str, Vec<(usize, u64)>);
    let cases: Vec<Case> = vec![
        ("head past the ring", vec![(ring0_head, 4097)]),
        ("head far away", vec![(ring0_head, u64::MAX)]),
        ("torn header", vec![(ring0_head, 3)]),
        ("unknown kind", vec![(data0, 9 << 32), (ring0_head, 8)]),
        ("too long", vec![(data0, msg(5001)), (ring0_head, 8)]),
        ("pad at start", vec![(data0, 2 << 32), (ring0_head, 8)]),
    ];
    for (what, pokes) in cases {
        let (_a, mut b, base) = pair(4096, 5000, "block");
        for (o, v) in pokes {
            poke(base, o, v);
        }
        match b.recv_timeout(Duration::from_secs(5)) {
            Err(Error::Protocol(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    // Head moving backwards after a message.
    let (mut a, mut b, base) = pair(4096, 5000, "block");
    a.send(b"12345678").unwrap();
    b.recv().unwrap();
    poke(base, ring0_head, 0);
    assert!(matches!(b.try_recv(), Err(Error::Protocol(_))));
    // A tail past our head, seen by the sender of ring 1 once its
    // cached view of the tail runs out of room and it reads the tail.
    let (_a, mut b, base) = pair(4096, 5000, "block");
    poke(base, ring1_tail, 1 << 40);
    let mut outcome = Ok(());
    for _ in 0..=4096 / 16 {
        outcome = b.try_send(b"x");
        if outcome.is_err() {
            break;
        }
    }
    assert!(matches!(outcome, Err(Error::Protocol(_))), "{outcome:?}");
    // A message body the peer claims is streaming but whose producer
    // dies: the survivor's blocking recv ends.
    let (a, mut b, base) = pair(4096, 100_000, "block");
    poke(base, data0, msg(50_000));
    poke(base, ring0_head, 4096);
    drop(a);
    assert!(matches!(b.recv(), Err(Error::Disconnected)));
}

/// Batches through a small ring: every length modulo 8, runs cut by the
/// ring's end (wrapped records), by the room left, and by the receiver's
/// maximum, whole and in order on both sides.
#[test]
fn batches_wrap_and_stop_at_the_maximum() {
    let (mut a, mut b, _) = pair(4096, 5000, "block");
    // Every 97th larger than the ring: it streams between runs.
    let message = |i: usize| -> Vec<u8> {
        let len = if i % 97 == 50 {
            4100 + i % 900
        } else {
            (i * 7) % 301
        };
        (0..len).map(|j| (i + j) as u8).collect()
    };
    const N: usize = 3000;
    let t = std::thread::spawn(move || {
        let mut batch = Batch::new();
        let mut got = 0;
        while got < N {
            let max = 1 + got % 64;
            let n = b.recv_batch(&mut batch, max).unwrap();
            assert!((1..=max).contains(&n), "{n} of at most {max}");
            assert_eq!(n, batch.len());
            for m in &batch {
                assert_eq!(m, message(got), "message {got}");
                got += 1;
            }
        }
        b
    });
    let all: Vec<Vec<u8>> = (0..N).map(message).collect();
    for chunk in all.chunks(37) {
        let msgs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
        a.send_batch(&msgs).unwrap();
    }
    let mut b = t.join().unwrap();
    assert!(matches!(b.try_recv(), Err(Error::WouldBlock)));
}

/// A corrupt record after good ones: the batch hands out the good ones,
/// the next receive reports the corruption.
#[test]
fn a_batch_stops_at_a_corrupt_record() {
    let ring0_head = segment::CONTROL_OFFSET[0];
    let data0 = segment::HEADER_SIZE;
    let msg = |len: u64| (u64::from(ring::KIND_MESSAGE) << 32) | len;
    // Each published whole, so that only the check of its own kind stops it.
    for (what, word, head) in [
        ("too long", msg(101), 48 + 8 + 104),
        ("unknown kind", 9 << 32, 56),
    ] {
        let (mut a, mut b, base) = pair(4096, 100, "block");
        a.send_batch(&[&b"one"[..], b"two", b"three"]).unwrap();
        poke(base, data0 + 48, word);
        poke(base, ring0_head, head);
        let mut batch = Batch::new();
        assert_eq!(b.recv_batch(&mut batch, 64).unwrap(), 3, "{what}");
        let got: Vec<&[u8]> = batch.iter().collect();
        assert_eq!(got, [&b"one"[..], b"two", b"three"], "{what}");
        match b.recv_batch(&mut batch, 64) {
            Err(Error::Protocol(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
}

/// A record published in part after whole ones (a message still
/// streaming): the batch hands out the whole ones and stops there, and
/// the next receive takes it once the rest is published.
#[test]
fn a_batch_stops_at_a_record_published_in_part() {
    let ring0_head = segment::CONTROL_OFFSET[0];
    let data0 = segment::HEADER_SIZE;
    let (mut a, mut b, base) = pair(4096, 100, "block");
    a.send_batch(&[&b"one"[..], b"two", b"three"]).unwrap();
    poke(base, data0 + 48, (u64::from(ring::KIND_MESSAGE) << 32) | 16);
    poke(base, data0 + 56, u64::from_le_bytes(*b"sixteen "));
    poke(base, data0 + 64, u64::from_le_bytes(*b"bytes!!!"));
    poke(base, ring0_head, 48 + 8 + 8);
    let mut batch = Batch::new();
    assert_eq!(b.recv_batch(&mut batch, 64).unwrap(), 3);
    assert_eq!(batch.get(2), Some(&b"three"[..]));
    // (A receive now would wait for the rest, as for a streamed message:
    // its sender is committed.)
    poke(base, ring0_head, 48 + 8 + 16);
    assert_eq!(b.recv_batch(&mut batch, 64).unwrap(), 1);
    assert_eq!(batch.get(0), Some(&b"sixteen bytes!!!"[..]));
}

/// Once the receiver has seen the connection end, the sender refuses too.
/// Here the peer dropped only its sending half: its receiver never closed
/// our ring, which has room, yet a send no longer vanishes into it.
#[test]
fn disconnect_is_sticky_for_both_halves() {
    let (a, b, _) = pair(4096, 5000, "block");
    let (a_tx, _a_rx) = a.split();
    let (mut b_tx, mut b_rx) = b.split();
    b_tx.send(b"before").unwrap();
    drop(a_tx);
    let rx = std::thread::spawn(move || {
        assert!(matches!(b_rx.recv(), Err(Error::Disconnected)));
        b_rx
    });
    let mut b_rx = rx.join().unwrap();
    assert!(matches!(b_tx.send(b"x"), Err(Error::Disconnected)));
    assert!(matches!(b_tx.loan(1).map(drop), Err(Error::Disconnected)));
    assert!(matches!(b_rx.try_recv(), Err(Error::Disconnected)));
    assert!(matches!(
        b_rx.recv_in_place().map(drop),
        Err(Error::Disconnected)
    ));
}

/// A peer that dies writes nothing in the segment. Its last message is
/// still read; then the receiver finds it gone, and from then on a send
/// fails although the ring has room.
#[test]
fn sends_fail_once_the_receiver_found_the_peer_dead() {
    let (mut c, listener, m0) = lone_client(4096, 5000);
    // Play the listener: one message into ring 0, then die.
    // SAFETY: `m0` maps the whole segment (header checked by `segment`);
    // this test is ring 0's only producer.
    let mut tx = unsafe {
        let mem = ring::RingMem {
            control: segment::control(m0.ptr(), 0),
            data: m0.ptr().add(segment::HEADER_SIZE),
            capacity: 4096,
        };
        ring::Producer::new(mem, false)
    };
    assert!(tx.push_contiguous(b"last words"));
    tx.publish();
    drop(listener);
    assert_eq!(c.recv().unwrap(), b"last words");
    assert!(matches!(
        c.recv_until(&mut Vec::new(), Deadline::after(Duration::from_secs(30))),
        Err(Error::Disconnected)
    ));
    assert!(matches!(c.send(b"x"), Err(Error::Disconnected)));
    drop(m0);
}

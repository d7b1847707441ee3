//! In-place messages across processes: byte loans and `recv_in_place`, and
//! typed `loan()` / `recv_sample()`, round-trip on every transport that
//! listens; on `shm:` and `sysv-shm:` the loaned and received bytes are
//! proven to lie inside the mapped segment (no copy was made).
//!
//! Cases are instantiated per transport by [`in_place!`], listed as
//! `in_place::<transport>::<case>`. The peer is this test binary
//! re-executed with a role, as in the conformance suite.

use std::time::Duration;

use ipcx::{Deadline, Endpoint, Error, IpcMessage, Listener, Sender};

use crate::util::{self, Peer, Rng};

const CASE_LIMIT: Duration = Duration::from_secs(120);
const OP: Duration = Duration::from_secs(60);

#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "test.Venue")]
#[repr(u8)]
pub enum Venue {
    North = 1,
    South = 2,
}

/// Plain data with invalid bit patterns (`Venue`, `bool`).
#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "test.Tick")]
#[repr(C)]
pub struct Tick {
    seq: u64,
    price: f64,
    qty: u32,
    venue: Venue,
    live: bool,
    flags: [u8; 2],
}

/// Byte offset of `Tick::venue`.
const VENUE_AT: usize = 20;

/// Aligned to 16: more than a ring record guarantees, so it is copied.
#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "test.Wide")]
#[repr(C)]
pub struct Wide {
    a: u128,
    b: u128,
}

/// Plain data for which any bytes are a valid value: handed out in place.
#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "test.Quote")]
#[repr(C)]
pub struct Quote {
    seq: u64,
    price: f64,
    qty: u32,
    flags: [u8; 4],
}

fn ticks() -> Vec<Tick> {
    (0..200u64)
        .map(|i| Tick {
            seq: i,
            price: i as f64 * 0.5,
            qty: (i * 3) as u32,
            venue: if i % 2 == 0 {
                Venue::North
            } else {
                Venue::South
            },
            live: i % 3 == 0,
            flags: [i as u8, !(i as u8)],
        })
        .collect()
}

// ---------------------------------------------------------------- matrix --

matrix!(in_place, unix => format!("unix:/tmp/{}.sock", crate::util::unique("iu"));
    bytes typed wide invalid full_then_gone);
matrix!(in_place, tcp => "tcp://127.0.0.1:0".to_string(); bytes typed wide invalid full_then_gone);
matrix!(in_place, fifo => format!("fifo:/tmp/{}", crate::util::unique("if"));
    bytes typed wide invalid full_then_gone);
matrix!(in_place, mq => format!("mq:/{}", crate::util::unique("im")); bytes typed wide invalid full_then_gone);
#[cfg(feature = "nats")]
matrix!(in_place, nats => crate::util::nats::endpoint("i", "heartbeat=200ms"); bytes typed wide invalid full_then_gone);
matrix!(in_place, sysv_mq => format!("sysv-mq:/tmp/{}", crate::util::unique("is"));
    bytes typed wide invalid full_then_gone);
matrix!(in_place, shm => format!("shm:/{}", crate::util::unique("ih"));
    bytes typed wide invalid full_then_gone no_copy);
matrix!(in_place, sysv_shm => format!("sysv-shm:/tmp/{}", crate::util::unique("iv"));
    bytes typed wide invalid full_then_gone no_copy);

use crate::util::parse;

// ---------------------------------------------------------------- roles --

fn run_role() {
    let (role, ep, _) = util::peer_params();
    let ep = parse(&ep);
    match role.as_str() {
        "echo_bytes" => echo_bytes(&ep),
        "echo_ticks" => echo_samples::<Tick>(&ep),
        "echo_quotes" => echo_samples::<Quote>(&ep),
        "echo_wide" => echo_samples::<Wide>(&ep),
        "bad_ticks" => {
            // Raw bytes the parent's typed receiver must reject, then a
            // valid tick, all written through loans.
            let mut ch = ipcx::connect(&ep).expect("connect raw");
            let good = ticks()[7];
            let mut bad = ipcx::core::message::zero_copy_bytes(&good).to_vec();
            bad[VENUE_AT] = 9;
            for msg in [
                &[0u8; 5][..],
                &bad,
                ipcx::core::message::zero_copy_bytes(&good),
            ] {
                let mut loan = ch.loan(msg.len()).expect("loan");
                loan.copy_from_slice(msg);
                loan.commit().expect("commit");
            }
            util::await_parent();
        }
        "idle" => {
            // Connects, reads nothing, leaves when told.
            let ch = ipcx::connect(&ep).expect("connect raw");
            util::await_parent();
            drop(ch);
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

/// Receives messages in place and sends each back through a loan, until
/// the parent leaves.
fn echo_bytes(ep: &Endpoint) {
    let (mut tx, mut rx) = ipcx::Channel::split(ipcx::connect(ep).expect("connect raw"));
    loop {
        let msg = match rx.recv_in_place() {
            Ok(m) => m,
            Err(Error::Disconnected) => return,
            Err(e) => panic!("echo recv_in_place: {e}"),
        };
        let mut loan = tx.loan(msg.len()).expect("echo loan");
        loan.copy_from_slice(&msg);
        loan.commit().expect("echo commit");
    }
}

/// Receives `T` samples and sends each back through a typed loan, until
/// the parent leaves.
fn echo_samples<T: IpcMessage + ipcx::ZeroCopy>(ep: &Endpoint) {
    let (mut tx, mut rx) = ipcx::connect_typed::<T, T>(ep)
        .expect("connect typed")
        .split();
    loop {
        let sample = match rx.recv_sample() {
            Ok(s) => s,
            Err(Error::Disconnected) => return,
            Err(e) => panic!("echo recv_sample: {e}"),
        };
        let mut loan = tx.loan().expect("echo loan");
        loan.write(*sample);
        loan.send().expect("echo send");
    }
}

// ---------------------------------------------------------------- cases --

/// Byte loans of many sizes, echoed through `recv_in_place` and a loan by
/// the peer; limits and an empty channel answer as with `send`/`recv`.
fn bytes(test: &'static str, ep: &str) {
    let mut l = ipcx::listen(&parse(ep)).expect("listen");
    let peer = Peer::spawn(test, "echo_bytes", &l.endpoint().to_string(), "");
    let mut ch = l.accept_timeout(OP).expect("accept");
    let shared = ch.is_shared_memory();
    let max = ch.max_message_size();

    match ch.recv_in_place_until(Deadline::Now) {
        Err(Error::WouldBlock) => {}
        other => panic!("recv_in_place on an empty channel: {other:?}"),
    }
    match ch.loan(max + 1) {
        Err(Error::MessageTooLarge { size, max: m }) => assert_eq!((size, m), (max + 1, max)),
        other => panic!(
            "a loan above max_message_size: {:?}",
            other.map(|l| l.len())
        ),
    }
    // The largest length there is: the same error, no overflow on the way.
    match ch.loan(usize::MAX) {
        Err(Error::MessageTooLarge { size, max: m }) => assert_eq!((size, m), (usize::MAX, max)),
        other => panic!("a loan of usize::MAX bytes: {:?}", other.map(|l| l.len())),
    }

    let mut rng = Rng::new(7);
    let sizes = [0usize, 1, 7, 8, 9, 63, 64, 1000, 4096, 8000];
    for round in 0..3u64 {
        for (i, &len) in sizes.iter().enumerate() {
            // A message of `len` bytes, self-checking when there is room.
            let msg = if len >= 16 {
                util::make_message(&mut rng, round * 100 + i as u64, len - 16)
            } else {
                vec![len as u8; len]
            };
            if msg.len() > max {
                continue;
            }
            let mut loan = ch.loan(msg.len()).expect("loan");
            assert_eq!(loan.len(), msg.len());
            assert_eq!(loan.is_in_place(), shared, "loan of {len} bytes");
            loan.copy_from_slice(&msg);
            loan.commit().expect("commit");

            let back = ch
                .recv_in_place_until(Deadline::after(OP))
                .unwrap_or_else(|e| panic!("recv_in_place of {len} bytes: {e}"));
            assert_eq!(back.is_in_place(), shared, "{len} bytes sent with a loan");
            assert_eq!(&back[..], &msg[..], "round {round}, {len} bytes");
            if len >= 16 {
                util::check_message(&back);
            }
        }
    }
    // A dropped loan sends nothing; plain sends still arrive in place.
    drop(ch.loan(3).expect("loan"));
    ch.send(b"plain").expect("send");
    assert_eq!(&ch.recv_in_place().expect("recv_in_place")[..], b"plain");
    drop(ch);
    peer.expect_success();
}

/// Typed loans filled in place and samples read in place, echoed by the
/// peer the same way.
fn typed(test: &'static str, ep: &str) {
    let mut l = ipcx::listen_typed::<Tick, Tick>(&parse(ep)).expect("listen typed");
    let peer = Peer::spawn(test, "echo_ticks", &l.endpoint().to_string(), "");
    let mut ch = l.accept_timeout(OP).expect("accept");
    let shared = ch.get_ref().mapped_range().is_some();
    for t in ticks() {
        let mut loan = ch.loan().expect("loan");
        assert_eq!(loan.is_in_place(), shared);
        if t.seq % 2 == 0 {
            loan.write(t);
        } else {
            // Field by field, in place.
            let p = loan.as_mut_ptr();
            // SAFETY: `p` is an aligned, writable `MaybeUninit<Tick>` in the
            // loan; `addr_of_mut!` makes no reference to uninitialised data,
            // and each field gets one valid value of its type.
            unsafe {
                std::ptr::addr_of_mut!((*p).seq).write(t.seq);
                std::ptr::addr_of_mut!((*p).price).write(t.price);
                std::ptr::addr_of_mut!((*p).qty).write(t.qty);
                std::ptr::addr_of_mut!((*p).venue).write(t.venue);
                std::ptr::addr_of_mut!((*p).live).write(t.live);
                std::ptr::addr_of_mut!((*p).flags).write(t.flags);
            }
        }
        loan.send().expect("send");
        let back = ch.recv_sample_timeout(OP).expect("recv_sample");
        // A Tick holds a bool and an enum: even on shared memory it is
        // copied out and the copy validated (see `no_copy`).
        assert!(!back.is_in_place());
        assert_eq!(*back, t);
    }
    // Loans and plain sends mix: the peer cannot tell.
    ch.send(&ticks()[3]).expect("send");
    assert_eq!(ch.recv().expect("recv"), ticks()[3]);
    drop(ch);
    peer.expect_success();
}

/// A type aligned to more than a ring record moves by a validated copy.
fn wide(test: &'static str, ep: &str) {
    let mut l = ipcx::listen_typed::<Wide, Wide>(&parse(ep)).expect("listen typed");
    let peer = Peer::spawn(test, "echo_wide", &l.endpoint().to_string(), "");
    let (mut tx, mut rx) = l.accept_timeout(OP).expect("accept").split();
    for i in 0..50u128 {
        let v = Wide {
            a: i << 100 | i,
            b: u128::MAX - i,
        };
        let mut loan = tx.loan().expect("loan");
        loan.write(v);
        loan.send().expect("send");
        let back = rx.recv_sample_timeout(OP).expect("recv_sample");
        assert_eq!(*back, v);
        assert_eq!((&raw const *back).align_offset(align_of::<Wide>()), 0);
    }
    drop((tx, rx));
    peer.expect_success();
}

/// A wrong length or an invalid bit pattern from the peer is a `Decode`
/// error naming the type; the next message is read intact.
fn invalid(test: &'static str, ep: &str) {
    let mut l = ipcx::listen_typed::<Tick, Tick>(&parse(ep)).expect("listen typed");
    let mut peer = Peer::spawn(test, "bad_ticks", &l.endpoint().to_string(), "");
    let mut ch = l.accept_timeout(OP).expect("accept");
    for what in ["length", "bit pattern"] {
        match ch.recv_sample_timeout(OP) {
            Err(Error::Decode { type_name, reason }) => {
                assert_eq!(type_name, "test.Tick", "{what}: {reason}");
            }
            Ok(s) => panic!("a bad {what} was accepted as {:?}", *s),
            Err(e) => panic!("a bad {what}: {e}"),
        }
    }
    assert_eq!(*ch.recv_sample_timeout(OP).expect("next"), ticks()[7]);
    peer.tell("done");
    drop(ch);
    peer.expect_success();
}

/// On shared memory the loan, the sample and the in-place bytes lie inside
/// the mapped segment: nothing was copied. A type with invalid bit
/// patterns is copied out before validation instead, since the peer could
/// still write to the segment.
fn no_copy(test: &'static str, ep: &str) {
    let mut l = ipcx::listen_typed::<Quote, Quote>(&parse(ep)).expect("listen typed");
    let peer = Peer::spawn(test, "echo_quotes", &l.endpoint().to_string(), "");
    let mut ch = l.accept_timeout(OP).expect("accept");
    let segment = ch
        .get_ref()
        .mapped_range()
        .expect("a shared-memory channel has a segment");
    let inside = |addr: usize, len: usize| segment.start <= addr && addr + len <= segment.end;
    let size = size_of::<Quote>();
    for i in 0..20u64 {
        let q = Quote {
            seq: i,
            price: i as f64 * 1.5,
            qty: i as u32 * 7,
            flags: [i as u8; 4],
        };
        let mut loan = ch.loan().expect("loan");
        let at = loan.as_ptr() as usize;
        assert!(inside(at, size), "loan at {at:#x} outside {segment:x?}");
        loan.write(q);
        loan.send().expect("send");

        let sample = ch.recv_sample_timeout(OP).expect("recv_sample");
        assert!(sample.is_in_place(), "a Quote sample was copied");
        let at = &raw const *sample as usize;
        assert!(inside(at, size), "sample at {at:#x} outside {segment:x?}");
        assert_eq!(*sample, q);
    }
    drop(ch);
    peer.expect_success();
    drop(l);

    let mut l = ipcx::listen_typed::<Tick, Tick>(&parse(ep)).expect("listen typed");
    let peer = Peer::spawn(test, "echo_ticks", &l.endpoint().to_string(), "");
    let mut ch = l.accept_timeout(OP).expect("accept");
    let segment = ch.get_ref().mapped_range().expect("segment");
    let inside = |addr: usize, len: usize| segment.start <= addr && addr + len <= segment.end;
    let size = size_of::<Tick>();
    for t in ticks().into_iter().take(20) {
        let mut loan = ch.loan().expect("loan");
        assert!(
            inside(loan.as_ptr() as usize, size),
            "a Tick loan is in place too"
        );
        loan.write(t);
        loan.send().expect("send");
        let sample = ch.recv_sample_timeout(OP).expect("recv_sample");
        assert!(
            !sample.is_in_place(),
            "a Tick (bool, enum) must be copied out"
        );
        let at = &raw const *sample as usize;
        assert!(!inside(at, size), "a Tick sample points into the segment");
        assert_eq!(*sample, t);
    }

    // The same for bytes, on the channel underneath.
    let mut raw = ch.into_inner();
    let t = ticks()[9];
    let mut loan = raw.loan(size).expect("loan");
    let at = loan.as_ptr() as usize;
    assert!(
        inside(at, size),
        "byte loan at {at:#x} outside {segment:x?}"
    );
    loan.copy_from_slice(ipcx::core::message::zero_copy_bytes(&t));
    loan.commit().expect("commit");
    let back = raw.recv_in_place().expect("recv_in_place");
    let at = back.as_ptr() as usize;
    assert!(back.is_in_place());
    assert!(
        inside(at, back.len()),
        "bytes at {at:#x} outside {segment:x?}"
    );
    assert_eq!(&back[..], ipcx::core::message::zero_copy_bytes(&t));
    drop(back);
    drop(raw);
    peer.expect_success();
}

/// A loan on a full channel answers `WouldBlock` (from the loan on shared
/// memory, from the commit elsewhere); once the peer is gone, receiving in
/// place and loaning answer `Disconnected`.
fn full_then_gone(test: &'static str, ep: &str) {
    let mut l = ipcx::listen(&parse(ep)).expect("listen");
    let mut peer = Peer::spawn(test, "idle", &l.endpoint().to_string(), "");
    let mut ch = l.accept_timeout(OP).expect("accept");
    let len = ch.max_message_size().min(4096);
    let mut sent = 0u64;
    let full = loop {
        let r = ch.loan_until(len, Deadline::Now).and_then(|mut loan| {
            loan.fill(sent as u8);
            loan.commit()
        });
        match r {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(full, Error::WouldBlock),
        "after {sent} loans: {full}"
    );
    assert!(sent > 0, "not even one loan fitted");

    peer.tell("done");
    match ch.recv_in_place() {
        Err(Error::Disconnected) => {}
        other => panic!(
            "recv_in_place from a peer that left: {:?}",
            other.map(|m| m.len())
        ),
    }
    let gone = loop {
        match ch.loan(len).and_then(|loan| loan.commit()) {
            Ok(()) => {}
            Err(e) => break e,
        }
    };
    assert!(
        matches!(gone, Error::Disconnected),
        "loan to a peer that left: {gone}"
    );
    drop(ch);
    peer.expect_success();
}

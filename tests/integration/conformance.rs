//! The conformance suite: the contract of `ipc_core::transport`, checked on
//! every transport with the two peers in different processes.
//!
//! Each case is written once, as a function of the endpoint generic over
//! the route to the transport (`fn case<R: Route>(test, ep)`, see
//! `util::Route`), and instantiated per transport by `matrix!` (in `util`)
//! twice: through the endpoint's scheme (`ipcx::listen`/`ipcx::connect`,
//! the run-time dispatch) as `conformance::<transport>::<case>`, and
//! through the transport's `Transport` type (`Unix::listen`, …) as
//! `conformance::<transport>::by_type::<case>`; `cargo test -- --list`
//! shows the matrix. The peer is this test binary re-executed to run the
//! same test with a role (see [`run_role`]), so it takes the same route;
//! the parent talks to it through the transport under test, and through
//! the peer's stdin/stdout for test control only. What a case does at the
//! kernel level (bad clients, leftover probes, `util::Reclaim`) goes by
//! the endpoint's scheme on both routes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ipcx::{Channel, Endpoint, Error, Listener, Receiver, Schema, Sender, TypeTag};

use crate::util::{self, Peer, Rng, Route, check_message, make_message, report};

/// Longest a case may run before its watchdog fails it.
const CASE_LIMIT: Duration = Duration::from_secs(240);
/// Longest a survivor may stay blocked after its peer's SIGKILL before the
/// test calls it a hang. (The target is 100 ms; the figure is printed.)
pub(crate) const DEATH_LIMIT: Duration = Duration::from_secs(10);
/// Bound on single operations that must complete.
pub(crate) const OP: Duration = Duration::from_secs(60);

matrix!(conformance, unix => format!("unix:/tmp/{}.sock", crate::util::unique("u")),
    by_type ipcx::backends::unix::Unix;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener listen_in_use
    sigterm_leaves_nothing);

matrix!(conformance, tcp => "tcp://127.0.0.1:0".to_string(),
    by_type ipcx::backends::tcp::Tcp;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener listen_in_use
    sigterm_leaves_nothing);

matrix!(conformance, fifo => format!("fifo:/tmp/{}", crate::util::unique("f")),
    by_type ipcx::backends::fifo::Fifo;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener listen_in_use
    sigterm_leaves_nothing);

matrix!(conformance, mq => format!("mq:/{}", crate::util::unique("m")),
    by_type ipcx::backends::mq::Mq;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener listen_in_use
    sigterm_leaves_nothing);

matrix!(conformance, sysv_mq => format!("sysv-mq:/tmp/{}", crate::util::unique("s")),
    by_type ipcx::backends::sysv_mq::SysvMq;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener listen_in_use
    sigterm_leaves_nothing);

matrix!(conformance, shm => format!("shm:/{}", crate::util::unique("h")),
    by_type ipcx::backends::shm::Shm;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener listen_in_use
    sigterm_leaves_nothing);

matrix!(conformance, sysv_shm => format!("sysv-shm:/tmp/{}", crate::util::unique("v")),
    by_type ipcx::backends::shm::SysvShm;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener listen_in_use
    sigterm_leaves_nothing);

// nats:// runs against a nats-server this test process starts
// (`util/nats.rs`). `max_message_size` is explicit because the default
// (1 MiB) gives way to the server's max_payload less the frame header;
// heartbeats every 200 ms bound the detection of a killed peer to 800 ms.
// Left out, because the mechanism makes it meaningless:
// - listen_in_use: listeners of one name form a queue group (connections
//   spread over them, which is how rpc servers scale), so a second
//   listener is not AddrInUse;
#[cfg(feature = "nats")]
matrix!(conformance, nats => crate::util::nats::endpoint("c", "max_message_size=1048000&heartbeat=200ms"),
    by_type ipcx::backends::nats::Nats;
    boundaries stress duplex backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind restart_after_kill
    handshake_mismatch bad_clients_do_not_stall_accept send_after_disconnect
    no_listener no_listener_after_kill wait_for_listener sigterm_leaves_nothing);

// pipe: connects one parent to the child it spawns (`ipcx::spawn`), so
// [`open_pair`] spawns the peer instead of listening. It runs through the
// endpoint only: the parent's end is made by `ipcx::spawn`, not by a
// `Transport` (`pipe::Pipe::listen` refuses, as there is nothing to listen
// on), so `pipe::Pipe` cannot run a case alone. Left out, because the
// mechanism makes them meaningless:
// - many_clients: a pipe pair joins exactly two processes;
// - listener_killed: there is no listener; the death of either end is the
//   same EOF/EPIPE that peer_killed_in_recv and peer_killed_in_send check;
// - restart_after_kill: anonymous pipes have no name to restart on and
//   vanish with their last holder;
// - sigterm_leaves_nothing: anonymous pipes have no name to leave behind;
// - bad_clients_do_not_stall_accept, no_listener, no_listener_after_kill,
//   wait_for_listener, listen_in_use: there is no rendezvous for a stranger
//   to open, to find empty or to take; the pipes are made by the parent
//   and inherited by its child only.
matrix!(conformance, pipe => "pipe:".to_string(), by_endpoint;
    boundaries stress duplex backpressure peer_killed_in_recv
    peer_killed_in_send nothing_left_behind handshake_mismatch
    send_after_disconnect);

use crate::util::parse;

#[track_caller]
pub(crate) fn listen<R: Route>(ep: &str) -> R::Listener {
    R::listen(&parse(ep)).unwrap_or_else(|e| panic!("listen {ep}: {e}"))
}

#[track_caller]
pub(crate) fn connect<R: Route>(ep: &str) -> R::Channel {
    R::connect(&parse(ep)).unwrap_or_else(|e| panic!("connect {ep}: {e}"))
}

#[track_caller]
pub(crate) fn accept<L: Listener>(l: &mut L) -> L::Channel {
    l.accept_timeout(OP)
        .unwrap_or_else(|e| panic!("accept on {}: {e}", l.endpoint()))
}

/// Connects this process to a new peer process playing `role`: listens on
/// `ep` and accepts the peer's connection, or for `pipe:` spawns the peer
/// already connected. With `peer_max` the peer's endpoint carries that
/// `max_message_size`. The listener, if any, is returned to keep it alive.
#[track_caller]
pub(crate) fn open_pair<R: Route>(
    test: &str,
    role: &str,
    ep: &str,
    peer_max: Option<usize>,
    arg: &str,
) -> (Peer, R::Channel, Option<R::Listener>) {
    let endpoint = parse(ep);
    let peer_at = |e: &Endpoint| {
        let mut e = e.clone();
        if let Some(max) = peer_max {
            e.options_mut().max_message_size = max;
        }
        e.to_string()
    };
    if endpoint.scheme() == ipcx::Scheme::Pipe {
        let at = peer_at(&endpoint);
        let (child, ch) = R::spawn_with(
            Peer::command(test, role, &at, arg),
            &endpoint,
            &Schema::bytes(),
        )
        .unwrap_or_else(|e| panic!("spawn over {ep}: {e}"));
        return (Peer::adopt(child), ch, None);
    }
    let mut l = listen::<R>(ep);
    let at = peer_at(l.endpoint());
    let peer = Peer::spawn(test, role, &at, arg);
    let ch = accept(&mut l);
    (peer, ch, Some(l))
}

#[track_caller]
pub(crate) fn recv(ch: &mut impl Receiver) -> Vec<u8> {
    ch.recv_timeout(OP).unwrap_or_else(|e| panic!("recv: {e}"))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + len) as u8).collect()
}

pub(crate) fn seq_message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0xA5u8; len.max(8)];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

pub(crate) fn seq_of(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().expect("8-byte header"))
}

// ---------------------------------------------------------------- roles --

/// The peer side of the cases, chosen by the role in the environment.
fn run_role<R: Route>() {
    let (role, ep, arg) = util::peer_params();
    match role.as_str() {
        "echo" => {
            let mut ch = connect::<R>(&ep);
            report(format!("max={}", ch.max_message_size()));
            let max = ch.max_message_size();
            match ch.send(&vec![0u8; max + 1]) {
                Err(Error::MessageTooLarge { size, max: m }) if size == max + 1 && m == max => {
                    report("too_large=ok")
                }
                other => report(format!("too_large={other:?}")),
            }
            echo(&mut ch);
        }
        "serve-one" => {
            let mut l = listen::<R>(&ep);
            report(format!("endpoint={}", l.endpoint()));
            let mut ch = accept(&mut l);
            echo(&mut ch);
        }
        "ping" => {
            let mut ch = connect::<R>(&ep);
            for i in 0..10u64 {
                let m = seq_message(i, 100);
                ch.send(&m).expect("send");
                assert_eq!(recv(&mut ch), m);
            }
        }
        "stress-send" => {
            let (n, seed) = arg.split_once(',').expect("N,seed");
            let n: u64 = n.parse().expect("N");
            let mut rng = Rng::new(seed.parse().expect("seed"));
            let mut ch = connect::<R>(&ep);
            for i in 0..n {
                let len = stress_len(&mut rng);
                ch.send(&make_message(&mut rng, i, len)).expect("send");
            }
            report(format!("sent={n}"));
        }
        "duplex" => {
            let n: u64 = arg.parse().expect("N");
            let (tx, rx) = connect::<R>(&ep).split();
            duplex_both_ways(tx, rx, n, 2);
            report("ok");
        }
        "slow-reader" => {
            let mut ch = connect::<R>(&ep);
            report("connected");
            util::await_parent();
            let mut count = 0u64;
            loop {
                match ch.recv_timeout(OP) {
                    Ok(m) => {
                        assert_eq!(seq_of(&m), count, "backpressure: message out of order");
                        count += 1;
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
        "listen-hold-term" => {
            let _stop = ipcx::shutdown::on_signals().expect("signal handlers");
            let mut l = listen::<R>(&ep);
            report(format!("endpoint={}", l.endpoint()));
            let _ch = accept(&mut l);
            report("accepted");
            util::await_parent();
        }
        "listen-hold" => {
            let mut l = listen::<R>(&ep);
            report(format!("endpoint={}", l.endpoint()));
            let _ch = accept(&mut l);
            report("accepted");
            util::await_parent();
        }
        "client" => {
            let (id, m) = arg.split_once(',').expect("id,M");
            let m: u32 = m.parse().expect("M");
            let mut ch = connect::<R>(&ep);
            for i in 0..m {
                let req = format!("{id}:{i}");
                ch.send(req.as_bytes()).expect("send");
                let reply = recv(&mut ch);
                assert_eq!(
                    reply,
                    format!("echo {req}").as_bytes(),
                    "client {id} got another's reply"
                );
            }
            report("done");
        }
        "connect-schema" => {
            let schema = match arg.as_str() {
                "schema" => Schema::new(TypeTag::new("Quote", 33), TypeTag::new("Order", 11)),
                "version" => Schema::new(TypeTag::new("Ack", 22), TypeTag::new("Order", 11))
                    .with_protocol_version(99),
                _ => Schema::new(TypeTag::new("Ack", 22), TypeTag::new("Order", 11)),
            };
            match R::connect_with(&parse(&ep), &schema) {
                Ok(ch) => report(format!("ok peer_recv={}", ch.peer().recv.name)),
                Err(e) => report(format!("err={e}")),
            }
        }
        "connect-no-listener" => match R::connect(&parse(&ep)) {
            Err(e @ Error::NoListener { .. }) => {
                report("result=NoListener");
                if let Error::NoListener { endpoint, .. } = &e {
                    report(format!("endpoint={endpoint}"));
                }
                report(format!("message={e}"));
                report(format!("fatal={}", e.is_fatal()));
            }
            other => report(format!("result={:?}", other.map(|_| "connected"))),
        },
        "wait-ping" => {
            let r = ep
                .parse::<Endpoint>()
                .map_err(Error::from)
                .and_then(|e| R::connect(&e))
                .and_then(|mut ch| {
                    ch.send(b"early bird")?;
                    ch.recv_timeout(OP)
                });
            match r {
                Ok(m) if m == b"early bird" => report("result=echoed"),
                other => report(format!("result={other:?}")),
            }
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

/// Echoes every message back until the peer leaves.
fn echo(ch: &mut impl Channel) {
    let mut buf = Vec::new();
    loop {
        match ch.recv_until(&mut buf, ipcx::Deadline::Never) {
            Ok(()) => match ch.send(&buf) {
                Ok(()) => {}
                Err(Error::Disconnected) => return,
                Err(e) => panic!("echo send: {e}"),
            },
            Err(Error::Disconnected) => return,
            Err(e) => panic!("echo recv: {e}"),
        }
    }
}

fn stress_len(rng: &mut Rng) -> usize {
    (match rng.below(100) {
        0 => rng.below(64 * 1024),
        1..=9 => rng.below(4096),
        _ => rng.below(256),
    }) as usize
}

/// Sends `n` numbered messages on one thread while receiving `n` on this
/// one; checks order and content.
fn duplex_both_ways(mut tx: impl Sender + 'static, mut rx: impl Receiver, n: u64, seed: u64) {
    let sender = std::thread::spawn(move || {
        let mut rng = Rng::new(seed);
        for i in 0..n {
            let len = rng.below(2048) as usize;
            tx.send(&make_message(&mut rng, i, len))
                .expect("duplex send");
        }
        tx
    });
    for i in 0..n {
        let m = recv(&mut rx);
        assert_eq!(check_message(&m), i, "duplex: out of order");
    }
    let _tx = sender.join().expect("duplex sender");
}

// ---------------------------------------------------------------- cases --

/// 0 bytes, 1 byte, exactly max, max+1 refused on both sides; the smaller
/// of two peers' limits wins.
fn boundaries<R: Route>(test: &'static str, ep: &str) {
    let (peer, mut ch, l) = open_pair::<R>(test, "echo", ep, None, "");
    let max = ch.max_message_size();
    assert_eq!(max, parse(ep).options().max_message_size);
    assert_eq!(peer.expect_value("max"), max.to_string());
    assert_eq!(
        peer.expect_value("too_large"),
        "ok",
        "the peer's oversize send was not refused"
    );
    for size in [0, 1, 2, 4095, 4096, 4097, 65536, max - 1, max] {
        let m = pattern(size);
        ch.send(&m).unwrap_or_else(|e| panic!("send {size}: {e}"));
        let back = recv(&mut ch);
        assert_eq!(back.len(), size, "length of a {size}-byte message");
        assert!(back == m, "content of a {size}-byte message");
    }
    match ch.send(&vec![1u8; max + 1]) {
        Err(Error::MessageTooLarge { size, max: m }) => {
            assert_eq!((size, m), (max + 1, max));
        }
        other => panic!("oversize send gave {other:?}"),
    }
    // A refused message moved nothing: the channel carries on.
    ch.send(b"after").unwrap();
    assert_eq!(recv(&mut ch), b"after");
    drop(ch);
    peer.expect_success();

    // A peer with a smaller limit: both sides use it.
    drop(l);
    let (peer, mut ch, _l) = open_pair::<R>(test, "echo", ep, Some(1000), "");
    assert_eq!(ch.max_message_size(), 1000);
    assert_eq!(peer.expect_value("max"), "1000");
    assert_eq!(peer.expect_value("too_large"), "ok");
    ch.send(&pattern(1000)).unwrap();
    assert_eq!(recv(&mut ch), pattern(1000));
    assert!(matches!(
        ch.send(&pattern(1001)),
        Err(Error::MessageTooLarge {
            size: 1001,
            max: 1000
        })
    ));
    drop(ch);
    peer.expect_success();
}

/// 200,000 messages of random sizes, each checked: none lost, duplicated,
/// reordered or corrupted, and nothing after the last.
fn stress<R: Route>(test: &'static str, ep: &str) {
    const N: u64 = 200_000;
    let seed = u64::from(std::process::id());
    let (peer, mut ch, _l) = open_pair::<R>(test, "stress-send", ep, None, &format!("{N},{seed}"));
    let mut rng = Rng::new(seed);
    let mut buf = Vec::new();
    for i in 0..N {
        let len = stress_len(&mut rng);
        let expected = make_message(&mut rng, i, len);
        ch.recv_until(&mut buf, ipcx::Deadline::after(OP))
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        if buf != expected {
            let seq = check_message(&buf);
            panic!(
                "message {i}: got message {seq} of {} bytes, expected {} bytes",
                buf.len(),
                expected.len()
            );
        }
    }
    assert_eq!(peer.expect_value("sent"), N.to_string());
    match ch.recv_timeout(OP) {
        Err(Error::Disconnected) => {}
        other => panic!("after the last message: {other:?}"),
    }
    peer.expect_success();
}

/// Both sides send and receive at once through split halves on two threads.
fn duplex<R: Route>(test: &'static str, ep: &str) {
    const N: u64 = 20_000;
    let (peer, ch, _l) = open_pair::<R>(test, "duplex", ep, None, &N.to_string());
    let (tx, rx) = ch.split();
    duplex_both_ways(tx, rx, N, 2);
    assert_eq!(peer.expect_line(), "ok");
    peer.expect_success();
}

/// A slow reader blocks the writer; `try_send` reports a full channel,
/// timeouts fire, and every accepted message arrives.
fn backpressure<R: Route>(test: &'static str, ep: &str) {
    let (mut peer, mut ch, _l) = open_pair::<R>(test, "slow-reader", ep, None, "");
    assert_eq!(peer.expect_line(), "connected");

    assert!(
        matches!(ch.try_recv(), Err(Error::WouldBlock)),
        "try_recv on an empty channel"
    );
    assert!(
        matches!(
            ch.recv_timeout(Duration::from_millis(50)),
            Err(Error::Timeout)
        ),
        "recv_timeout on an empty channel"
    );

    let mut seq = 0u64;
    loop {
        assert!(
            seq < 1_000_000,
            "try_send accepted a million messages and never reported full"
        );
        match ch.try_send(&seq_message(seq, 1024)) {
            Ok(()) => seq += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("try_send: {e}"),
        }
    }
    assert!(seq > 0, "the channel was full before the first message");
    assert!(
        matches!(
            ch.send_timeout(&seq_message(seq, 1024), Duration::from_millis(50)),
            Err(Error::Timeout)
        ),
        "send_timeout on a full channel"
    );

    // A blocking writer must stall while nobody reads. (TCP grows its
    // windows for a while, so "full" is reached by sending until the writer
    // stops making progress.)
    let (mut tx, rx) = ch.split();
    let progress = Arc::new(AtomicU64::new(seq));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (progress, stop) = (progress.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut s = seq;
            while !stop.load(Ordering::SeqCst) {
                tx.send(&seq_message(s, 1024)).expect("blocking send");
                s += 1;
                progress.store(s, Ordering::SeqCst);
            }
            (tx, s)
        })
    };
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut last = progress.load(Ordering::SeqCst);
    let mut still_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = progress.load(Ordering::SeqCst);
        if now != last {
            last = now;
            still_since = Instant::now();
        } else if still_since.elapsed() >= Duration::from_millis(300) {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the writer never blocked although nobody read"
        );
    }
    stop.store(true, Ordering::SeqCst);
    peer.tell("go");
    let (tx, sent) = writer.join().expect("writer thread");
    seq = sent;
    drop(tx);
    drop(rx);
    assert_eq!(
        peer.expect_value("count"),
        seq.to_string(),
        "messages accepted vs received"
    );
    peer.expect_success();
}

/// Eight clients connected at once, each getting its own replies.
fn many_clients<R: Route>(test: &'static str, ep: &str) {
    const CLIENTS: usize = 8;
    const M: u32 = 200;
    // Eight pairs of POSIX queues of the default size take 680 KB of the
    // 800 KB that RLIMIT_MSGQUEUE gives a user by default (`ulimit -q`),
    // which leaves too little for the mq: cases running beside this one
    // (each runs on two routes); the messages here are under 32 bytes.
    let ep = if parse(ep).scheme() == ipcx::Scheme::Mq {
        util::with_option(ep, "max_message_size=256")
    } else {
        ep.to_string()
    };
    let mut l = listen::<R>(&ep);
    let at = l.endpoint().to_string();
    let peers: Vec<Peer> = (0..CLIENTS)
        .map(|id| Peer::spawn(test, "client", &at, &format!("{id},{M}")))
        .collect();
    let conns: Vec<R::Channel> = (0..CLIENTS).map(|_| accept(&mut l)).collect();
    let servers: Vec<_> = conns
        .into_iter()
        .map(|mut ch| {
            std::thread::spawn(move || {
                let mut served = 0u32;
                loop {
                    match ch.recv_timeout(OP) {
                        Ok(m) => {
                            let mut reply = b"echo ".to_vec();
                            reply.extend_from_slice(&m);
                            ch.send(&reply).expect("reply");
                            served += 1;
                        }
                        Err(Error::Disconnected) => return served,
                        Err(e) => panic!("server: {e}"),
                    }
                }
            })
        })
        .collect();
    for p in peers {
        assert_eq!(p.expect_line(), "done");
        p.expect_success();
    }
    for s in servers {
        assert_eq!(s.join().expect("server thread"), M);
    }
}

/// Waits for a blocked operation's result after its peer was killed.
#[track_caller]
pub(crate) fn expect_disconnect_after_kill(
    peer: &mut Peer,
    rx: mpsc::Receiver<Result<(), String>>,
    what: &str,
) {
    let killed = Instant::now();
    peer.kill();
    match rx.recv_timeout(DEATH_LIMIT) {
        Ok(Err(e)) if e == Error::Disconnected.to_string() => {
            eprintln!("{what}: Disconnected {:?} after SIGKILL", killed.elapsed());
        }
        Ok(other) => {
            panic!("{what} after the peer's SIGKILL gave {other:?}, expected Disconnected")
        }
        Err(_) => panic!("{what} still blocked {DEATH_LIMIT:?} after the peer's SIGKILL"),
    }
}

/// The survivor blocked in `recv` gets `Disconnected` when its peer is killed.
fn peer_killed_in_recv<R: Route>(test: &'static str, ep: &str) {
    let (mut peer, mut ch, _l) = open_pair::<R>(test, "hold", ep, None, "");
    assert_eq!(peer.expect_line(), "connected");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(ch.recv().map(|_| ()).map_err(|e| e.to_string()));
    });
    std::thread::sleep(Duration::from_millis(50));
    expect_disconnect_after_kill(&mut peer, rx, "recv");
}

/// The survivor blocked in `send` on a full channel gets `Disconnected`
/// when its peer is killed.
fn peer_killed_in_send<R: Route>(test: &'static str, ep: &str) {
    let (mut peer, mut ch, _l) = open_pair::<R>(test, "hold", ep, None, "");
    assert_eq!(peer.expect_line(), "connected");
    let mut n = 0;
    while ch.try_send(&seq_message(n, 4096)).is_ok() {
        n += 1;
        assert!(n < 1_000_000, "the channel never filled");
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Keeps sending: should the kernel find more room meanwhile (TCP
        // grows its windows), the next send blocks again.
        let end = loop {
            if let Err(e) = ch.send(&seq_message(n, 4096)) {
                break e;
            }
            n += 1;
        };
        let _ = tx.send(Err(end.to_string()));
    });
    std::thread::sleep(Duration::from_millis(50));
    expect_disconnect_after_kill(&mut peer, rx, "send");
}

/// A client blocked in `recv` gets `Disconnected` when the listener's
/// process is killed.
fn listener_killed<R: Route>(test: &'static str, ep: &str) {
    let mut peer = Peer::spawn(test, "listen-hold", ep, "");
    let at = peer.expect_value("endpoint");
    let mut ch = connect::<R>(&at);
    assert_eq!(peer.expect_line(), "accepted");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let r = ch.recv().map(|_| ()).map_err(|e| e.to_string());
        // Our end goes before the result, so the leftover check below sees
        // only what the dead listener left.
        drop(ch);
        let _ = tx.send(r);
    });
    std::thread::sleep(Duration::from_millis(50));
    let dead = peer.pid();
    expect_disconnect_after_kill(&mut peer, rx, "recv (listener killed)");
    // What the dead listener left is reclaimed by the next one on its
    // endpoint, which removes it all when it closes.
    let again = if at.contains(":0") {
        ep.to_string()
    } else {
        at
    };
    drop(listen::<R>(&again));
    util::assert_nothing_left(
        &again,
        &[dead],
        "after relistening on a killed listener's endpoint",
    );
}

/// A service stopped with SIGTERM (as systemd, Docker or Kubernetes stop
/// one) that opted in with `ipcx::shutdown::on_signals` leaves nothing
/// behind: not its listener's name, not its side of a connection. (Without
/// it, `unix:`, `fifo:`, `mq:` and `sysv-mq:` leave their names behind.)
fn sigterm_leaves_nothing<R: Route>(test: &'static str, ep: &str) {
    let mut peer = Peer::spawn(test, "listen-hold-term", ep, "");
    let at = peer.expect_value("endpoint");
    let mut ch = connect::<R>(&at);
    assert_eq!(peer.expect_line(), "accepted");
    let dead = peer.pid();
    let status = peer.terminate();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGTERM),
        "the service ends as SIGTERM would end it: {status:?}"
    );
    match ch.recv_timeout(OP) {
        Err(Error::Disconnected) => {}
        other => panic!("the client after the service's SIGTERM: {other:?}"),
    }
    drop(ch);
    util::assert_nothing_left(&at, &[dead], "after the service's SIGTERM");
}

/// Runs a listener and a client in two processes, and returns their pids.
fn serve_and_ping(test: &'static str, ep: &str) -> Vec<u32> {
    let server = Peer::spawn(test, "serve-one", ep, "");
    let at = server.expect_value("endpoint");
    let client = Peer::spawn(test, "ping", &at, "");
    let pids = vec![server.pid(), client.pid()];
    client.expect_success();
    server.expect_success();
    pids
}

/// Normal close, and a client's SIGKILL, leave no kernel object behind.
/// Listener and clients all run in child processes, so the probe can tell
/// this case's System V objects from those of cases running beside it.
fn nothing_left_behind<R: Route>(test: &'static str, ep: &str) {
    if parse(ep).scheme() == ipcx::Scheme::Pipe {
        // No listener: the parent's end is this process, so only the
        // peer's objects can be told apart from other cases'.
        let (peer, mut ch, _) = open_pair::<R>(test, "echo", ep, None, "");
        assert_eq!(peer.expect_value("max"), ch.max_message_size().to_string());
        ch.send(b"ping").unwrap();
        assert_eq!(recv(&mut ch), b"ping");
        drop(ch);
        let pid = peer.pid();
        peer.expect_success();
        util::assert_nothing_left(ep, &[pid], "after a normal close");
        let (mut peer, mut ch, _) = open_pair::<R>(test, "hold", ep, None, "");
        assert_eq!(peer.expect_line(), "connected");
        let pid = peer.pid();
        peer.kill();
        assert!(matches!(
            ch.recv_timeout(DEATH_LIMIT),
            Err(Error::Disconnected)
        ));
        drop(ch);
        util::assert_nothing_left(ep, &[pid], "after the peer's SIGKILL");
        return;
    }
    let pids = serve_and_ping(test, ep);
    util::assert_nothing_left(ep, &pids, "after a normal close");

    let server = Peer::spawn(test, "serve-one", ep, "");
    let at = server.expect_value("endpoint");
    let mut client = Peer::spawn(test, "hold", &at, "");
    assert_eq!(client.expect_line(), "connected");
    let pids = vec![server.pid(), client.pid()];
    client.kill();
    server.expect_success();
    util::assert_nothing_left(ep, &pids, "after a client's SIGKILL");
}

/// After the listener's SIGKILL, a new listener on the same endpoint works
/// without manual cleanup and reclaims what the dead one left.
fn restart_after_kill<R: Route>(test: &'static str, ep: &str) {
    let mut first = Peer::spawn(test, "listen-hold", ep, "");
    let at = first.expect_value("endpoint");
    let mut ch = connect::<R>(&at);
    assert_eq!(first.expect_line(), "accepted");
    let dead = first.pid();
    first.kill();
    match ch.recv_timeout(DEATH_LIMIT) {
        Err(Error::Disconnected) => {}
        other => panic!("after the listener's SIGKILL: {other:?}"),
    }
    drop(ch);
    // The same endpoint (for tcp:…:0 the same resolved address when free).
    let again = if at.contains(":0") {
        ep.to_string()
    } else {
        at.clone()
    };
    let mut pids = serve_and_ping(test, &again);
    pids.push(dead);
    util::assert_nothing_left(&again, &pids, "after a listener's SIGKILL and a restart");
}

/// Different message types or protocol versions fail the connect on both
/// sides: the client's error names both; the listener refuses off the
/// accept path (it logs the reason) and hands out nothing. It carries on.
fn handshake_mismatch<R: Route>(test: &'static str, ep: &str) {
    let schema = Schema::new(TypeTag::new("Order", 11), TypeTag::new("Ack", 22));
    if parse(ep).scheme() == ipcx::Scheme::Pipe {
        return handshake_mismatch_spawned::<R>(test, ep, &schema);
    }
    let mut l = R::listen_with(&parse(ep), &schema).expect("listen");
    let at = l.endpoint().to_string();

    // A refused client is never returned by accept (the listener logs it
    // and goes on): the client sees the refusal, the listener no channel.
    let peer = Peer::spawn(test, "connect-schema", &at, "schema");
    let e = peer.expect_value("err");
    assert!(e.contains("Quote") && e.contains("Ack"), "client: {e}");
    peer.expect_success();
    assert_nothing_accepted(&mut l, "a mismatched schema");

    let peer = Peer::spawn(test, "connect-schema", &at, "version");
    let e = peer.expect_value("err");
    assert!(e.contains("99") && e.contains("protocol"), "client: {e}");
    peer.expect_success();
    assert_nothing_accepted(&mut l, "protocol version 99");

    let peer = Peer::spawn(test, "connect-schema", &at, "match");
    let ch = l
        .accept_timeout(OP)
        .expect("a matching client after two refusals");
    assert_eq!(ch.peer().send.name, "Ack");
    assert_eq!(peer.expect_line(), "ok peer_recv=Ack");
    peer.expect_success();
}

/// The listener has no connection to hand out: a refused client never
/// reaches `accept`, neither as a connection nor as an error.
#[track_caller]
fn assert_nothing_accepted<L>(l: &mut L, what: &str)
where
    L: Listener<Channel: std::fmt::Debug>,
{
    match l.accept_until(ipcx::Deadline::Now) {
        Err(Error::WouldBlock) => {}
        other => panic!("the listener handed out a client with {what}: {other:?}"),
    }
}

/// `handshake_mismatch` for `pipe:`: the spawning parent and its child
/// refuse each other; the child's report is read from its output after
/// `spawn_with` has reaped it.
fn handshake_mismatch_spawned<R: Route>(test: &'static str, ep: &str, schema: &Schema) {
    let endpoint = parse(ep);
    for (arg, parent_sees, child_sees) in [
        ("schema", ["Ack", "Quote"], ["Quote", "Ack"]),
        ("version", ["99", "protocol"], ["99", "protocol"]),
    ] {
        let out = std::env::temp_dir().join(util::unique("hs"));
        let file = std::fs::File::create(&out).expect("report file");
        let mut cmd = Peer::command(test, "connect-schema", ep, arg);
        cmd.stdout(file);
        match R::spawn_with(cmd, &endpoint, schema) {
            Ok(_) => panic!("spawn over {ep} accepted a child announcing another {arg}"),
            Err(e) => {
                let text = e.to_string();
                assert!(
                    parent_sees.iter().all(|w| text.contains(w)),
                    "parent: {text}"
                );
            }
        }
        let report = std::fs::read_to_string(&out).unwrap_or_default();
        let _ = std::fs::remove_file(&out);
        let line = report
            .lines()
            .find_map(|l| l.strip_prefix("PEER:err="))
            .unwrap_or_else(|| panic!("child reported no refusal: {report:?}"));
        assert!(child_sees.iter().all(|w| line.contains(w)), "child: {line}");
    }
    let (peer, ch) = {
        let (child, ch) = R::spawn_with(
            Peer::command(test, "connect-schema", ep, "match"),
            &endpoint,
            schema,
        )
        .expect("a matching child");
        (Peer::adopt(child), ch)
    };
    assert_eq!(ch.peer().send.name, "Ack");
    assert_eq!(peer.expect_line(), "ok peer_recv=Ack");
    peer.expect_success();
}

// ------------------------------------------------- the connection layer --

/// How long a client may take to learn that nothing listens. A connect
/// that waits out its `connect_timeout` (set to a minute) instead of
/// saying so fails this.
const NO_LISTENER_LIMIT: Duration = Duration::from_secs(20);
/// How long `accept` may take to return the one good client among bad
/// ones. The listener's `connect_timeout` is set to 30 s, so a listener
/// that runs the bad clients' handshakes one after the other instead of
/// beside `accept` needs 30 s per silent client and fails this.
const ACCEPT_AMONG_BAD: Duration = Duration::from_secs(60);

/// Silent and malformed clients, made at the kernel level and kept open,
/// cost the listener nothing: `accept` returns the one real client that
/// came after them, and never an error of theirs.
fn bad_clients_do_not_stall_accept<R: Route>(test: &'static str, ep: &str) {
    let mut reclaim = util::Reclaim::new(ep);
    let mut l = listen::<R>(&util::with_option(ep, "connect_timeout=30s"));
    let at = l.endpoint().to_string();
    let bad = util::bad_clients::open(l.endpoint());
    let peer = Peer::spawn(test, "ping", &at, "");
    reclaim.client(peer.pid());
    let started = Instant::now();
    let mut ch = match l.accept_timeout(ACCEPT_AMONG_BAD) {
        Ok(ch) => ch,
        Err(e) => panic!(
            "accept with bad clients waiting ({}) gave {e:?} after {:?} instead of the good client",
            bad.described.join(", "),
            started.elapsed()
        ),
    };
    assert_eq!(
        ch.peer().pid,
        peer.pid(),
        "accept returned another connection than the good client's"
    );
    echo(&mut ch);
    peer.expect_success();
    // The bad clients' failures never come out of accept.
    match l.accept_timeout(Duration::from_millis(500)) {
        Err(Error::Timeout) => {}
        other => panic!(
            "accept with only bad clients waiting gave {other:?}, expected Timeout ({})",
            bad.described.join(", ")
        ),
    }
    drop(bad);
}

/// A FIFO connection request whose process is gone before its hello: the
/// listener's handshake for it ends within moments, not at its
/// `connect_timeout` (30 s here). The listener looks for the hello
/// without polling the FIFO and checks that the requester lives.
#[test]
fn fifo_request_of_a_gone_process_ends_at_once() {
    const TEST: &str = "fifo_request_of_a_gone_process_ends_at_once";
    util::watchdog(Duration::from_secs(120), TEST, || {
        let path = format!("/tmp/{}", util::unique("fg"));
        let ep: ipcx::Endpoint = format!("fifo:{path}?connect_timeout=30s").parse().unwrap();
        let _reclaim = util::Reclaim::new(&ep.to_string());
        let mut l = ipcx::listen(&ep).expect("listen");
        let mut gone = std::process::Command::new("true")
            .spawn()
            .expect("spawn true");
        let pid = gone.id();
        gone.wait().expect("wait");
        let started = Instant::now();
        let bad = util::bad_clients::fifo_request_from(&path, pid);
        while l.refused() == 0 && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            l.refused(),
            1,
            "{:?} after {:?}",
            bad.described,
            started.elapsed()
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the handshake took {:?}",
            started.elapsed()
        );
        assert!(matches!(
            l.accept_timeout(Duration::from_millis(100)),
            Err(Error::Timeout)
        ));
        drop(bad);
    });
}

/// How a test ends its peer.
#[derive(Debug, Clone, Copy)]
enum End {
    /// SIGKILL.
    Kill,
    /// The peer drops its channel and exits.
    Close,
}

#[track_caller]
fn end_peer(mut peer: Peer, how: End) {
    match how {
        End::Kill => peer.kill(),
        End::Close => {
            peer.tell("go");
            peer.expect_success();
        }
    }
}

#[track_caller]
fn expect_disconnected<T: std::fmt::Debug>(r: ipcx::Result<T>, what: &str) {
    match r {
        Err(Error::Disconnected) => {}
        other => panic!("{what} gave {other:?}, expected Err(Disconnected)"),
    }
}

/// Every send a disconnected sender is asked for: small and large, blocking,
/// `try_` and timed.
fn sends_all_disconnected(tx: &mut impl Sender, what: &str) {
    let max = tx.max_message_size();
    for size in [1, 0, 100, 64 * 1024, max, 1] {
        expect_disconnected(
            tx.send(&pattern(size)),
            &format!("{what}: send of {size} bytes"),
        );
    }
    expect_disconnected(tx.try_send(b"x"), &format!("{what}: try_send"));
    expect_disconnected(
        tx.send_timeout(&pattern(4096), Duration::from_millis(100)),
        &format!("{what}: send_timeout"),
    );
    expect_disconnected(
        tx.send_timeout(&pattern(max), Duration::from_millis(100)),
        &format!("{what}: send_timeout of {max} bytes"),
    );
}

fn recvs_all_disconnected(rx: &mut impl Receiver, what: &str) {
    expect_disconnected(rx.recv(), &format!("{what}: recv"));
    expect_disconnected(rx.try_recv(), &format!("{what}: try_recv"));
    expect_disconnected(
        rx.recv_timeout(Duration::from_millis(100)),
        &format!("{what}: recv_timeout"),
    );
}

/// Once a channel has seen `Disconnected`, every operation on it returns
/// `Disconnected`: sends of any size, `try_send`, `send_timeout`, receives;
/// whether the peer was killed or closed, and on split halves (the sender
/// half, on another thread, after the receiver half saw it).
fn send_after_disconnect<R: Route>(test: &'static str, ep: &str) {
    let _reclaim = util::Reclaim::new(ep);
    for how in [End::Kill, End::Close] {
        let (peer, mut ch, _l) = open_pair::<R>(test, "hold", ep, None, "");
        assert_eq!(peer.expect_line(), "connected");
        end_peer(peer, how);
        expect_disconnected(
            ch.recv_timeout(DEATH_LIMIT),
            &format!("recv after the peer's {how:?}"),
        );
        let what = format!("after the peer's {how:?} and a Disconnected recv");
        util::watchdog(OP, &what.clone(), move || {
            sends_all_disconnected(&mut ch, &what);
            recvs_all_disconnected(&mut ch, &what);
            sends_all_disconnected(&mut ch, &format!("{what}, again"));
        });
    }

    let (mut peer, ch, _l) = open_pair::<R>(test, "hold", ep, None, "");
    assert_eq!(peer.expect_line(), "connected");
    let (mut tx, mut rx) = ch.split();
    peer.kill();
    expect_disconnected(
        rx.recv_timeout(DEATH_LIMIT),
        "the receiver half's recv after the peer's SIGKILL",
    );
    let what = "the sender half, after the receiver half saw Disconnected";
    util::watchdog(OP, what, move || {
        sends_all_disconnected(&mut tx, what);
        tx
    });
    recvs_all_disconnected(&mut rx, "the receiver half, after Disconnected");
}

/// Connects to `ep` (with a minute of `connect_timeout`) where nothing
/// listens, from a client process: `NoListener`, naming the endpoint, and
/// at once.
#[track_caller]
fn expect_no_listener(test: &'static str, ep: &str, when: &str, reclaim: &mut util::Reclaim) {
    let client = util::with_option(ep, "connect_timeout=60s");
    let address = parse(&client).address().to_string();
    let what = format!("connect to {ep} {when}");
    let peer = Peer::spawn(test, "connect-no-listener", &client, "");
    reclaim.client(peer.pid());
    match peer.value_within("result", NO_LISTENER_LIMIT) {
        Some(r) if r == "NoListener" => {}
        Some(other) => panic!("{what} gave {other}, expected Err(NoListener)"),
        None => panic!(
            "{what} did not return within {NO_LISTENER_LIMIT:?} (waiting out connect_timeout?)"
        ),
    }
    let endpoint = peer.expect_value("endpoint");
    assert!(
        endpoint.contains(&address),
        "{what}: NoListener names {endpoint:?}, not {address}"
    );
    let message = peer.expect_value("message");
    assert!(message.contains(&address), "{what}: {message}");
    assert_eq!(
        peer.expect_value("fatal"),
        "true",
        "{what}: NoListener is not fatal"
    );
    peer.expect_success();
}

/// Connecting where nothing ever listened is `NoListener`, at once.
fn no_listener<R: Route>(test: &'static str, ep: &str) {
    let mut reclaim = util::Reclaim::new(ep);
    if parse(ep).scheme() == ipcx::Scheme::Tcp {
        // Not port 0: a port where a socket is bound and not listening.
        let (_bound, address) = util::refusing_tcp_address();
        let ep = format!("tcp://{address}");
        return expect_no_listener(test, &ep, "where nothing listens", &mut reclaim);
    }
    expect_no_listener(test, ep, "where nothing ever listened", &mut reclaim);
}

/// Connecting to the endpoint of a listener that was SIGKILLed is
/// `NoListener`, at once: the kernel says so for sockets and FIFOs; for
/// queues, whose rendezvous outlives the listener, the registry does.
fn no_listener_after_kill<R: Route>(test: &'static str, ep: &str) {
    let mut reclaim = util::Reclaim::new(ep);
    let mut listener = Peer::spawn(test, "listen-hold", ep, "");
    let at = listener.expect_value("endpoint");
    listener.kill();
    expect_no_listener(test, &at, "after its listener's SIGKILL", &mut reclaim);
}

/// A client with `wait_for_listener` that starts before the listener
/// connects once the listener comes, and a message goes both ways.
fn wait_for_listener<R: Route>(test: &'static str, ep: &str) {
    let ep = if parse(ep).scheme() == ipcx::Scheme::Tcp {
        format!("tcp://{}", util::free_tcp_address())
    } else {
        ep.to_string()
    };
    let mut reclaim = util::Reclaim::new(&ep);
    let waiting = util::with_option(&ep, "wait_for_listener=20s");
    let client = Peer::spawn(test, "wait-ping", &waiting, "");
    reclaim.client(client.pid());
    std::thread::sleep(Duration::from_millis(300));
    if let Some(line) = client.try_line() {
        panic!("connect to {waiting} returned before any listener came: {line}");
    }
    let server = Peer::spawn(test, "serve-one", &ep, "");
    assert_eq!(
        client.expect_value("result"),
        "echoed",
        "connect to {waiting}, listener 300 ms late"
    );
    client.expect_success();
    server.expect_success();
}

/// Checks a refused second listen: `AddrInUse`, naming the endpoint and,
/// when it names an owner, the right one.
#[track_caller]
fn expect_in_use<R: Route>(at: &str, owner_pid: u32, who: &str) {
    match R::listen(&parse(at)) {
        Err(e @ Error::AddrInUse { .. }) => {
            let Error::AddrInUse {
                endpoint, owner, ..
            } = &e
            else {
                unreachable!()
            };
            let address = parse(at).address().to_string();
            assert!(endpoint.contains(&address), "{who}: {e}");
            if let Some(pid) = owner {
                assert_eq!(
                    *pid, owner_pid,
                    "{who}: the owner named is not the listener"
                );
            }
            assert!(e.is_fatal(), "{who}: AddrInUse is not fatal");
        }
        other => panic!(
            "a second listen on {at} ({who}) gave {:?}, expected Err(AddrInUse)",
            other.map(|l| l.endpoint().to_string())
        ),
    }
}

/// Listening where a live listener listens is `AddrInUse` (whether that
/// listener is in another process or this one), and the live listener
/// carries on serving.
fn listen_in_use<R: Route>(test: &'static str, ep: &str) {
    let _reclaim = util::Reclaim::new(ep);
    let mut first = Peer::spawn(test, "listen-hold", ep, "");
    let at = first.expect_value("endpoint");
    expect_in_use::<R>(&at, first.pid(), "listener in another process");
    let ch = connect::<R>(&at);
    assert_eq!(first.expect_line(), "accepted");
    drop(ch);
    first.tell("go");
    first.expect_success();

    let mut l = listen::<R>(ep);
    let at = l.endpoint().to_string();
    expect_in_use::<R>(&at, std::process::id(), "listener in this process");
    let peer = Peer::spawn(test, "ping", &at, "");
    let mut ch = accept(&mut l);
    echo(&mut ch);
    peer.expect_success();
}

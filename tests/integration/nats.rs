//! `nats://` beyond the conformance suite: rpc servers sharing a name (a
//! NATS queue group) with one killed mid-run, the server's `max_payload`,
//! the NATS server itself dying, and async clients beside blocking
//! servers, credit windows on the wire. Each test starts its own `nats-server` (`util/nats.rs`), except
//! where it notes that it uses the shared one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ipcx::rpc::{Client, Server};
use ipcx::{Error, IpcMessage, Listener, Receiver, Sender};
use serde::{Deserialize, Serialize};

use crate::util::nats::NatsServer;
use crate::util::{self, Peer, parse, report, watchdog};

const LIMIT: Duration = Duration::from_secs(120);
const OP: Duration = Duration::from_secs(30);

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Ask {
    n: u64,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Answer {
    n: u64,
    pid: u32,
}

/// What a re-executed peer does, chosen by its role.
fn role() {
    let (role, ep, _) = util::peer_params();
    let ep = parse(&ep);
    match role.as_str() {
        // An rpc server answering with its pid, until its stdin closes.
        "rpc-server" => {
            let pid = std::process::id();
            let server = Server::serve(&ep, move |a: Ask| Ok::<_, String>(Answer { n: a.n, pid }))
                .expect("serve");
            report("ready");
            util::await_parent();
            server.shutdown();
        }
        // Echoes every message until the connection ends.
        "echo" => {
            let mut l = ipcx::listen(&ep).expect("listen");
            report("ready");
            let mut ch = l.accept_timeout(OP).expect("accept");
            while let Ok(m) = ch.recv() {
                if ch.send(&m).is_err() {
                    break;
                }
            }
        }
        // Connects, reads one message (so the listener's stream is
        // arriving), sends ARG numbered messages and exits at once.
        "send-exit" => {
            let n: u64 = util::peer_params().2.parse().expect("count");
            let mut ch = ipcx::connect(&ep).expect("connect");
            ch.recv_timeout(OP).expect("the first streamed message");
            for i in 0..n {
                ch.send(&i.to_le_bytes()).expect("send");
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// Three rpc server processes on one name, twelve client connections
/// spread over them by the queue group, calls from four threads; the
/// server holding some of the connections is killed mid-run. Every call is
/// answered once, by a server that was alive, or fails with
/// `Disconnected`, after which its client reconnects (to a live server)
/// and goes on: none is lost silently or answered twice.
#[test]
fn rpc_queue_group_with_a_server_killed() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "nats::rpc_queue_group_with_a_server_killed";
    watchdog(LIMIT, TEST, || {
        let nats = NatsServer::start();
        let ep = format!("{}?heartbeat=100ms", nats.endpoint("q"));
        let mut servers: Vec<Peer> = (0..3)
            .map(|_| Peer::spawn(TEST, "rpc-server", &ep, ""))
            .collect();
        for s in &servers {
            assert_eq!(s.expect_line(), "ready");
        }
        let pids: Vec<u32> = servers.iter().map(Peer::pid).collect();
        let victim = pids[1];
        let killed = Arc::new(AtomicBool::new(false));
        let endpoint = parse(&ep);
        const THREADS: u64 = 4;
        const CALLS: u64 = 1500;
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (endpoint, killed) = (endpoint.clone(), killed.clone());
                std::thread::spawn(move || {
                    let connect = || {
                        (0..3)
                            .map(|_| Client::<Ask, Answer>::connect(&endpoint).expect("connect"))
                            .collect::<Vec<_>>()
                    };
                    let mut clients = connect();
                    let mut by_pid: BTreeMap<u32, u64> = BTreeMap::new();
                    let (mut failed, mut reconnects) = (0u64, 0u64);
                    for i in 0..CALLS {
                        let n = t * 1_000_000 + i;
                        let k = (i % 3) as usize;
                        match clients[k].call_timeout(&Ask { n }, OP) {
                            Ok(a) => {
                                assert_eq!(a.n, n, "call {n} answered for another");
                                *by_pid.entry(a.pid).or_default() += 1;
                                if a.pid == victim {
                                    // Answered by the victim: it was alive then.
                                }
                            }
                            Err(Error::Disconnected) => {
                                assert!(
                                    killed.load(Ordering::SeqCst),
                                    "call {n}: Disconnected before any server was killed"
                                );
                                failed += 1;
                                reconnects += 1;
                                clients[k] = Client::<Ask, Answer>::connect(&endpoint)
                                    .expect("reconnect after a server died");
                            }
                            Err(e) => panic!("call {n}: {e} (expected an answer or Disconnected)"),
                        }
                    }
                    (by_pid, failed, reconnects)
                })
            })
            .collect();
        // Mid-run: once a third of the calls could have been made.
        std::thread::sleep(Duration::from_millis(300));
        killed.store(true, Ordering::SeqCst);
        let at = Instant::now();
        servers[1].kill();
        let mut total: BTreeMap<u32, u64> = BTreeMap::new();
        let mut failed = 0;
        for w in workers {
            let (by_pid, f, _) = w.join().expect("worker");
            for (pid, n) in by_pid {
                *total.entry(pid).or_default() += n;
            }
            failed += f;
        }
        let answered: u64 = total.values().sum();
        eprintln!(
            "rpc over nats: {answered} answered {total:?}, {failed} failed with Disconnected; the workers finished {:?} after the kill",
            at.elapsed()
        );
        assert_eq!(
            answered + failed,
            THREADS * CALLS,
            "every call answered or failed"
        );
        assert!(
            total.keys().all(|p| pids.contains(p)),
            "an answer from an unknown server: {total:?}"
        );
        assert!(
            total.len() >= 2,
            "twelve connections all went to one server: {total:?}"
        );
        for s in servers.iter_mut() {
            s.tell("stop");
        }
        servers.remove(1);
        for s in servers {
            s.expect_success();
        }
    });
}

/// A `max_message_size` above the server's `max_payload` (1 MiB unless
/// configured) less the frame header is refused at listen and connect,
/// naming the limit; the default gives way to it.
#[test]
fn max_message_size_is_checked_against_max_payload() {
    watchdog(LIMIT, "max_payload", || {
        let nats = NatsServer::start();
        let ep = nats.endpoint("p");
        let big = parse(&format!("{ep}?max_message_size=2000000"));
        for (what, r) in [
            ("listen", ipcx::listen(&big).map(|_| ())),
            ("connect", ipcx::connect(&big).map(|_| ())),
        ] {
            match r {
                Err(e @ Error::Limit { .. }) => {
                    let s = e.to_string();
                    assert!(s.contains("max_payload of 1048576"), "{what}: {s}");
                    assert!(s.contains("max_message_size=1048567"), "{what}: {s}");
                }
                other => panic!("{what} with max_message_size=2000000: {other:?}"),
            }
        }
        let mut l = ipcx::listen(&parse(&ep)).expect("listen with the default");
        let ch = ipcx::connect(&parse(&ep)).expect("connect with the default");
        assert_eq!(
            ch.max_message_size(),
            1048576 - ipcx::backends::nats::DATA_HEADER
        );
        let accepted = l.accept_timeout(OP).expect("accept");
        assert_eq!(accepted.max_message_size(), ch.max_message_size());
    });
}

/// Connecting where no NATS server runs is `NoListener`, naming it.
#[test]
fn no_server_is_no_listener() {
    watchdog(LIMIT, "no server", || {
        let (_bound, address) = util::refusing_tcp_address();
        let ep = parse(&format!("nats://{address}/x"));
        match ipcx::connect(&ep) {
            Err(e @ Error::NoListener { .. }) => {
                assert!(e.to_string().contains("no NATS server"), "{e}");
            }
            other => panic!("connect with no server: {other:?}"),
        }
    });
}

/// The NATS server killed under an open connection: both ends see
/// `Disconnected` within the heartbeat bound (four intervals).
#[test]
fn server_killed_is_disconnected_on_both_sides() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "nats::server_killed_is_disconnected_on_both_sides";
    watchdog(LIMIT, TEST, || {
        let mut nats = NatsServer::start();
        let ep = format!("{}?heartbeat=100ms", nats.endpoint("k"));
        let mut l = ipcx::listen(&parse(&ep)).expect("listen");
        let mut client = ipcx::connect(&parse(&ep)).expect("connect");
        let mut server = l.accept_timeout(OP).expect("accept");
        client.send(b"ping").expect("send");
        assert_eq!(server.recv_timeout(OP).expect("recv"), b"ping");
        let bound = ipcx::backends::nats::death_bound(Duration::from_millis(100));
        let waiter = std::thread::spawn(move || {
            let r = server.recv();
            (r.map(|_| ()), Instant::now())
        });
        std::thread::sleep(Duration::from_millis(50));
        let killed = Instant::now();
        nats.kill();
        match client.recv_timeout(Duration::from_secs(20)) {
            Err(Error::Disconnected) => {}
            other => panic!("client after the server's death: {other:?}"),
        }
        let (r, at) = waiter.join().expect("waiter");
        assert!(matches!(r, Err(Error::Disconnected)), "server side: {r:?}");
        eprintln!(
            "nats server killed: Disconnected after {:?} (bound {bound:?})",
            at.duration_since(killed)
        );
        // Everything after is Disconnected too.
        assert!(matches!(client.send(b"x"), Err(Error::Disconnected)));
    });
}

/// An async client (`ipcx::tokio`) against a blocking server process, on
/// the shared server: the async API drives the same halves.
#[test]
fn async_client_blocking_server() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "nats::async_client_blocking_server";
    watchdog(LIMIT, TEST, || {
        let ep = crate::util::nats::endpoint("a", "");
        let peer = Peer::spawn(TEST, "echo", &ep, "");
        assert_eq!(peer.expect_line(), "ready");
        let rt = crate::util::current_thread();
        rt.block_on(async {
            let mut ch = ipcx::tokio::connect(&parse(&ep)).await.expect("connect");
            for i in 0..500u32 {
                let m = i.to_le_bytes().repeat((i % 50) as usize + 1);
                ch.send(&m).await.expect("send");
                assert_eq!(ch.recv().await.expect("recv"), m);
            }
            // A burst beyond the credit window (the 8,192 messages a
            // receiver grants past those it read): sends wait, nothing is
            // lost.
            let (mut tx, mut rx) = ch.split();
            let send = async move {
                for i in 0..10_000u32 {
                    tx.send(&i.to_le_bytes()).await.expect("send");
                }
                tx
            };
            let recv = async move {
                for i in 0..10_000u32 {
                    assert_eq!(rx.recv().await.expect("recv"), i.to_le_bytes());
                }
            };
            let (tx, ()) = tokio::join!(send, recv);
            drop(tx);
        });
        drop(rt);
        peer.expect_success();
    });
}

/// A peer whose messages skip a sequence number (as when the server drops
/// one for a slow consumer) ends the connection with `Protocol`, naming
/// the lost message, after the messages before the gap: never a silent
/// skip. The peer is written here on NATS's text protocol.
#[test]
fn a_gap_in_sequence_numbers_is_a_protocol_error() {
    use crate::util::nats::{RawClient, connect_payload, raw_id};
    use ipcx::core::handshake::{Hello, VERDICT_ACCEPT};
    watchdog(LIMIT, "gap", || {
        let nats = NatsServer::start();
        let ep = nats.endpoint("g");
        let mut l = ipcx::listen(&parse(&ep)).expect("listen");
        let name = ep.rsplit('/').next().expect("name").to_string();
        let mut raw = RawClient::connect(&nats.address());
        let id = raw_id(7);
        raw.sub(&format!("ipcx.{name}.c.{id}.down"), 1);
        raw.sub("_INBOX.gap", 2);
        raw.publish(
            &format!("ipcx.{name}.connect"),
            Some("_INBOX.gap"),
            &connect_payload(&id),
        );
        assert_eq!(raw.next_message(), b"ok");
        let up = format!("ipcx.{name}.c.{id}.up");
        let hello = Hello::new(&ipcx::Schema::bytes(), 1, 0, 1000).encode();
        let frame = |kind: u8, body: &[u8]| {
            let mut f = vec![kind];
            f.extend_from_slice(body);
            f
        };
        let data = |seq: u64, m: &[u8]| {
            let mut b = seq.to_le_bytes().to_vec();
            b.extend_from_slice(m);
            frame(3, &b)
        };
        raw.publish(&up, None, &frame(1, &hello));
        raw.publish(&up, None, &frame(2, &[VERDICT_ACCEPT]));
        raw.publish(&up, None, &data(1, b"one"));
        raw.publish(&up, None, &data(3, b"three"));
        let mut ch = l.accept_timeout(OP).expect("accept the raw client");
        assert_eq!(
            ch.recv_timeout(OP).expect("the message before the gap"),
            b"one"
        );
        match ch.recv_timeout(OP) {
            Err(Error::Protocol(why)) => {
                assert!(why.contains("message 2 lost"), "{why}");
            }
            other => panic!("after a gap: {other:?}"),
        }
        // The connection is over.
        assert!(ch.recv_timeout(Duration::from_millis(10)).is_err());
        drop(raw);
    });
}

/// A raw peer on NATS's text protocol, connected to `name` on the
/// listener's server as connection `id` and through the handshake: it
/// publishes frames on `up` and reads the listener's on its `down`.
struct RawPeer {
    raw: crate::util::nats::RawClient,
    up: String,
}

impl RawPeer {
    fn connect(nats: &NatsServer, name: &str, id: &str) -> RawPeer {
        use crate::util::nats::{RawClient, connect_payload};
        use ipcx::core::handshake::{Hello, VERDICT_ACCEPT};
        let mut raw = RawClient::connect(&nats.address());
        raw.sub(&format!("ipcx.{name}.c.{id}.down"), 1);
        let inbox = format!("_INBOX.{id}");
        raw.sub(&inbox, 2);
        raw.publish(
            &format!("ipcx.{name}.connect"),
            Some(&inbox),
            &connect_payload(id),
        );
        assert_eq!(raw.next_message(), b"ok");
        let mut peer = RawPeer {
            raw,
            up: format!("ipcx.{name}.c.{id}.up"),
        };
        let hello = Hello::new(&ipcx::Schema::bytes(), 1, 0, 1000).encode();
        peer.frame(1, &hello);
        peer.frame(2, &[VERDICT_ACCEPT]);
        peer
    }

    fn frame(&mut self, kind: u8, body: &[u8]) {
        let mut f = vec![kind];
        f.extend_from_slice(body);
        self.raw.publish(&self.up, None, &f);
    }

    /// DATA frames `seqs`, each carrying its sequence number as the message.
    fn data(&mut self, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            let mut b = seq.to_le_bytes().to_vec();
            b.extend_from_slice(&seq.to_le_bytes());
            self.frame(3, &b);
        }
    }

    /// The next CREDIT frame from the listener's side (its hello, verdict
    /// and heartbeats passed over): the totals it allows.
    fn next_credit(&mut self) -> (u64, u64) {
        loop {
            let f = self.raw.next_message();
            if f.first() == Some(&4) {
                assert_eq!(f.len(), 17, "a CREDIT frame: {f:?}");
                let at = |i: usize| u64::from_le_bytes(f[i..i + 8].try_into().expect("8 bytes"));
                return (at(1), at(9));
            }
        }
    }
}

/// Credit on the wire, against a raw peer. The first window is 1,024
/// messages, implied by the protocol version: a peer that sends message
/// 1,025 without a grant breaks the protocol, reported after the 1,024
/// before it. Once a message was read, the receiver grants 8,192 messages
/// past what it read (and 8 MiB past the bytes), and takes that many: a
/// peer that uses the whole grant loses nothing.
#[test]
fn credit_windows_are_granted_and_enforced() {
    watchdog(LIMIT, "credit", || {
        let nats = NatsServer::start();
        let ep = nats.endpoint("cr");
        let name = ep.rsplit('/').next().expect("name").to_string();
        // The raw peers send no heartbeats: the listener's side must not
        // take them for gone while the test runs.
        let mut l = ipcx::listen(&parse(&format!("{ep}?heartbeat=20s"))).expect("listen");
        let msg = |seq: u64| seq.to_le_bytes().to_vec();

        // Beyond the first window, nothing read.
        let mut over = RawPeer::connect(&nats, &name, &crate::util::nats::raw_id(21));
        over.data(1..=1025);
        let mut ch = l.accept_timeout(OP).expect("accept the first raw peer");
        // The sending half learns of the broken protocol too; sending reads
        // nothing, so no grant can race the 1,025th frame.
        let deadline = Instant::now() + OP;
        loop {
            match ch.try_send(b"probe") {
                Ok(()) | Err(Error::WouldBlock) => {}
                Err(Error::Protocol(_)) => break,
                Err(e) => panic!("a send after the overrun: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "message 1,025 beyond the first window was never reported"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        for seq in 1..=1024 {
            assert_eq!(
                ch.recv_timeout(OP).expect("a message in the window"),
                msg(seq)
            );
        }
        match ch.recv_timeout(OP) {
            Err(Error::Protocol(why)) => {
                assert!(why.contains("message 1025 beyond the 1024"), "{why}");
            }
            other => panic!("after the overrun: {other:?}"),
        }
        drop(ch);
        drop(over);

        // The grant, and a peer that uses all of it.
        let mut full = RawPeer::connect(&nats, &name, &crate::util::nats::raw_id(22));
        full.data(1..=1024);
        let mut ch = l.accept_timeout(OP).expect("accept the second raw peer");
        assert_eq!(ch.recv_timeout(OP).expect("the first message"), msg(1));
        assert_eq!(full.next_credit(), (1 + 8192, 8 + (8 << 20)));
        full.data(1025..=8193);
        for seq in 2..=8193 {
            assert_eq!(
                ch.recv_timeout(OP).expect("a message in the grant"),
                msg(seq)
            );
        }
    });
}

/// A client of another protocol version (a raw client on NATS's text
/// protocol, its connect request carrying another version byte, or none
/// as before versions) is refused at once with a reply that names both
/// versions and what to upgrade, not left to its connect timeout; the
/// listener goes on accepting.
#[test]
fn a_client_of_another_protocol_version_is_refused_with_a_reason() {
    use crate::util::nats::{PROTOCOL_VERSION, RawClient, raw_id};
    watchdog(LIMIT, "version", || {
        let nats = NatsServer::start();
        let ep = nats.endpoint("v");
        let mut l = ipcx::listen(&parse(&ep)).expect("listen");
        let name = ep.rsplit('/').next().expect("name").to_string();
        let mut raw = RawClient::connect(&nats.address());
        raw.sub("_INBOX.version", 1);
        let newer = PROTOCOL_VERSION + 1;
        let cases: [(Vec<u8>, &str); 3] = [
            (
                [&[newer][..], raw_id(1).as_bytes()].concat(),
                "upgrade the listener",
            ),
            (
                [&[0u8][..], raw_id(2).as_bytes()].concat(),
                "upgrade the client",
            ),
            (raw_id(3).into_bytes(), "version 0"),
        ];
        for (payload, says) in cases {
            let asked = Instant::now();
            raw.publish(
                &format!("ipcx.{name}.connect"),
                Some("_INBOX.version"),
                &payload,
            );
            let reply = String::from_utf8(raw.next_message()).expect("a text reply");
            assert!(
                asked.elapsed() < Duration::from_secs(2),
                "refused at once, not after a timeout"
            );
            assert!(
                reply.contains(&format!("this listener speaks {PROTOCOL_VERSION}")),
                "{reply}"
            );
            assert!(reply.contains(says), "{reply}");
        }
        // The listener took no harm: a current client connects.
        let mut ch = ipcx::connect(&parse(&ep)).expect("connect after the refusals");
        let mut s = l.accept_timeout(OP).expect("accept");
        ch.send(b"after").expect("send");
        assert_eq!(s.recv_timeout(OP).expect("recv"), b"after");
        assert!(l.refused() >= 3, "refusals counted: {}", l.refused());
    });
}

/// `tls=required&tls_ca=FILE`: against a server that speaks only TLS
/// (its certificate signed by a CA made for the test), a listener and a
/// client that trust that CA exchange messages both ways; a client that
/// does not trust it (the system's CAs only) fails at once with an error
/// that says to name the CA; one without `tls=required` does too, since
/// the server demands TLS.
#[test]
fn tls_with_the_servers_ca() {
    use crate::util::nats::TestCerts;
    watchdog(LIMIT, "tls", || {
        let certs = TestCerts::generate();
        let nats = NatsServer::start_tls(&certs);
        let base = nats.endpoint("tls");
        let ep = format!("{base}?tls=required&tls_ca={}", certs.ca());
        let mut l = ipcx::listen(&parse(&ep)).expect("listen over TLS");
        let mut ch = ipcx::connect(&parse(&ep)).expect("connect over TLS");
        let mut s = l.accept_timeout(OP).expect("accept over TLS");
        for i in 0..100u32 {
            ch.send(&i.to_le_bytes()).expect("send");
            assert_eq!(s.recv_timeout(OP).expect("recv"), i.to_le_bytes());
            s.send(&(i + 1).to_le_bytes()).expect("reply");
            assert_eq!(ch.recv_timeout(OP).expect("reply"), (i + 1).to_le_bytes());
        }
        for untrusted in [format!("{base}?tls=required"), base.clone()] {
            // Refused for TLS, saying what to set (a connect timeout would
            // be another error).
            match ipcx::connect(&parse(&untrusted)) {
                Err(e @ Error::Io { .. }) => {
                    let why = e.to_string();
                    assert!(why.contains("TLS") && why.contains("tls_ca="), "{why}");
                }
                other => panic!("{untrusted} without the CA: {other:?}"),
            }
        }
        // The listener took no harm.
        ch.send(b"still").expect("send");
        assert_eq!(s.recv_timeout(OP).expect("recv"), b"still");
    });
}

/// Connects to `ep`, which the server must refuse: `PermissionDenied`
/// saying it refused authorization (not a timeout, which would be another
/// error). Returns the error's text.
fn refused_authorization(ep: &str) -> String {
    let why = match ipcx::connect(&parse(ep)) {
        Err(Error::PermissionDenied(why)) => why,
        Err(e) => panic!("{ep}: expected PermissionDenied, got {e}"),
        Ok(_) => panic!("{ep}: the server admitted it"),
    };
    assert!(why.contains("refused authorization"), "{why}");
    why
}

/// Fails to connect to `ep` before reaching the server: an error of the
/// kind `expected` whose text has every one of `words`.
fn refused_before_connecting(ep: &str, expected: &str, words: &[&str]) {
    let e = match ipcx::connect(&parse(ep)) {
        Err(e) => e,
        Ok(_) => panic!("{ep}: connected"),
    };
    let kind = match &e {
        Error::PermissionDenied(_) => "PermissionDenied",
        Error::Io { .. } => "Io",
        _ => "other",
    };
    let why = e.to_string();
    assert_eq!(kind, expected, "{ep}: {why}");
    for w in words {
        assert!(why.contains(w), "{ep}: {why:?} lacks {w:?}");
    }
}

/// A listener and a client on `ep` exchange 100 messages both ways.
fn round_trips(ep: &str) {
    let mut l = ipcx::listen(&parse(ep)).expect("listen");
    let mut ch = ipcx::connect(&parse(ep)).expect("connect");
    let mut s = l.accept_timeout(OP).expect("accept");
    for i in 0..100u32 {
        ch.send(&i.to_le_bytes()).expect("send");
        assert_eq!(s.recv_timeout(OP).expect("recv"), i.to_le_bytes());
        s.send(&(i + 1).to_le_bytes()).expect("reply");
        assert_eq!(ch.recv_timeout(OP).expect("reply"), (i + 1).to_le_bytes());
    }
}

/// A JetStream server in operator mode (an operator, its system account,
/// an account and its user, made by the test as `nsc` would): listener
/// and client on `creds=` exchange messages, and a queue carries one. Refused, promptly and saying so: no credentials, a user of an
/// account the server does not know, a user's JWT with another key's seed.
/// Refused before connecting, naming the file: a creds file others can
/// read (`chmod 600`), a missing one, one that is not a creds file.
#[test]
fn creds_in_operator_mode() {
    use crate::util::nats_jwt::{KeyDir, Operator};
    watchdog(LIMIT, "creds", || {
        let dir = KeyDir::new("natscreds");
        let operator = Operator::new();
        let account = operator.account("app");
        // Signed by the same operator, but not among the server's accounts.
        let stranger = operator.account("stranger");
        let nats = NatsServer::start_with_config(
            &dir.0,
            &operator.server_config(&dir.0, &[&account]),
            true,
        );
        let base = nats.endpoint("creds");
        let creds = dir.write("app.creds", &account.user_creds("app"), 0o600);
        round_trips(&format!("{base}?creds={creds}"));
        // A JetStream queue of the account, through the same credentials.
        let queue = parse(&format!(
            "{}?pattern=queue&creds={creds}",
            nats.endpoint("credsq")
        ));
        let mut producer = ipcx::queue::Producer::<Ask>::open(&queue).expect("producer");
        producer.send(&Ask { n: 42 }).expect("send to the queue");
        let mut consumer = ipcx::queue::Consumer::<Ask>::open(&queue).expect("consumer");
        assert_eq!(consumer.recv_timeout(OP).expect("recv"), Ask { n: 42 });
        assert!(ipcx::queue::remove(&queue).expect("remove the queue"));

        let why = refused_authorization(&base);
        assert!(why.contains("give creds="), "{why}");
        let unknown = dir.write("stranger.creds", &stranger.user_creds("s"), 0o600);
        let why = refused_authorization(&format!("{base}?creds={unknown}"));
        assert!(why.contains(&format!("check creds={unknown}")), "{why}");
        // The JWT of one user with the seed of another: the signature of
        // the server's nonce does not match the JWT's key.
        let (jwt_part, _) = account
            .user_creds("a")
            .split_once("-----BEGIN USER NKEY SEED-----")
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .expect("a creds file");
        let other = account.user_creds("b");
        let (_, seed_part) = other
            .split_once("-----BEGIN USER NKEY SEED-----")
            .expect("a creds file");
        let forged = dir.write(
            "forged.creds",
            &format!("{jwt_part}-----BEGIN USER NKEY SEED-----{seed_part}"),
            0o600,
        );
        refused_authorization(&format!("{base}?creds={forged}"));

        let open = dir.write("open.creds", &account.user_creds("o"), 0o644);
        refused_before_connecting(
            &format!("{base}?creds={open}"),
            "PermissionDenied",
            &[
                &format!("creds={open}"),
                "0644",
                &format!("chmod 600 {open}"),
            ],
        );
        let group = dir.write("group.creds", &account.user_creds("g"), 0o640);
        refused_before_connecting(
            &format!("{base}?creds={group}"),
            "PermissionDenied",
            &["0640", "chmod 600"],
        );
        let missing = format!("{}/missing.creds", dir.0.display());
        refused_before_connecting(
            &format!("{base}?creds={missing}"),
            "Io",
            &[&format!("creds={missing}"), "No such file"],
        );
        refused_before_connecting(
            &format!("{base}?creds={}", dir.0.display()),
            "Io",
            &[&format!("creds={}", dir.0.display()), "not a regular file"],
        );
        let garbage = dir.write(
            "garbage.creds",
            "not a creds file
",
            0o600,
        );
        refused_before_connecting(
            &format!("{base}?creds={garbage}"),
            "Io",
            &[&format!("creds={garbage}"), "not a NATS credentials file"],
        );
        // The good user still gets in after all that.
        round_trips(&format!("{}?creds={creds}", nats.endpoint("creds2")));
    });
}

/// A server that lists one user by nkey: listener and client on `nkey=`
/// exchange messages; another user's seed is refused promptly, saying so;
/// a seed file others can read, a missing one, a malformed seed and an
/// account's seed are refused before connecting, naming the file.
#[test]
fn nkey_users() {
    use crate::util::nats_jwt::{KeyDir, user_nkey};
    watchdog(LIMIT, "nkey", || {
        let dir = KeyDir::new("natsnkey");
        let (seed, public) = user_nkey();
        let nats = NatsServer::start_with_config(
            &dir.0,
            &format!("authorization {{\n  users = [ {{ nkey: {public} }} ]\n}}\n"),
            false,
        );
        let base = nats.endpoint("nkey");
        let file = dir.write(
            "app.nk",
            &format!(
                "{seed}
"
            ),
            0o600,
        );
        round_trips(&format!("{base}?nkey={file}"));

        let (stranger, _) = user_nkey();
        let other = dir.write("other.nk", &stranger, 0o600);
        let why = refused_authorization(&format!("{base}?nkey={other}"));
        assert!(why.contains(&format!("check nkey={other}")), "{why}");
        refused_authorization(&base);

        let open = dir.write("open.nk", &seed, 0o604);
        refused_before_connecting(
            &format!("{base}?nkey={open}"),
            "PermissionDenied",
            &[
                &format!("nkey={open}"),
                "0604",
                &format!("chmod 600 {open}"),
            ],
        );
        let missing = format!("{}/missing.nk", dir.0.display());
        refused_before_connecting(
            &format!("{base}?nkey={missing}"),
            "Io",
            &[&format!("nkey={missing}"), "No such file"],
        );
        let mut broken = seed.clone();
        broken.replace_range(10..11, if &seed[10..11] == "A" { "B" } else { "A" });
        let bad = dir.write("bad.nk", &broken, 0o600);
        refused_before_connecting(
            &format!("{base}?nkey={bad}"),
            "Io",
            &[&format!("nkey={bad}"), "not a user's nkey seed"],
        );
        let empty = dir.write("empty.nk", "\n", 0o600);
        refused_before_connecting(&format!("{base}?nkey={empty}"), "Io", &["empty"]);
        let account_seed = nkeys::KeyPair::new_account().seed().expect("seed");
        let account = dir.write("account.nk", &account_seed, 0o600);
        refused_before_connecting(
            &format!("{base}?nkey={account}"),
            "Io",
            &[&format!("nkey={account}"), "not of a user"],
        );
    });
}

/// Three servers clustered on loopback: a listener on node 3, a client on
/// node 1; node 2 is killed mid-stream, and traffic goes on, every message
/// in order (the two nodes in use have a route of their own).
#[test]
fn a_cluster_node_killed_under_traffic() {
    watchdog(LIMIT, "cluster", || {
        let mut nodes = NatsServer::start_cluster(3);
        let name = util::unique("cl");
        let on = |i: usize| format!("nats://{}/{name}", nodes[i].address());
        let mut l = ipcx::listen(&parse(&on(2))).expect("listen on node 3");
        // Interest crosses the routes once they are up: wait for it.
        let client_ep = parse(&format!("{}?wait_for_listener=20s", on(0)));
        let server = std::thread::spawn(move || {
            let mut ch = l.accept_timeout(OP).expect("accept");
            let mut n = 0u64;
            loop {
                match ch.recv_timeout(OP) {
                    Ok(m) => {
                        assert_eq!(m, n.to_le_bytes(), "message {n}");
                        ch.send(&m).expect("echo");
                        n += 1;
                    }
                    Err(Error::Disconnected) => return n,
                    Err(e) => panic!("server after {n} messages: {e}"),
                }
            }
        });
        let mut ch = ipcx::connect(&client_ep).expect("connect through node 1");
        const N: u64 = 3000;
        for i in 0..N {
            if i == N / 3 {
                nodes[1].kill();
            }
            ch.send(&i.to_le_bytes()).expect("send");
            assert_eq!(
                ch.recv_timeout(OP).expect("echo"),
                i.to_le_bytes(),
                "echo {i}"
            );
        }
        drop(ch);
        assert_eq!(server.join().expect("server"), N);
    });
}

/// An async listener (`ipcx::tokio::listen`) with blocking clients on
/// threads, on the shared server: accept, echo, and the clients' close.
#[test]
fn async_server_blocking_clients() {
    watchdog(LIMIT, "async server", || {
        let ep = parse(&crate::util::nats::endpoint("as", ""));
        let rt = crate::util::runtime();
        let mut l = rt
            .block_on(async { ipcx::tokio::listen(&ep) })
            .expect("listen");
        const CLIENTS: u32 = 4;
        let clients: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let ep = ep.clone();
                std::thread::spawn(move || {
                    let mut ch = ipcx::connect(&ep).expect("connect");
                    for i in 0..300u32 {
                        let m = (c * 1000 + i).to_le_bytes();
                        ch.send(&m).expect("send");
                        assert_eq!(ch.recv_timeout(OP).expect("echo"), m);
                    }
                })
            })
            .collect();
        let served = rt.block_on(async move {
            let mut tasks = Vec::new();
            for _ in 0..CLIENTS {
                let mut ch = l.accept().await.expect("accept");
                tasks.push(tokio::spawn(async move {
                    let mut n = 0u32;
                    loop {
                        match ch.recv().await {
                            Ok(m) => {
                                ch.send(&m).await.expect("echo");
                                n += 1;
                            }
                            Err(Error::Disconnected) => return n,
                            Err(e) => panic!("async server: {e}"),
                        }
                    }
                }));
            }
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("task");
            }
            total
        });
        for c in clients {
            c.join().expect("client");
        }
        assert_eq!(served, CLIENTS * 300);
    });
}

/// Peers that send and exit at once, while the listener's frames are still
/// arriving at them, have delivered every message and their close: the
/// listener reads them all, then `Disconnected` at once (long before the
/// heartbeat bound). The last half's drop waits until the connection's
/// frames reached the server, whichever thread lets go of the connection
/// last: before, a drop that coincided with the connection's reader or
/// heartbeat holding it handed that wait to the runtime, which skips it,
/// and a process exiting then lost its last messages and its close (the
/// listener heard nothing more and reported `Disconnected` after the
/// heartbeat bound: about one connection in ten in `ipcx send`).
#[test]
fn peers_that_send_and_exit_at_once_lose_nothing() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "nats::peers_that_send_and_exit_at_once_lose_nothing";
    const PEERS: usize = 30;
    const MSGS: u64 = 20;
    watchdog(Duration::from_secs(300), TEST, || {
        let nats = NatsServer::start();
        // A heartbeat bound (4 s) far above a close's delivery, so that a
        // lost close shows as a slow end.
        let ep = nats.endpoint("se");
        let mut l = ipcx::listen(&parse(&ep)).expect("listen");
        let mut failures = Vec::new();
        for round in 0..PEERS {
            let peer = Peer::spawn(TEST, "send-exit", &ep, &MSGS.to_string());
            let ch = l.accept_timeout(OP).expect("accept");
            let (mut tx, mut rx) = ipcx::Channel::split(ch);
            let done = Arc::new(AtomicBool::new(false));
            let streaming = done.clone();
            // Streams to the peer until it is gone (its reader is busy
            // while it exits).
            let streamer = std::thread::spawn(move || {
                while !streaming.load(Ordering::Relaxed) {
                    match tx.send_timeout(b"stream", Duration::from_millis(50)) {
                        Ok(()) | Err(Error::Timeout) => {}
                        Err(_) => break,
                    }
                }
            });
            let start = Instant::now();
            let mut got = 0u64;
            let end = loop {
                match rx.recv_timeout(OP) {
                    Ok(m) => {
                        assert_eq!(m, got.to_le_bytes(), "peer {round}: message {got}");
                        got += 1;
                    }
                    Err(e) => break e,
                }
            };
            let took = start.elapsed();
            done.store(true, Ordering::Relaxed);
            streamer.join().expect("streamer");
            peer.expect_success();
            if got != MSGS || !matches!(end, Error::Disconnected) || took > Duration::from_secs(2) {
                failures.push(format!(
                    "peer {round}: {got} of {MSGS} messages, then {end:?} after {took:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {PEERS} peers lost their tail:\n{}",
            failures.len(),
            failures.join("\n")
        );
    });
}

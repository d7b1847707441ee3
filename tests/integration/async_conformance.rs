//! The conformance suite in async mode (`ipcx::tokio`), on every transport,
//! with the two peers in different processes: messages whole at the size
//! boundaries, order under load through `Stream`/`Sink`, backpressure
//! without blocking the runtime, many clients on one async listener, the
//! peer's SIGKILL while the async side waits, nothing left behind, typed
//! handshake mismatch; cancel safety of `recv` and `send` under
//! `tokio::select!`; and mixed peers (blocking on one side, async on the
//! other, bytes and typed).
//!
//! Cases are instantiated per transport by `matrix!` as
//! `async_conformance::<transport>::<case>`. The peer is this test binary
//! re-executed with a role ([`run_role`]); roles are async unless their
//! name says `blocking`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ipcx::tokio::typed::TypedChannel;
use ipcx::tokio::{Channel, Listener};
use ipcx::{Error, IpcMessage, Listener as _, Receiver as _, Schema, Scheme, Sender as _};
use serde::{Deserialize, Serialize};

use crate::util::{self, Peer, Rng, check_message, checksum, make_message, parse, report};

/// Longest a case may run before its watchdog fails it (a hang guard, far
/// above what any case needs).
const CASE_LIMIT: Duration = Duration::from_secs(240);
/// Longest the async survivor may wait after its peer's SIGKILL before the
/// case calls it a hang (a guard, not a measurement).
const DEATH_LIMIT: Duration = Duration::from_secs(10);
/// Bound on single operations that must complete (a hang guard).
const OP: Duration = Duration::from_secs(60);

// Queues and rings are kept small where the mechanism allows, so that
// messages of 100,000 bytes are split over many kernel units or ring
// chunks, and POSIX queues stay within the per-user queue memory
// (RLIMIT_MSGQUEUE) beside the other suites' cases.
matrix!(async_conformance, unix => format!("unix:/tmp/{}.sock", crate::util::unique("au"));
    boundaries stream_order backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind handshake_mismatch
    sent_survives_exit connect_cancelled no_listener
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

matrix!(async_conformance, tcp => "tcp://127.0.0.1:0".to_string();
    boundaries stream_order backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind handshake_mismatch
    sent_survives_exit connect_cancelled no_listener
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

matrix!(async_conformance, fifo => format!("fifo:/tmp/{}", crate::util::unique("af"));
    boundaries stream_order backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind handshake_mismatch
    sent_survives_exit connect_cancelled no_listener
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

matrix!(async_conformance, mq => format!("mq:/{}?capacity=4", crate::util::unique("am"));
    boundaries stream_order backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind handshake_mismatch
    sent_survives_exit connect_cancelled no_listener
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

matrix!(async_conformance, sysv_mq => format!("sysv-mq:/tmp/{}", crate::util::unique("as"));
    boundaries stream_order backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind handshake_mismatch
    sent_survives_exit connect_cancelled no_listener
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

matrix!(async_conformance, shm => format!("shm:/{}?capacity=65536", crate::util::unique("ah"));
    boundaries stream_order backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind handshake_mismatch
    sent_survives_exit connect_cancelled no_listener
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

matrix!(async_conformance, sysv_shm => format!("sysv-shm:/tmp/{}?capacity=65536", crate::util::unique("av"));
    boundaries stream_order backpressure many_clients peer_killed_in_recv
    peer_killed_in_send listener_killed nothing_left_behind handshake_mismatch
    sent_survives_exit connect_cancelled no_listener
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

// pipe: joins a parent to the child it spawns (`ipcx::spawn`, then
// `ipcx::tokio::Channel::new` on the parent's end, and
// `ipcx::tokio::connect_parent` in the child). Left out, because the
// mechanism makes them meaningless: many_clients (a pipe pair joins
// exactly two processes); listener_killed, connect_cancelled and
// no_listener (there is no listener to kill, connect to or find missing;
// the death of either end is what peer_killed_in_recv checks).
matrix!(async_conformance, pipe => "pipe:".to_string();
    boundaries stream_order backpressure peer_killed_in_recv
    peer_killed_in_send nothing_left_behind handshake_mismatch sent_survives_exit
    recv_cancel send_cancel blocking_client_async_server
    async_client_blocking_server);

/// A typed request of the typed cases.
#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Ping {
    seq: u64,
    body: Vec<u8>,
}

/// The typed reply: the request's number and the checksum of its body.
#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Pong {
    seq: u64,
    sum: u64,
}

/// A type no peer of the typed cases expects.
#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Other {
    x: u8,
}

fn pong(p: &Ping) -> Pong {
    Pong {
        seq: p.seq,
        sum: checksum(&p.body),
    }
}

fn ping(seq: u64) -> Ping {
    let mut body = vec![0u8; mixed_len(seq)];
    Rng::new(seq).fill(&mut body);
    Ping { seq, body }
}

fn is_pipe(ep: &str) -> bool {
    parse(ep).scheme() == Scheme::Pipe
}

/// The length of message `seq` in the mixed-size cases: mostly under 200
/// bytes, every 50th 5,000 bytes (more than one POSIX queue unit), every
/// 1,000th 100,000 bytes (more than a pipe's buffer, a small ring, a
/// queue's whole capacity).
fn mixed_len(seq: u64) -> usize {
    if seq % 1000 == 999 {
        100_000
    } else if seq % 50 == 49 {
        5000
    } else {
        (seq.wrapping_mul(37) % 200) as usize
    }
}

/// Message `seq` of the mixed-size cases, self-checking.
fn mixed_message(seq: u64) -> Vec<u8> {
    make_message(&mut Rng::new(seq), seq, mixed_len(seq))
}

/// Checks a mixed-size message whole and returns its number.
#[track_caller]
fn check_mixed(m: &[u8]) -> u64 {
    let seq = check_message(m);
    assert_eq!(
        m.len(),
        16 + mixed_len(seq),
        "message {seq} arrived with another length"
    );
    seq
}

fn seq_message(seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0xA5u8; len.max(8)];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

fn seq_of(m: &[u8]) -> u64 {
    u64::from_le_bytes(m[..8].try_into().expect("8-byte header"))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + len) as u8).collect()
}

/// Runs `f` with at most [`OP`] to finish (a hang guard).
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(OP, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {OP:?} (hang)"),
    }
}

/// Waits for the parent's next line without holding up the runtime.
async fn await_parent() -> Option<String> {
    tokio::task::spawn_blocking(util::await_parent)
        .await
        .expect("stdin reader")
}

/// Connects this process to a new peer process playing `role`, announcing
/// `schema`: listens on `ep` (async) and accepts the peer, or for `pipe:`
/// spawns the peer already connected and drives the parent's end from the
/// reactor. The listener, if any, is returned to keep it alive.
async fn open_pair(
    test: &str,
    role: &str,
    ep: &str,
    arg: &str,
    schema: &Schema,
) -> (Peer, Channel, Option<Listener>) {
    let endpoint = parse(ep);
    if endpoint.scheme() == Scheme::Pipe {
        let cmd = Peer::command(test, role, ep, arg);
        let s = schema.clone();
        let (child, ch) = tokio::task::spawn_blocking(move || ipcx::spawn_with(cmd, &endpoint, &s))
            .await
            .expect("spawn task")
            .unwrap_or_else(|e| panic!("spawn over {ep}: {e}"));
        let ch = Channel::new(ch).unwrap_or_else(|e| panic!("async parent end: {e}"));
        return (Peer::adopt(child), ch, None);
    }
    let mut l = ipcx::tokio::listen_with(&endpoint, schema)
        .unwrap_or_else(|e| panic!("async listen {ep}: {e}"));
    let peer = Peer::spawn(test, role, &l.endpoint().to_string(), arg);
    let ch = within("accept", l.accept())
        .await
        .unwrap_or_else(|e| panic!("accept on {ep}: {e}"));
    (peer, ch, Some(l))
}

/// In a peer: the async channel to the test, announcing `schema`.
async fn connect(ep: &str, schema: &Schema) -> Channel {
    let endpoint = parse(ep);
    let r = if endpoint.scheme() == Scheme::Pipe {
        if *schema == Schema::bytes() {
            ipcx::tokio::connect_parent().await
        } else {
            // The async API has no typed `connect_parent`: the blocking
            // one, then driven from the reactor.
            let s = schema.clone();
            tokio::task::spawn_blocking(move || ipcx::connect_parent_with(&s))
                .await
                .expect("connect task")
                .and_then(Channel::new)
        }
    } else {
        ipcx::tokio::connect_with(&endpoint, schema).await
    };
    r.unwrap_or_else(|e| panic!("async connect {ep}: {e}"))
}

/// In a peer: the blocking channel to the test, announcing `schema`.
fn connect_blocking(ep: &str, schema: &Schema) -> ipcx::AnyChannel {
    let endpoint = parse(ep);
    let r = if endpoint.scheme() == Scheme::Pipe {
        ipcx::connect_parent_with(schema)
    } else {
        ipcx::connect_with(&endpoint, schema)
    };
    r.unwrap_or_else(|e| panic!("connect {ep}: {e}"))
}

/// The schema of a typed side that sends `Out` and receives `In`.
fn typed<Out: IpcMessage, In: IpcMessage>() -> Schema {
    ipcx::typed::schema::<Out, In>()
}

// ---------------------------------------------------------------- roles --

/// The peer side of the cases, chosen by the role in the environment.
fn run_role() {
    let (role, ep, arg) = util::peer_params();
    match role.as_str() {
        "blocking-client" => blocking_client(&ep, &arg),
        "blocking-server" => blocking_server(&ep),
        _ => crate::util::runtime().block_on(async_role(&role, &ep, &arg)),
    }
}

async fn async_role(role: &str, ep: &str, arg: &str) {
    let bytes = Schema::bytes();
    match role {
        "echo" => {
            let mut ch = connect(ep, &bytes).await;
            let max = ch.max_message_size();
            report(format!("max={max}"));
            match ch.send(&vec![0u8; max + 1]).await {
                Err(Error::MessageTooLarge { size, max: m }) if size == max + 1 && m == max => {
                    report("too_large=ok")
                }
                other => report(format!("too_large={other:?}")),
            }
            echo(ch).await;
        }
        "serve-one" => {
            let mut l = ipcx::tokio::listen(&parse(ep)).expect("listen");
            report(format!("endpoint={}", l.endpoint()));
            let ch = within("accept", l.accept()).await.expect("accept");
            echo(ch).await;
        }
        "listen-hold" => {
            let mut l = ipcx::tokio::listen(&parse(ep)).expect("listen");
            report(format!("endpoint={}", l.endpoint()));
            let _ch = within("accept", l.accept()).await.expect("accept");
            report("accepted");
            await_parent().await;
        }
        "ping" => {
            let mut ch = connect(ep, &bytes).await;
            for i in 0..10u64 {
                let m = seq_message(i, 100);
                ch.send(&m).await.expect("send");
                assert_eq!(within("recv", ch.recv()).await.expect("recv"), m);
            }
        }
        // Sends a few messages (room for all of them) and exits at once,
        // without dropping or flushing anything.
        "send-exit" => {
            let mut ch = connect(ep, &bytes).await;
            for i in 0..SENT_BEFORE_EXIT {
                ch.send(&mixed_message(i)).await.expect("send");
            }
            report("sent");
            std::process::exit(0);
        }
        "hold" => {
            let _ch = connect(ep, &bytes).await;
            report("connected");
            await_parent().await;
        }
        // N messages through the Sink, flushed every 64.
        "sink-send" => {
            let n: u64 = arg.parse().expect("N");
            let (mut tx, _rx) = connect(ep, &bytes).await.split();
            for i in 0..n {
                tx.feed(mixed_message(i)).await.expect("feed");
                if i % 64 == 63 {
                    tx.flush().await.expect("flush");
                }
            }
            SinkExt::<Vec<u8>>::close(&mut tx).await.expect("close");
            report(format!("sent={n}"));
        }
        "seq-send" => {
            let n: u64 = arg.parse().expect("N");
            let mut ch = connect(ep, &bytes).await;
            for i in 0..n {
                ch.send(&mixed_message(i)).await.expect("send");
            }
            report(format!("sent={n}"));
        }
        "slow-reader" => {
            let mut ch = connect(ep, &bytes).await;
            report("connected");
            await_parent().await;
            let mut count = 0u64;
            loop {
                match within("recv", ch.recv()).await {
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
        // Receives until the peer leaves, pausing now and then so that the
        // sender finds the channel full; writes every number received to
        // the file `arg`.
        "record-reader" => {
            let mut ch = connect(ep, &bytes).await;
            let mut seen = Vec::new();
            let mut buf = Vec::new();
            loop {
                match within("recv", ch.recv_into(&mut buf)).await {
                    Ok(()) => {
                        let seq = check_message(&buf);
                        let len = if seq == SEND_CANCEL_N {
                            100_000
                        } else {
                            mixed_len(seq)
                        };
                        assert_eq!(
                            buf.len(),
                            16 + len,
                            "message {seq} arrived with another length"
                        );
                        seen.push(seq);
                        if seen.len() % 256 == 0 {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("reader: {e}"),
                }
            }
            let bytes: Vec<u8> = seen.iter().flat_map(|s| s.to_le_bytes()).collect();
            std::fs::write(arg, bytes).expect("write the numbers received");
            report(format!("count={}", seen.len()));
        }
        "client" => {
            let (id, m) = arg.split_once(',').expect("id,M");
            let m: u32 = m.parse().expect("M");
            let mut ch = connect(ep, &bytes).await;
            for i in 0..m {
                let req = format!("{id}:{i}");
                ch.send(req.as_bytes()).await.expect("send");
                let reply = within("recv", ch.recv()).await.expect("recv");
                assert_eq!(
                    reply,
                    format!("echo {req}").as_bytes(),
                    "client {id} got another's reply"
                );
            }
            report("done");
        }
        // Connects typed: `other` with types the listener does not serve,
        // `match` with its own, answering one ping.
        "typed-connect" => {
            let schema = if arg == "other" {
                typed::<Other, Ping>()
            } else {
                typed::<Pong, Ping>()
            };
            let endpoint = parse(ep);
            let r = if endpoint.scheme() == Scheme::Pipe {
                let s = schema.clone();
                tokio::task::spawn_blocking(move || ipcx::connect_parent_with(&s))
                    .await
                    .expect("connect task")
                    .and_then(Channel::new)
            } else {
                ipcx::tokio::connect_with(&endpoint, &schema).await
            };
            match r {
                Err(e @ Error::SchemaMismatch { .. }) => report(format!("err=SchemaMismatch {e}")),
                Err(e) => report(format!("err={e:?}")),
                Ok(ch) => {
                    let mut ch = TypedChannel::<Pong, Ping>::new(ch);
                    let p = within("recv", ch.recv()).await.expect("typed recv");
                    ch.send(&pong(&p)).await.expect("typed send");
                    report("ok");
                }
            }
        }
        // The async side of a blocking parent (pipe: only): drives bytes,
        // or typed with `arg` = typed.
        "async-client" => {
            if arg == "typed" {
                let ch = connect(ep, &typed::<Ping, Pong>()).await;
                drive_typed(TypedChannel::new(ch)).await;
            } else {
                drive_bytes(&mut connect(ep, &bytes).await).await;
            }
            report("ok");
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

/// Echoes every message back until the peer leaves.
async fn echo(mut ch: Channel) {
    let mut buf = Vec::new();
    loop {
        match ch.recv_into(&mut buf).await {
            Ok(()) => match ch.send(&buf).await {
                Ok(()) => {}
                Err(Error::Disconnected) => return,
                Err(e) => panic!("echo send: {e}"),
            },
            Err(Error::Disconnected) => return,
            Err(e) => panic!("echo recv: {e}"),
        }
    }
}

/// Answers pings until the peer leaves, through the typed Stream and Sink.
async fn serve_typed(ch: TypedChannel<Pong, Ping>) {
    let (mut tx, mut rx) = ch.split();
    while let Some(p) = within("typed recv", rx.next()).await {
        let p = p.expect("a ping");
        match SinkExt::send(&mut tx, pong(&p)).await {
            Ok(()) => {}
            Err(Error::Disconnected) => return,
            Err(e) => panic!("typed reply: {e}"),
        }
    }
}

/// Mixed-size messages, each echoed back whole, in order.
const ROUND_TRIPS: u64 = 1000;
/// Typed round trips.
const TYPED_ROUND_TRIPS: u64 = 300;

async fn drive_bytes(ch: &mut Channel) {
    for seq in 0..ROUND_TRIPS {
        let m = mixed_message(seq);
        ch.send(&m).await.expect("send");
        let back = within("recv", ch.recv()).await.expect("recv");
        assert_eq!(check_mixed(&back), seq, "echo out of order");
    }
}

async fn drive_typed(mut ch: TypedChannel<Ping, Pong>) {
    for seq in 0..TYPED_ROUND_TRIPS {
        let p = ping(seq);
        ch.send(&p).await.expect("typed send");
        let back = within("typed recv", ch.recv()).await.expect("typed recv");
        assert_eq!(back, pong(&p));
    }
}

fn drive_bytes_blocking(ch: &mut ipcx::AnyChannel) {
    for seq in 0..ROUND_TRIPS {
        let m = mixed_message(seq);
        ch.send(&m).expect("send");
        let back = ch.recv_timeout(OP).expect("recv");
        assert_eq!(check_mixed(&back), seq, "echo out of order");
    }
}

fn drive_typed_blocking(mut ch: ipcx::typed::TypedChannel<Ping, Pong>) {
    for seq in 0..TYPED_ROUND_TRIPS {
        let p = ping(seq);
        ch.send(&p).expect("typed send");
        assert_eq!(ch.recv_timeout(OP).expect("typed recv"), pong(&p));
    }
}

fn echo_blocking(mut ch: ipcx::AnyChannel) {
    let mut buf = Vec::new();
    loop {
        match ch.recv_until(&mut buf, ipcx::Deadline::Never) {
            Ok(()) => match ch.send(&buf) {
                Ok(()) | Err(Error::Disconnected) => {}
                Err(e) => panic!("echo send: {e}"),
            },
            Err(Error::Disconnected) => return,
            Err(e) => panic!("echo recv: {e}"),
        }
    }
}

fn serve_typed_blocking(mut ch: ipcx::typed::TypedChannel<Pong, Ping>) {
    loop {
        match ch.recv() {
            Ok(p) => match ch.send(&pong(&p)) {
                Ok(()) | Err(Error::Disconnected) => {}
                Err(e) => panic!("typed reply: {e}"),
            },
            Err(Error::Disconnected) => return,
            Err(e) => panic!("typed recv: {e}"),
        }
    }
}

/// A blocking client of an async server: bytes, or typed with `arg` = typed.
fn blocking_client(ep: &str, arg: &str) {
    if arg == "typed" {
        let ch = connect_blocking(ep, &typed::<Ping, Pong>());
        drive_typed_blocking(ipcx::typed::TypedChannel::new(ch));
    } else {
        drive_bytes_blocking(&mut connect_blocking(ep, &Schema::bytes()));
    }
    report("ok");
}

/// A blocking server of an async client: one bytes connection, then one
/// typed connection on a listener of its own on the same endpoint.
fn blocking_server(ep: &str) {
    let mut l = ipcx::listen(&parse(ep)).expect("listen");
    report(format!("endpoint={}", l.endpoint()));
    echo_blocking(l.accept_timeout(OP).expect("accept"));
    drop(l);
    let mut l = ipcx::typed::listen::<Pong, Ping>(&parse(ep)).expect("typed listen");
    report(format!("endpoint={}", l.endpoint()));
    serve_typed_blocking(l.accept_timeout(OP).expect("typed accept"));
}

// ---------------------------------------------------------------- cases --

/// 0 bytes, 1 byte, around a page, 100,000 bytes, exactly max: each whole;
/// max + 1 refused on both sides (`send`, `try_send`) with
/// `MessageTooLarge`, and the channel carries on.
fn boundaries(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let (peer, mut ch, _l) = open_pair(test, "echo", ep, "", &Schema::bytes()).await;
        let max = ch.max_message_size();
        assert_eq!(max, parse(ep).options().max_message_size);
        assert_eq!(peer.expect_value("max"), max.to_string());
        assert_eq!(
            peer.expect_value("too_large"),
            "ok",
            "the peer's oversize send was not refused"
        );
        for size in [0, 1, 2, 4095, 4096, 4097, 100_000, max - 1, max] {
            let m = pattern(size);
            ch.send(&m)
                .await
                .unwrap_or_else(|e| panic!("send {size}: {e}"));
            let back = within("recv", ch.recv()).await.expect("recv");
            assert_eq!(back.len(), size, "length of a {size}-byte message");
            assert!(back == m, "content of a {size}-byte message");
        }
        for r in [
            ch.send(&vec![1u8; max + 1]).await,
            ch.try_send(&vec![1u8; max + 1]),
        ] {
            match r {
                Err(Error::MessageTooLarge { size, max: m }) => {
                    assert_eq!((size, m), (max + 1, max))
                }
                other => panic!("oversize send gave {other:?}"),
            }
        }
        ch.send(b"after").await.unwrap();
        assert_eq!(within("recv", ch.recv()).await.unwrap(), b"after");
        drop(ch);
        peer.expect_success();
    });
}

/// 20,000 mixed-size messages through the peer's `Sink`, read through this
/// side's `Stream`: each whole and in order, and the stream ends when the
/// peer leaves.
fn stream_order(test: &'static str, ep: &str) {
    const N: u64 = 20_000;
    crate::util::runtime().block_on(async {
        let (peer, ch, _l) =
            open_pair(test, "sink-send", ep, &N.to_string(), &Schema::bytes()).await;
        let (_tx, mut rx) = ch.split();
        for i in 0..N {
            let m = within("next", rx.next())
                .await
                .unwrap_or_else(|| panic!("the stream ended before message {i}"))
                .unwrap_or_else(|e| panic!("message {i}: {e}"));
            assert_eq!(check_mixed(&m), i, "out of order");
        }
        assert_eq!(peer.expect_value("sent"), N.to_string());
        match within("the stream's end", rx.next()).await {
            None => {}
            Some(other) => panic!("after the last message: {other:?}"),
        }
        peer.expect_success();
    });
}

/// On a current-thread runtime (so a send that blocked the thread would
/// stop everything): `try_recv` on an empty channel and `try_send` on a
/// full one say `WouldBlock`; a `send` on a full channel waits while a
/// ticking task keeps running; every message accepted arrives, in order.
fn backpressure(test: &'static str, ep: &str) {
    let rt = crate::util::current_thread();
    rt.block_on(async {
        let (mut peer, mut ch, _l) = open_pair(test, "slow-reader", ep, "", &Schema::bytes()).await;
        assert_eq!(peer.expect_line(), "connected");
        assert!(
            matches!(ch.try_recv(), Err(Error::WouldBlock)),
            "try_recv on an empty channel"
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

        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_millis(1));
                loop {
                    every.tick().await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        // The writer sends until the channel stays full (TCP grows its
        // windows for a while, so "full" is when sends stop progressing).
        let (mut tx, rx) = ch.split();
        let progress = Arc::new(AtomicU64::new(seq));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (progress, stop) = (progress.clone(), stop.clone());
            tokio::spawn(async move {
                let mut s = seq;
                while !stop.load(Ordering::SeqCst) {
                    tx.send(&seq_message(s, 1024)).await.expect("async send");
                    s += 1;
                    progress.store(s, Ordering::SeqCst);
                }
                (tx, s)
            })
        };
        // A guard against a writer that never stalls, not a measurement.
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut last = progress.load(Ordering::SeqCst);
        let (mut still_since, mut ticks_then) = (Instant::now(), ticks.load(Ordering::SeqCst));
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let now = progress.load(Ordering::SeqCst);
            if now != last {
                last = now;
                still_since = Instant::now();
                ticks_then = ticks.load(Ordering::SeqCst);
            } else if still_since.elapsed() >= Duration::from_millis(300) {
                break;
            }
            assert!(
                Instant::now() < give_up,
                "the writer never stalled although nobody read"
            );
        }
        assert!(
            ticks.load(Ordering::SeqCst) > ticks_then,
            "the other task did not run while the send waited"
        );
        ticker.abort();
        peer.tell("go");
        stop.store(true, Ordering::SeqCst);
        let (tx, sent) = within("the writer", writer).await.expect("writer task");
        drop(tx);
        drop(rx);
        assert_eq!(
            peer.expect_value("count"),
            sent.to_string(),
            "messages accepted vs received"
        );
        peer.expect_success();
    });
}

/// Six client processes on one async listener at once, accepted by an
/// `accept` raced against `yield_now` (cancelled whenever not ready), each
/// connection served by a task of its own, each client getting its own
/// replies.
fn many_clients(test: &'static str, ep: &str) {
    const CLIENTS: usize = 6;
    const M: u32 = 100;
    // Six pairs of POSIX queues beside the other mq cases: small units
    // (the messages here are under 32 bytes).
    let ep = if parse(ep).scheme() == Scheme::Mq {
        util::with_option(ep, "max_message_size=256")
    } else {
        ep.to_string()
    };
    crate::util::runtime().block_on(async {
        let mut l = ipcx::tokio::listen(&parse(&ep)).expect("listen");
        let at = l.endpoint().to_string();
        let peers: Vec<Peer> = (0..CLIENTS)
            .map(|id| Peer::spawn(test, "client", &at, &format!("{id},{M}")))
            .collect();
        let mut servers = tokio::task::JoinSet::new();
        let (mut accepted, mut cancelled) = (0, 0u64);
        let since = Instant::now();
        while accepted < CLIENTS {
            assert!(
                since.elapsed() < OP,
                "accepted {accepted} of {CLIENTS} (hang)"
            );
            // Cancel safety of accept: a cancelled accept loses no client.
            let got = tokio::select! {
                biased;
                r = l.accept() => Some(r),
                () = tokio::task::yield_now() => None,
            };
            let Some(got) = got else {
                cancelled += 1;
                continue;
            };
            let mut ch = got.expect("accept");
            accepted += 1;
            servers.spawn(async move {
                let mut served = 0u32;
                loop {
                    match ch.recv().await {
                        Ok(m) => {
                            let mut reply = b"echo ".to_vec();
                            reply.extend_from_slice(&m);
                            ch.send(&reply).await.expect("reply");
                            served += 1;
                        }
                        Err(Error::Disconnected) => return served,
                        Err(e) => panic!("server: {e}"),
                    }
                }
            });
        }
        eprintln!("many_clients on {ep}: {cancelled} accepts cancelled");
        for p in peers {
            assert_eq!(p.expect_line(), "done");
            p.expect_success();
        }
        while let Some(served) = within("the servers", servers.join_next()).await {
            assert_eq!(served.expect("server task"), M);
        }
    });
}

/// Waits for an operation's result after the peer's SIGKILL.
async fn expect_disconnect_after_kill(
    peer: &mut Peer,
    op: tokio::task::JoinHandle<Error>,
    what: &str,
) {
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!op.is_finished(), "{what} returned before the peer's death");
    let killed = Instant::now();
    peer.kill();
    match tokio::time::timeout(DEATH_LIMIT, op).await {
        Ok(Ok(Error::Disconnected)) => {
            eprintln!("{what}: Disconnected {:?} after SIGKILL", killed.elapsed());
        }
        Ok(other) => panic!("{what} after the peer's SIGKILL gave {other:?}"),
        Err(_) => panic!("{what} still waiting {DEATH_LIMIT:?} after the peer's SIGKILL"),
    }
}

/// The async side waiting in `recv` gets `Disconnected` when its peer is
/// killed.
fn peer_killed_in_recv(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let (mut peer, mut ch, _l) = open_pair(test, "hold", ep, "", &Schema::bytes()).await;
        assert_eq!(peer.expect_line(), "connected");
        let op = tokio::spawn(async move {
            match ch.recv().await {
                Ok(m) => panic!("received {} bytes from a silent peer", m.len()),
                Err(e) => e,
            }
        });
        expect_disconnect_after_kill(&mut peer, op, "async recv").await;
    });
}

/// The async side waiting in `send` on a full channel gets `Disconnected`
/// when its peer is killed.
fn peer_killed_in_send(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let (mut peer, mut ch, _l) = open_pair(test, "hold", ep, "", &Schema::bytes()).await;
        assert_eq!(peer.expect_line(), "connected");
        let mut n = 0;
        while ch.try_send(&seq_message(n, 4096)).is_ok() {
            n += 1;
            assert!(n < 1_000_000, "the channel never filled");
        }
        let op = tokio::spawn(async move {
            // Keeps sending: should the kernel find more room meanwhile
            // (TCP grows its windows), the next send waits again.
            loop {
                if let Err(e) = ch.send(&seq_message(n, 4096)).await {
                    return e;
                }
                n += 1;
            }
        });
        expect_disconnect_after_kill(&mut peer, op, "async send on a full channel").await;
    });
}

/// Messages [`sent_survives_exit`] sends: room for all of them on every
/// transport (a POSIX queue of the suite holds four).
const SENT_BEFORE_EXIT: u64 = 3;

/// A completed `send` has handed the message to the kernel: the sender's
/// process may exit at once (no drop, no flush), and the message arrives.
fn sent_survives_exit(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let (peer, mut ch, _l) = open_pair(test, "send-exit", ep, "", &Schema::bytes()).await;
        assert_eq!(peer.expect_line(), "sent");
        peer.expect_success();
        for i in 0..SENT_BEFORE_EXIT {
            let m = within("recv", ch.recv())
                .await
                .unwrap_or_else(|e| panic!("message {i} of a sender that exited: {e}"));
            assert_eq!(check_mixed(&m), i);
        }
        match within("recv after the last", ch.recv()).await {
            Err(Error::Disconnected) => {}
            other => panic!("after the last message: {other:?}"),
        }
    });
}

/// Connects dropped before they finish (raced against `yield_now`) leave
/// nothing half-made: each connection the listener got from them is
/// closed (`Disconnected` at once), a connect after them works, and no
/// file or queue of theirs is left on the endpoint.
fn connect_cancelled(_test: &'static str, ep: &str) {
    const CANCELLED: usize = 10;
    let ep = if parse(ep).scheme() == Scheme::Mq {
        util::with_option(ep, "max_message_size=256")
    } else {
        ep.to_string()
    };
    crate::util::runtime().block_on(async {
        let mut l = ipcx::tokio::listen(&parse(&ep)).expect("listen");
        let at = parse(&l.endpoint().to_string());
        let mut cancelled = 0;
        while cancelled < CANCELLED {
            tokio::select! {
                biased;
                r = ipcx::tokio::connect(&at) => {
                    // Finished at once: not what this case is after.
                    drop(r.expect("connect"));
                    let mut ch = within("accept", l.accept()).await.expect("accept");
                    let _ = within("recv", ch.recv()).await;
                }
                () = tokio::task::yield_now() => cancelled += 1,
            }
        }
        // Each cancelled connect went on in the background and closed
        // what it made.
        for i in 0..CANCELLED {
            let mut ch = within("accept", l.accept())
                .await
                .unwrap_or_else(|e| panic!("accept {i}: {e}"));
            match within("recv", ch.recv()).await {
                Err(Error::Disconnected) => {}
                other => panic!("a cancelled connect's connection gave {other:?}"),
            }
        }
        let (client, server) = tokio::join!(ipcx::tokio::connect(&at), l.accept());
        let (mut client, mut server) = (client.expect("connect"), server.expect("accept"));
        client.send(b"after").await.expect("send");
        assert_eq!(within("recv", server.recv()).await.unwrap(), b"after");
        drop((client, server, l));
    });
    // Files and POSIX objects only: this process's System V objects
    // cannot be told from those of cases running beside this one.
    util::assert_nothing_left(&ep, &[], "after cancelled connects");
}

/// An async connect where nothing listens is `NoListener`, at once (a
/// minute of `connect_timeout` would trip the case's watchdog).
fn no_listener(_test: &'static str, ep: &str) {
    let _reclaim = util::Reclaim::new(ep);
    let (_bound, ep) = if parse(ep).scheme() == Scheme::Tcp {
        // Not port 0: a port where a socket is bound and not listening.
        let (bound, address) = util::refusing_tcp_address();
        (Some(bound), format!("tcp://{address}"))
    } else {
        (None, ep.to_string())
    };
    let ep = util::with_option(&ep, "connect_timeout=60s");
    crate::util::runtime().block_on(async {
        match within("connect", ipcx::tokio::connect(&parse(&ep))).await {
            Err(Error::NoListener { .. }) => {}
            other => panic!(
                "async connect to {ep} gave {:?}, expected Err(NoListener)",
                other.map(|_| "a channel")
            ),
        }
    });
}

/// An async client waiting in `recv` gets `Disconnected` when the async
/// listener's process is killed; what the dead listener left is reclaimed
/// by the next listener on its endpoint.
fn listener_killed(test: &'static str, ep: &str) {
    let mut peer = Peer::spawn(test, "listen-hold", ep, "");
    let at = peer.expect_value("endpoint");
    crate::util::runtime().block_on(async {
        let mut ch = connect(&at, &Schema::bytes()).await;
        assert_eq!(peer.expect_line(), "accepted");
        let op = tokio::spawn(async move {
            let end = match ch.recv().await {
                Ok(m) => panic!("received {} bytes from a silent peer", m.len()),
                Err(e) => e,
            };
            // Our end goes before the result, so the leftover check below
            // sees only what the dead listener left.
            drop(ch);
            end
        });
        expect_disconnect_after_kill(&mut peer, op, "async recv (listener killed)").await;
        let again = if at.contains(":0") {
            ep.to_string()
        } else {
            at.clone()
        };
        drop(ipcx::tokio::listen(&parse(&again)).expect("listen again"));
        util::assert_nothing_left(
            &again,
            &[peer.pid()],
            "after relistening on a killed listener's endpoint",
        );
    });
}

/// Normal close, and a client's SIGKILL, leave no kernel object behind.
/// Listener and clients are async and all run in child processes, so the
/// probe can tell this case's System V objects from other cases'.
fn nothing_left_behind(test: &'static str, ep: &str) {
    if is_pipe(ep) {
        return crate::util::runtime().block_on(async {
            let (peer, mut ch, _) = open_pair(test, "echo", ep, "", &Schema::bytes()).await;
            assert_eq!(peer.expect_value("max"), ch.max_message_size().to_string());
            assert_eq!(peer.expect_value("too_large"), "ok");
            ch.send(b"ping").await.unwrap();
            assert_eq!(within("recv", ch.recv()).await.unwrap(), b"ping");
            drop(ch);
            let pid = peer.pid();
            peer.expect_success();
            util::assert_nothing_left(ep, &[pid], "after a normal close");
            let (mut peer, mut ch, _) = open_pair(test, "hold", ep, "", &Schema::bytes()).await;
            assert_eq!(peer.expect_line(), "connected");
            let pid = peer.pid();
            peer.kill();
            assert!(matches!(
                tokio::time::timeout(DEATH_LIMIT, ch.recv()).await,
                Ok(Err(Error::Disconnected))
            ));
            drop(ch);
            util::assert_nothing_left(ep, &[pid], "after the peer's SIGKILL");
        });
    }
    let server = Peer::spawn(test, "serve-one", ep, "");
    let at = server.expect_value("endpoint");
    let client = Peer::spawn(test, "ping", &at, "");
    let pids = vec![server.pid(), client.pid()];
    client.expect_success();
    server.expect_success();
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

/// Typed channels of other types are refused on both sides: the client's
/// connect fails with `SchemaMismatch`, the async listener counts a
/// refusal and hands out nothing; a client of the right types is served.
fn handshake_mismatch(test: &'static str, ep: &str) {
    if is_pipe(ep) {
        return handshake_mismatch_spawned(test, ep);
    }
    crate::util::runtime().block_on(async {
        let mut l =
            ipcx::tokio::typed::listen::<Ping, Pong>(&parse(ep)).expect("typed async listen");
        let at = l.endpoint().to_string();
        let peer = Peer::spawn(test, "typed-connect", &at, "other");
        let e = peer.expect_value("err");
        assert!(e.starts_with("SchemaMismatch"), "client: {e}");
        peer.expect_success();
        // The refusal is counted off the accept path (a guard, not a
        // measurement: it is counted once the handshake thread ends).
        let since = Instant::now();
        while l.refused() == 0 {
            assert!(
                since.elapsed() < OP,
                "the listener never counted the refusal"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(l.refused(), 1);

        let peer = Peer::spawn(test, "typed-connect", &at, "match");
        let mut ch = within("typed accept", l.accept())
            .await
            .expect("a matching client after a refusal");
        assert!(ch.peer().send.name.contains("Pong"), "{:?}", ch.peer());
        ch.send(&ping(7)).await.expect("typed send");
        assert_eq!(
            within("typed recv", ch.recv()).await.unwrap(),
            pong(&ping(7))
        );
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        assert_eq!(l.refused(), 1);
    });
}

/// `handshake_mismatch` for `pipe:`: the spawning parent and its child
/// refuse each other; the child's report is read from its output after
/// `spawn_with` has reaped it.
fn handshake_mismatch_spawned(test: &'static str, ep: &str) {
    let endpoint = parse(ep);
    let out = std::env::temp_dir().join(util::unique("ahs"));
    let file = std::fs::File::create(&out).expect("report file");
    let mut cmd = Peer::command(test, "typed-connect", ep, "other");
    cmd.stdout(file);
    let refused = ipcx::spawn_with(cmd, &endpoint, &typed::<Ping, Pong>());
    let report = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    match refused {
        Err(Error::SchemaMismatch { .. }) => {}
        Err(e) => panic!("parent: {e:?}, expected SchemaMismatch"),
        Ok(_) => panic!("spawn over {ep} accepted a child of other types"),
    }
    let line = report
        .lines()
        .find_map(|l| l.strip_prefix("PEER:err="))
        .unwrap_or_else(|| panic!("child reported no refusal: {report:?}"));
    assert!(line.starts_with("SchemaMismatch"), "child: {line}");
    crate::util::runtime().block_on(async {
        let (peer, ch, _) =
            open_pair(test, "typed-connect", ep, "match", &typed::<Ping, Pong>()).await;
        let mut ch = TypedChannel::<Ping, Pong>::new(ch);
        ch.send(&ping(7)).await.expect("typed send");
        assert_eq!(
            within("typed recv", ch.recv()).await.unwrap(),
            pong(&ping(7))
        );
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
    });
}

/// Cancel safety of `recv`: 100,000 mixed-size messages (some split over
/// many kernel units, pipe buffers or ring chunks) from a peer process,
/// each received in a `select!` against a short timer (a 50 µs sleep, or
/// one `yield_now`) that cancels the receive whenever it is not ready at
/// once: none lost, none duplicated, each whole, in order.
fn recv_cancel(test: &'static str, ep: &str) {
    const N: u64 = 100_000;
    crate::util::runtime().block_on(async {
        let (peer, ch, _l) =
            open_pair(test, "seq-send", ep, &N.to_string(), &Schema::bytes()).await;
        let (_tx, mut rx) = ch.split();
        let (mut next, mut cancelled, mut turn) = (0u64, 0u64, 0u64);
        let mut buf = Vec::new();
        let started = Instant::now();
        while next < N {
            assert!(started.elapsed() < OP, "stuck at message {next} (hang)");
            turn += 1;
            // Both ways to receive: into a buffer reused across cancelled
            // calls, and into a fresh one each time.
            let got = match turn % 4 {
                0 => tokio::select! {
                    biased;
                    r = rx.recv_into(&mut buf) => Some(r.map(|()| std::mem::take(&mut buf))),
                    () = tokio::task::yield_now() => None,
                },
                1 => tokio::select! {
                    biased;
                    r = rx.recv() => Some(r),
                    () = tokio::task::yield_now() => None,
                },
                2 => tokio::select! {
                    biased;
                    r = rx.recv_into(&mut buf) => Some(r.map(|()| std::mem::take(&mut buf))),
                    () = tokio::time::sleep(Duration::from_micros(50)) => None,
                },
                _ => tokio::select! {
                    biased;
                    r = rx.recv() => Some(r),
                    () = tokio::time::sleep(Duration::from_micros(50)) => None,
                },
            };
            match got {
                None => cancelled += 1,
                Some(Ok(m)) => {
                    let seq = check_mixed(&m);
                    assert_eq!(seq, next, "message {next}: got message {seq}");
                    next += 1;
                }
                Some(Err(e)) => panic!("message {next}: {e}"),
            }
        }
        eprintln!("recv_cancel on {ep}: {N} messages, {cancelled} receives cancelled");
        assert_eq!(peer.expect_value("sent"), N.to_string());
        match within("recv after the last", rx.recv()).await {
            Err(Error::Disconnected) => {}
            other => panic!("after the last message: {other:?}"),
        }
        peer.expect_success();
    });
}

/// Messages of [`send_cancel`] before its last, large one.
const SEND_CANCEL_N: u64 = 20_000;

/// Cancel safety of `send`: 20,000 mixed-size messages, each sent in a
/// `select!` against a short timer, to a reader that pauses now and then,
/// then a large one whose send is most likely cancelled part-way just
/// before the sender is dropped. Every message whose send completed
/// arrives; a cancelled one arrives whole (it was committed) or not at
/// all; nothing arrives twice or out of order.
fn send_cancel(test: &'static str, ep: &str) {
    const N: u64 = SEND_CANCEL_N;
    let record = std::env::temp_dir().join(util::unique("asc"));
    let arg = record.to_string_lossy().into_owned();
    let (sent, cancelled, received) = crate::util::runtime().block_on(async {
        let (peer, ch, _l) = open_pair(test, "record-reader", ep, &arg, &Schema::bytes()).await;
        let (mut tx, _rx) = ch.split();
        let mut sent = std::collections::BTreeSet::new();
        let mut cancelled = std::collections::BTreeSet::new();
        for seq in 0..N {
            let m = mixed_message(seq);
            let done = if seq % 2 == 0 {
                tokio::select! {
                    biased;
                    r = tx.send(&m) => Some(r),
                    () = tokio::task::yield_now() => None,
                }
            } else {
                tokio::select! {
                    biased;
                    r = tx.send(&m) => Some(r),
                    () = tokio::time::sleep(Duration::from_micros(50)) => None,
                }
            };
            match done {
                Some(Ok(())) => sent.insert(seq),
                None => cancelled.insert(seq),
                Some(Err(e)) => panic!("send {seq}: {e}"),
            };
        }
        // A last large message, most likely cancelled part-way: dropping
        // the sender (no flush) must still finish what it committed.
        let last = make_message(&mut Rng::new(N), N, 100_000);
        tokio::select! {
            biased;
            r = tx.send(&last) => {
                r.expect("the last send");
                sent.insert(N);
            }
            () = tokio::task::yield_now() => {
                cancelled.insert(N);
            }
        }
        drop(tx);
        drop(_rx);
        let count: usize = peer.expect_value("count").parse().expect("count");
        peer.expect_success();
        let raw = std::fs::read(&record).expect("the reader's record");
        let _ = std::fs::remove_file(&record);
        let received: Vec<u64> = raw
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(received.len(), count);
        (sent, cancelled, received)
    });
    eprintln!(
        "send_cancel on {ep}: {} sent, {} cancelled, {} received",
        sent.len(),
        cancelled.len(),
        received.len()
    );
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "messages arrived twice or out of order"
    );
    let got: std::collections::BTreeSet<u64> = received.iter().copied().collect();
    let lost: Vec<_> = sent.difference(&got).take(10).collect();
    assert!(
        lost.is_empty(),
        "sends that completed never arrived: {lost:?}…"
    );
    let stray: Vec<_> = got
        .iter()
        .filter(|s| !sent.contains(s) && !cancelled.contains(s))
        .take(10)
        .collect();
    assert!(stray.is_empty(), "messages never sent arrived: {stray:?}");
}

/// A blocking client (another process) and this async side as the server:
/// bytes of mixed sizes echoed, then typed requests answered through the
/// typed `Stream` and `Sink`.
fn blocking_client_async_server(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let (peer, ch, l) = open_pair(test, "blocking-client", ep, "bytes", &Schema::bytes()).await;
        echo(ch).await;
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        drop(l);
        let (peer, ch, _l) =
            open_pair(test, "blocking-client", ep, "typed", &typed::<Pong, Ping>()).await;
        serve_typed(TypedChannel::new(ch)).await;
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
    });
}

/// This async side as the client of a blocking server (another process):
/// bytes of mixed sizes, then typed. On `pipe:` the blocking side is this
/// process (the parent, which must spawn) and the async client its child.
fn async_client_blocking_server(test: &'static str, ep: &str) {
    if is_pipe(ep) {
        let endpoint = parse(ep);
        let (child, ch) = ipcx::spawn(Peer::command(test, "async-client", ep, "bytes"), &endpoint)
            .expect("spawn");
        let peer = Peer::adopt(child);
        echo_blocking(ch);
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        let (child, ch) = ipcx::typed::spawn::<Pong, Ping>(
            Peer::command(test, "async-client", ep, "typed"),
            &endpoint,
        )
        .expect("typed spawn");
        let peer = Peer::adopt(child);
        serve_typed_blocking(ch);
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        return;
    }
    let server = Peer::spawn(test, "blocking-server", ep, "");
    crate::util::runtime().block_on(async {
        let at = server.expect_value("endpoint");
        let mut ch = connect(&at, &Schema::bytes()).await;
        drive_bytes(&mut ch).await;
        drop(ch);
        let at = server.expect_value("endpoint");
        let ch = connect(&at, &typed::<Ping, Pong>()).await;
        drive_typed(TypedChannel::new(ch)).await;
    });
    server.expect_success();
}

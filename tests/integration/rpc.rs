//! Request–reply across processes: several client processes, each with
//! several calls in flight, served concurrently by one server; handler
//! errors come back as errors; clients that are killed mid-call or fail
//! their handshake do not stop the server.
//!
//! Cases are instantiated per transport by [`rpc!`], listed as
//! `rpc::<transport>::<case>`. The server runs in the test process; clients
//! are this test binary re-executed with a role.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ipcx::rpc::{Client, Server};
use ipcx::{Error, IpcMessage};
use serde::{Deserialize, Serialize};

use crate::util::{self, Peer, report};

const CASE_LIMIT: Duration = Duration::from_secs(120);
const OP: Duration = Duration::from_secs(60);

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Request {
    /// `a / b`, an error when `b` is 0.
    Div { a: i64, b: i64 },
    /// Blocks in the handler until the test releases it.
    Block,
    /// Echoes a payload of this many bytes.
    Blob(Vec<u8>),
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Reply {
    Quotient(i64),
    Released,
    Blob(Vec<u8>),
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Other {
    x: u8,
}

macro_rules! rpc {
    ($transport:ident => $endpoint:expr) => {
        matrix!(rpc, $transport => $endpoint; many_clients handler_error bad_clients concurrent_requests);
    };
}

rpc!(unix => format!("unix:/tmp/{}.sock", crate::util::unique("ru")));
rpc!(tcp => "tcp://127.0.0.1:0".to_string());
rpc!(fifo => format!("fifo:/tmp/{}", crate::util::unique("rf")));
// Small queues: four clients at once, beside other tests, within the
// per-user POSIX queue memory (RLIMIT_MSGQUEUE, 800 KiB by default).
rpc!(mq => format!("mq:/{}?capacity=4", crate::util::unique("rm")));
rpc!(sysv_mq => format!("sysv-mq:/tmp/{}", crate::util::unique("rs")));
#[cfg(feature = "nats")]
rpc!(nats => crate::util::nats::endpoint("r", "heartbeat=200ms"));

use crate::util::parse;

/// A gate the `Block` handler waits at: counts who entered, lets them out
/// when opened.
#[derive(Default)]
struct Gate {
    entered: AtomicU64,
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn pass(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

fn server(ep: &str, gate: Arc<Gate>) -> Server {
    Server::serve(&parse(ep), move |req: Request| match req {
        Request::Div { b: 0, a } => Err(format!("cannot divide {a} by zero")),
        Request::Div { a, b } => Ok(Reply::Quotient(a / b)),
        Request::Block => {
            gate.pass();
            Ok(Reply::Released)
        }
        Request::Blob(b) => Ok(Reply::Blob(b)),
    })
    .unwrap_or_else(|e| panic!("serve {ep}: {e}"))
}

// ---------------------------------------------------------------- roles --

fn run_role() {
    let (role, ep, arg) = util::peer_params();
    let ep = parse(&ep);
    match role.as_str() {
        // Connects, makes one call, and holds the connection until told;
        // then runs `threads` threads, each with `inflight` calls started
        // before any is waited for, `rounds` times.
        "client" => {
            let id: i64 = arg.parse().expect("id");
            let client = Client::<Request, Reply>::connect(&ep).expect("connect");
            let first = client
                .call_timeout(&Request::Div { a: id * 10, b: 10 }, OP)
                .expect("first call");
            assert_eq!(first, Reply::Quotient(id));
            report("called");
            util::await_parent();
            std::thread::scope(|s| {
                for t in 0..4i64 {
                    let client = &client;
                    s.spawn(move || {
                        for round in 0..20i64 {
                            let calls: Vec<_> = (0..8i64)
                                .map(|k| {
                                    let a = id * 1_000_000 + t * 10_000 + round * 100 + k;
                                    let blob = vec![k as u8; (k as usize) * 100];
                                    let c1 =
                                        client.start(&Request::Div { a, b: 1 }).expect("start");
                                    let c2 =
                                        client.start(&Request::Blob(blob.clone())).expect("start");
                                    (a, blob, c1, c2)
                                })
                                .collect();
                            // Collect in reverse: replies are matched by id, not order.
                            for (a, blob, c1, c2) in calls.into_iter().rev() {
                                assert_eq!(c2.wait_timeout(OP).expect("blob"), Reply::Blob(blob));
                                assert_eq!(c1.wait_timeout(OP).expect("div"), Reply::Quotient(a));
                            }
                        }
                    });
                }
            });
            report("done");
        }
        "errors" => {
            let client = Client::<Request, Reply>::connect(&ep).expect("connect");
            for _ in 0..3 {
                match client.call_timeout(&Request::Div { a: 7, b: 0 }, OP) {
                    Err(Error::Remote(msg)) => report(format!("remote={msg}")),
                    other => report(format!("unexpected={other:?}")),
                }
                assert_eq!(
                    client
                        .call_timeout(&Request::Div { a: 9, b: 3 }, OP)
                        .expect("after an error"),
                    Reply::Quotient(3)
                );
            }
        }
        "block" => {
            let client = Client::<Request, Reply>::connect(&ep).expect("connect");
            report("connected");
            let _ = client.call(&Request::Block);
            report("unblocked");
        }
        "mismatch" => match Client::<Request, Other>::connect(&ep) {
            Err(e @ Error::SchemaMismatch { .. }) => report(format!("mismatch={e}")),
            Err(e) => report(format!("other={e}")),
            Ok(_) => report("accepted"),
        },
        "typed" => match ipcx::connect_typed::<Request, Reply>(&ep) {
            Err(Error::SchemaMismatch { .. }) => report("mismatch"),
            Err(e) => report(format!("other={e}")),
            Ok(_) => report("accepted"),
        },
        "hold" => {
            let client = Client::<Request, Reply>::connect(&ep).expect("connect");
            assert_eq!(
                client
                    .call_timeout(&Request::Div { a: 4, b: 2 }, OP)
                    .expect("call"),
                Reply::Quotient(2)
            );
            report("called");
            util::await_parent();
            match client.call_timeout(&Request::Div { a: 1, b: 1 }, OP) {
                Err(Error::Disconnected) => report("disconnected"),
                other => report(format!("unexpected={other:?}")),
            }
        }
        // On one connection: a request that blocks in the handler, then
        // one that does not, whose reply must come first; then 7 more
        // blocking ones, in flight together.
        "overlap" => {
            let client = Client::<Request, Reply>::connect(&ep).expect("connect");
            let blocked = client.start(&Request::Block).expect("start");
            match client.call_timeout(&Request::Div { a: 8, b: 2 }, Duration::from_secs(30)) {
                Ok(Reply::Quotient(4)) => report("div-first"),
                other => report(format!("div={other:?}")),
            }
            let more: Vec<_> = (0..7)
                .map(|_| client.start(&Request::Block).expect("start"))
                .collect();
            report("started");
            util::await_parent();
            let mut released = 0;
            for call in std::iter::once(blocked).chain(more) {
                if matches!(call.wait_timeout(OP), Ok(Reply::Released)) {
                    released += 1;
                }
            }
            report(format!("released={released}"));
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

// ---------------------------------------------------------------- cases --

/// Four client processes, all connected at once (each holds its connection
/// after a first call, so a server that served one client at a time would
/// never answer the second), then 4 threads × 20 rounds × 16 calls in
/// flight each.
fn many_clients(test: &'static str, ep: &str) {
    let server = server(ep, Arc::default());
    let at = server.endpoint().to_string();
    let mut peers: Vec<Peer> = (1..=4)
        .map(|id| Peer::spawn(test, "client", &at, &id.to_string()))
        .collect();
    for p in &peers {
        assert_eq!(p.expect_line(), "called");
    }
    for p in &mut peers {
        p.tell("go");
    }
    let pids: Vec<u32> = peers.iter().map(Peer::pid).collect();
    for p in peers {
        assert_eq!(p.expect_line(), "done");
        p.expect_success();
    }
    assert_eq!(server.accepted(), 4);
    server.shutdown();
    // The clients exited right after dropping their `Client`s: what their
    // connections owned is gone all the same.
    crate::util::assert_nothing_left(&at, &pids, "after the clients exited");
}

/// The requests of one connection are handled concurrently: a fast request
/// sent after a blocked one is answered first, and eight blocked requests
/// of one client are all inside the handler at once (a server that handled
/// a connection's requests in order would have one there, and the fast
/// request would wait behind it).
fn concurrent_requests(test: &'static str, ep: &str) {
    let gate = Arc::new(Gate::default());
    let server = server(ep, Arc::clone(&gate));
    let mut peer = Peer::spawn(test, "overlap", &server.endpoint().to_string(), "");
    assert_eq!(peer.expect_line(), "div-first");
    assert_eq!(peer.expect_line(), "started");
    let waited = std::time::Instant::now();
    while gate.entered.load(Ordering::SeqCst) < 8 && waited.elapsed() < OP {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        gate.entered.load(Ordering::SeqCst),
        8,
        "blocked requests of one connection inside the handler at once"
    );
    gate.release();
    peer.tell("go");
    assert_eq!(peer.expect_value("released"), "8");
    peer.expect_success();
    server.shutdown();
}

/// A handler's error reaches that caller as `Error::Remote` with its text,
/// and the connection carries on.
fn handler_error(test: &'static str, ep: &str) {
    let server = server(ep, Arc::default());
    let peer = Peer::spawn(test, "errors", &server.endpoint().to_string(), "");
    for _ in 0..3 {
        assert_eq!(peer.expect_value("remote"), "cannot divide 7 by zero");
    }
    peer.expect_success();
    // In this process too.
    let client = Client::<Request, Reply>::connect(server.endpoint()).expect("connect");
    match client.call_timeout(&Request::Div { a: 1, b: 0 }, OP) {
        Err(e @ Error::Remote(_)) => assert!(e.to_string().contains("by zero"), "{e}"),
        other => panic!("{other:?}"),
    }
    drop(client);
    server.shutdown();
}

/// Clients with other types are refused (both sides see the mismatch), a
/// client killed inside a call goes away alone, and the server then serves
/// a new client; shutdown disconnects a connected client instead of
/// leaving it hanging.
fn bad_clients(test: &'static str, ep: &str) {
    let gate = Arc::new(Gate::default());
    let server = server(ep, Arc::clone(&gate));
    let at = server.endpoint().to_string();

    let peer = Peer::spawn(test, "mismatch", &at, "");
    let text = peer.expect_value("mismatch");
    assert!(text.contains("Other") && text.contains("Reply"), "{text}");
    peer.expect_success();
    let peer = Peer::spawn(test, "typed", &at, "");
    assert_eq!(
        peer.expect_line(),
        "mismatch",
        "a plain typed channel met the rpc server"
    );
    peer.expect_success();

    // Killed while its call is inside the handler.
    let mut peer = Peer::spawn(test, "block", &at, "");
    assert_eq!(peer.expect_line(), "connected");
    let entered = Arc::new(AtomicBool::new(false));
    {
        let gate = Arc::clone(&gate);
        let entered = Arc::clone(&entered);
        util::watchdog(OP, "the blocking call reaching the handler", move || {
            while gate.entered.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            entered.store(true, Ordering::SeqCst);
        });
    }
    assert!(entered.load(Ordering::SeqCst));
    peer.kill();
    gate.release();

    // The server is still there.
    let client =
        Client::<Request, Reply>::connect(server.endpoint()).expect("connect after a kill");
    assert_eq!(
        client
            .call_timeout(&Request::Div { a: 10, b: 5 }, OP)
            .expect("call"),
        Reply::Quotient(2)
    );
    drop(client);
    // The refused clients were counted by the listener (the server reads
    // the count between accepts).
    let waited = std::time::Instant::now();
    while server.refused() < 1 && waited.elapsed() < OP {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(server.refused() >= 1, "refused = {}", server.refused());

    // Shutdown with a client connected: its next call fails with
    // Disconnected instead of hanging.
    let mut peer = Peer::spawn(test, "hold", &at, "");
    assert_eq!(peer.expect_line(), "called");
    server.shutdown();
    peer.tell("go");
    assert_eq!(peer.expect_line(), "disconnected");
    peer.expect_success();
}

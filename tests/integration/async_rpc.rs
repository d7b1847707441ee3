//! Request–reply under tokio (`ipcx::tokio::rpc`) across processes: many
//! calls in flight on one connection, a slow request that does not hold
//! up fast ones, handler errors and panics, blocking and async clients and
//! servers mixed, and shutdown.
//!
//! Cases are instantiated per transport by `matrix!` as
//! `async_rpc::<transport>::<case>`. The peer is this test binary
//! re-executed with a role ([`run_role`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipcx::tokio::rpc::{Client, Server};
use ipcx::{Error, IpcMessage};
use serde::{Deserialize, Serialize};

use crate::util::{self, Peer, parse, report};

/// Longest a case may run before its watchdog fails it (a hang guard).
const CASE_LIMIT: Duration = Duration::from_secs(120);
/// Bound on single calls that must complete (a hang guard).
const OP: Duration = Duration::from_secs(60);
/// How long the slow request's handler sleeps.
const SLOW: Duration = Duration::from_millis(500);
/// Fast calls sent after the slow one.
const FAST: usize = 20;
/// Calls in flight at once on one connection.
const IN_FLIGHT: u64 = 100;

macro_rules! async_rpc {
    ($transport:ident => $endpoint:expr) => {
        matrix!(async_rpc, $transport => $endpoint;
            many_in_flight slow_does_not_hold_up_fast errors_and_panics
            blocking_client_async_server async_client_blocking_server
            shutdown_disconnects cancelled_calls client_killed);
    };
}

async_rpc!(unix => format!("unix:/tmp/{}.sock", crate::util::unique("aru")));
async_rpc!(tcp => "tcp://127.0.0.1:0".to_string());
async_rpc!(fifo => format!("fifo:/tmp/{}", crate::util::unique("arf")));
// Small queues, within the per-user POSIX queue memory beside other cases.
async_rpc!(mq => format!("mq:/{}?capacity=4", crate::util::unique("arm")));
async_rpc!(sysv_mq => format!("sysv-mq:/tmp/{}", crate::util::unique("ars")));
async_rpc!(shm => format!("shm:/{}", crate::util::unique("arh")));
async_rpc!(sysv_shm => format!("sysv-shm:/tmp/{}", crate::util::unique("arv")));
// pipe: has no listener for a server to serve on.

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Request {
    /// `a / b`, an error when `b` is 0.
    Div { a: i64, b: i64 },
    /// The handler sleeps [`SLOW`].
    Slow,
    /// The handler panics.
    Panic,
    /// Echoes the payload.
    Echo(Vec<u8>),
    /// The handler sleeps this many milliseconds.
    Sleep(u64),
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum Reply {
    Quotient(i64),
    Slept,
    Echo(Vec<u8>),
}

/// What the handlers saw, in order: `slow-start`, `slow-end`, `fast`.
type Log = Arc<Mutex<Vec<&'static str>>>;

/// An async server of [`Request`]s on `ep`; must be called in a runtime.
fn async_server(ep: &str, log: Log) -> Server {
    Server::serve(&parse(ep), move |req: Request| {
        let log = log.clone();
        async move {
            match req {
                Request::Div { b: 0, a } => Err(format!("cannot divide {a} by zero")),
                Request::Div { a, b } => {
                    log.lock().unwrap().push("fast");
                    Ok(Reply::Quotient(a / b))
                }
                Request::Slow => {
                    log.lock().unwrap().push("slow-start");
                    // Held until the fast requests sent after it were
                    // handled (a server that handled a connection's
                    // requests in order never gets there: the guard of
                    // ten seconds then lets it go, and the order shows
                    // it), then 500 ms more.
                    let since = std::time::Instant::now();
                    while log.lock().unwrap().iter().filter(|e| **e == "fast").count() < FAST
                        && since.elapsed() < Duration::from_secs(10)
                    {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    tokio::time::sleep(SLOW).await;
                    log.lock().unwrap().push("slow-end");
                    Ok(Reply::Slept)
                }
                Request::Panic => panic!("the handler panics on purpose"),
                Request::Echo(b) => Ok(Reply::Echo(b)),
                Request::Sleep(ms) => {
                    log.lock().unwrap().push("sleep-start");
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    Ok(Reply::Slept)
                }
            }
        }
    })
    .unwrap_or_else(|e| panic!("async serve {ep}: {e}"))
}

fn blob(i: u64) -> Vec<u8> {
    vec![i as u8; (i as usize % 7) * 300]
}

/// [`IN_FLIGHT`] calls started at once on one client, each answered
/// with its own reply.
async fn many_calls(client: &Client<Request, Reply>) {
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..IN_FLIGHT {
        let client = client.clone();
        calls.spawn(async move {
            if i % 2 == 0 {
                let a = i as i64 * 7;
                let r = client.call_timeout(&Request::Div { a, b: 7 }, OP).await;
                assert_eq!(r.expect("div"), Reply::Quotient(i as i64));
            } else {
                let r = client.call_timeout(&Request::Echo(blob(i)), OP).await;
                assert_eq!(r.expect("echo"), Reply::Echo(blob(i)));
            }
        });
    }
    let mut done = 0;
    while let Some(r) = calls.join_next().await {
        r.expect("call task");
        done += 1;
    }
    assert_eq!(done, IN_FLIGHT);
}

#[track_caller]
fn expect_remote<T: std::fmt::Debug>(r: ipcx::Result<T>, needle: &str, what: &str) {
    match r {
        Err(Error::Remote(msg)) => assert!(msg.contains(needle), "{what}: {msg}"),
        other => panic!("{what} gave {other:?}, expected Err(Remote)"),
    }
}

// ---------------------------------------------------------------- roles --

fn run_role() {
    let (role, ep, _arg) = util::peer_params();
    match role.as_str() {
        "blocking-client" => {
            let client =
                ipcx::rpc::Client::<Request, Reply>::connect(&parse(&ep)).expect("connect");
            let calls: Vec<_> = (0..20i64)
                .map(|i| {
                    let c = client
                        .start(&Request::Div { a: i * 3, b: 3 })
                        .expect("start");
                    (i, c)
                })
                .collect();
            for (i, c) in calls.into_iter().rev() {
                assert_eq!(c.wait_timeout(OP).expect("div"), Reply::Quotient(i));
            }
            expect_remote(
                client.call_timeout(&Request::Div { a: 1, b: 0 }, OP),
                "zero",
                "a blocking client's failing call",
            );
            let big = vec![9u8; 200_000];
            assert_eq!(
                client
                    .call_timeout(&Request::Echo(big.clone()), OP)
                    .expect("echo"),
                Reply::Echo(big)
            );
            report("ok");
        }
        "blocking-server" => {
            let server = ipcx::rpc::Server::serve(&parse(&ep), |req: Request| match req {
                Request::Div { b: 0, a } => Err(format!("cannot divide {a} by zero")),
                Request::Div { a, b } => Ok(Reply::Quotient(a / b)),
                Request::Slow => {
                    std::thread::sleep(SLOW);
                    Ok(Reply::Slept)
                }
                Request::Panic => Err("no panics here".to_string()),
                Request::Echo(b) => Ok(Reply::Echo(b)),
                Request::Sleep(ms) => {
                    std::thread::sleep(Duration::from_millis(ms));
                    Ok(Reply::Slept)
                }
            })
            .expect("blocking serve");
            report(format!("endpoint={}", server.endpoint()));
            util::await_parent();
            server.shutdown();
            report("stopped");
        }
        _ => crate::util::runtime().block_on(async_role(&role, &ep)),
    }
}

async fn async_role(role: &str, ep: &str) {
    let client = Client::<Request, Reply>::connect(&parse(ep))
        .await
        .unwrap_or_else(|e| panic!("async rpc connect {ep}: {e}"));
    match role {
        "many" => {
            many_calls(&client).await;
            report("ok");
        }
        // The slow request is sent first; then fast ones, in flight
        // together: they all finish before it.
        "slow-fast" => {
            let finished: Log = Arc::default();
            let mut slow = Box::pin({
                let (client, finished) = (client.clone(), finished.clone());
                async move {
                    let r = client.call_timeout(&Request::Slow, OP).await;
                    finished.lock().unwrap().push("slow");
                    r
                }
            });
            // One poll sends the request (the channel is empty); then it
            // goes on as a task of its own.
            tokio::select! {
                biased;
                _ = &mut slow => panic!("the slow call finished at once"),
                () = std::future::ready(()) => {}
            }
            let slow = tokio::spawn(slow);
            let mut fast = tokio::task::JoinSet::new();
            for i in 0..FAST as i64 {
                let (client, finished) = (client.clone(), finished.clone());
                fast.spawn(async move {
                    let r = client.call_timeout(&Request::Div { a: i, b: 1 }, OP).await;
                    assert_eq!(r.expect("fast call"), Reply::Quotient(i));
                    finished.lock().unwrap().push("fast");
                });
            }
            while let Some(r) = fast.join_next().await {
                r.expect("fast task");
            }
            let r = slow.await.expect("slow task");
            assert_eq!(r.expect("slow call"), Reply::Slept);
            let order = finished.lock().unwrap().clone();
            report(format!("order={}", order.join(",")));
        }
        "errors" => {
            for _ in 0..3 {
                expect_remote(
                    client.call_timeout(&Request::Div { a: 7, b: 0 }, OP).await,
                    "zero",
                    "a handler error",
                );
                expect_remote(
                    client.call_timeout(&Request::Panic, OP).await,
                    "on purpose",
                    "a handler panic",
                );
                let r = client.call_timeout(&Request::Div { a: 9, b: 3 }, OP).await;
                assert_eq!(r.expect("after an error"), Reply::Quotient(3));
            }
            report("ok");
        }
        // One call, then one in flight (its handler sleeps) while the
        // server shuts down: answered; the next call is Disconnected.
        "hold" => {
            let r = client.call_timeout(&Request::Div { a: 4, b: 2 }, OP).await;
            assert_eq!(r.expect("call"), Reply::Quotient(2));
            let in_flight = {
                let client = client.clone();
                tokio::spawn(async move { client.call_timeout(&Request::Sleep(300), OP).await })
            };
            report("called");
            match in_flight.await.expect("call task") {
                Ok(Reply::Slept) => report("answered"),
                other => report(format!("in-flight={other:?}")),
            }
            tokio::task::spawn_blocking(util::await_parent)
                .await
                .expect("stdin");
            match client.call_timeout(&Request::Div { a: 1, b: 1 }, OP).await {
                Err(Error::Disconnected) => report("disconnected"),
                other => report(format!("unexpected={other:?}")),
            }
        }
        // A call in flight when the test kills this process.
        "die-in-call" => {
            let in_flight = {
                let client = client.clone();
                tokio::spawn(async move { client.call(&Request::Sleep(60_000)).await })
            };
            report("calling");
            let _ = in_flight.await;
        }
        // Calls dropped before their replies (raced against yield_now, and
        // timed out while the handler sleeps) confuse no later call.
        "cancel" => {
            let mut cancelled = 0;
            let mut answered = 0;
            for i in 0..200i64 {
                let req = Request::Div { a: i, b: 1 };
                // Timers that fire before a reply, about when it comes,
                // and mostly after it.
                let timer = async move {
                    match i % 3 {
                        0 => tokio::task::yield_now().await,
                        1 => tokio::time::sleep(Duration::from_micros(50)).await,
                        _ => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                };
                tokio::select! {
                    biased;
                    r = client.call(&req) => {
                        assert_eq!(r.expect("call"), Reply::Quotient(i));
                        answered += 1;
                    }
                    () = timer => cancelled += 1,
                }
            }
            eprintln!("{answered} calls answered, {cancelled} cancelled");
            match client
                .call_timeout(&Request::Sleep(300), Duration::from_millis(20))
                .await
            {
                Err(Error::Timeout) => {}
                other => panic!("a call timed out while its handler sleeps gave {other:?}"),
            }
            many_calls(&client).await;
            report("ok");
        }
        other => panic!("unknown peer role {other:?}"),
    }
}

// ---------------------------------------------------------------- cases --

/// Three async clients in other processes at once, each with 100 calls
/// in flight on its one connection, each call answered with its own
/// reply.
fn many_in_flight(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let server = async_server(ep, Log::default());
        let at = server.endpoint().to_string();
        let peers: Vec<Peer> = (0..3).map(|_| Peer::spawn(test, "many", &at, "")).collect();
        for peer in peers {
            assert_eq!(peer.expect_line(), "ok");
            peer.expect_success();
        }
        assert_eq!(server.accepted(), 3);
        server.shutdown().await;
    });
}

/// One slow request does not hold up fast ones sent after it on the same
/// connection: they are handled while it waits (its handler waits for
/// them, then sleeps 500 ms), and their replies come first.
fn slow_does_not_hold_up_fast(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let log = Log::default();
        let server = async_server(ep, log.clone());
        let peer = Peer::spawn(test, "slow-fast", &server.endpoint().to_string(), "");
        let fast = vec!["fast"; FAST].join(",");
        assert_eq!(peer.expect_value("order"), format!("{fast},slow"));
        peer.expect_success();
        let seen = log.lock().unwrap().clone();
        // Every fast request was handled before the slow one ended (the
        // tasks of one connection may start in any order).
        assert_eq!(
            seen.last(),
            Some(&"slow-end"),
            "fast requests waited for the slow one: {seen:?}"
        );
        assert_eq!(seen.len(), FAST + 2, "{seen:?}");
        server.shutdown().await;
    });
}

/// A handler's error and a handler's panic come back to the caller as
/// `Error::Remote`; the server and the connection carry on.
fn errors_and_panics(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let server = async_server(ep, Log::default());
        let at = server.endpoint().to_string();
        let peer = Peer::spawn(test, "errors", &at, "");
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        // And a new client after all that.
        let peer = Peer::spawn(test, "many", &at, "");
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        server.shutdown().await;
    });
}

/// A blocking `ipcx::rpc::Client` (another process) against the async
/// server: calls in flight, an error, a large payload.
fn blocking_client_async_server(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let server = async_server(ep, Log::default());
        let peer = Peer::spawn(test, "blocking-client", &server.endpoint().to_string(), "");
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        server.shutdown().await;
    });
}

/// An async client against a blocking `ipcx::rpc::Server` (another
/// process): calls in flight and an error; when that server shuts down,
/// the client's next call is `Disconnected`.
fn async_client_blocking_server(test: &'static str, ep: &str) {
    let mut peer = Peer::spawn(test, "blocking-server", ep, "");
    let at = peer.expect_value("endpoint");
    crate::util::runtime().block_on(async {
        let client = Client::<Request, Reply>::connect(&parse(&at))
            .await
            .expect("async connect to a blocking server");
        many_calls(&client).await;
        expect_remote(
            client.call_timeout(&Request::Div { a: 1, b: 0 }, OP).await,
            "zero",
            "a blocking handler's error",
        );
        peer.tell("stop");
        assert_eq!(peer.expect_line(), "stopped");
        match client.call_timeout(&Request::Div { a: 1, b: 1 }, OP).await {
            Err(Error::Disconnected) => {}
            other => panic!("a call after the server's shutdown gave {other:?}"),
        }
    });
    peer.expect_success();
}

/// `Server::shutdown` answers the call in flight, then closes every
/// connection: the client's next call is `Disconnected`, without a hang.
fn shutdown_disconnects(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let log = Log::default();
        let server = async_server(ep, log.clone());
        let mut peer = Peer::spawn(test, "hold", &server.endpoint().to_string(), "");
        assert_eq!(peer.expect_line(), "called");
        // The sleeping request is in its handler (a guard against a hang,
        // not a measurement).
        let since = std::time::Instant::now();
        while !log.lock().unwrap().contains(&"sleep-start") {
            assert!(since.elapsed() < OP, "the sleeping request never came");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::timeout(OP, server.shutdown())
            .await
            .expect("shutdown did not finish (hang)");
        assert_eq!(
            peer.expect_line(),
            "answered",
            "the call in flight at shutdown"
        );
        peer.tell("go");
        assert_eq!(peer.expect_line(), "disconnected");
        peer.expect_success();
    });
}

/// Calls cancelled before their replies (dropped futures, timeouts) leave
/// the client and the connection working: later calls get their own
/// replies.
fn cancelled_calls(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let server = async_server(ep, Log::default());
        let peer = Peer::spawn(test, "cancel", &server.endpoint().to_string(), "");
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        server.shutdown().await;
    });
}

/// A client killed with a call in flight ends only its connection: the
/// server serves the next client.
fn client_killed(test: &'static str, ep: &str) {
    crate::util::runtime().block_on(async {
        let log = Log::default();
        let server = async_server(ep, log.clone());
        let at = server.endpoint().to_string();
        let mut doomed = Peer::spawn(test, "die-in-call", &at, "");
        assert_eq!(doomed.expect_line(), "calling");
        let since = std::time::Instant::now();
        while !log.lock().unwrap().contains(&"sleep-start") {
            assert!(since.elapsed() < OP, "the sleeping request never came");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        doomed.kill();
        let peer = Peer::spawn(test, "many", &at, "");
        assert_eq!(peer.expect_line(), "ok");
        peer.expect_success();
        assert_eq!(server.accepted(), 2);
        // Not `shutdown`, which waits for running handlers, the dead
        // client's 60 s one included; the runtime's end cancels it.
        drop(server);
    });
}

//! Shared-memory rings driven from the reactor (no bridge thread): an
//! async side announces its wait in the segment and its peer rings a
//! doorbell (an eventfd passed at rendezvous). Across processes, on real
//! segments, for `shm:` and `sysv-shm:` (both futex words in the segment):
//! async and blocking peers both ways, messages streamed through a ring
//! smaller than they are, a peer killed while the async side waits, and
//! 100,000 messages received in a `tokio::select!` against a timer.
//!
//! The peer is this test binary re-executed with a role (`util::Peer`).

use std::time::{Duration, Instant};

use ipcx::{Error, IpcMessage, Listener as _, Receiver as _, Sender as _};

use crate::util::{self, Peer, Rng};

const CASE: Duration = Duration::from_secs(120);
/// Generous: a dead peer is seen within milliseconds.
const WATCHDOG: Duration = Duration::from_secs(10);
/// Payload sizes: small, wrapping, and streamed through a 4 KiB ring.
const SIZES: [usize; 7] = [0, 1, 100, 3000, 4080, 9000, 60_000];
const ROUNDS: u64 = 300;
const SELECT_MESSAGES: u64 = 100_000;
/// A small ring, so both sides wait for space and large messages stream.
const OPTIONS: &str = "capacity=4096&max_message_size=65536";

fn endpoint(scheme: &str) -> String {
    match scheme {
        "shm" => format!("shm:/{}?{OPTIONS}", util::unique("as")),
        _ => format!("sysv-shm:/tmp/{}?{OPTIONS}", util::unique("av")),
    }
}

fn message(rng: &mut Rng, i: u64) -> Vec<u8> {
    util::make_message(rng, i, SIZES[i as usize % SIZES.len()])
}

// ------------------------------------------------------------- peers ---

/// Blocking client: `ROUNDS` messages, each echoed back; `option` (a
/// `wait=` mode, or nothing) is added to its endpoint.
fn blocking_echo_client(ep: &str, option: &str) {
    let ep = match option {
        "" => ep.to_string(),
        o => util::with_option(ep, o),
    };
    let mut c = ipcx::connect(&util::parse(&ep)).expect("connect");
    let mut rng = Rng::new(11);
    for i in 0..ROUNDS {
        let m = message(&mut rng, i);
        c.send(&m).expect("send");
        assert_eq!(c.recv().expect("recv"), m, "echo of {i}");
    }
    util::report("done");
}

/// Blocking listener: echoes one client's messages until it leaves.
fn blocking_echo_server(ep: &str) {
    let mut l = ipcx::listen(&util::parse(ep)).expect("listen");
    util::report("ready");
    let mut c = l.accept().expect("accept");
    let mut n = 0u64;
    loop {
        match c.recv() {
            Ok(m) => {
                c.send(&m).expect("send");
                n += 1;
            }
            Err(Error::Disconnected) => break,
            Err(e) => panic!("recv: {e}"),
        }
    }
    assert_eq!(n, ROUNDS);
    util::report("done");
}

/// Blocking client that connects and then does nothing until killed.
fn idle_client(ep: &str) {
    let _c = ipcx::connect(&util::parse(ep)).expect("connect");
    util::report("connected");
    let _ = util::await_parent();
}

/// Blocking sender of `SELECT_MESSAGES` numbered messages, pausing now
/// and then so the receiver's timer wins sometimes.
fn blocking_numbered_sender(ep: &str) {
    let mut c = ipcx::connect(&util::parse(ep)).expect("connect");
    let mut rng = Rng::new(5);
    for i in 0..SELECT_MESSAGES {
        c.send(&util::make_message(&mut rng, i, (i % 48) as usize))
            .expect("send");
        if i % 2000 == 1999 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    util::report("done");
}

fn play_peer() {
    let (role, ep, arg) = util::peer_params();
    match role.as_str() {
        "echo-client" => blocking_echo_client(&ep, &arg),
        "echo-server" => blocking_echo_server(&ep),
        "idle" => idle_client(&ep),
        "numbered" => blocking_numbered_sender(&ep),
        other => panic!("unknown role {other}"),
    }
}

// ------------------------------------------------------------- cases ---

/// An async listener echoes a blocking client's messages: the async
/// receiver is woken by a blocking sender's doorbell, the async sender by
/// a blocking receiver's, and streamed messages cross a 4 KiB ring. The
/// client waits as `peer_wait` says (`wait=block|adaptive|spin`, or the
/// default).
fn async_listener_blocking_client(test: &'static str, ep: String, peer_wait: &'static str) {
    let peer = util::watchdog(CASE, test, {
        let ep = ep.clone();
        move || {
            crate::util::runtime().block_on(async move {
                let mut l = ipcx::tokio::listen(&util::parse(&ep)).expect("listen");
                let peer = Peer::spawn(test, "echo-client", &ep, peer_wait);
                let mut conn = l.accept().await.expect("accept");
                assert!(conn.sender().is_reactor_driven(), "sender bridged");
                assert!(conn.receiver().is_reactor_driven(), "receiver bridged");
                let mut n = 0u64;
                loop {
                    match conn.recv().await {
                        Ok(m) => {
                            conn.send(&m).await.expect("send");
                            n += 1;
                        }
                        Err(Error::Disconnected) => break,
                        Err(e) => panic!("recv: {e}"),
                    }
                }
                assert_eq!(n, ROUNDS);
                peer
            })
        }
    });
    assert_eq!(peer.expect_line(), "done");
    let pid = peer.pid();
    peer.expect_success();
    util::assert_nothing_left(&ep, &[pid], "after the connection");
}

/// An async client against a blocking listener's echo. With `own_wait`
/// `wait=spin` the async side announced that its peer need never wake it,
/// so its halves run on bridge threads (which spin); otherwise the
/// reactor drives them.
fn async_client_blocking_listener(test: &'static str, ep: String, own_wait: &'static str) {
    let peer = Peer::spawn(test, "echo-server", &ep, "");
    assert_eq!(peer.expect_line(), "ready");
    let driven = own_wait != "wait=spin";
    let own = match own_wait {
        "" => ep.clone(),
        o => util::with_option(&ep, o),
    };
    util::watchdog(CASE, test, {
        move || {
            crate::util::runtime().block_on(async move {
                let mut c = ipcx::tokio::connect(&util::parse(&own))
                    .await
                    .expect("connect");
                assert_eq!(c.sender().is_reactor_driven(), driven, "sender");
                assert_eq!(c.receiver().is_reactor_driven(), driven, "receiver");
                let mut rng = Rng::new(11);
                for i in 0..ROUNDS {
                    let m = message(&mut rng, i);
                    c.send(&m).await.expect("send");
                    assert_eq!(c.recv().await.expect("recv"), m, "echo of {i}");
                }
            })
        }
    });
    assert_eq!(peer.expect_line(), "done");
    let pid = peer.pid();
    peer.expect_success();
    util::assert_nothing_left(&ep, &[pid], "after the connection");
}

/// The peer is killed (SIGKILL) while the async receiver waits for data
/// and the async sender waits for space: both return `Disconnected`.
fn peer_killed_while_async_waits(test: &'static str, ep: String) {
    let pid = util::watchdog(CASE, test, {
        let ep = ep.clone();
        move || {
            crate::util::runtime().block_on(async move {
                let mut l = ipcx::tokio::listen(&util::parse(&ep)).expect("listen");
                let mut peer = Peer::spawn(test, "idle", &ep, "");
                let conn = l.accept().await.expect("accept");
                let (mut tx, mut rx) = conn.split();
                assert!(tx.is_reactor_driven() && rx.is_reactor_driven());
                let receiving = tokio::spawn(async move { (rx.recv().await, Instant::now()) });
                let sending = tokio::spawn(async move {
                    let mut sent = 0u64;
                    loop {
                        if let Err(e) = tx.send(&[7u8; 1000]).await {
                            return (e, sent, Instant::now());
                        }
                        sent += 1;
                    }
                });
                // The ring fills (the peer reads nothing) and both wait.
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert!(!receiving.is_finished() && !sending.is_finished());
                let pid = peer.pid();
                let killed = Instant::now();
                peer.kill();
                let (got, at) = tokio::time::timeout(WATCHDOG, receiving)
                    .await
                    .expect("the waiting receiver hangs")
                    .expect("receiving task");
                assert!(matches!(got, Err(Error::Disconnected)), "{got:?}");
                let (err, sent, at2) = tokio::time::timeout(WATCHDOG, sending)
                    .await
                    .expect("the waiting sender hangs")
                    .expect("sending task");
                assert!(matches!(err, Error::Disconnected), "{err:?}");
                assert!(sent > 0, "the ring took nothing before it was full");
                eprintln!(
                    "{test}: Disconnected {:?} (receiver) and {:?} (sender) after SIGKILL",
                    at - killed,
                    at2 - killed
                );
                pid
            })
        }
    });
    util::assert_nothing_left(&ep, &[pid], "after the peer died");
}

/// 100,000 messages from a blocking sender, each `recv` racing a short
/// timer in `tokio::select!`: a `recv` cancelled by the timer loses
/// nothing, and nothing arrives twice or out of order.
fn select_against_a_timer(test: &'static str, ep: String) {
    let peer = util::watchdog(CASE, test, {
        let ep = ep.clone();
        move || {
            crate::util::runtime().block_on(async move {
                let mut l = ipcx::tokio::listen(&util::parse(&ep)).expect("listen");
                let peer = Peer::spawn(test, "numbered", &ep, "");
                let (_tx, mut rx) = l.accept().await.expect("accept").split();
                assert!(rx.is_reactor_driven(), "receiver bridged");
                let (mut next, mut timer_won) = (0u64, 0u64);
                while next < SELECT_MESSAGES {
                    tokio::select! {
                        got = rx.recv() => {
                            let m = got.expect("recv");
                            assert_eq!(util::check_message(&m), next, "lost or duplicated");
                            next += 1;
                        }
                        () = tokio::time::sleep(Duration::from_micros(100)) => timer_won += 1,
                    }
                }
                let end = rx.recv().await;
                assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
                assert!(timer_won > 0, "the timer never cancelled a recv");
                eprintln!("{test}: {next} messages, {timer_won} receives cancelled");
                peer
            })
        }
    });
    assert_eq!(peer.expect_line(), "done");
    let pid = peer.pid();
    peer.expect_success();
    util::assert_nothing_left(&ep, &[pid], "after the connection");
}

/// Both ends async on one current-thread runtime: a message larger than
/// the ring is begun by one task and finished while the other reads, so
/// neither side may block the thread.
fn both_ends_on_one_thread(test: &'static str, ep: String) {
    util::watchdog(CASE, test, move || {
        let rt = crate::util::current_thread();
        rt.block_on(async move {
            let ep = util::parse(&ep);
            let mut l = ipcx::tokio::listen(&ep).expect("listen");
            let (server, client) = tokio::join!(l.accept(), ipcx::tokio::connect(&ep));
            let (mut server, mut client) = (server.expect("accept"), client.expect("connect"));
            let sending = async {
                let mut rng = Rng::new(3);
                for i in 0..ROUNDS {
                    client.send(&message(&mut rng, i)).await.expect("send");
                }
                client
            };
            let receiving = async {
                let mut rng = Rng::new(3);
                for i in 0..ROUNDS {
                    let m = server.recv().await.expect("recv");
                    assert_eq!(m, message(&mut rng, i), "message {i}");
                }
                server
            };
            let (client, mut server) = tokio::join!(sending, receiving);
            drop(client);
            let end = server.recv().await;
            assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
        });
    });
}

/// An async listener echoes a blocking client with loans and in-place
/// receipts: each message is read where it lies when it lies in one piece,
/// and echoed from a ring slot lent by the async sender when it fits one.
fn loans_against_a_blocking_client(test: &'static str, ep: String) {
    let peer = util::watchdog(CASE, test, {
        let ep = ep.clone();
        move || {
            crate::util::runtime().block_on(async move {
                let mut l = ipcx::tokio::listen(&util::parse(&ep)).expect("listen");
                let peer = Peer::spawn(test, "echo-client", &ep, "");
                let (mut tx, mut rx) = l.accept().await.expect("accept").split();
                let (mut in_place, mut lent, mut n) = (0u64, 0u64, 0u64);
                loop {
                    let m = match rx.recv_in_place().await {
                        Ok(m) => m,
                        Err(Error::Disconnected) => break,
                        Err(e) => panic!("recv_in_place: {e}"),
                    };
                    n += 1;
                    in_place += u64::from(m.is_in_place());
                    // A loan is at most half the ring.
                    if m.len() <= 2040 {
                        let mut loan = tx.loan(m.len()).await.expect("loan");
                        assert!(loan.is_in_place(), "a ring loan");
                        loan.copy_from_slice(&m);
                        drop(m);
                        loan.commit().await.expect("commit");
                        lent += 1;
                    } else {
                        let copy = m.to_vec();
                        drop(m);
                        tx.send(&copy).await.expect("send");
                    }
                }
                assert_eq!(n, ROUNDS);
                assert!(in_place > 0 && lent > 0, "in place {in_place}, lent {lent}");
                peer
            })
        }
    });
    assert_eq!(peer.expect_line(), "done");
    let pid = peer.pid();
    peer.expect_success();
    util::assert_nothing_left(&ep, &[pid], "after the connection");
}

/// Loans and in-place receipts between two tasks on one current-thread
/// runtime, through a ring that holds three messages: the loan waits for
/// room and the receipt for data without blocking the thread.
fn loans_on_one_thread(test: &'static str, ep: String) {
    util::watchdog(CASE, test, move || {
        let rt = crate::util::current_thread();
        rt.block_on(async move {
            let ep = util::parse(&ep);
            let mut l = ipcx::tokio::listen(&ep).expect("listen");
            let (server, client) = tokio::join!(l.accept(), ipcx::tokio::connect(&ep));
            let (mut tx, _) = client.expect("connect").split();
            let (_, mut rx) = server.expect("accept").split();
            const N: u64 = 5000;
            let sending = async {
                for i in 0..N {
                    let mut loan = tx.loan(1000).await.expect("loan");
                    assert!(loan.is_in_place());
                    loan.fill(i as u8);
                    loan[..8].copy_from_slice(&i.to_le_bytes());
                    loan.commit().await.expect("commit");
                }
                tx
            };
            let receiving = async {
                for i in 0..N {
                    let m = rx.recv_in_place().await.expect("recv_in_place");
                    assert!(m.is_in_place(), "message {i} was copied");
                    assert_eq!(m.len(), 1000);
                    assert_eq!(u64::from_le_bytes(m[..8].try_into().unwrap()), i);
                    assert!(m[8..].iter().all(|&b| b == i as u8), "message {i}");
                }
            };
            let (tx, ()) = tokio::join!(sending, receiving);
            drop(tx);
            let end = rx.recv_in_place().await.map(|m| m.len());
            assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
        });
    });
}

/// Plain data for which any bytes are a valid value: read in place.
#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "test.AsyncQuote")]
#[repr(C)]
pub struct Quote {
    seq: u64,
    price: f64,
    qty: u32,
    flags: [u8; 4],
}

/// Typed loans and samples between two tasks on one current-thread
/// runtime: each `Quote` is written in the ring slot and read where it
/// lies.
fn typed_loans_and_samples(test: &'static str, ep: String) {
    util::watchdog(CASE, test, move || {
        let rt = crate::util::current_thread();
        rt.block_on(async move {
            let ep = util::parse(&ep);
            let mut l = ipcx::tokio::typed::listen::<Quote, Quote>(&ep).expect("listen");
            let (server, client) =
                tokio::join!(l.accept(), ipcx::tokio::typed::connect::<Quote, Quote>(&ep));
            let (mut tx, _) = client.expect("connect").split();
            let (_, mut rx) = server.expect("accept").split();
            const N: u64 = 3000;
            let quote = |i: u64| Quote {
                seq: i,
                price: i as f64 / 4.0,
                qty: i as u32 * 3,
                flags: [i as u8; 4],
            };
            let sending = async {
                for i in 0..N {
                    let mut loan = tx.loan().await.expect("loan");
                    assert!(loan.is_in_place(), "loan {i} is not in the ring");
                    loan.write(quote(i));
                    loan.send().await.expect("send");
                }
                tx
            };
            let receiving = async {
                for i in 0..N {
                    let q = rx.recv_sample().await.expect("recv_sample");
                    assert!(q.is_in_place(), "sample {i} was copied");
                    assert_eq!(*q, quote(i));
                }
            };
            let (tx, ()) = tokio::join!(sending, receiving);
            drop(tx);
            let end = rx.recv_sample().await.map(|q| *q);
            assert!(matches!(end, Err(Error::Disconnected)), "{end:?}");
        });
    });
}

macro_rules! async_shm_cases {
    ($($name:ident: $case:ident on $scheme:literal $(, $arg:literal)?;)*) => {$(
        #[test]
        fn $name() {
            if util::is_peer() {
                play_peer();
                return;
            }
            $case(concat!("async_shm::", stringify!($name)), endpoint($scheme) $(, $arg)?);
        }
    )*};
}

async_shm_cases! {
    shm_async_listener_blocking_client: async_listener_blocking_client on "shm", "";
    sysv_shm_async_listener_blocking_client: async_listener_blocking_client on "sysv-shm", "";
    shm_async_listener_client_waits_block: async_listener_blocking_client on "shm", "wait=block";
    shm_async_listener_client_waits_adaptive: async_listener_blocking_client on "shm", "wait=adaptive";
    shm_async_listener_client_waits_spin: async_listener_blocking_client on "shm", "wait=spin";
    sysv_shm_async_listener_client_waits_block: async_listener_blocking_client on "sysv-shm", "wait=block";
    sysv_shm_async_listener_client_waits_spin: async_listener_blocking_client on "sysv-shm", "wait=spin";
    shm_async_client_blocking_listener: async_client_blocking_listener on "shm", "";
    sysv_shm_async_client_blocking_listener: async_client_blocking_listener on "sysv-shm", "";
    shm_async_client_that_spins_is_bridged: async_client_blocking_listener on "shm", "wait=spin";
    sysv_shm_async_client_that_spins_is_bridged: async_client_blocking_listener on "sysv-shm", "wait=spin";
    shm_peer_killed_while_async_waits: peer_killed_while_async_waits on "shm";
    sysv_shm_peer_killed_while_async_waits: peer_killed_while_async_waits on "sysv-shm";
    shm_select_against_a_timer: select_against_a_timer on "shm";
    sysv_shm_select_against_a_timer: select_against_a_timer on "sysv-shm";
    shm_both_ends_on_one_thread: both_ends_on_one_thread on "shm";
    shm_loans_against_a_blocking_client: loans_against_a_blocking_client on "shm";
    sysv_shm_loans_against_a_blocking_client: loans_against_a_blocking_client on "sysv-shm";
    shm_loans_on_one_thread: loans_on_one_thread on "shm";
    shm_typed_loans_and_samples: typed_loans_and_samples on "shm";
    sysv_shm_typed_loans_and_samples: typed_loans_and_samples on "sysv-shm";
    sysv_shm_loans_on_one_thread: loans_on_one_thread on "sysv-shm";
    sysv_shm_both_ends_on_one_thread: both_ends_on_one_thread on "sysv-shm";
}

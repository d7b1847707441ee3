//! Cross-process tests of the kernel-object transports: the peer is this
//! test binary re-executed with `IPCX_TEST_ROLE` set.

use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipc_backends::fifo::Fifo;
use ipc_backends::mq::Mq;
use ipc_backends::sysv_mq::SysvMq;
use ipc_core::{
    Channel, Deadline, Endpoint, Error, Listener, Receiver, Schema, Sender, Transport, TypeTag,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fails the test (aborting the binary) if it runs longer than `secs`.
fn watchdog(secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("watchdog: test still running after {secs}s");
        std::process::abort();
    });
}

fn unique(scheme: &str) -> Endpoint {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let s = match scheme {
        "mq" => format!("mq:/t{pid}x{n}"),
        "fifo" => format!("fifo:/tmp/ipcx-t{pid}x{n}"),
        _ => format!("sysv-mq:/tmp/ipcx-t{pid}x{n}"),
    };
    s.parse().unwrap()
}

fn peer(test: &str, role: &str, endpoint: &Endpoint) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env("IPCX_TEST_ROLE", role)
        .env("IPCX_TEST_ENDPOINT", endpoint.to_string())
        // The peer's own test harness lines are not this run's results.
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

fn role() -> Option<(String, Endpoint)> {
    let r = std::env::var("IPCX_TEST_ROLE").ok()?;
    let e = std::env::var("IPCX_TEST_ENDPOINT").ok()?.parse().ok()?;
    Some((r, e))
}

const SIZES: [usize; 8] = [0, 1, 100, 4091, 4096, 10_000, 70_000, 1 << 20];

fn payload(n: usize, seed: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

/// The child side of every test.
fn run_child<T: Transport>(role: &str, endpoint: &Endpoint) {
    watchdog(60);
    match role {
        "echo" => {
            let mut ch = T::connect(endpoint, &Schema::bytes()).unwrap();
            loop {
                match ch.recv() {
                    Ok(m) => ch.send(&m).unwrap(),
                    Err(Error::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        "sleep" => {
            let _ch = T::connect(endpoint, &Schema::bytes()).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        "listen" => {
            let _l = T::listen(endpoint, &Schema::bytes()).unwrap();
            std::thread::sleep(Duration::from_secs(60));
        }
        "mismatch" => {
            let s = Schema::new(TypeTag::new("Quote", 5), TypeTag::BYTES);
            match T::connect(endpoint, &s) {
                Err(Error::SchemaMismatch { .. }) => {}
                Err(e) => panic!("expected a schema mismatch, got {e}"),
                Ok(_) => panic!("expected a schema mismatch, got a connection"),
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn echo<T: Transport>(test: &str, scheme: &str)
where
    <T::Channel as Channel>::Sender: 'static,
    <T::Channel as Channel>::Receiver: 'static,
{
    if let Some((r, e)) = role() {
        return run_child::<T>(&r, &e);
    }
    watchdog(60);
    let ep = unique(scheme);
    let mut l = T::listen(&ep, &Schema::bytes()).unwrap();
    let mut child = peer(test, "echo", &ep);
    let mut ch = l.accept().unwrap();
    assert_eq!(ch.peer().pid, child.id());
    assert!(matches!(ch.try_recv(), Err(Error::WouldBlock)));
    assert!(matches!(
        ch.recv_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    let max = ch.max_message_size();
    assert!(matches!(
        ch.send(&vec![0; max + 1]),
        Err(Error::MessageTooLarge { .. })
    ));
    for (i, n) in SIZES.iter().enumerate() {
        let m = payload(*n, i);
        ch.send(&m).unwrap();
        assert_eq!(ch.recv().unwrap(), m, "size {n}");
    }
    // Many small ones in flight both ways.
    let (mut tx, mut rx) = ch.split();
    let writer = std::thread::spawn(move || {
        for i in 0..2000usize {
            tx.send(&payload(i % 300, i)).unwrap();
        }
    });
    for i in 0..2000usize {
        assert_eq!(rx.recv().unwrap(), payload(i % 300, i));
    }
    writer.join().unwrap();
    // Dropping our sender ends the child's loop; it exits, we see Disconnected.
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(child.wait().unwrap().success());
    // Our receiving half owns our queue until it is dropped.
    drop(rx);
    drop(l);
    assert_nothing_left(&ep);
}

fn killed_peer<T: Transport>(test: &str, scheme: &str)
where
    <T::Channel as Channel>::Sender: 'static,
    <T::Channel as Channel>::Receiver: 'static,
{
    if let Some((r, e)) = role() {
        return run_child::<T>(&r, &e);
    }
    watchdog(60);
    let ep = unique(scheme);
    let mut l = T::listen(&ep, &Schema::bytes()).unwrap();
    let mut child = peer(test, "sleep", &ep);
    let ch = l.accept().unwrap();
    let (mut tx, mut rx) = ch.split();
    let recv = std::thread::spawn(move || rx.recv());
    std::thread::sleep(Duration::from_millis(100));
    child.kill().unwrap();
    child.wait().unwrap();
    let rx = recv.join().unwrap();
    assert!(matches!(rx, Err(Error::Disconnected)), "{rx:?}");
    // Once the receiver saw the peer gone, the sender knows it too, even
    // with room in the queue.
    let sent = tx.send(&[0; 10]);
    assert!(matches!(sent, Err(Error::Disconnected)), "{sent:?}");
    drop(tx);
    drop(l);
    assert_nothing_left(&ep);
    // A restart after a crash of the listener works: simulate by leaking it.
    let l = T::listen(&ep, &Schema::bytes()).unwrap();
    drop(l);
}

fn mismatch<T: Transport>(test: &str, scheme: &str) {
    if let Some((r, e)) = role() {
        return run_child::<T>(&r, &e);
    }
    watchdog(60);
    let ep = unique(scheme);
    let s = Schema::new(TypeTag::BYTES, TypeTag::new("Order", 7));
    let mut l = T::listen(&ep, &s).unwrap();
    // The client sees the mismatch (the child asserts it); the listener
    // logs it and hands out nothing.
    let mut child = peer(test, "mismatch", &ep);
    assert!(child.wait().unwrap().success());
    assert!(matches!(
        l.accept_until(Deadline::Now),
        Err(Error::WouldBlock)
    ));
    drop(l);
    assert_nothing_left(&ep);
}

/// The listener carries on after a request that is not one and after a
/// refused handshake; both refusals are the client's, not the listener's.
fn listener_carries_on<T: Transport>(test: &str, scheme: &str) {
    if let Some((r, e)) = role() {
        return run_child::<T>(&r, &e);
    }
    watchdog(60);
    let ep = unique(scheme);
    // A listener of other types: the client is refused.
    let s = Schema::new(TypeTag::BYTES, TypeTag::new("Order", 7));
    let l = T::listen(&ep, &s).unwrap();
    garbage_request(&ep);
    let mut child = peer(test, "mismatch", &ep);
    assert!(child.wait().unwrap().success());
    drop(l);
    // A listener of bytes, after garbage: the client is served.
    let mut l = T::listen(&ep, &Schema::bytes()).unwrap();
    garbage_request(&ep);
    let mut child = peer(test, "echo", &ep);
    let mut ch = l.accept().unwrap();
    ch.send(b"still here").unwrap();
    assert_eq!(ch.recv().unwrap(), b"still here");
    drop(ch);
    assert!(child.wait().unwrap().success());
    drop(l);
    assert_nothing_left(&ep);
}

/// Writes a message that is not a connect request to `ep`'s rendezvous,
/// with the kernel's calls (as any other program could), not ipcx's.
fn garbage_request(ep: &Endpoint) {
    use nix::mqueue::{MQ_OFlag, mq_close, mq_open, mq_send};
    if ep.scheme() == ipc_core::Scheme::Mq {
        let name = ipc_backends::mq::rendezvous_name(ep);
        let q = mq_open(
            name.as_str(),
            MQ_OFlag::O_WRONLY,
            nix::sys::stat::Mode::empty(),
            None,
        )
        .unwrap();
        mq_send(&q, b"junk", 0).unwrap();
        mq_close(q).unwrap();
    } else {
        #[repr(C)]
        struct Msg {
            mtype: libc::c_long,
            text: [u8; 200],
        }
        let path = std::ffi::CString::new(ep.address()).unwrap();
        // SAFETY: `path` is a NUL-terminated string that outlives the call.
        let key = unsafe { libc::ftok(path.as_ptr(), libc::c_int::from(b'x')) };
        assert_ne!(key, -1, "ftok: {}", std::io::Error::last_os_error());
        // SAFETY: msgget takes integers only.
        let id = unsafe { libc::msgget(key, 0) };
        assert_ne!(id, -1, "msgget: {}", std::io::Error::last_os_error());
        let msg = Msg {
            mtype: 1,
            text: [7; 200],
        };
        // SAFETY: `msg` is a live `long` mtype followed by 200 text bytes,
        // valid for reads during the call.
        let r = unsafe { libc::msgsnd(id, (&raw const msg).cast(), 200, 0) };
        assert_eq!(r, 0, "msgsnd: {}", std::io::Error::last_os_error());
    }
}

/// Connecting where nothing listens, or where the listener was killed, is
/// `NoListener` at once; listening on a name a live listener holds is
/// `AddrInUse` naming it; a killed listener's name is reclaimed.
fn rendezvous_errors<T: Transport>(test: &str, scheme: &str) {
    if let Some((r, e)) = role() {
        return run_child::<T>(&r, &e);
    }
    watchdog(60);
    let ep = unique(scheme);
    match T::connect(&ep, &Schema::bytes()) {
        Err(Error::NoListener { .. }) => {}
        other => panic!("connect to nothing: {:?}", other.map(|_| ())),
    }

    let l = T::listen(&ep, &Schema::bytes()).unwrap();
    match T::listen(&ep, &Schema::bytes()) {
        Err(Error::AddrInUse { owner, .. }) => assert_eq!(owner, Some(std::process::id())),
        other => panic!("listening twice: {:?}", other.map(|_| ())),
    }
    drop(l);

    // A listener killed with its rendezvous in place.
    let mut child = peer(test, "listen", &ep);
    while !ipc_backends::registry::list()
        .iter()
        .any(|r| r.endpoint == ep.to_string() && r.pid == child.id())
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut slow = ep.clone();
    slow.options_mut().connect_timeout = Duration::from_secs(600);
    match T::connect(&slow, &Schema::bytes()) {
        Err(Error::NoListener { .. }) => {}
        other => panic!("connect to a killed listener: {:?}", other.map(|_| ())),
    }
    let l = T::listen(&ep, &Schema::bytes()).unwrap();
    drop(l);
    assert_nothing_left(&ep);
}

/// Fails unless nothing of `ep` is left within a few seconds (a refused
/// handshake's thread may still be finishing when the test gets here).
fn assert_nothing_left(ep: &Endpoint) {
    let mut left = leftovers(ep);
    for _ in 0..500 {
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
        left = leftovers(ep);
    }
    panic!("left behind: {left:?}");
}

fn leftovers(ep: &Endpoint) -> Vec<String> {
    let mut left = Vec::new();
    let tag = ep.address().trim_start_matches('/').replace('/', ".");
    let short = tag.rsplit('.').next().unwrap_or(&tag).to_string();
    let base = ep.address().rsplit('/').next().unwrap().to_string();
    for dir in ["/dev/mqueue", "/tmp"] {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(&format!("{base}.")) || name == format!("ipcx.{short}") {
                left.push(format!("{dir}/{name}"));
            }
        }
    }
    // Per-connection System V queues are checked through the registry.
    for r in ipc_backends::registry::list() {
        if r.endpoint == ep.to_string() && r.owner_alive() && r.pid == std::process::id() {
            left.push(format!("record {r:?}"));
        }
    }
    left
}

macro_rules! suite {
    ($m:ident, $t:ty, $scheme:literal) => {
        mod $m {
            use super::*;
            #[test]
            fn echo() {
                super::echo::<$t>(concat!(stringify!($m), "::echo"), $scheme);
            }
            #[test]
            fn killed_peer() {
                super::killed_peer::<$t>(concat!(stringify!($m), "::killed_peer"), $scheme);
            }
            #[test]
            fn mismatch() {
                super::mismatch::<$t>(concat!(stringify!($m), "::mismatch"), $scheme);
            }
        }
    };
}

/// The queue transports' own cases.
macro_rules! queue_suite {
    ($m:ident, $t:ty, $scheme:literal) => {
        mod $m {
            use super::*;
            #[test]
            fn listener_carries_on() {
                super::listener_carries_on::<$t>(
                    concat!(stringify!($m), "::listener_carries_on"),
                    $scheme,
                );
            }
            #[test]
            fn rendezvous_errors() {
                super::rendezvous_errors::<$t>(
                    concat!(stringify!($m), "::rendezvous_errors"),
                    $scheme,
                );
            }
        }
    };
}

suite!(mq, Mq, "mq");
suite!(fifo, Fifo, "fifo");
suite!(sysv_mq, SysvMq, "sysv-mq");
queue_suite!(mq_rendezvous, Mq, "mq");
queue_suite!(sysv_mq_rendezvous, SysvMq, "sysv-mq");

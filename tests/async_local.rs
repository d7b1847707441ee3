#![cfg(feature = "tokio")]
//! The async API's behaviour within one process: closing listeners and
//! channels from another task or thread, `Stream`/`Sink`, and the error
//! outside a runtime. The contract between processes is checked by the
//! integration suite (`tests/integration/async_*.rs`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use ipcx::Error;

static N: AtomicU32 = AtomicU32::new(0);

fn endpoint(scheme: &str) -> ipcx::Endpoint {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    match scheme {
        "unix" => format!("unix:/tmp/ipcx-async-local-{pid}-{n}.sock"),
        "tcp" => "tcp://127.0.0.1:0".into(),
        "fifo" => format!("fifo:/tmp/ipcx-async-local-{pid}-{n}.fifo"),
        "mq" => format!("mq:/ipcx-async-local-{pid}-{n}?capacity=4&max_message_size=65536"),
        "sysv-mq" => format!("sysv-mq:/tmp/ipcx-async-local-{pid}-{n}.key?max_message_size=65536"),
        "shm" => format!("shm:/ipcx-async-local-{pid}-{n}"),
        "sysv-shm" => format!("sysv-shm:/tmp/ipcx-async-local-{pid}-{n}.key"),
        other => panic!("no endpoint for {other}"),
    }
    .parse()
    .unwrap()
}

const SCHEMES: [&str; 7] = ["unix", "tcp", "fifo", "mq", "sysv-mq", "shm", "sysv-shm"];

/// Fails the test instead of hanging it.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    // A watchdog against a hang, not a measure of speed.
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within 20 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_listener_wakes_its_accept() {
    for scheme in SCHEMES {
        let mut listener = ipcx::tokio::listen(&endpoint(scheme)).unwrap();
        let closer = listener.closer();
        let waiting = tokio::spawn(async move { listener.accept().await.map(drop) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        closer.close();
        let got = within(scheme, waiting).await.unwrap();
        assert!(matches!(got, Err(Error::Closed)), "{scheme}: {got:?}");
    }
}

#[test]
fn closing_a_blocking_listener_wakes_its_accept() {
    use ipcx::Listener;
    for scheme in SCHEMES {
        let mut listener = ipcx::listen(&endpoint(scheme)).unwrap();
        let closer = listener.closer();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            closer.close();
        });
        let got = listener.accept().map(drop);
        assert!(matches!(got, Err(Error::Closed)), "{scheme}: {got:?}");
        // And every later accept.
        assert!(matches!(
            listener.accept_until(ipcx::Deadline::Now).map(drop),
            Err(Error::Closed)
        ));
        t.join().unwrap();
    }
}

/// An echo server on `scheme`; returns its endpoint.
fn echo_server(scheme: &str) -> ipcx::Endpoint {
    let mut listener = ipcx::tokio::listen(&endpoint(scheme)).unwrap();
    let ep = listener.endpoint().clone();
    tokio::spawn(async move {
        while let Ok(mut conn) = listener.accept().await {
            tokio::spawn(async move {
                while let Ok(m) = conn.recv().await {
                    if conn.send(&m).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    ep
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_a_channel_wakes_both_halves() {
    for scheme in SCHEMES {
        let ep = echo_server(scheme);
        let conn = within(scheme, ipcx::tokio::connect(&ep)).await.unwrap();
        let closer = conn.closer();
        let (mut tx, mut rx) = conn.split();
        // Fill the channel so a send waits too (the echo server stops
        // reading once its replies find no room).
        let sending = tokio::spawn(async move {
            let big = vec![7u8; 16 * 1024];
            loop {
                if let Err(e) = tx.send(&big).await {
                    return e;
                }
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let receiving = tokio::spawn(async move {
            // Nothing is read, so the sender's channel fills up.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            rx.recv().await.map(drop)
        });
        closer.close();
        let e = within(scheme, sending).await.unwrap();
        assert!(matches!(e, Error::Closed), "{scheme}: send: {e:?}");
        receiving.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_recv_wakes_on_close() {
    for scheme in SCHEMES {
        let ep = echo_server(scheme);
        let mut conn = within(scheme, ipcx::tokio::connect(&ep)).await.unwrap();
        let closer = conn.closer();
        let waiting = tokio::spawn(async move { conn.recv().await.map(drop) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        closer.close();
        let got = within(scheme, waiting).await.unwrap();
        assert!(matches!(got, Err(Error::Closed)), "{scheme}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_and_sink() {
    for scheme in SCHEMES {
        let ep = echo_server(scheme);
        let conn = within(scheme, ipcx::tokio::connect(&ep)).await.unwrap();
        let (mut tx, rx) = conn.split();
        let sent: Vec<Vec<u8>> = (0..200u32)
            .map(|i| i.to_le_bytes().repeat(i as usize % 50))
            .collect();
        let expected = sent.clone();
        let reader =
            tokio::spawn(async move { rx.take(200).map(|m| m.unwrap()).collect::<Vec<_>>().await });
        for m in sent {
            tx.feed(m).await.unwrap();
        }
        // The Sink's flush, not the inherent one (both send what was fed).
        SinkExt::flush(&mut tx).await.unwrap();
        assert_eq!(within(scheme, reader).await.unwrap(), expected, "{scheme}");
    }
}

#[test]
fn outside_a_runtime_is_a_clear_error() {
    let e = ipcx::tokio::listen(&endpoint("unix")).unwrap_err();
    assert!(e.to_string().contains("tokio runtime"), "{e}");
}

/// A blocking listener that accepts connections and never reads them,
/// until its closer closes it; then it drops them.
fn silent_server(
    scheme: &str,
) -> (
    ipcx::Endpoint,
    ipcx::backends::ListenerCloser,
    std::thread::JoinHandle<()>,
) {
    use ipcx::Listener;
    let mut listener = ipcx::listen(&endpoint(scheme)).unwrap();
    let ep = listener.endpoint().clone();
    let closer = listener.closer();
    let thread = std::thread::spawn(move || {
        let mut held = Vec::new();
        while let Ok(conn) = listener.accept() {
            held.push(conn);
        }
    });
    (ep, closer, thread)
}

#[test]
fn closing_a_blocking_channel_wakes_recv_and_send() {
    use ipcx::{Channel, Receiver, Sender};
    for scheme in SCHEMES {
        let (ep, server, server_thread) = silent_server(scheme);
        let ch = ipcx::connect(&ep).unwrap();
        let closer = ch.closer();
        let (mut tx, mut rx) = ch.split();
        let receiving = std::thread::spawn(move || rx.recv().map(drop));
        // Nobody reads: the sender fills the channel, then waits for room.
        let sending = std::thread::spawn(move || {
            let big = vec![1u8; 16 * 1024];
            loop {
                if let Err(e) = tx.send(&big) {
                    return e;
                }
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        closer.close();
        let got = receiving.join().unwrap();
        assert!(matches!(got, Err(Error::Closed)), "{scheme}: recv: {got:?}");
        let (sent, sending) = if scheme == "sysv-mq" {
            (None, Some(sending))
        } else {
            (Some(sending.join().unwrap()), None)
        };
        // The server goes, dropping its side (on sysv-mq that removes the
        // queue our blocked send waits on: nothing else can wake msgsnd).
        server.close();
        server_thread.join().unwrap();
        match sent {
            Some(e) => assert!(matches!(e, Error::Closed), "{scheme}: send: {e:?}"),
            None => {
                let e = sending.map(|t| t.join().unwrap());
                assert!(
                    e.as_ref().is_some_and(Error::is_disconnect),
                    "{scheme}: send: {e:?}"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_silent_clients_do_not_stop_an_async_listener() {
    use std::io::Write;
    let ep = endpoint("unix");
    let mut listener = ipcx::tokio::listen(&ep).unwrap();
    let path = ep.to_string().trim_start_matches("unix:").to_string();
    // A client that says nothing, and one that sends garbage.
    let _silent = std::os::unix::net::UnixStream::connect(&path).unwrap();
    let mut garbage = std::os::unix::net::UnixStream::connect(&path).unwrap();
    garbage.write_all(&[0xff; 4096]).unwrap();
    let ep2 = ep.clone();
    let client = tokio::spawn(async move {
        let mut c = ipcx::tokio::connect(&ep2).await?;
        c.send(b"real").await?;
        c.recv().await
    });
    let mut conn = within("accept", listener.accept()).await.unwrap();
    assert_eq!(within("recv", conn.recv()).await.unwrap(), b"real");
    conn.send(b"ok").await.unwrap();
    assert_eq!(within("client", client).await.unwrap().unwrap(), b"ok");
    // The garbage client was refused and counted; the listener goes on.
    drop(garbage);
    within("refusal counted", async {
        while listener.refused() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

//! Socket-specific cases: socket files (stale, live, permissions), uid
//! policy, and peers that lie on the wire. Peers run in other processes.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use ipcx::handshake::{Hello, Schema};
use ipcx::{Channel, Endpoint, Error, Listener, Receiver};

use crate::util::{self, Peer, report};

const OP: Duration = Duration::from_secs(30);

/// Runs a case, or in a re-executed peer the role it was started for.
fn run(test: &'static str, case: fn(&'static str)) {
    if util::is_peer() {
        role();
        return;
    }
    util::watchdog(Duration::from_secs(120), test, move || case(test));
}

fn role() {
    let (role, ep, arg) = util::peer_params();
    let endpoint: Endpoint = ep.parse().expect("endpoint");
    let path = endpoint.address().to_string();
    match role.as_str() {
        "connect-report" => match ipcx::connect(&endpoint) {
            Ok(_) => report("ok"),
            Err(e) => report(format!("err={e}")),
        },
        // Speaks a correct handshake by hand, then sends what `arg` says.
        "liar" => {
            let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
            let frame = |s: &mut std::os::unix::net::UnixStream, body: &[u8]| {
                s.write_all(&(body.len() as u32).to_le_bytes()).unwrap();
                s.write_all(body).unwrap();
            };
            match arg.as_str() {
                "http" => s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(),
                "silent" => {}
                "oversize" => {
                    let hello =
                        Hello::new(&Schema::bytes(), std::process::id(), util_uid(), 1 << 20);
                    frame(&mut s, &hello.encode());
                    frame(&mut s, &[0]);
                    // A length far above the agreed maximum, and no body.
                    s.write_all(&u32::MAX.to_le_bytes()).unwrap();
                }
                other => panic!("unknown lie {other}"),
            }
            report("sent");
            util::await_parent();
        }
        other => panic!("unknown role {other}"),
    }
}

fn util_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

fn sock(tag: &str) -> String {
    format!("/tmp/{}.sock", util::unique(tag))
}

fn mode_of(path: &str) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

macro_rules! cases {
    ($($name:ident),*) => {$(
        #[test]
        fn $name() {
            super::run(concat!("stream::tests::", stringify!($name)), super::$name);
        }
    )*};
}

mod tests {
    cases!(
        stale_socket_reclaimed_live_one_refused,
        socket_file_modes,
        file_in_the_way_is_not_removed,
        allow_uid_refuses_on_both_sides,
        oversize_length_is_a_protocol_error,
        non_ipcx_peer_is_refused,
        silent_peer_times_out
    );
}

pub(crate) fn stale_socket_reclaimed_live_one_refused(_test: &'static str) {
    let path = sock("stale");
    // A listener that died without removing its socket file.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(std::path::Path::new(&path).exists());
    let ep: Endpoint = format!("unix:{path}").parse().unwrap();
    let l = ipcx::listen(&ep).expect("a stale socket file is reclaimed");
    match ipcx::listen(&ep) {
        Err(e @ Error::AddrInUse { .. }) => {
            assert!(e.to_string().contains("already in use"), "{e}")
        }
        other => panic!("a second listener on a live socket: {other:?}"),
    }
    drop(l);
    assert!(
        !std::path::Path::new(&path).exists(),
        "socket file left after the listener dropped"
    );
}

pub(crate) fn socket_file_modes(_test: &'static str) {
    let path = sock("mode");
    let l = ipcx::listen(&format!("unix:{path}").parse().unwrap()).unwrap();
    assert_eq!(mode_of(&path), 0o600);
    drop(l);
    let l = ipcx::listen(&format!("unix:{path}?mode=0660").parse().unwrap()).unwrap();
    assert_eq!(mode_of(&path), 0o660);
    drop(l);
}

pub(crate) fn file_in_the_way_is_not_removed(_test: &'static str) {
    let path = sock("file");
    std::fs::write(&path, b"precious").unwrap();
    let r = ipcx::listen(&format!("unix:{path}").parse().unwrap());
    let kept = std::fs::read(&path).ok();
    let _ = std::fs::remove_file(&path);
    match r {
        Err(e @ Error::AddrInUse { .. }) => assert!(e.to_string().contains("not a socket"), "{e}"),
        other => panic!("listening over a regular file: {other:?}"),
    }
    assert_eq!(kept.as_deref(), Some(&b"precious"[..]));
}

pub(crate) fn allow_uid_refuses_on_both_sides(test: &'static str) {
    let stranger = util_uid().wrapping_add(4242);
    let ep = format!("unix:{}?allow_uid={stranger}", sock("uid"));
    let mut l = ipcx::listen(&ep.parse().unwrap()).unwrap();
    let peer = Peer::spawn(test, "connect-report", &ep, "");
    let e = peer.expect_value("err");
    assert!(e.contains("permission denied"), "client: {e}");
    peer.expect_success();
    // The listener refused too: nothing was accepted, and accept reports
    // no error of the client's.
    match l.accept_timeout(Duration::from_millis(500)) {
        Err(Error::Timeout) => {}
        other => panic!("a uid outside allow_uid was accepted: {other:?}"),
    }
}

pub(crate) fn oversize_length_is_a_protocol_error(test: &'static str) {
    let ep = format!("unix:{}", sock("lie"));
    let mut l = ipcx::listen(&ep.parse().unwrap()).unwrap();
    let peer = Peer::spawn(test, "liar", &ep, "oversize");
    let mut ch = l.accept_timeout(OP).expect("the liar's handshake is valid");
    assert_eq!(peer.expect_line(), "sent");
    match ch.recv_timeout(OP) {
        Err(Error::Protocol(why)) => assert!(why.contains("4294967295"), "{why}"),
        other => panic!("a 4 GiB length was not refused: {other:?}"),
    }
}

pub(crate) fn non_ipcx_peer_is_refused(test: &'static str) {
    let ep = format!("unix:{}", sock("http"));
    let mut l = ipcx::listen(&ep.parse().unwrap()).unwrap();
    let _liar = Peer::spawn(test, "liar", &ep, "http");
    // "GET " read as a length is far above the hello's limit: the HTTP
    // client is dropped off the accept path, and accept returns the real
    // client that comes next.
    let peer = Peer::spawn(test, "connect-report", &ep, "");
    let ch = l
        .accept_timeout(OP)
        .expect("a real client after the bad one");
    assert_eq!(
        ch.peer().pid,
        peer.pid(),
        "accept returned another connection"
    );
    assert_eq!(peer.expect_line(), "ok");
}

pub(crate) fn silent_peer_times_out(test: &'static str) {
    let ep = format!("unix:{}?connect_timeout=300ms", sock("quiet"));
    let mut l = ipcx::listen(&ep.parse().unwrap()).unwrap();
    let _liar = Peer::spawn(test, "liar", &ep, "silent");
    // The silent client never completes a handshake, so accept reports
    // nothing of it; the real client behind it is accepted.
    let peer = Peer::spawn(test, "connect-report", &ep, "");
    let ch = l
        .accept_timeout(OP)
        .expect("a real client behind a silent one");
    assert_eq!(
        ch.peer().pid,
        peer.pid(),
        "accept returned another connection"
    );
    assert_eq!(peer.expect_line(), "ok");
    match l.accept_timeout(Duration::from_millis(600)) {
        Err(Error::Timeout) => {}
        other => panic!("the silent client: {other:?}"),
    }
}

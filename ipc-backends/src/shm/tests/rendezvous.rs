//! The rendezvous in one process: its errors, and peers that do not follow
//! the protocol. (Two processes: the conformance suite.)

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipc_core::handshake::Hello;
use ipc_core::{Endpoint, Error, Listener, Schema, Sender, Transport};

use super::super::rendezvous::socket_name;
use super::super::{Shm, SysvShm, segment};
use crate::sys::process;
use crate::sys::scm::{self, Received};

/// Long enough for any step that must complete on a loaded machine.
const OP: Duration = Duration::from_secs(30);

/// A fresh endpoint of `scheme` (`shm` or `sysv-shm`) with `options`.
fn endpoint(scheme: &str, options: &str) -> Endpoint {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let address = match scheme {
        "shm" => format!("/unit-rv-{}-{n}", process::pid()),
        _ => format!("/tmp/unit-rv-{}-{n}", process::pid()),
    };
    format!("{scheme}:{address}{options}").parse().unwrap()
}

/// A raw client of `ep`'s rendezvous socket.
fn raw_client(ep: &Endpoint) -> UnixStream {
    let addr = SocketAddr::from_abstract_name(socket_name(ep)).unwrap();
    UnixStream::connect_addr(&addr).unwrap()
}

/// Connecting where nothing listens, and listening where a live listener
/// is: the matchable errors.
fn no_listener_and_addr_in_use<T: Transport>(scheme: &str) {
    let ep = endpoint(scheme, "");
    let got = T::connect(&ep, &Schema::bytes()).map(drop);
    assert!(matches!(got, Err(Error::NoListener { .. })), "{got:?}");
    let _first = T::listen(&ep, &Schema::bytes()).unwrap();
    let again = T::listen(&ep, &Schema::bytes()).map(drop);
    assert!(matches!(again, Err(Error::AddrInUse { .. })), "{again:?}");
}

#[test]
fn shm_no_listener_and_addr_in_use() {
    no_listener_and_addr_in_use::<Shm>("shm");
}

#[test]
fn sysv_shm_no_listener_and_addr_in_use() {
    no_listener_and_addr_in_use::<SysvShm>("sysv-shm");
}

/// A listener that accepts and never speaks: the client's handshake ends
/// at `connect_timeout`, naming the step.
#[test]
fn silent_listener_is_a_connect_timeout() {
    let ep = endpoint("shm", "?connect_timeout=200ms");
    let addr = SocketAddr::from_abstract_name(socket_name(&ep)).unwrap();
    let _silent = UnixListener::bind_addr(&addr).unwrap();
    match Shm::connect(&ep, &Schema::bytes()) {
        Err(Error::ConnectTimeout { step, .. }) => assert_eq!(step, "the handshake"),
        other => panic!("{other:?}"),
    }
}

/// A silent client and a garbage client cost the listener nothing: a
/// real client connects while they are pending, and `accept` returns it.
#[test]
fn silent_and_garbage_clients_do_not_block_accept() {
    let ep = endpoint("shm", "?connect_timeout=20s");
    let mut l = Shm::listen(&ep, &Schema::bytes()).unwrap();
    let _silent = raw_client(&ep);
    let mut garbage = raw_client(&ep);
    garbage.write_all(&[0xff; 64]).unwrap();
    let client = {
        let ep = ep.clone();
        std::thread::spawn(move || Shm::connect(&ep, &Schema::bytes()).map(drop))
    };
    l.accept_timeout(OP).expect("the real client");
    client.join().unwrap().unwrap();
}

/// A listener whose `allow_uid` leaves out this uid refuses in its
/// verdict: the client's connect fails with PermissionDenied.
fn a_refused_uid_fails_the_client<T: Transport>(scheme: &str) {
    let other = process::uid().wrapping_add(1);
    let client = endpoint(scheme, "");
    let ep: Endpoint = format!("{client}?allow_uid={other}").parse().unwrap();
    let _l = T::listen(&ep, &Schema::bytes()).unwrap();
    let got = T::connect(&client, &Schema::bytes()).map(drop);
    assert!(matches!(got, Err(Error::PermissionDenied(_))), "{got:?}");
}

#[test]
fn shm_a_refused_uid_fails_the_client() {
    a_refused_uid_fails_the_client::<Shm>("shm");
}

#[test]
fn sysv_shm_a_refused_uid_fails_the_client() {
    a_refused_uid_fails_the_client::<SysvShm>("sysv-shm");
}

/// A client written from `docs/wire-format.md` alone connects: the bytes
/// of steps 1 to 5 are as documented.
#[test]
fn a_client_written_from_the_wire_format_connects() {
    let ep = endpoint("shm", "");
    let mut l = Shm::listen(&ep, &Schema::bytes()).unwrap();
    let mut s = raw_client(&ep);
    // Step 1: u16 length, then the hello, both ways.
    let hello = Hello::new(&Schema::bytes(), process::pid(), process::uid(), 4096).encode();
    s.write_all(&(hello.len() as u16).to_le_bytes()).unwrap();
    s.write_all(&hello).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut theirs = vec![0u8; usize::from(u16::from_le_bytes(len))];
    s.read_exact(&mut theirs).unwrap();
    assert_eq!(&theirs[..4], b"IPCX");
    Hello::decode(&theirs).unwrap();
    // Step 2: one verdict byte both ways.
    s.write_all(&[0]).unwrap();
    let mut verdict = [9u8];
    s.read_exact(&mut verdict).unwrap();
    assert_eq!(verdict, [0]);
    // Step 3: byte 1 with the segment's descriptor.
    let fd = loop {
        match scm::recv_fd(s.as_fd()).unwrap() {
            Received::Byte(1, Some(fd)) => break fd,
            Received::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            other => panic!("{other:?}"),
        }
    };
    let (_, size) = crate::sys::shm::owner_and_size(fd.as_fd()).unwrap();
    let map = crate::sys::shm::map(fd.as_fd(), size as usize).unwrap();
    let mut fields = [0u8; segment::FIELDS_LEN];
    // SAFETY: the mapping holds `size` >= HEADER_SIZE bytes (the
    // listener sized it so), read once into a local.
    unsafe { std::ptr::copy_nonoverlapping(map.ptr(), fields.as_mut_ptr(), fields.len()) };
    let layout = segment::validate_header(&fields, size, 4096).unwrap();
    assert_eq!(layout.client_pid, process::pid());
    // Step 4: acknowledge.
    s.write_all(&[1]).unwrap();
    // Step 5: byte 2 with two eventfds, both ways; the listener's accept
    // returns the connection.
    let event = || crate::sys::event::Event::new().unwrap();
    let (data, space) = (event(), event());
    assert!(scm::send_fds(s.as_fd(), 2, &[data.as_fd(), space.as_fd()]).unwrap());
    let theirs = loop {
        match scm::recv_fds(s.as_fd()).unwrap() {
            scm::ReceivedMany::Byte(2, fds) => break fds,
            scm::ReceivedMany::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(theirs.len(), 2);
    for fd in &theirs {
        assert!(crate::sys::event::is_nonblocking_eventfd(fd.as_fd()).unwrap());
    }
    let ch = l.accept_timeout(OP).unwrap();
    assert_eq!(ch.max_message_size(), 4096);
}

/// A client whose step 5 carries something else than two eventfds is
/// refused: the listener never writes to a descriptor that could block.
#[test]
fn a_doorbell_that_is_not_an_eventfd_is_refused() {
    let ep = endpoint("shm", "?connect_timeout=20s");
    let mut l = Shm::listen(&ep, &Schema::bytes()).unwrap();
    let mut s = raw_client(&ep);
    let hello = Hello::new(&Schema::bytes(), process::pid(), process::uid(), 4096).encode();
    s.write_all(&(hello.len() as u16).to_le_bytes()).unwrap();
    s.write_all(&hello).unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).unwrap();
    let mut theirs = vec![0u8; usize::from(u16::from_le_bytes(len))];
    s.read_exact(&mut theirs).unwrap();
    s.write_all(&[0]).unwrap();
    let mut verdict = [9u8];
    s.read_exact(&mut verdict).unwrap();
    let _segment = loop {
        match scm::recv_fd(s.as_fd()).unwrap() {
            Received::Byte(1, Some(fd)) => break fd,
            Received::WouldBlock => std::thread::sleep(Duration::from_millis(1)),
            other => panic!("{other:?}"),
        }
    };
    s.write_all(&[1]).unwrap();
    // A pipe's ends instead of eventfds.
    let (r, w) = std::io::pipe().unwrap();
    assert!(scm::send_fds(s.as_fd(), 2, &[r.as_fd(), w.as_fd()]).unwrap());
    // The listener drops the connection: the socket reaches end of file
    // (after the listener's own step 5 message), and accept has nothing.
    s.set_read_timeout(Some(OP)).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(matches!(
        l.accept_timeout(Duration::from_millis(200)),
        Err(Error::Timeout)
    ));
    assert!(l.refused() >= 1, "refused {}", l.refused());
}

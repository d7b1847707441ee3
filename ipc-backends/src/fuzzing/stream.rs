//! Stream framing: a [`StreamReceiver`] reading whatever the peer wrote to
//! a socket or a pipe and then closed, optionally after the handshake.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ipc_core::handshake::{Hello, MAX_HELLO_LEN, Schema};
use ipc_core::{Error, Receiver};

use super::{Input, capacity_bound};
use crate::stream::{self, HEADER_LEN, StreamReceiver, StreamSender};
use crate::sys::pipe;

/// Input: a flags byte (bit 0: pipe instead of socket; bit 1: run the
/// handshake first; bit 2: refuse the peer's uid in it; bits 3-4: how to
/// receive), this side's `max_message_size` as a `u16`, then the bytes the
/// peer wrote before it closed.
///
/// The receiver must deliver exactly the frames a reference reading of
/// those bytes finds, end with `Protocol` at a frame over the limit or
/// `Disconnected` at the end, and never reserve past the limit.
pub fn stream(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let max = usize::from(input.u16());
    let peer = input.rest();
    let mut conn = if flags & 1 == 0 {
        Conn::socket(peer, max)
    } else {
        Conn::pipe(peer, max)
    };
    let written = &peer[..conn.written];
    let style = (flags >> 3) & 3;
    let (rest, max) = if flags & 2 == 0 {
        (written, max)
    } else {
        let local = Hello::new(&Schema::bytes(), 1, 1, max);
        let deadline = match style {
            0 => ipc_core::Deadline::Never,
            _ => ipc_core::Deadline::Now,
        };
        let refuse = flags & 4 != 0;
        let info = match super::handshake(&mut conn.tx, &mut conn.rx, &local, deadline, |_| {
            if refuse {
                Err(Error::PermissionDenied("refused by the fuzz target".into()))
            } else {
                Ok(())
            }
        }) {
            Ok(info) => info,
            Err(e) => {
                assert!(
                    matches!(
                        e,
                        Error::Protocol(_)
                            | Error::Disconnected
                            | Error::ConnectTimeout { .. }
                            | Error::VersionMismatch { .. }
                            | Error::SchemaMismatch { .. }
                            | Error::PermissionDenied(_)
                    ),
                    "{e:?}"
                );
                return;
            }
        };
        assert!(!refuse);
        assert!(info.max_message_size <= max);
        // The hello and the verdict are the first two frames.
        let (frames, _) = reference(written, MAX_HELLO_LEN);
        let used: usize = frames.iter().take(2).map(|f| HEADER_LEN + f.len()).sum();
        (&written[used..], info.max_message_size)
    };
    let (want, protocol) = reference(rest, max);
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    let end = loop {
        assert!(got.len() <= want.len(), "more messages than frames");
        let r = match (style, got.len() % 3) {
            (0, _) | (3, 0) => conn.rx.recv_into(&mut buf),
            (1, _) | (3, 1) => conn.rx.try_recv().map(|m| buf = m),
            _ => conn
                .rx
                .recv_timeout(Duration::from_secs(10))
                .map(|m| buf = m),
        };
        match r {
            Ok(()) => {
                assert!(buf.len() <= max);
                assert!(
                    buf.capacity() <= capacity_bound(max, flags & 2 != 0),
                    "{}",
                    buf.capacity()
                );
                got.push(buf.clone());
            }
            Err(e) => break e,
        }
    };
    assert_eq!(got, want);
    if protocol {
        assert!(matches!(end, Error::Protocol(_)), "{end:?}");
    } else {
        assert!(matches!(end, Error::Disconnected), "{end:?}");
    }
}

/// The frames a correct receiver finds in `bytes` with limit `max`, and
/// whether it stops at a frame over the limit (else at a truncated frame
/// or the end).
fn reference(mut bytes: &[u8], max: usize) -> (Vec<&[u8]>, bool) {
    let mut frames = Vec::new();
    while let Some(header) = bytes.get(..HEADER_LEN) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > max {
            return (frames, true);
        }
        let Some(body) = bytes.get(HEADER_LEN..HEADER_LEN + len) else {
            break;
        };
        frames.push(body);
        bytes = &bytes[HEADER_LEN + len..];
    }
    (frames, false)
}

/// Our halves of a connection whose peer wrote its bytes and closed its
/// sending side (it keeps reading, so our handshake sends go through).
struct Conn {
    tx: StreamSender,
    rx: StreamReceiver,
    /// How many of the peer's bytes fit in the kernel's buffer.
    written: usize,
    _peer: OwnedFd,
}

impl Conn {
    fn socket(bytes: &[u8], max: usize) -> Conn {
        let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
        theirs.set_nonblocking(true).expect("O_NONBLOCK");
        let written = write_what_fits(&mut theirs, bytes);
        theirs
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown");
        let (tx, rx) = stream::halves(OwnedFd::from(ours), max);
        Conn {
            tx,
            rx,
            written,
            _peer: OwnedFd::from(theirs),
        }
    }

    fn pipe(bytes: &[u8], max: usize) -> Conn {
        let (read, write) = pipe::pipe().expect("pipe");
        let written = write_what_fits(&mut std::fs::File::from(write), bytes);
        let (peer_reads, we_write) = pipe::pipe().expect("pipe");
        let (tx, rx) = stream::pipe_halves(read, we_write, max);
        Conn {
            tx,
            rx,
            written,
            _peer: peer_reads,
        }
    }
}

/// Writes what a non-blocking `w` takes of `bytes` at once.
fn write_what_fits(w: &mut impl Write, bytes: &[u8]) -> usize {
    let mut done = 0;
    while done < bytes.len() {
        match w.write(&bytes[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("writing the peer's bytes: {e}"),
        }
    }
    done
}

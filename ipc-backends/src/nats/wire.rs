//! The frames of a `nats://` connection: one NATS message each, on the
//! connection's two subjects (`docs/nats.md`, `docs/wire-format.md`).
//!
//! Every frame starts with its kind byte:
//!
//! | kind | body | |
//! |---|---|---|
//! | `HELLO` (1) | the encoded [`Hello`](ipc_core::handshake::Hello) | handshake |
//! | `VERDICT` (2) | one byte | handshake |
//! | `DATA` (3) | `u64` sequence number (LE, from 1), then the message | |
//! | `CREDIT` (4) | `u64` messages, `u64` bytes: totals the receiver allows | flow control |
//! | `BLOCKED` (5) | nothing | the sender waits for credit |
//! | `HEARTBEAT` (6) | nothing | liveness |
//! | `CLOSE` (7) | `u64` the last sequence number sent | end of connection |
//!
//! Before those, the connect request (payload: [`VERSION`], then the
//! connection id) and its reply ([`ACCEPTED`], or the reason for refusing
//! as text): [`connect_request`], [`decode_connect`].

use ipc_core::{Error, Result};

pub(crate) const HELLO: u8 = 1;
pub(crate) const VERDICT: u8 = 2;
pub(crate) const DATA: u8 = 3;
pub(crate) const CREDIT: u8 = 4;
pub(crate) const BLOCKED: u8 = 5;
pub(crate) const HEARTBEAT: u8 = 6;
pub(crate) const CLOSE: u8 = 7;

/// The version of the `nats://` protocol (the connect request, the frames,
/// the first credit window): a listener refuses a client of another one.
/// Not an ASCII letter or digit, so a request from before versions (a
/// bare connection id) is told apart.
pub(crate) const VERSION: u8 = 1;

/// The reply of a listener that accepted a connect request; any other
/// reply is the reason it refused, as UTF-8 text for the client to show.
pub(crate) const ACCEPTED: &[u8] = b"ok";

/// The payload of a connect request for connection `id`.
pub(crate) fn connect_request(id: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + id.len());
    v.push(VERSION);
    v.extend_from_slice(id.as_bytes());
    v
}

/// A connection id is a NUID: 22 letters and digits (at most 64 taken).
fn valid_id(id: &[u8]) -> Option<&str> {
    (!id.is_empty() && id.len() <= 64 && id.iter().all(u8::is_ascii_alphanumeric))
        .then(|| std::str::from_utf8(id).ok())
        .flatten()
}

/// Decodes a connect request's payload into its connection id.
///
/// # Errors
/// The reason to refuse it, as the text to reply with: another protocol
/// version (saying which to upgrade), or a malformed request.
pub(crate) fn decode_connect(b: &[u8]) -> std::result::Result<&str, String> {
    match b.split_first() {
        Some((&VERSION, id)) => valid_id(id).ok_or_else(|| {
            format!(
                "ipcx nats: malformed connect request ({} bytes): a version byte, then a connection id of 1 to 64 ASCII letters and digits",
                b.len()
            )
        }),
        Some((v, _)) if v.is_ascii_alphanumeric() => Err(format!(
            "ipcx nats protocol version 0 (a client from before versioned connect requests), this listener speaks {VERSION}; upgrade the client's ipcx to the listener's version"
        )),
        Some((&v, _)) => Err(format!(
            "ipcx nats protocol version {v}, this listener speaks {VERSION}; upgrade {} so both sides run the same ipcx version",
            if v < VERSION { "the client" } else { "the listener" }
        )),
        None => Err("ipcx nats: empty connect request: a version byte, then a connection id".into()),
    }
}

/// Bytes a `DATA` frame adds to a message: kind and sequence number.
pub const DATA_HEADER: usize = 9;

/// Messages a receiver allows in flight before it has granted more.
pub(crate) const WINDOW_MSGS: u64 = 1024;
/// Messages a receiver grants beyond those it has read, once the first
/// window ([`WINDOW_MSGS`], implied by the protocol version) is open. A
/// sender takes whatever it is granted, so this is the receiver's own
/// choice, not part of the protocol.
pub(crate) const GRANT_MSGS: u64 = 8192;
/// Bytes a receiver allows in flight before it has granted more (a message
/// larger than that is sent alone, once everything before it was read).
pub(crate) const WINDOW_BYTES: u64 = 8 << 20;

/// A frame as read from the peer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    Hello(&'a [u8]),
    Verdict(u8),
    Data { seq: u64, body: &'a [u8] },
    Credit { msgs: u64, bytes: u64 },
    Blocked,
    Heartbeat,
    Close { last: u64 },
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    b.get(at..at + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap_or([0; 8])))
}

/// Decodes one frame; nothing from the peer is trusted.
///
/// # Errors
/// [`Error::Protocol`] for an unknown kind or a frame of the wrong length.
pub(crate) fn decode(b: &[u8]) -> Result<Frame<'_>> {
    let bad =
        |what: &str| Error::protocol(format!("nats: malformed {what} frame ({} bytes)", b.len()));
    let (&kind, body) = b.split_first().ok_or_else(|| bad("empty"))?;
    Ok(match kind {
        HELLO => Frame::Hello(body),
        VERDICT => match body {
            [v] => Frame::Verdict(*v),
            _ => return Err(bad("verdict")),
        },
        DATA => Frame::Data {
            seq: u64_at(b, 1).ok_or_else(|| bad("data"))?,
            body: &b[DATA_HEADER..],
        },
        CREDIT if b.len() == 17 => Frame::Credit {
            msgs: u64_at(b, 1).ok_or_else(|| bad("credit"))?,
            bytes: u64_at(b, 9).ok_or_else(|| bad("credit"))?,
        },
        BLOCKED if body.is_empty() => Frame::Blocked,
        HEARTBEAT if body.is_empty() => Frame::Heartbeat,
        CLOSE if b.len() == 9 => Frame::Close {
            last: u64_at(b, 1).ok_or_else(|| bad("close"))?,
        },
        CREDIT => return Err(bad("credit")),
        BLOCKED => return Err(bad("blocked")),
        HEARTBEAT => return Err(bad("heartbeat")),
        CLOSE => return Err(bad("close")),
        k => return Err(Error::protocol(format!("nats: unknown frame kind {k}"))),
    })
}

/// A `DATA` frame.
pub(crate) fn data(seq: u64, msg: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(DATA_HEADER + msg.len());
    v.push(DATA);
    v.extend_from_slice(&seq.to_le_bytes());
    v.extend_from_slice(msg);
    v
}

/// A `CREDIT` frame.
pub(crate) fn credit(msgs: u64, bytes: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(17);
    v.push(CREDIT);
    v.extend_from_slice(&msgs.to_le_bytes());
    v.extend_from_slice(&bytes.to_le_bytes());
    v
}

/// A `CLOSE` frame.
pub(crate) fn close(last: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(CLOSE);
    v.extend_from_slice(&last.to_le_bytes());
    v
}

/// A frame of `kind` with `body`.
pub(crate) fn with_body(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + body.len());
    v.push(kind);
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        assert_eq!(
            decode(&data(7, b"abc")).unwrap(),
            Frame::Data {
                seq: 7,
                body: b"abc"
            }
        );
        assert_eq!(
            decode(&data(1, b"")).unwrap(),
            Frame::Data { seq: 1, body: b"" }
        );
        assert_eq!(
            decode(&credit(3, 4)).unwrap(),
            Frame::Credit { msgs: 3, bytes: 4 }
        );
        assert_eq!(decode(&close(9)).unwrap(), Frame::Close { last: 9 });
        assert_eq!(decode(&[HEARTBEAT]).unwrap(), Frame::Heartbeat);
        assert_eq!(decode(&[BLOCKED]).unwrap(), Frame::Blocked);
        assert_eq!(decode(&[VERDICT, 0]).unwrap(), Frame::Verdict(0));
        assert_eq!(decode(&with_body(HELLO, b"h")).unwrap(), Frame::Hello(b"h"));
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        for b in [
            &[][..],
            &[0][..],
            &[DATA, 1, 2][..],
            &[CREDIT, 1][..],
            &[CLOSE][..],
            &[HEARTBEAT, 1][..],
            &[VERDICT][..],
            &[99][..],
        ] {
            assert!(matches!(decode(b), Err(Error::Protocol(_))), "{b:?}");
        }
    }

    #[test]
    fn connect_requests_carry_the_version() {
        let req = connect_request("AbC123");
        assert_eq!(req[0], VERSION);
        assert_eq!(decode_connect(&req), Ok("AbC123"));
        let old = decode_connect(b"AbC123").unwrap_err();
        assert!(
            old.contains("version 0") && old.contains("upgrade the client"),
            "{old}"
        );
        let newer = decode_connect(&[VERSION + 1, b'a']).unwrap_err();
        assert!(
            newer.contains(&format!("version {}", VERSION + 1)),
            "{newer}"
        );
        assert!(newer.contains("upgrade the listener"), "{newer}");
        for bad in [&[][..], &[VERSION][..], &[VERSION, b'-'][..]] {
            assert!(decode_connect(bad).is_err(), "{bad:?}");
        }
    }
}

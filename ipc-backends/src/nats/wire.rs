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

use ipc_core::{Error, Result};

pub(crate) const HELLO: u8 = 1;
pub(crate) const VERDICT: u8 = 2;
pub(crate) const DATA: u8 = 3;
pub(crate) const CREDIT: u8 = 4;
pub(crate) const BLOCKED: u8 = 5;
pub(crate) const HEARTBEAT: u8 = 6;
pub(crate) const CLOSE: u8 = 7;

/// Bytes a `DATA` frame adds to a message: kind and sequence number.
pub const DATA_HEADER: usize = 9;

/// Messages a receiver allows in flight before it has granted more.
pub(crate) const WINDOW_MSGS: u64 = 1024;
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
}

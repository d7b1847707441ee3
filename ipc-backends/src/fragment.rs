//! Messages over kernel queues whose unit is smaller than a message:
//! fragmentation on send, validated reassembly on receive.
//!
//! Every queue message starts with a kind byte (see `docs/wire-format.md`):
//!
//! - `1` FIRST: `u32` total length (little-endian), then the first bytes;
//! - `2` MORE: the next bytes of the message being assembled;
//! - `3` CLOSE: the sender closed; no more messages follow.

use ipc_core::{Error, Result};

/// Kind byte of a message's first fragment.
pub const FIRST: u8 = 1;
/// Kind byte of a continuation fragment.
pub const MORE: u8 = 2;
/// Kind byte of the end-of-stream marker.
pub const CLOSE: u8 = 3;
/// Header length of a first fragment.
pub const FIRST_HEADER: usize = 5;
/// Smallest kernel unit the framing works with.
pub const MIN_UNIT: usize = 64;

/// The fragments of `msg` for kernel messages of at most `unit` bytes:
/// `(header, payload)` pairs to send in order.
pub fn split(msg: &[u8], unit: usize) -> impl Iterator<Item = ([u8; FIRST_HEADER], usize, &[u8])> {
    debug_assert!(unit >= MIN_UNIT);
    let len = (msg.len() as u32).to_le_bytes();
    let first_len = msg.len().min(unit - FIRST_HEADER);
    let (first, rest) = msg.split_at(first_len);
    let head = [FIRST, len[0], len[1], len[2], len[3]];
    std::iter::once((head, FIRST_HEADER, first))
        .chain(rest.chunks(unit - 1).map(|c| ([MORE, 0, 0, 0, 0], 1, c)))
}

/// What a received unit completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More fragments are needed.
    Incomplete,
    /// A whole message is ready for [`Reassembly::take`].
    Message,
    /// The peer closed its sending side.
    Closed,
}

/// The message being assembled; survives timeouts, so a partly received
/// message is never lost.
#[derive(Debug, Default)]
pub struct Reassembly {
    msg: Vec<u8>,
    expected: Option<usize>,
}

impl Reassembly {
    /// Adds one received unit, validating it against `max`.
    ///
    /// # Errors
    /// [`Error::Protocol`] for an empty or unknown unit, a length above
    /// `max`, or fragments that do not add up.
    pub fn push(&mut self, unit: &[u8], max: usize) -> Result<Step> {
        match unit.first() {
            Some(&FIRST) => {
                if self.expected.is_some() {
                    return Err(Error::protocol(
                        "the peer started a message before finishing the previous one",
                    ));
                }
                let Some(len) = unit.get(1..FIRST_HEADER) else {
                    return Err(Error::protocol("the peer sent a truncated message header"));
                };
                let total = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
                if total > max {
                    return Err(Error::protocol(format!(
                        "the peer announced a {total}-byte message, above the agreed max_message_size of {max}"
                    )));
                }
                let data = &unit[FIRST_HEADER..];
                if data.len() > total {
                    return Err(Error::protocol(
                        "the peer's first fragment is longer than its message",
                    ));
                }
                self.msg.clear();
                self.msg.reserve(total);
                self.msg.extend_from_slice(data);
                self.expected = Some(total);
            }
            Some(&MORE) => {
                let Some(total) = self.expected else {
                    return Err(Error::protocol(
                        "the peer sent a continuation fragment outside a message",
                    ));
                };
                let data = &unit[1..];
                if self.msg.len() + data.len() > total {
                    return Err(Error::protocol(
                        "the peer's fragments are longer than its message",
                    ));
                }
                self.msg.extend_from_slice(data);
            }
            Some(&CLOSE) => return Ok(Step::Closed),
            Some(k) => {
                return Err(Error::protocol(format!(
                    "the peer sent a queue message of unknown kind {k}"
                )));
            }
            None => return Err(Error::protocol("the peer sent an empty queue message")),
        }
        match self.expected {
            Some(total) if self.msg.len() == total => Ok(Step::Message),
            _ => Ok(Step::Incomplete),
        }
    }

    /// Moves the completed message into `out`, replacing its contents.
    pub fn take(&mut self, out: &mut Vec<u8>) {
        std::mem::swap(out, &mut self.msg);
        self.msg.clear();
        self.expected = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(len: usize, unit: usize) {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let mut r = Reassembly::default();
        let mut out = Vec::new();
        let mut steps = Vec::new();
        for (h, hl, data) in split(&msg, unit) {
            let mut u = h[..hl].to_vec();
            u.extend_from_slice(data);
            assert!(u.len() <= unit);
            steps.push(r.push(&u, len).unwrap());
        }
        assert_eq!(steps.pop(), Some(Step::Message));
        assert!(steps.iter().all(|s| *s == Step::Incomplete));
        r.take(&mut out);
        assert_eq!(out, msg);
    }

    #[test]
    fn sizes() {
        for len in [0, 1, 58, 59, 60, 63, 64, 200, 4096, 100_000] {
            round_trip(len, 64);
            round_trip(len, 4096);
        }
    }

    #[test]
    fn hostile_units() {
        let max = 100;
        for bad in [
            &[][..],
            &[9],
            &[FIRST, 1],
            &[MORE, 1, 2],
            &[FIRST, 200, 0, 0, 0],
            &[FIRST, 1, 0, 0, 0, 5, 6],
        ] {
            let mut r = Reassembly::default();
            assert!(
                matches!(r.push(bad, max), Err(Error::Protocol(_))),
                "{bad:?}"
            );
        }
        let mut r = Reassembly::default();
        assert_eq!(
            r.push(&[FIRST, 2, 0, 0, 0, 1], max).unwrap(),
            Step::Incomplete
        );
        assert!(r.push(&[MORE, 1, 2], max).is_err());
        assert_eq!(r.push(&[CLOSE], max).unwrap(), Step::Closed);
    }
}

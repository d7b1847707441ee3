//! Messages over kernel queues whose unit is smaller than a message:
//! fragmentation on send, validated reassembly on receive.
//!
//! Every queue message starts with a kind byte (see `docs/wire-format.md`):
//!
//! - `1` FIRST: `u32` total length (little-endian), then the first bytes;
//! - `2` MORE: the next bytes of the message being assembled;
//! - `3` CLOSE: the sender closed; no more messages follow.

use ipc_core::{Deadline, Error, Receiver, Result, Sender};

use crate::conn::handshake::Limit;
use crate::conn::link::Link;

/// Kind byte of a message's first fragment.
pub const FIRST: u8 = 1;
/// Kind byte of a continuation fragment.
pub const MORE: u8 = 2;
/// Kind byte of the end-of-stream marker.
pub const CLOSE: u8 = 3;
/// Header length of a first fragment.
pub const FIRST_HEADER: usize = 5;
/// Default kernel message size of the queue transports: a 4 KiB message and
/// its first-fragment header fit in one (so the common page-sized message
/// costs one system call each way), and a POSIX queue of 10 such units
/// still leaves room for about nine connections in the default
/// `RLIMIT_MSGQUEUE` of 800 KiB.
pub const DEFAULT_UNIT: usize = 4096 + 64;
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

/// One sending direction of a kernel queue, as [`FragmentSender`] drives it.
pub trait UnitSink: Send + std::fmt::Debug {
    /// Puts one kernel message made of `head` then `data`, waiting until
    /// `deadline` for room.
    ///
    /// # Errors
    /// [`Error::Disconnected`] when the peer is gone; the deadline's error.
    fn put(&mut self, head: &[u8], data: &[u8], deadline: Deadline) -> Result<()>;

    /// Gives the queue the connection's link, whose stop a wait may poll.
    fn attach(&mut self, _link: &Link) {}

    /// What an async sender waits on for room; `None` when the queue
    /// cannot be polled.
    fn source(&self) -> Option<crate::aio::Source<'_>> {
        None
    }
}

/// What [`UnitSource::take`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// A kernel message of this many bytes, readable with [`UnitSource::unit`].
    Unit(usize),
    /// The queue is empty.
    Empty,
    /// The queue was removed (the peer, or its watcher, is gone).
    Removed,
}

/// One receiving direction of a kernel queue, as [`FragmentReceiver`]
/// drives it.
pub trait UnitSource: Send + std::fmt::Debug {
    /// Takes one kernel message; may wait in the kernel only when `block`.
    ///
    /// # Errors
    /// The system call's error.
    fn take(&mut self, block: bool) -> Result<Taken>;
    /// The first `len` bytes of the message last taken.
    fn unit(&mut self, len: usize) -> &[u8];
    /// Whether the peer process has exited.
    ///
    /// # Errors
    /// The system call's error.
    fn peer_exited(&self) -> Result<bool>;
    /// Waits until a message may have arrived or the peer may have exited.
    ///
    /// # Errors
    /// The deadline's error once it passes.
    fn wait(&mut self, deadline: Deadline) -> Result<()>;

    /// Gives the queue the connection's link, whose stop a wait may poll.
    fn attach(&mut self, _link: &Link) {}

    /// What an async receiver waits on for a message; `None` when the
    /// queue cannot be polled.
    fn source(&self) -> Option<crate::aio::Source<'_>> {
        None
    }

    /// What wakes a receive blocked in the kernel for good.
    fn unblocker(&self) -> Option<crate::aio::Unblock> {
        None
    }
}

/// The two halves of one queue connection: messages go out through
/// `sink` in units of at most `unit` bytes and come in from `source`. The
/// halves share a `Link`, so once the receiver has seen the peer gone,
/// both return [`Error::Disconnected`].
pub fn halves<S: UnitSink, R: UnitSource>(
    mut sink: S,
    mut source: R,
    unit: usize,
) -> (FragmentSender<S>, FragmentReceiver<R>) {
    let link = Link::new();
    sink.attach(&link);
    source.attach(&link);
    if let Some(unblock) = source.unblocker() {
        // A receive blocked in the kernel is woken by a local close too.
        link.on_close(unblock);
    }
    (
        FragmentSender {
            q: sink,
            unit,
            max: 0,
            rest: Vec::new(),
            sent: 0,
            link: link.clone(),
        },
        FragmentReceiver {
            q: source,
            max: 0,
            partial: Reassembly::default(),
            dead: false,
            watched: false,
            link,
        },
    )
}

/// The sending half of a queue transport: messages cut into kernel units.
///
/// The deadline bounds the wait for room for a message's first fragment;
/// once that is out the message is committed. A blocking or timed send
/// then completes it while the peer lives; a non-blocking one
/// (`Deadline::Now`, as `try_send` and the async layer use) keeps the
/// fragments that found no room and sends them before the next message
/// (or [`flush`](FragmentSender::flush), or drop), so a message is never
/// cut short and never interleaved with the next.
#[derive(Debug)]
pub struct FragmentSender<Q: UnitSink> {
    /// The queue.
    pub(crate) q: Q,
    unit: usize,
    max: usize,
    /// The tail of a committed message that found no room yet, sent as
    /// continuation fragments from byte `sent`.
    rest: Vec<u8>,
    sent: usize,
    link: Link,
}

impl<Q: UnitSink> FragmentSender<Q> {
    /// Sends what is left of a committed message. `Ok(false)` when the
    /// deadline passed first.
    fn flush_rest(&mut self, deadline: Deadline) -> Result<bool> {
        while self.sent < self.rest.len() {
            let end = (self.sent + self.unit - 1).min(self.rest.len());
            match self.q.put(&[MORE], &self.rest[self.sent..end], deadline) {
                Ok(()) => self.sent = end,
                Err(Error::WouldBlock | Error::Timeout) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        self.rest.clear();
        self.sent = 0;
        Ok(true)
    }

    /// Sends the rest of a committed message, waiting until `deadline`.
    ///
    /// # Errors
    /// The deadline's error while fragments remain; `Disconnected` when
    /// the peer is gone.
    pub fn flush(&mut self, deadline: Deadline) -> Result<()> {
        if self.flush_rest(deadline)? {
            Ok(())
        } else {
            Err(deadline.elapsed_error())
        }
    }
}

impl<Q: UnitSink> Sender for FragmentSender<Q> {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.link.admit(msg.len(), self.max)?;
        if !self.flush_rest(deadline)? {
            return Err(deadline.elapsed_error());
        }
        let later = match deadline {
            Deadline::Now => Deadline::Now,
            _ => Deadline::Never,
        };
        let mut done = 0;
        for (i, (head, hl, data)) in split(msg, self.unit).enumerate() {
            let d = if i == 0 { deadline } else { later };
            match self.q.put(&head[..hl], data, d) {
                Ok(()) => done += data.len(),
                Err(Error::WouldBlock) if i > 0 => {
                    self.rest.clear();
                    self.rest.extend_from_slice(&msg[done..]);
                    self.sent = 0;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl<Q: UnitSink> Limit for FragmentSender<Q> {
    fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

impl<Q: UnitSink> Drop for FragmentSender<Q> {
    fn drop(&mut self) {
        // Finish a committed message, then tell the peer's receiver, even
        // after its CLOSE reached us (it may still be reading); wait a
        // little for room, not forever.
        let second = || Deadline::after(std::time::Duration::from_secs(1));
        if !matches!(self.flush_rest(second()), Ok(true)) {
            return;
        }
        let _ = self.q.put(&[CLOSE], &[], second());
    }
}

impl<Q: UnitSink> crate::aio::Pollable for FragmentSender<Q> {
    fn source(&self) -> Option<crate::aio::Source<'_>> {
        self.q.source()
    }

    fn flush_now(&mut self) -> Result<()> {
        self.flush(Deadline::Now)
    }

    fn drop_may_wait(&self) -> bool {
        // The end-of-stream marker waits for room in the peer's queue.
        true
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

impl<Q: UnitSource> crate::aio::Pollable for FragmentReceiver<Q> {
    fn source(&self) -> Option<crate::aio::Source<'_>> {
        self.q.source()
    }

    fn unblocker(&self) -> Option<crate::aio::Unblock> {
        self.q.unblocker()
    }

    fn enter_async(&mut self) {
        self.watched = self.q.source().is_some_and(|s| s.death.is_some());
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

/// The receiving half of a queue transport: kernel units reassembled into
/// messages, with the peer's death turned into `Disconnected` once what it
/// sent has been read.
#[derive(Debug)]
pub struct FragmentReceiver<Q: UnitSource> {
    /// The queue.
    pub(crate) q: Q,
    max: usize,
    partial: Reassembly,
    /// The peer was gone before the channel was made.
    pub(crate) dead: bool,
    /// The async layer watches the peer's death descriptor itself: a
    /// non-blocking receive that finds the queue empty need not ask.
    watched: bool,
    link: Link,
}

impl<Q: UnitSource> Receiver for FragmentReceiver<Q> {
    fn recv_until(&mut self, out: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.link.check()?;
        let result = self.receive(out, deadline);
        self.link.observe(result)
    }
}

impl<Q: UnitSource> FragmentReceiver<Q> {
    /// Receives one message; `Disconnected` once the peer closed, or is
    /// gone and everything it sent has been read.
    fn receive(&mut self, out: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let mut peer_gone = false;
        loop {
            let block = deadline == Deadline::Never && !peer_gone;
            match self.q.take(block)? {
                Taken::Unit(n) => match self.partial.push(self.q.unit(n), self.max)? {
                    Step::Message => {
                        self.partial.take(out);
                        return Ok(());
                    }
                    Step::Closed => return Err(Error::Disconnected),
                    Step::Incomplete => {}
                },
                Taken::Removed => return Err(Error::Disconnected),
                Taken::Empty => {
                    // Seen empty after the peer exited: nothing more will come.
                    if peer_gone {
                        return Err(Error::Disconnected);
                    }
                    if self.dead {
                        peer_gone = true;
                        continue;
                    }
                    if deadline == Deadline::Now && self.watched {
                        return Err(Error::WouldBlock);
                    }
                    if self.q.peer_exited()? {
                        peer_gone = true;
                        continue;
                    }
                    if deadline == Deadline::Now {
                        return Err(Error::WouldBlock);
                    }
                    self.q.wait(deadline)?;
                    // A local close ends the wait.
                    self.link.check()?;
                }
            }
        }
    }
}

impl<Q: UnitSource> Limit for FragmentReceiver<Q> {
    fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

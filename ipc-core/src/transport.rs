//! The transport traits and the contract every transport keeps.
//!
//! A [`Transport`] turns an [`Endpoint`] into a [`Listener`] (which accepts
//! [`Channel`]s) or a connected [`Channel`]. A channel sends and receives
//! messages and [`split`](Channel::split)s into a [`Sender`] and a
//! [`Receiver`] that may live on two threads.
//!
//! # The contract
//!
//! The conformance suite (`tests/integration/conformance.rs`) checks each of
//! these on every transport, with the two peers in different processes:
//!
//! - **Messages, not bytes.** A message sent is received whole, with its
//!   boundaries, from 0 bytes up to the connection's `max_message_size`.
//!   Larger is refused before any byte moves ([`Error::MessageTooLarge`](crate::Error::MessageTooLarge)); a
//!   peer that announces a larger message is a [`Error::Protocol`](crate::Error::Protocol) error,
//!   never an allocation.
//! - **Reliable and ordered** per direction: no loss, duplication,
//!   reordering or corruption, under sustained load.
//! - **Duplex.** A channel sends and receives; `split()` gives halves usable
//!   from two threads. Dropping the sender half tells the peer's receiver
//!   [`Error::Disconnected`](crate::Error::Disconnected) once it has read what was sent.
//! - **Backpressure.** A full channel blocks `send`; `try_send` returns
//!   [`Error::WouldBlock`](crate::Error::WouldBlock), `send_timeout`/`recv_timeout` return
//!   [`Error::Timeout`](crate::Error::Timeout) at their deadline. Nothing is dropped silently: when
//!   any of these returns an error the message was not sent, and when it
//!   returns `Ok` the message will be delivered while the peer lives.
//! - **Many clients.** `listen` then `accept` serves any number of concurrent
//!   clients (except `pipe:`, one parent-child pair by nature). Handshakes
//!   run off the accept path, each bounded by `connect_timeout`: `accept`
//!   returns established connections only, so a silent, malformed or
//!   refused client never delays another and never ends the listener; it
//!   is logged (`tracing`) and counted ([`Listener::refused`]).
//! - **Disconnected is final.** Once a channel has seen
//!   [`Error::Disconnected`](crate::Error::Disconnected), every operation on it (and on both halves of
//!   it) returns `Disconnected`; a `send` never returns `Ok` once the peer
//!   is known to be gone.
//! - **No listener is an error at once.** Connecting where nothing listens
//!   (or where the listener died) is [`Error::NoListener`](crate::Error::NoListener) on every
//!   transport, unless `wait_for_listener` asks to wait for one.
//! - **Handshake.** Connecting exchanges a hello (protocol version, pid, uid,
//!   max message size, the types each side sends and receives). A mismatch
//!   fails the connect on both sides with an error naming both types.
//! - **Peer death is an error, not a hang.** When the peer exits or is
//!   killed, a blocked `send`/`recv` returns [`Error::Disconnected`](crate::Error::Disconnected) promptly.
//! - **Nothing left behind** after a close or a crash, and a restart on the
//!   same endpoint after `kill -9` works without manual cleanup.
//! - **Private by default.** Objects are created `0600`, exclusively;
//!   `mode=` widens, `allow_uid=` restricts peers.
//! - **Batches keep it too.** [`Sender::send_batch_until`] and
//!   [`Receiver::recv_batch_until`] move many messages per system call or
//!   wake-up with the same guarantees, message by message; what a partly
//!   sent batch means is in [`crate::batch`].
//! - **A hostile peer cannot break us.** Whatever it sends, the worst it gets
//!   is a [`Error::Protocol`](crate::Error::Protocol) disconnect: no panic, no unbounded allocation.

use std::time::{Duration, Instant};

use crate::batch::Batch;
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::handshake::{PeerInfo, Schema};

/// How long an operation may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// Wait as long as it takes.
    Never,
    /// Do not wait at all (`try_*`).
    Now,
    /// Wait until this instant (`*_timeout`).
    At(Instant),
}

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Deadline {
        Instant::now()
            .checked_add(timeout)
            .map_or(Deadline::Never, Deadline::At)
    }

    /// Time left, `None` when unbounded. Zero once passed (and for `Now`).
    pub fn remaining(&self) -> Option<Duration> {
        match self {
            Deadline::Never => None,
            Deadline::Now => Some(Duration::ZERO),
            Deadline::At(t) => Some(t.saturating_duration_since(Instant::now())),
        }
    }

    /// Whether no time is left.
    pub fn expired(&self) -> bool {
        self.remaining() == Some(Duration::ZERO)
    }

    /// The error for running out of time: [`Error::WouldBlock`] for `Now`,
    /// [`Error::Timeout`] otherwise.
    ///
    /// [`Error::WouldBlock`]: crate::Error::WouldBlock
    /// [`Error::Timeout`]: crate::Error::Timeout
    pub fn elapsed_error(&self) -> crate::Error {
        match self {
            Deadline::Now => crate::Error::WouldBlock,
            _ => crate::Error::Timeout,
        }
    }

    /// The earlier of two deadlines.
    pub fn min(self, other: Deadline) -> Deadline {
        match (self, other) {
            (Deadline::Now, _) | (_, Deadline::Now) => Deadline::Now,
            (Deadline::Never, d) | (d, Deadline::Never) => d,
            (Deadline::At(a), Deadline::At(b)) => Deadline::At(a.min(b)),
        }
    }
}

/// The sending half of a connection.
pub trait Sender: Send {
    /// Sends one message, waiting at most until `deadline` for room.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] (nothing sent), [`Error::WouldBlock`] or
    /// [`Error::Timeout`] at the deadline (nothing sent),
    /// [`Error::Disconnected`] when the peer is gone.
    ///
    /// [`Error::MessageTooLarge`]: crate::Error::MessageTooLarge
    /// [`Error::WouldBlock`]: crate::Error::WouldBlock
    /// [`Error::Timeout`]: crate::Error::Timeout
    /// [`Error::Disconnected`]: crate::Error::Disconnected
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()>;

    /// The connection's largest message, agreed in the handshake.
    fn max_message_size(&self) -> usize;

    /// Sends one message, blocking while the channel is full.
    ///
    /// # Errors
    /// As [`Sender::send_until`].
    fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Never)
    }

    /// Sends one message if there is room now.
    ///
    /// # Errors
    /// As [`Sender::send_until`]; [`Error::WouldBlock`](crate::Error::WouldBlock) when full.
    fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, Deadline::Now)
    }

    /// Sends one message, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`Sender::send_until`]; [`Error::Timeout`](crate::Error::Timeout) at the deadline.
    fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<()> {
        self.send_until(msg, Deadline::after(timeout))
    }

    /// Sends `msgs` in order with as few system calls or wake-ups as the
    /// transport allows, waiting at most until `deadline` for room; the
    /// rules are in [`crate::batch`]. Returns how many of the first
    /// messages were sent: all of them unless the deadline passed.
    ///
    /// The provided method sends one message at a time; stream and
    /// shared-memory transports override it (one `writev`, one wake-up).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when any message is too large (nothing
    /// sent), [`Error::WouldBlock`]/[`Error::Timeout`] when the deadline
    /// passed before the first message went, [`Error::Disconnected`].
    ///
    /// [`Error::MessageTooLarge`]: crate::Error::MessageTooLarge
    /// [`Error::WouldBlock`]: crate::Error::WouldBlock
    /// [`Error::Timeout`]: crate::Error::Timeout
    /// [`Error::Disconnected`]: crate::Error::Disconnected
    fn send_batch_until(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
        crate::batch::check_sizes(msgs, self.max_message_size())?;
        crate::batch::send_each(self, msgs, deadline)
    }

    /// Sends every message of `msgs`, in order, blocking while the channel
    /// is full ([`send_batch_until`](Sender::send_batch_until) without a
    /// deadline).
    ///
    /// # Errors
    /// As [`Sender::send_batch_until`].
    fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        self.send_batch_until(msgs, Deadline::Never).map(drop)
    }

    /// Sends as many of `msgs` as there is room for now; returns how many.
    ///
    /// # Errors
    /// As [`Sender::send_batch_until`]; [`Error::WouldBlock`](crate::Error::WouldBlock)
    /// when not even the first fits.
    fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        self.send_batch_until(msgs, Deadline::Now)
    }

    /// Sends as many of `msgs` as room comes for within `timeout`; returns
    /// how many.
    ///
    /// # Errors
    /// As [`Sender::send_batch_until`].
    fn send_batch_timeout(&mut self, msgs: &[&[u8]], timeout: Duration) -> Result<usize> {
        self.send_batch_until(msgs, Deadline::after(timeout))
    }
}

/// The receiving half of a connection.
pub trait Receiver: Send {
    /// Receives one message into `buf` (replacing its contents), waiting at
    /// most until `deadline`.
    ///
    /// # Errors
    /// [`Error::WouldBlock`]/[`Error::Timeout`] when nothing arrived in time
    /// (nothing consumed), [`Error::Disconnected`] once the peer is gone and
    /// everything it sent has been received, [`Error::Protocol`] when the
    /// peer broke the framing.
    ///
    /// [`Error::WouldBlock`]: crate::Error::WouldBlock
    /// [`Error::Timeout`]: crate::Error::Timeout
    /// [`Error::Disconnected`]: crate::Error::Disconnected
    /// [`Error::Protocol`]: crate::Error::Protocol
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()>;

    /// Receives one message, blocking until one arrives.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    fn recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_until(&mut buf, Deadline::Never)?;
        Ok(buf)
    }

    /// Receives one message into `buf`, reusing its allocation.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.recv_until(buf, Deadline::Never)
    }

    /// Receives one message if one is waiting.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`]; [`Error::WouldBlock`](crate::Error::WouldBlock) when empty.
    fn try_recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_until(&mut buf, Deadline::Now)?;
        Ok(buf)
    }

    /// Receives one message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`]; [`Error::Timeout`](crate::Error::Timeout) at the deadline.
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_until(&mut buf, Deadline::after(timeout))?;
        Ok(buf)
    }

    /// Waits until `deadline` for a message, then takes every further one
    /// already there, without waiting, up to `max` in all (at least one),
    /// into `batch` (replacing its contents); returns how many. The rules
    /// are in [`crate::batch`].
    ///
    /// The provided method receives one message at a time; stream and
    /// shared-memory transports override it (many frames per `read`, many
    /// ring records per wake-up).
    ///
    /// # Errors
    /// As [`Receiver::recv_until`], for the first message; an error met
    /// after one was taken is reported by the next call.
    fn recv_batch_until(
        &mut self,
        batch: &mut Batch,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        crate::batch::recv_each(self, batch, max, deadline)
    }

    /// Blocks until a message arrives, then takes what else is there, up
    /// to `max` messages.
    ///
    /// # Errors
    /// As [`Receiver::recv_batch_until`].
    fn recv_batch(&mut self, batch: &mut Batch, max: usize) -> Result<usize> {
        self.recv_batch_until(batch, max, Deadline::Never)
    }

    /// Takes the messages waiting now, up to `max`.
    ///
    /// # Errors
    /// As [`Receiver::recv_batch_until`]; [`Error::WouldBlock`](crate::Error::WouldBlock)
    /// when there are none.
    fn try_recv_batch(&mut self, batch: &mut Batch, max: usize) -> Result<usize> {
        self.recv_batch_until(batch, max, Deadline::Now)
    }
}

/// A connected, duplex channel.
pub trait Channel: Sender + Receiver {
    /// The sending half after [`split`](Channel::split).
    type Sender: Sender;
    /// The receiving half after [`split`](Channel::split).
    type Receiver: Receiver;

    /// Splits into halves that can be used from two threads.
    fn split(self) -> (Self::Sender, Self::Receiver);

    /// What the handshake learned about the peer.
    fn peer(&self) -> &PeerInfo;
}

/// Accepts connections on an endpoint.
pub trait Listener: Send {
    /// The connections it accepts.
    type Channel: Channel;

    /// Waits at most until `deadline` for the next established connection
    /// (one whose handshake completed). Clients that fail their handshake
    /// are not returned: they are logged and counted in
    /// [`refused`](Listener::refused).
    ///
    /// # Errors
    /// [`Error::WouldBlock`]/[`Error::Timeout`] when no client came in time;
    /// otherwise only failures of the listener itself
    /// ([`Error::is_fatal`](crate::Error::is_fatal)).
    ///
    /// [`Error::WouldBlock`]: crate::Error::WouldBlock
    /// [`Error::Timeout`]: crate::Error::Timeout
    fn accept_until(&mut self, deadline: Deadline) -> Result<Self::Channel>;

    /// How many connection attempts failed before they were established
    /// (malformed requests, handshake refusals, clients silent past
    /// `connect_timeout`, attempts beyond the pending limit).
    fn refused(&self) -> u64 {
        0
    }

    /// The endpoint actually listened on (a TCP port 0 is resolved).
    fn endpoint(&self) -> &Endpoint;

    /// Waits for the next client.
    ///
    /// # Errors
    /// As [`Listener::accept_until`].
    fn accept(&mut self) -> Result<Self::Channel> {
        self.accept_until(Deadline::Never)
    }

    /// Waits at most `timeout` for the next client.
    ///
    /// # Errors
    /// As [`Listener::accept_until`].
    fn accept_timeout(&mut self, timeout: Duration) -> Result<Self::Channel> {
        self.accept_until(Deadline::after(timeout))
    }
}

/// A mechanism: how to listen on and connect to its endpoints.
pub trait Transport {
    /// Its listener.
    type Listener: Listener<Channel = Self::Channel>;
    /// Its connections.
    type Channel: Channel;

    /// Creates the listening object named by `endpoint`.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) naming the endpoint and call,
    /// [`Error::Limit`](crate::Error::Limit) when an option exceeds a kernel limit.
    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<Self::Listener>;

    /// Connects to a listener and completes the handshake.
    ///
    /// # Errors
    /// [`Error::Io`](crate::Error::Io) when nothing listens there, handshake
    /// errors ([`Error::SchemaMismatch`](crate::Error::SchemaMismatch), …).
    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<Self::Channel>;
}

/// A channel assembled from a sender and a receiver; the shape most
/// transports use.
#[derive(Debug)]
pub struct Duplex<S, R> {
    /// The sending half.
    pub sender: S,
    /// The receiving half.
    pub receiver: R,
    /// What the handshake learned.
    pub peer: PeerInfo,
}

impl<S: Sender, R: Receiver> Sender for Duplex<S, R> {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.sender.send_until(msg, deadline)
    }

    fn send_batch_until(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
        self.sender.send_batch_until(msgs, deadline)
    }

    fn max_message_size(&self) -> usize {
        self.sender.max_message_size()
    }
}

impl<S: Sender, R: Receiver> Receiver for Duplex<S, R> {
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.receiver.recv_until(buf, deadline)
    }

    fn recv_batch_until(
        &mut self,
        batch: &mut Batch,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        self.receiver.recv_batch_until(batch, max, deadline)
    }
}

impl<S: Sender, R: Receiver> Channel for Duplex<S, R> {
    type Sender = S;
    type Receiver = R;

    fn split(self) -> (S, R) {
        (self.sender, self.receiver)
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines() {
        assert_eq!(Deadline::Never.remaining(), None);
        assert!(Deadline::Now.expired());
        assert!(!Deadline::after(Duration::from_secs(60)).expired());
        assert!(matches!(
            Deadline::Now.elapsed_error(),
            crate::Error::WouldBlock
        ));
        assert!(matches!(
            Deadline::after(Duration::ZERO).elapsed_error(),
            crate::Error::Timeout
        ));
        assert_eq!(Deadline::Never.min(Deadline::Now), Deadline::Now);
        let t = Instant::now();
        assert_eq!(Deadline::Never.min(Deadline::At(t)), Deadline::At(t));
        assert_eq!(Deadline::after(Duration::MAX), Deadline::Never);
    }
}

//! Typed channels: send and receive [`IpcMessage`] values instead of bytes,
//! over any transport's [`Channel`].
//!
//! The typed layer does no I/O: it encodes into a buffer it keeps and hands
//! bytes to the channel underneath, so a library that depends on `ipc-core`
//! alone can take any transport's channel and talk in types. `ipcx::typed`
//! re-exports it with the run-time choice of transport as the default and
//! adds `connect`/`listen`/`spawn`, which announce
//! [`schema::<Out, In>()`](schema) in the handshake so peers that disagree
//! on a type refuse each other at connect.
//!
//! ```
//! use ipc_core::typed::TypedChannel;
//! use ipc_core::{Channel, IpcMessage, Result};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
//! struct Order { id: u64, item: String }
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
//! struct Ack { id: u64 }
//!
//! /// Acknowledges orders until the client leaves; any transport will do.
//! fn serve<C: Channel>(channel: C) -> Result<()> {
//!     let mut ch = TypedChannel::<Ack, Order, C>::new(channel);
//!     loop {
//!         let order = match ch.recv() {
//!             Ok(order) => order,
//!             Err(ipc_core::Error::Disconnected) => return Ok(()),
//!             Err(e) => return Err(e),
//!         };
//!         ch.send(&Ack { id: order.id })?;
//!     }
//! }
//! ```
//!
//! # Encoding
//!
//! Postcard types are encoded into a buffer the channel keeps, so sending
//! allocates nothing once the buffer has grown to the largest message.
//! Zero-copy types ([`Encoding::ZeroCopy`](crate::Encoding::ZeroCopy)) are
//! not serialized: their own bytes are handed to the transport, and received
//! bytes are validated and copied once into the value.
//!
//! # In place
//!
//! For zero-copy types, [`TypedSender::loan`] gives a [`Loan`] to fill and
//! send, and [`TypedReceiver::recv_sample`] a [`Sample`] that derefs to the
//! validated value (also on [`TypedChannel`]), on any channel whose halves
//! implement [`LoanSender`](crate::loan::LoanSender) and
//! [`InPlaceReceiver`](crate::loan::InPlaceReceiver). On shared memory both
//! lie inside the segment, no copy at all, for types aligned to at most 8
//! bytes (the alignment of every ring record; others are copied once); on
//! every other transport the same code moves the bytes with one copy.
//!
//! # Batches
//!
//! [`TypedChannel::send_batch`] encodes a slice of values and sends them
//! as one batch (one `writev` on a stream, one wake-up on shared memory;
//! the rules are in [`crate::batch`]); [`TypedChannel::recv_batch`] takes
//! every value already there, up to a maximum, after waiting for the
//! first. The same on [`TypedSender`] and [`TypedReceiver`].
//!
//! # Errors on receive
//!
//! A message that does not decode is [`Error::Decode`](crate::Error::Decode)
//! naming the type; it has been consumed and the channel stays usable
//! (every transport keeps message boundaries, so the next message is
//! intact).

mod batch;
mod in_place;

#[doc(hidden)]
pub use batch::{Inbox, encode_batch};

pub use in_place::{Loan, Sample};

use std::marker::PhantomData;
use std::time::Duration;

use crate::{
    Channel, Deadline, Endpoint, IpcMessage, Listener, PeerInfo, Receiver, Result, Schema, Sender,
};

/// The schema a typed peer sending `Out` and receiving `In` announces.
pub fn schema<Out: IpcMessage, In: IpcMessage>() -> Schema {
    Schema::new(Out::type_tag(), In::type_tag())
}

// `fn(&Out) -> In` keeps the wrappers `Send`/`Sync` whatever the message
// types are: no value of either is stored.
type Types<Out, In> = PhantomData<fn(&Out) -> In>;

fn send_message<S: Sender, T: IpcMessage>(
    sender: &mut S,
    buf: &mut Vec<u8>,
    msg: &T,
    deadline: Deadline,
) -> Result<()> {
    if let Some(bytes) = msg.wire_bytes() {
        return sender.send_until(bytes, deadline);
    }
    buf.clear();
    msg.encode(buf)?;
    sender.send_until(buf, deadline)
}

fn recv_message<R: Receiver, T: IpcMessage>(
    receiver: &mut R,
    buf: &mut Vec<u8>,
    deadline: Deadline,
) -> Result<T> {
    receiver.recv_until(buf, deadline)?;
    T::decode(buf)
}

/// A connected channel that sends `Out` and receives `In`, over any
/// transport's channel `C` (in `ipcx`, by default the run-time choice
/// `AnyChannel`).
#[derive(Debug)]
pub struct TypedChannel<Out, In, C> {
    channel: C,
    out_buf: Vec<u8>,
    in_buf: Vec<u8>,
    inbox: batch::Inbox,
    types: Types<Out, In>,
}

impl<Out: IpcMessage, In: IpcMessage, C: Channel> TypedChannel<Out, In, C> {
    /// Wraps a connected byte channel. Its handshake should have announced
    /// [`schema::<Out, In>()`](schema) (as `ipcx::typed::connect` and
    /// `listen` do); a channel opened for raw bytes accepts any peer,
    /// unchecked.
    ///
    /// # Examples
    ///
    /// ```
    /// use ipc_core::typed::TypedChannel;
    /// use ipc_core::{Channel, IpcMessage, Result};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(IpcMessage, Serialize, Deserialize)]
    /// struct Ping(u32);
    ///
    /// /// Answers one ping, whatever the transport.
    /// fn pong<C: Channel>(channel: C) -> Result<()> {
    ///     let mut ch = TypedChannel::<Ping, Ping, C>::new(channel);
    ///     let Ping(n) = ch.recv()?;
    ///     ch.send(&Ping(n + 1))
    /// }
    /// ```
    pub fn new(channel: C) -> Self {
        TypedChannel {
            channel,
            out_buf: Vec::new(),
            in_buf: Vec::new(),
            inbox: batch::Inbox::default(),
            types: PhantomData,
        }
    }

    /// Sends `msg`, blocking while the channel is full.
    ///
    /// # Errors
    /// [`Error::Encode`](crate::Error::Encode) when serde refuses the value;
    /// otherwise as [`Sender::send`] (nothing is sent on error).
    pub fn send(&mut self, msg: &Out) -> Result<()> {
        self.send_until(msg, Deadline::Never)
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    /// As [`send`](Self::send); [`Error::WouldBlock`](crate::Error::WouldBlock) when full.
    pub fn try_send(&mut self, msg: &Out) -> Result<()> {
        self.send_until(msg, Deadline::Now)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`send`](Self::send); [`Error::Timeout`](crate::Error::Timeout) at the deadline.
    pub fn send_timeout(&mut self, msg: &Out, timeout: Duration) -> Result<()> {
        self.send_until(msg, Deadline::after(timeout))
    }

    /// Sends `msg`, waiting at most until `deadline` for room.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn send_until(&mut self, msg: &Out, deadline: Deadline) -> Result<()> {
        send_message(&mut self.channel, &mut self.out_buf, msg, deadline)
    }

    /// Receives the next message, blocking until one arrives.
    ///
    /// # Errors
    /// [`Error::Decode`](crate::Error::Decode) naming `In` when the message is
    /// not a valid `In` (it is consumed; the channel stays usable); otherwise
    /// as [`Receiver::recv`].
    pub fn recv(&mut self) -> Result<In> {
        self.recv_until(Deadline::Never)
    }

    /// Receives a message if one is waiting.
    ///
    /// # Errors
    /// As [`recv`](Self::recv); [`Error::WouldBlock`](crate::Error::WouldBlock) when empty.
    pub fn try_recv(&mut self) -> Result<In> {
        self.recv_until(Deadline::Now)
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv); [`Error::Timeout`](crate::Error::Timeout) at the deadline.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<In> {
        self.recv_until(Deadline::after(timeout))
    }

    /// Receives a message, waiting at most until `deadline`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn recv_until(&mut self, deadline: Deadline) -> Result<In> {
        if let Some(r) = self.inbox.take_one() {
            return r;
        }
        recv_message(&mut self.channel, &mut self.in_buf, deadline)
    }

    /// Sends every value of `msgs`, in order, as one batch (one system
    /// call or wake-up where the transport allows; see
    /// [`crate::batch`]), blocking while the channel is full.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ipc_core::{typed::TypedChannel, Channel, IpcMessage, Result};
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(IpcMessage, Serialize, Deserialize, Debug)]
    /// struct Tick { seq: u64 }
    ///
    /// fn burst<C: Channel>(ch: &mut TypedChannel<Tick, Tick, C>) -> Result<()> {
    ///     let ticks: Vec<Tick> = (0..64).map(|seq| Tick { seq }).collect();
    ///     ch.send_batch(&ticks)
    /// }
    /// ```
    ///
    /// # Errors
    /// As [`Sender::send_batch_until`]; [`Error::Encode`](crate::Error::Encode)
    /// (nothing sent) when a value does not encode.
    pub fn send_batch(&mut self, msgs: &[Out]) -> Result<()> {
        self.send_batch_until(msgs, Deadline::Never).map(drop)
    }

    /// Sends as many of `msgs` as room comes for by `deadline`, in order,
    /// as one batch; returns how many of the first went.
    ///
    /// # Errors
    /// As [`send_batch`](Self::send_batch).
    pub fn send_batch_until(&mut self, msgs: &[Out], deadline: Deadline) -> Result<usize> {
        batch::send_messages(&mut self.channel, &mut self.out_buf, msgs, deadline)
    }

    /// Waits for a value, then takes every further one already there, up
    /// to `max` in all, appending them to `out`; returns how many.
    ///
    /// A message that does not decode ends the batch before it; the call
    /// that meets it first returns its [`Error::Decode`](crate::Error::Decode)
    /// (it is consumed) and the next goes on. Values a batch left
    /// undecoded that way are returned first by `recv`/`recv_batch` (not
    /// by `recv_sample`).
    ///
    /// # Errors
    /// As [`Receiver::recv_batch_until`]; `Decode` as above.
    pub fn recv_batch(&mut self, out: &mut Vec<In>, max: usize) -> Result<usize> {
        self.recv_batch_until(out, max, Deadline::Never)
    }

    /// As [`recv_batch`](Self::recv_batch), waiting at most until
    /// `deadline` for the first value.
    ///
    /// # Errors
    /// As [`recv_batch`](Self::recv_batch).
    pub fn recv_batch_until(
        &mut self,
        out: &mut Vec<In>,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        self.inbox.recv(&mut self.channel, out, max, deadline)
    }

    /// Splits into a sender and a receiver usable from two threads.
    pub fn split(self) -> (TypedSender<Out, C::Sender>, TypedReceiver<In, C::Receiver>) {
        let (tx, rx) = self.channel.split();
        (
            TypedSender {
                sender: tx,
                buf: self.out_buf,
                types: PhantomData,
            },
            TypedReceiver {
                receiver: rx,
                buf: self.in_buf,
                inbox: self.inbox,
                types: PhantomData,
            },
        )
    }

    /// What the handshake learned about the peer (its pid, uid, types).
    pub fn peer(&self) -> &PeerInfo {
        self.channel.peer()
    }

    /// The connection's largest message in encoded bytes.
    pub fn max_message_size(&self) -> usize {
        self.channel.max_message_size()
    }

    /// The underlying byte channel.
    pub fn into_inner(self) -> C {
        self.channel
    }

    /// The underlying byte channel, borrowed.
    pub fn get_ref(&self) -> &C {
        &self.channel
    }

    /// The underlying byte channel, borrowed mutably (bytes sent or
    /// received through it bypass the types).
    pub fn get_mut(&mut self) -> &mut C {
        &mut self.channel
    }
}

/// The sending half of a [`TypedChannel`].
#[derive(Debug)]
pub struct TypedSender<Out, S> {
    sender: S,
    buf: Vec<u8>,
    types: Types<Out, ()>,
}

impl<Out: IpcMessage, S: Sender> TypedSender<Out, S> {
    /// Sends `msg`, blocking while the channel is full.
    ///
    /// # Errors
    /// As [`TypedChannel::send`].
    pub fn send(&mut self, msg: &Out) -> Result<()> {
        self.send_until(msg, Deadline::Never)
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    /// As [`TypedChannel::try_send`].
    pub fn try_send(&mut self, msg: &Out) -> Result<()> {
        self.send_until(msg, Deadline::Now)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`TypedChannel::send_timeout`].
    pub fn send_timeout(&mut self, msg: &Out, timeout: Duration) -> Result<()> {
        self.send_until(msg, Deadline::after(timeout))
    }

    /// Sends `msg`, waiting at most until `deadline` for room.
    ///
    /// # Errors
    /// As [`TypedChannel::send`].
    pub fn send_until(&mut self, msg: &Out, deadline: Deadline) -> Result<()> {
        send_message(&mut self.sender, &mut self.buf, msg, deadline)
    }

    /// Sends every value of `msgs`, in order, as one batch; see
    /// [`TypedChannel::send_batch`].
    ///
    /// # Errors
    /// As [`TypedChannel::send_batch`].
    pub fn send_batch(&mut self, msgs: &[Out]) -> Result<()> {
        self.send_batch_until(msgs, Deadline::Never).map(drop)
    }

    /// Sends as many of `msgs` as room comes for by `deadline`; see
    /// [`TypedChannel::send_batch_until`].
    ///
    /// # Errors
    /// As [`TypedChannel::send_batch`].
    pub fn send_batch_until(&mut self, msgs: &[Out], deadline: Deadline) -> Result<usize> {
        batch::send_messages(&mut self.sender, &mut self.buf, msgs, deadline)
    }

    /// The connection's largest message in encoded bytes.
    pub fn max_message_size(&self) -> usize {
        self.sender.max_message_size()
    }

    /// The underlying byte sender, borrowed.
    pub fn get_ref(&self) -> &S {
        &self.sender
    }

    /// The underlying byte sender, borrowed mutably (bytes sent through it
    /// bypass the type).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.sender
    }

    /// The underlying byte sender.
    pub fn into_inner(self) -> S {
        self.sender
    }
}

/// The receiving half of a [`TypedChannel`].
#[derive(Debug)]
pub struct TypedReceiver<In, R> {
    receiver: R,
    buf: Vec<u8>,
    inbox: batch::Inbox,
    types: Types<(), In>,
}

impl<In: IpcMessage, R: Receiver> TypedReceiver<In, R> {
    /// Receives the next message, blocking until one arrives.
    ///
    /// # Errors
    /// As [`TypedChannel::recv`].
    pub fn recv(&mut self) -> Result<In> {
        self.recv_until(Deadline::Never)
    }

    /// Receives a message if one is waiting.
    ///
    /// # Errors
    /// As [`TypedChannel::try_recv`].
    pub fn try_recv(&mut self) -> Result<In> {
        self.recv_until(Deadline::Now)
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`TypedChannel::recv_timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<In> {
        self.recv_until(Deadline::after(timeout))
    }

    /// Receives a message, waiting at most until `deadline`.
    ///
    /// # Errors
    /// As [`TypedChannel::recv`].
    pub fn recv_until(&mut self, deadline: Deadline) -> Result<In> {
        if let Some(r) = self.inbox.take_one() {
            return r;
        }
        recv_message(&mut self.receiver, &mut self.buf, deadline)
    }

    /// Waits for a value, then takes every further one already there, up
    /// to `max`, appending them to `out`; see [`TypedChannel::recv_batch`].
    ///
    /// # Errors
    /// As [`TypedChannel::recv_batch`].
    pub fn recv_batch(&mut self, out: &mut Vec<In>, max: usize) -> Result<usize> {
        self.recv_batch_until(out, max, Deadline::Never)
    }

    /// As [`recv_batch`](Self::recv_batch), waiting at most until
    /// `deadline` for the first value.
    ///
    /// # Errors
    /// As [`TypedChannel::recv_batch`].
    pub fn recv_batch_until(
        &mut self,
        out: &mut Vec<In>,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        self.inbox.recv(&mut self.receiver, out, max, deadline)
    }

    /// The underlying byte receiver, borrowed.
    pub fn get_ref(&self) -> &R {
        &self.receiver
    }

    /// The underlying byte receiver, borrowed mutably (bytes received
    /// through it bypass the type).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.receiver
    }

    /// The underlying byte receiver.
    pub fn into_inner(self) -> R {
        self.receiver
    }
}

/// Accepts [`TypedChannel`]s (in `ipcx`, made by `ipcx::typed::listen`).
#[derive(Debug)]
pub struct TypedListener<Out, In, L> {
    listener: L,
    types: Types<Out, In>,
}

impl<Out: IpcMessage, In: IpcMessage, L: Listener> TypedListener<Out, In, L> {
    /// Wraps a listener whose handshake announces
    /// [`schema::<Out, In>()`](schema).
    pub fn new(listener: L) -> Self {
        TypedListener {
            listener,
            types: PhantomData,
        }
    }

    /// Waits for the next client.
    ///
    /// # Errors
    /// As [`Listener::accept`]: [`Error::SchemaMismatch`](crate::Error::SchemaMismatch)
    /// for a client with other types (the listener stays usable).
    pub fn accept(&mut self) -> Result<TypedChannel<Out, In, L::Channel>> {
        self.accept_until(Deadline::Never)
    }

    /// Waits at most `timeout` for the next client.
    ///
    /// # Errors
    /// As [`accept`](Self::accept); [`Error::Timeout`](crate::Error::Timeout).
    pub fn accept_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<TypedChannel<Out, In, L::Channel>> {
        self.accept_until(Deadline::after(timeout))
    }

    /// Waits at most until `deadline` for the next client.
    ///
    /// # Errors
    /// As [`accept`](Self::accept).
    pub fn accept_until(
        &mut self,
        deadline: Deadline,
    ) -> Result<TypedChannel<Out, In, L::Channel>> {
        self.listener.accept_until(deadline).map(TypedChannel::new)
    }

    /// The endpoint actually listened on (a TCP port 0 is resolved).
    pub fn endpoint(&self) -> &Endpoint {
        self.listener.endpoint()
    }

    /// How many connection attempts failed before they were established;
    /// see [`Listener::refused`].
    pub fn refused(&self) -> u64 {
        self.listener.refused()
    }

    /// The underlying byte listener.
    pub fn into_inner(self) -> L {
        self.listener
    }

    /// The underlying byte listener, borrowed.
    pub fn get_ref(&self) -> &L {
        &self.listener
    }
}

//! Typed channels: send and receive [`IpcMessage`] values instead of bytes.
//!
//! [`connect`] and [`listen`] (also at the crate root as
//! [`connect_typed`](crate::connect_typed) and
//! [`listen_typed`](crate::listen_typed)) announce the types in the
//! handshake, `Schema::new(Out::type_tag(), In::type_tag())`, so peers that
//! disagree on a type refuse each other at connect, on both sides, with
//! [`Error::SchemaMismatch`] naming both types and their fingerprints —
//! never garbage later.
//!
//! ```no_run
//! use ipcx::IpcMessage;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
//! #[ipc(crate = "ipcx")]
//! struct Order { id: u64, item: String }
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
//! #[ipc(crate = "ipcx")]
//! struct Ack { id: u64 }
//!
//! # fn main() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "unix:/tmp/orders.sock".parse()?;
//! // The other process: ipcx::typed::listen::<Ack, Order>(&endpoint)?
//! let mut ch = ipcx::typed::connect::<Order, Ack>(&endpoint)?;
//! ch.send(&Order { id: 1, item: "tea".into() })?;
//! let ack: Ack = ch.recv()?;
//! # Ok(()) }
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
//! # Errors on receive
//!
//! A message that does not decode is [`Error::Decode`] naming the type; it
//! has been consumed and the channel stays usable (every transport keeps
//! message boundaries, so the next message is intact).

use std::marker::PhantomData;
use std::process::{Child, Command};
use std::time::Duration;

use ipc_core::{
    Channel, Deadline, Endpoint, IpcMessage, Listener, PeerInfo, Receiver, Result, Schema, Sender,
};

use crate::{AnyChannel, AnyListener, AnyReceiver, AnySender};

/// The schema a typed peer sending `Out` and receiving `In` announces.
pub fn schema<Out: IpcMessage, In: IpcMessage>() -> Schema {
    Schema::new(Out::type_tag(), In::type_tag())
}

/// Connects to `endpoint` for a channel sending `Out` and receiving `In`.
///
/// # Errors
/// As [`crate::connect`]; [`Error::SchemaMismatch`] when the listener's types
/// differ (the listener sees the same error).
///
/// [`Error::SchemaMismatch`]: crate::Error::SchemaMismatch
pub fn connect<Out: IpcMessage, In: IpcMessage>(
    endpoint: &Endpoint,
) -> Result<TypedChannel<Out, In>> {
    crate::connect_with(endpoint, &schema::<Out, In>()).map(TypedChannel::new)
}

/// Listens on `endpoint` for channels sending `Out` and receiving `In`.
///
/// # Errors
/// As [`crate::listen`].
pub fn listen<Out: IpcMessage, In: IpcMessage>(
    endpoint: &Endpoint,
) -> Result<TypedListener<Out, In>> {
    crate::listen_with(endpoint, &schema::<Out, In>()).map(TypedListener::new)
}

/// Starts `command` as a child connected through `endpoint` (`pipe:` or
/// any other) with a channel sending `Out` and receiving `In`; the child
/// calls [`connect_parent::<In, Out>()`](connect_parent).
///
/// # Errors
/// As [`crate::spawn_with`]; [`Error::SchemaMismatch`] when the child's
/// types differ.
///
/// [`Error::SchemaMismatch`]: crate::Error::SchemaMismatch
pub fn spawn<Out: IpcMessage, In: IpcMessage>(
    command: Command,
    endpoint: &Endpoint,
) -> Result<(Child, TypedChannel<Out, In>)> {
    let (child, channel) = crate::spawn_with(command, endpoint, &schema::<Out, In>())?;
    Ok((child, TypedChannel::new(channel)))
}

/// In a child started by [`spawn`]: connects to the parent, sending `Out`
/// and receiving `In`.
///
/// # Errors
/// As [`crate::connect_parent`]; [`Error::SchemaMismatch`] when the
/// parent's types differ.
///
/// [`Error::SchemaMismatch`]: crate::Error::SchemaMismatch
pub fn connect_parent<Out: IpcMessage, In: IpcMessage>() -> Result<TypedChannel<Out, In>> {
    crate::connect_parent_with(&schema::<Out, In>()).map(TypedChannel::new)
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
/// transport (`C`, by default the run-time choice [`AnyChannel`]).
#[derive(Debug)]
pub struct TypedChannel<Out, In, C = AnyChannel> {
    channel: C,
    out_buf: Vec<u8>,
    in_buf: Vec<u8>,
    types: Types<Out, In>,
}

impl<Out: IpcMessage, In: IpcMessage, C: Channel> TypedChannel<Out, In, C> {
    /// Wraps a connected byte channel. Its handshake should have announced
    /// [`schema::<Out, In>()`](schema) (as [`connect`] and [`listen`] do);
    /// a channel opened for raw bytes accepts any peer, unchecked.
    pub fn new(channel: C) -> Self {
        TypedChannel {
            channel,
            out_buf: Vec::new(),
            in_buf: Vec::new(),
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
        recv_message(&mut self.channel, &mut self.in_buf, deadline)
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
}

/// The sending half of a [`TypedChannel`].
#[derive(Debug)]
pub struct TypedSender<Out, S = AnySender> {
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

    /// The connection's largest message in encoded bytes.
    pub fn max_message_size(&self) -> usize {
        self.sender.max_message_size()
    }
}

/// The receiving half of a [`TypedChannel`].
#[derive(Debug)]
pub struct TypedReceiver<In, R = AnyReceiver> {
    receiver: R,
    buf: Vec<u8>,
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
        recv_message(&mut self.receiver, &mut self.buf, deadline)
    }
}

/// Accepts [`TypedChannel`]s; made by [`listen`].
#[derive(Debug)]
pub struct TypedListener<Out, In, L = AnyListener> {
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

    /// The underlying byte listener.
    pub fn into_inner(self) -> L {
        self.listener
    }
}

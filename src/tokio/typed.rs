//! Typed async channels: send and receive [`IpcMessage`] values.
//!
//! The handshake announces the types as the blocking
//! [`crate::typed`] does, so blocking and async peers of the same types
//! connect, and peers of other types are refused on both sides.
//!
//! ```no_run
//! use ipcx::IpcMessage;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
//! struct Order { id: u64, item: String }
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
//! struct Ack { id: u64 }
//!
//! # async fn f() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "mq:/orders".parse()?;
//! let mut ch = ipcx::tokio::typed::connect::<Order, Ack>(&endpoint).await?;
//! ch.send(&Order { id: 1, item: "tea".into() }).await?;
//! let ack: Ack = ch.recv().await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use ipc_core::{Endpoint, Error, IpcMessage, PeerInfo, Result, ZeroCopy};

use super::{Channel, InPlace, Listener, Receiver, Sender};

/// A received `T` from [`TypedReceiver::recv_sample`]: derefs to `&T`,
/// validated; inside the segment on shared memory the reactor drives (see
/// [`ipc_core::typed::Sample`]).
pub type Sample<'a, T> = ipc_core::typed::Sample<T, InPlace<'a>>;

/// A `T` being written in place, from [`TypedSender::loan`]: derefs to
/// [`MaybeUninit<T>`](std::mem::MaybeUninit) (zeroed at first); fill it,
/// then [`send`](Self::send). Dropping it sends nothing.
///
/// On shared memory the reactor drives, the value lies in the ring slot
/// the receiver reads when `align_of::<T>()` is at most 8; elsewhere it
/// moves with one copy.
#[derive(Debug)]
pub struct Loan<'a, T> {
    inner: ipc_core::typed::Loan<T, super::Loan<'a>>,
}

impl<T: IpcMessage + ZeroCopy> Loan<'_, T> {
    /// Sends the value: at once from a ring slot, else as
    /// [`TypedSender::send`] (and with its cancel safety).
    ///
    /// # Errors
    /// A ring loan never fails; otherwise as [`TypedSender::send`].
    pub async fn send(self) -> Result<()> {
        self.inner.into_filled().commit().await
    }

    /// Whether the value is written inside shared memory (no copy).
    pub fn is_in_place(&self) -> bool {
        self.inner.is_in_place()
    }
}

impl<T> std::ops::Deref for Loan<'_, T> {
    type Target = std::mem::MaybeUninit<T>;

    fn deref(&self) -> &std::mem::MaybeUninit<T> {
        &self.inner
    }
}

impl<T> std::ops::DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut std::mem::MaybeUninit<T> {
        &mut self.inner
    }
}

/// A typed async channel: sends `Out`, receives `In`.
#[derive(Debug)]
pub struct TypedChannel<Out, In> {
    sender: TypedSender<Out>,
    receiver: TypedReceiver<In>,
    peer: PeerInfo,
}

/// The sending half of a [`TypedChannel`].
#[derive(Debug)]
pub struct TypedSender<Out> {
    inner: Sender,
    buf: Vec<u8>,
    types: PhantomData<fn(&Out)>,
}

/// The receiving half of a [`TypedChannel`].
#[derive(Debug)]
pub struct TypedReceiver<In> {
    inner: Receiver,
    buf: Vec<u8>,
    inbox: ipc_core::typed::Inbox,
    types: PhantomData<fn() -> In>,
}

/// A typed async listener.
#[derive(Debug)]
pub struct TypedListener<Out, In> {
    inner: Listener,
    types: PhantomData<fn(&Out) -> In>,
}

/// Listens on `endpoint` for channels that send `Out` and receive `In`.
///
/// # Errors
/// As [`super::listen`].
pub fn listen<Out: IpcMessage, In: IpcMessage>(
    endpoint: &Endpoint,
) -> Result<TypedListener<Out, In>> {
    Ok(TypedListener {
        inner: super::listen_with(endpoint, &ipc_core::typed::schema::<Out, In>())?,
        types: PhantomData,
    })
}

/// Connects to `endpoint` with a channel that sends `Out` and receives `In`.
///
/// # Errors
/// As [`super::connect`]; [`Error::SchemaMismatch`] naming both sides'
/// types when the peer's differ.
pub async fn connect<Out: IpcMessage, In: IpcMessage>(
    endpoint: &Endpoint,
) -> Result<TypedChannel<Out, In>> {
    let schema = ipc_core::typed::schema::<Out, In>();
    Ok(TypedChannel::new(
        super::connect_with(endpoint, &schema).await?,
    ))
}

impl<Out: IpcMessage, In: IpcMessage> TypedListener<Out, In> {
    /// Waits for the next established connection.
    ///
    /// # Errors
    /// As [`Listener::accept`].
    pub async fn accept(&mut self) -> Result<TypedChannel<Out, In>> {
        Ok(TypedChannel::new(self.inner.accept().await?))
    }

    /// The endpoint listened on.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }

    /// Connection attempts that failed before they were established.
    pub fn refused(&self) -> u64 {
        self.inner.refused()
    }
}

impl<Out: IpcMessage, In: IpcMessage> TypedChannel<Out, In> {
    /// Types a byte channel whose handshake announced `Out`/`In`.
    pub fn new(channel: Channel) -> Self {
        let peer = channel.peer().clone();
        let (tx, rx) = channel.split();
        TypedChannel {
            sender: TypedSender::new(tx),
            receiver: TypedReceiver::new(rx),
            peer,
        }
    }

    /// Sends `msg`. Cancel safety as [`Sender::send`].
    ///
    /// # Errors
    /// [`Error::Encode`], then as [`Sender::send`].
    pub async fn send(&mut self, msg: &Out) -> Result<()> {
        self.sender.send(msg).await
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when full; as [`send`](Self::send).
    pub fn try_send(&mut self, msg: &Out) -> Result<()> {
        self.sender.try_send(msg)
    }

    /// Receives a message. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::Decode`] (the message is consumed, the channel stays
    /// usable), then as [`Receiver::recv`].
    pub async fn recv(&mut self) -> Result<In> {
        self.receiver.recv().await
    }

    /// Receives a message if one is waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when none is; as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<In> {
        self.receiver.try_recv()
    }

    /// Sends `msgs` as one batch; see [`TypedSender::send_batch`].
    ///
    /// # Errors
    /// As [`TypedSender::send_batch`].
    pub async fn send_batch(&mut self, msgs: &[Out]) -> Result<()> {
        self.sender.send_batch(msgs).await
    }

    /// Receives up to `max` values at once; see
    /// [`TypedReceiver::recv_batch`].
    ///
    /// # Errors
    /// As [`TypedReceiver::recv_batch`].
    pub async fn recv_batch(&mut self, out: &mut Vec<In>, max: usize) -> Result<usize> {
        self.receiver.recv_batch(out, max).await
    }

    /// Splits into halves usable from two tasks.
    pub fn split(self) -> (TypedSender<Out>, TypedReceiver<In>) {
        (self.sender, self.receiver)
    }

    /// What the handshake learned about the peer.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

fn encode<Out: IpcMessage>(buf: &mut Vec<u8>, msg: &Out) -> Result<()> {
    buf.clear();
    match msg.wire_bytes() {
        Some(bytes) => buf.extend_from_slice(bytes),
        None => msg.encode(buf)?,
    }
    Ok(())
}

impl<Out: IpcMessage> TypedSender<Out> {
    /// Types a byte sender.
    pub fn new(inner: Sender) -> Self {
        TypedSender {
            inner,
            buf: Vec::new(),
            types: PhantomData,
        }
    }

    /// Sends `msg`. Cancel safety as [`Sender::send`].
    ///
    /// # Errors
    /// As [`TypedChannel::send`].
    pub async fn send(&mut self, msg: &Out) -> Result<()> {
        encode(&mut self.buf, msg)?;
        self.inner.send(&self.buf).await
    }

    /// Sends `msg` if there is room now.
    ///
    /// # Errors
    /// As [`TypedChannel::try_send`].
    pub fn try_send(&mut self, msg: &Out) -> Result<()> {
        encode(&mut self.buf, msg)?;
        self.inner.try_send(&self.buf)
    }

    /// Sends every value of `msgs`, in order, as one batch (one system
    /// call or doorbell where the transport allows; the rules are
    /// [`ipc_core::batch`]'s). Cancel safety as [`Sender::send_batch`].
    ///
    /// # Errors
    /// [`Error::Encode`] (nothing sent), then as [`Sender::send_batch`].
    pub async fn send_batch(&mut self, msgs: &[Out]) -> Result<()> {
        let refs = ipc_core::typed::encode_batch(&mut self.buf, msgs)?;
        self.inner.send_batch(&refs).await
    }

    /// The byte sender.
    pub fn get_mut(&mut self) -> &mut Sender {
        &mut self.inner
    }
}

impl<Out: IpcMessage + ZeroCopy> TypedSender<Out> {
    /// An `Out` to fill in place and [`send`](Loan::send), waiting
    /// (without blocking the thread) for room. Cancel-safe: dropping the
    /// future or the loan sends nothing.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when `Out` exceeds the connection's
    /// limit (or half a shared-memory ring); [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipcx::IpcMessage;
    ///
    /// #[derive(IpcMessage, Clone, Copy)]
    /// #[ipc(zero_copy, name = "demo.Tick")]
    /// #[repr(C)]
    /// struct Tick { seq: u64, price: f64 }
    ///
    /// # async fn f() -> ipcx::Result<()> {
    /// let endpoint: ipcx::Endpoint = "shm:/ticks".parse()?;
    /// let (mut tx, _rx) = ipcx::tokio::typed::connect::<Tick, Tick>(&endpoint).await?.split();
    /// let mut loan = tx.loan().await?;
    /// loan.write(Tick { seq: 1, price: 10.5 });
    /// loan.send().await?;
    /// # Ok(()) }
    /// ```
    pub async fn loan(&mut self) -> Result<Loan<'_, Out>> {
        let bytes = self.inner.loan(std::mem::size_of::<Out>()).await?;
        Ok(Loan {
            inner: ipc_core::typed::Loan::from_bytes(bytes)?,
        })
    }
}

/// Values, encoded in `start_send`; `poll_flush` waits until each is
/// written whole.
impl<Out: IpcMessage> Sink<Out> for TypedSender<Out> {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Out) -> Result<()> {
        let mut bytes = Vec::new();
        encode(&mut bytes, &item)?;
        Pin::new(&mut self.get_mut().inner).start_send(bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

impl<In: IpcMessage> TypedReceiver<In> {
    /// Types a byte receiver.
    pub fn new(inner: Receiver) -> Self {
        TypedReceiver {
            inner,
            buf: Vec::new(),
            inbox: ipc_core::typed::Inbox::default(),
            types: PhantomData,
        }
    }

    /// Receives a message. Cancel-safe.
    ///
    /// # Errors
    /// As [`TypedChannel::recv`].
    pub async fn recv(&mut self) -> Result<In> {
        if let Some(r) = self.inbox.take_one() {
            return r;
        }
        self.inner.recv_into(&mut self.buf).await?;
        In::decode(&self.buf)
    }

    /// Waits for a value, then takes every further one already there, up
    /// to `max` in all, appending them to `out`; returns how many. A
    /// message that does not decode ends the batch before it and is the
    /// [`Error::Decode`] of the call that meets it first (values a batch
    /// left that way come first from `recv`/`recv_batch`, not from
    /// `recv_sample`). Cancel-safe.
    ///
    /// # Errors
    /// `Decode` as above; as [`TypedChannel::recv`].
    pub async fn recv_batch(&mut self, out: &mut Vec<In>, max: usize) -> Result<usize> {
        if !self.inbox.waiting() {
            self.inner.recv_batch(self.inbox.refill(), max).await?;
        }
        self.inbox.decode_into(out, max)
    }

    /// Receives a message if one is waiting.
    ///
    /// # Errors
    /// As [`TypedChannel::try_recv`].
    pub fn try_recv(&mut self) -> Result<In> {
        if let Some(r) = self.inbox.take_one() {
            return r;
        }
        In::decode(&self.inner.try_recv()?)
    }

    /// The byte receiver.
    pub fn get_mut(&mut self) -> &mut Receiver {
        &mut self.inner
    }
}

impl<In: IpcMessage + ZeroCopy> TypedReceiver<In> {
    /// The next message as a [`Sample`] that derefs to `&In`: inside the
    /// segment on shared memory the reactor drives (its ring space is
    /// released when the sample drops), one copy elsewhere. Cancel-safe.
    ///
    /// # Errors
    /// [`Error::Decode`] naming `In` for a wrong length or an invalid bit
    /// pattern (the message is consumed; the channel stays usable);
    /// otherwise as [`recv`](Self::recv).
    pub async fn recv_sample(&mut self) -> Result<Sample<'_, In>> {
        let msg = self.inner.recv_in_place().await?;
        ipc_core::typed::Sample::from_received(msg)
    }
}

/// Each value until the peer is gone; a message that does not decode is
/// an `Err` item and the stream goes on.
impl<In: IpcMessage> Stream for TypedReceiver<In> {
    type Item = Result<In>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<In>>> {
        let this = self.get_mut();
        if let Some(r) = this.inbox.take_one() {
            return Poll::Ready(Some(r));
        }
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|item| item.map(|bytes| bytes.and_then(|b| In::decode(&b))))
    }
}

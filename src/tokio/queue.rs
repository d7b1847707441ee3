//! Standalone queues under tokio: the async twins of [`crate::queue`]'s
//! `Producer`/`Consumer`, on `mq:/NAME?pattern=queue` and
//! `sysv-mq:PATH?pattern=queue`.
//!
//! A POSIX queue is waited on by the reactor. A System V queue cannot be
//! polled, and a consumer must never take a message ahead it might not
//! deliver (consumers compete), so a waiting System V handle retries
//! between naps of 100 µs doubling up to 5 ms: up to 200 wake-ups a second
//! while it waits, none while it does not (`docs/async.md`).
//!
//! ```no_run
//! use ipcx::IpcMessage;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
//! struct Job { id: u64 }
//!
//! # async fn f() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "mq:/jobs?pattern=queue".parse()?;
//! let mut producer = ipcx::tokio::queue::Producer::<Job>::open(&endpoint)?;
//! producer.send(&Job { id: 7 }).await?;
//! let mut consumer = ipcx::tokio::queue::Consumer::<Job>::open(&endpoint)?;
//! let job = consumer.recv().await?;
//! # Ok(()) }
//! ```

use std::marker::PhantomData;

use ipc_core::{Endpoint, IpcMessage, Result};

pub use ipc_backends::aio::queue::{AsyncByteConsumer, AsyncByteProducer};

use crate::queue::{Ack, ByteConsumer, ByteProducer, Open};

/// Sends values of type `T` to a standalone queue.
#[derive(Debug)]
pub struct Producer<T> {
    inner: AsyncByteProducer,
    buf: Vec<u8>,
    types: PhantomData<fn(&T)>,
}

impl<T: IpcMessage> Producer<T> {
    /// Opens the queue, creating it if needed (as
    /// [`crate::queue::Producer::open`]). Must run inside a tokio runtime.
    ///
    /// # Errors
    /// As [`crate::queue::Producer::open`]; no runtime.
    pub fn open(endpoint: &Endpoint) -> Result<Producer<T>> {
        Producer::open_with(endpoint, Open::OpenOrCreate)
    }

    /// Opens the queue as `open` says.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(endpoint: &Endpoint, open: Open) -> Result<Producer<T>> {
        let inner = ByteProducer::open_with(endpoint, open, T::type_tag(), Some(T::ENCODING))?;
        Ok(Producer {
            inner: AsyncByteProducer::new(inner)?,
            buf: Vec::new(),
            types: PhantomData,
        })
    }

    /// Sends `msg` at priority 0, waiting while the queue is full.
    ///
    /// # Errors
    /// As [`crate::queue::Producer::send`].
    pub async fn send(&mut self, msg: &T) -> Result<()> {
        self.send_with_priority(msg, 0).await
    }

    /// Sends `msg` at `priority`.
    ///
    /// # Errors
    /// As [`crate::queue::Producer::send_with_priority`].
    pub async fn send_with_priority(&mut self, msg: &T, priority: u32) -> Result<()> {
        if let Some(bytes) = msg.wire_bytes() {
            return self.inner.send_with_priority(bytes, priority).await;
        }
        self.buf.clear();
        msg.encode(&mut self.buf)?;
        self.inner.send_with_priority(&self.buf, priority).await
    }

    /// Sends `msg` with message id `id`: a `nats://` queue stores a
    /// message once per id within its duplicate window, so resending after
    /// a dropped or failed send is safe.
    ///
    /// # Errors
    /// As [`crate::queue::Producer::send_with_id`].
    pub async fn send_with_id(&mut self, msg: &T, id: &str) -> Result<()> {
        if let Some(bytes) = msg.wire_bytes() {
            return self.inner.send_with_id(bytes, id).await;
        }
        self.buf.clear();
        msg.encode(&mut self.buf)?;
        self.inner.send_with_id(&self.buf, id).await
    }

    /// The queue's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

/// Receives values of type `T` from a standalone queue.
#[derive(Debug)]
pub struct Consumer<T> {
    inner: AsyncByteConsumer,
    types: PhantomData<fn() -> T>,
}

impl<T: IpcMessage> Consumer<T> {
    /// Opens the queue, creating it if needed. Must run inside a tokio
    /// runtime.
    ///
    /// # Errors
    /// As [`crate::queue::Consumer::open`]; no runtime.
    pub fn open(endpoint: &Endpoint) -> Result<Consumer<T>> {
        Consumer::open_with(endpoint, Open::OpenOrCreate)
    }

    /// Opens the queue as `open` says.
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn open_with(endpoint: &Endpoint, open: Open) -> Result<Consumer<T>> {
        let inner = ByteConsumer::open_with(endpoint, open, T::type_tag())?;
        Ok(Consumer {
            inner: AsyncByteConsumer::new(inner)?,
            types: PhantomData,
        })
    }

    /// The next value and its priority. Cancel-safe.
    ///
    /// # Errors
    /// As [`crate::queue::Consumer::recv`].
    pub async fn recv_with_priority(&mut self) -> Result<(T, u32)> {
        let (bytes, priority) = self.inner.recv_with_priority().await?;
        Ok((T::decode(&bytes)?, priority))
    }

    /// The next value. Cancel-safe.
    ///
    /// # Errors
    /// As [`crate::queue::Consumer::recv`].
    pub async fn recv(&mut self) -> Result<T> {
        Ok(self.recv_with_priority().await?.0)
    }

    /// Receives the next message with its acknowledgement: on a `nats://`
    /// queue it stays queued until acknowledged (at least once); see
    /// [`crate::queue::Consumer::recv_acked`]. [`Received::ack`] is
    /// awaited. A dropped future may leave a pulled message
    /// unacknowledged, which the server redelivers after `ack_wait`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[derive(ipcx::IpcMessage, serde::Serialize, serde::Deserialize)]
    /// # struct Job { id: u64 }
    /// # async fn handle(_: &Job) -> Result<(), String> { Ok(()) }
    /// # async fn f() -> ipcx::Result<()> {
    /// let endpoint = "nats://127.0.0.1:4222/jobs?pattern=queue".parse()?;
    /// let mut jobs = ipcx::tokio::queue::Consumer::<Job>::open(&endpoint)?;
    /// loop {
    ///     let job = jobs.recv_acked().await?;
    ///     match handle(&job).await {
    ///         Ok(()) => job.ack().await?, // the runtime's thread runs on meanwhile
    ///         Err(_) => job.nak().await?,
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`crate::queue::Consumer::recv_acked_until`].
    pub async fn recv_acked(&mut self) -> Result<Received<T>> {
        let (bytes, priority, ack) = self.inner.recv_acked().await?;
        Ok(Received {
            message: T::decode(&bytes)?,
            priority,
            ack,
        })
    }

    /// Receives up to `max` messages (at least one), each with its
    /// acknowledgement, waiting for the first: on a `nats://` queue one
    /// pull request for what the stream has now. As
    /// [`crate::queue::Consumer::recv_batch_until`] (each `ack_wait` runs
    /// from the pull); [`ack_all`] acknowledges the lot in one round trip.
    ///
    /// # Errors
    /// As [`crate::queue::Consumer::recv_batch_until`].
    pub async fn recv_batch(&mut self, max: usize) -> Result<Vec<Result<Received<T>>>> {
        Ok(self
            .inner
            .recv_batch_acked(max)
            .await?
            .into_iter()
            .map(|r| {
                let (bytes, priority, ack) = r?;
                Ok(Received {
                    message: T::decode(&bytes)?,
                    priority,
                    ack,
                })
            })
            .collect())
    }

    /// The queue's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

/// Acknowledges every message of `received` and awaits the server's
/// confirmation of them all (one round trip for the lot on JetStream), as
/// [`crate::queue::ack_all`] without blocking the thread.
///
/// # Errors
/// As [`Ack::ack`], for the first that was not confirmed.
pub async fn ack_all<T>(received: impl IntoIterator<Item = Received<T>>) -> Result<()> {
    let acks: Vec<Ack> = received.into_iter().map(|r| r.ack).collect();
    Ack::ack_all_async(acks).await
}

/// A received message and its acknowledgement, for async code
/// ([`Consumer::recv_acked`]): as [`crate::queue::Received`], but
/// [`ack`](Received::ack), [`nak`](Received::nak) and
/// [`in_progress`](Received::in_progress) are awaited, and the thread runs
/// other tasks while the server confirms. Dropped without `ack` or `nak`
/// it acknowledges without waiting for the server (or, while the thread
/// panics, gives the message back), as the blocking one does.
#[derive(Debug)]
pub struct Received<T> {
    message: T,
    priority: u32,
    ack: Ack,
}

impl<T> Received<T> {
    /// Acknowledges the message and awaits the server's confirmation
    /// (JetStream): it leaves the queue for good. Dropped before it
    /// finishes, the acknowledgement still reaches the server.
    ///
    /// # Errors
    /// As [`Ack::ack`]: unconfirmed, the message may be delivered again.
    pub async fn ack(self) -> Result<()> {
        let Received { message, ack, .. } = self;
        drop(message);
        ack.ack_async().await
    }

    /// Gives the message back for redelivery at once (JetStream).
    ///
    /// # Errors
    /// As [`Ack::nak`].
    pub async fn nak(self) -> Result<()> {
        let Received { message, ack, .. } = self;
        drop(message);
        ack.nak_async().await
    }

    /// Restarts the message's `ack_wait` while a long handler runs.
    ///
    /// # Errors
    /// As [`Ack::in_progress`].
    pub async fn in_progress(&mut self) -> Result<()> {
        self.ack.in_progress_async().await
    }

    /// The priority it was sent with (0 on JetStream).
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// How many times it was delivered, this time included.
    pub fn deliveries(&self) -> u64 {
        self.ack.deliveries()
    }

    /// The message and its acknowledgement, apart.
    pub fn into_parts(self) -> (T, Ack) {
        (self.message, self.ack)
    }

    /// The same message with the blocking acknowledgement, for code that
    /// hands it to a blocking thread.
    pub fn into_blocking(self) -> crate::queue::Received<T> {
        crate::queue::Received::new(self.message, self.priority, self.ack)
    }
}

impl<T> std::ops::Deref for Received<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.message
    }
}

impl<T> std::ops::DerefMut for Received<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.message
    }
}

//! Standalone queues: the message-queue pattern. A queue exists
//! independently of the processes that write and read it; producers send
//! without anyone waiting, the queue absorbs bursts, and each message goes
//! to exactly one of the competing consumers. Compare [`rpc`](crate::rpc),
//! where the caller waits for its provider.
//!
//! A queue is a kernel message queue, or a JetStream stream on a NATS
//! server (feature `nats`), named by an endpoint with `?pattern=queue`
//! (the same endpoint without it is accepted too):
//!
//! ```text
//! mq:/jobs?pattern=queue                     POSIX queue /jobs (in /dev/mqueue)
//! sysv-mq:/var/run/jobs?pattern=queue        System V queue, key ftok(path, 'q')
//! mq:/jobs?pattern=queue&capacity=10&max_message_size=4096&mode=0660
//! nats://broker:4222/jobs?pattern=queue      JetStream: at least once, across machines
//! ```
//!
//! On JetStream, [`Consumer::recv_acked`] keeps a message queued until its
//! [`Received`] is acknowledged, and a consumer that dies first has it
//! redelivered to another (at least once); on kernel queues the same code
//! runs and the acknowledgement does nothing (at most once).
//! `docs/nats.md` ("Queues on JetStream") maps queues onto streams.
//!
//! - **Created on first open**, exclusively with `mode=` (default 0600),
//!   and kept until [`remove`] — every process may exit in between.
//!   `capacity=` (messages) and `max_message_size=` (bytes of payload) size
//!   it; values beyond the kernel's limits are refused with an error that
//!   names the limit (`/proc/sys/fs/mqueue/msg_max`, `msgsize_max`,
//!   `/proc/sys/kernel/msgmax`, `msgmnb`, `RLIMIT_MSGQUEUE`).
//! - **One kernel message per message.** A message that does not fit is
//!   refused ([`Error::MessageTooLarge`], or [`Error::Limit`] naming the
//!   kernel limit and how to raise it): with competing consumers, a message
//!   in fragments could be split between two of them.
//! - **Backpressure.** A full queue blocks [`Producer::send`];
//!   [`Producer::try_send`] returns [`Error::WouldBlock`],
//!   [`Producer::send_timeout`] [`Error::Timeout`].
//! - **Priorities** ([`Producer::send_with_priority`], `0` to
//!   [`PRIORITY_LEVELS`]` - 1`): higher priorities are received first,
//!   oldest first within a priority, on both kernels.
//! - **Types without a handshake.** The creator records the message type;
//!   opening the queue as another type fails with
//!   [`Error::SchemaMismatch`]. Every message also carries its type's
//!   fingerprint (`docs/wire-format.md`, "Standalone queues"): a consumer
//!   that receives a message of another type gets `SchemaMismatch` naming
//!   both types for it; that message is consumed, never decoded, and the
//!   next `recv` goes on with the next message.
//! - **At most once after receive** on kernel queues: the kernel hands a
//!   message to one consumer; if that consumer dies before handling it,
//!   it is gone. Nothing is lost while it sits in the queue, whoever
//!   exits. JetStream queues are at least once (above).
//!
//! `docs/queues.md` has the whole story: when to use a queue and when rpc,
//! the limits, the operations (`ipcx queue …`).
//!
//! # Examples
//!
//! ```no_run
//! use ipcx::IpcMessage;
//! use ipcx::queue::{Consumer, Producer};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
//! struct Job {
//!     id: u64,
//!     image: String,
//! }
//!
//! # fn main() -> ipcx::Result<()> {
//! let endpoint = "mq:/jobs?pattern=queue".parse()?;
//! // A cron script: sends and exits; nobody needs to be listening.
//! let mut producer = Producer::<Job>::open(&endpoint)?;
//! producer.send(&Job { id: 1, image: "cat.png".into() })?;
//! drop(producer);
//!
//! // A worker, later, in another process.
//! let mut consumer = Consumer::<Job>::open(&endpoint)?;
//! let job = consumer.recv()?;
//! assert_eq!(job.id, 1);
//!
//! ipcx::queue::remove(&endpoint)?; // the queue lives until removed
//! # Ok(()) }
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use ipc_backends::standalone;
#[cfg(doc)]
use ipc_core::Error;
use ipc_core::{Deadline, Endpoint, IpcMessage, Result};

pub use ipc_backends::standalone::{
    Ack, BrokerListing, ByteConsumer, ByteProducer, Delivery, HEADER_LEN, JetStreamStatus,
    MAX_ID_LEN, Open, PRIORITY_LEVELS, QueueInfo, Status,
};

/// Sends messages of type `T` to a standalone queue.
#[derive(Debug)]
pub struct Producer<T> {
    inner: ByteProducer,
    buf: Vec<u8>,
    _type: PhantomData<fn(&T)>,
}

impl<T: IpcMessage> Producer<T> {
    /// Opens the queue of `endpoint`, creating it for `T` if it does not
    /// exist.
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] when the
    /// queue was created for another type; [`Error::Limit`]
    /// when `capacity=` or `max_message_size=` exceed the kernel's limits;
    /// [`Error::PermissionDenied`] when it
    /// exists with another `mode=`; [`Error::Unsupported`]
    /// for schemes other than `mq:` and `sysv-mq:`.
    pub fn open(endpoint: &Endpoint) -> Result<Producer<T>> {
        Producer::open_with(endpoint, Open::OpenOrCreate)
    }

    /// Creates the queue of `endpoint` for `T`;
    /// [`Error::AddrInUse`] if it exists.
    ///
    /// # Errors
    /// As [`Producer::open`].
    pub fn create(endpoint: &Endpoint) -> Result<Producer<T>> {
        Producer::open_with(endpoint, Open::Create)
    }

    /// Opens the queue as `open` says.
    ///
    /// # Errors
    /// As [`Producer::open`].
    pub fn open_with(endpoint: &Endpoint, open: Open) -> Result<Producer<T>> {
        Ok(Producer {
            inner: ByteProducer::open_with(endpoint, open, T::type_tag(), Some(T::ENCODING))?,
            buf: Vec::new(),
            _type: PhantomData,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }

    /// The largest encoded message the queue takes, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size()
    }

    /// Sends `msg` with `priority`, waiting for room until `deadline`.
    ///
    /// # Errors
    /// [`Error::Encode`] when serde refuses it;
    /// otherwise as [`ByteProducer::send_until`].
    pub fn send_until(&mut self, msg: &T, priority: u32, deadline: Deadline) -> Result<()> {
        if let Some(bytes) = msg.wire_bytes() {
            return self.inner.send_until(bytes, priority, deadline);
        }
        self.buf.clear();
        msg.encode(&mut self.buf)?;
        self.inner.send_until(&self.buf, priority, deadline)
    }

    /// Sends `msg`, blocking while the queue is full.
    ///
    /// # Errors
    /// As [`Producer::send_until`].
    pub fn send(&mut self, msg: &T) -> Result<()> {
        self.send_until(msg, 0, Deadline::Never)
    }

    /// Sends `msg` if there is room now, else [`Error::WouldBlock`].
    ///
    /// # Errors
    /// As [`Producer::send_until`].
    pub fn try_send(&mut self, msg: &T) -> Result<()> {
        self.send_until(msg, 0, Deadline::Now)
    }

    /// Sends `msg`, waiting at most `timeout` for room, else
    /// [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`Producer::send_until`].
    pub fn send_timeout(&mut self, msg: &T, timeout: Duration) -> Result<()> {
        self.send_until(msg, 0, Deadline::after(timeout))
    }

    /// Sends `msg` with message id `id`: on a `nats://` queue, a message
    /// whose id the stream stored within its duplicate window (two
    /// minutes) is stored once, so sending again after an error that left
    /// the outcome unknown is safe.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on kernel queues, which cannot deduplicate,
    /// and for an id that is empty, longer than [`MAX_ID_LEN`] or not
    /// printable ASCII; otherwise as [`Producer::send_until`].
    pub fn send_with_id(&mut self, msg: &T, id: &str) -> Result<()> {
        if let Some(bytes) = msg.wire_bytes() {
            return self.inner.send_with_id_until(bytes, id, Deadline::Never);
        }
        self.buf.clear();
        msg.encode(&mut self.buf)?;
        self.inner
            .send_with_id_until(&self.buf, id, Deadline::Never)
    }

    /// Sends `msg` with `priority` (0, the default, is the lowest): it is
    /// received before every message of a lower priority.
    ///
    /// # Errors
    /// As [`Producer::send_until`]; [`Error::Limit`]
    /// for a priority of [`PRIORITY_LEVELS`] or more.
    pub fn send_with_priority(&mut self, msg: &T, priority: u32) -> Result<()> {
        self.send_until(msg, priority, Deadline::Never)
    }
}

/// Receives messages of type `T` from a standalone queue, competing with
/// its other consumers.
#[derive(Debug)]
pub struct Consumer<T> {
    inner: ByteConsumer,
    _type: PhantomData<fn() -> T>,
}

impl<T: IpcMessage> Consumer<T> {
    /// Opens the queue of `endpoint`, creating it for `T` if it does not
    /// exist (a consumer may start first).
    ///
    /// # Errors
    /// As [`Producer::open`].
    pub fn open(endpoint: &Endpoint) -> Result<Consumer<T>> {
        Consumer::open_with(endpoint, Open::OpenOrCreate)
    }

    /// Opens the queue as `open` says.
    ///
    /// # Errors
    /// As [`Producer::open`].
    pub fn open_with(endpoint: &Endpoint, open: Open) -> Result<Consumer<T>> {
        Ok(Consumer {
            inner: ByteConsumer::open_with(endpoint, open, T::type_tag())?,
            _type: PhantomData,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }

    /// Receives one message and its priority, waiting until `deadline`.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] (`Deadline::Now`) or
    /// [`Error::Timeout`] when the queue stayed empty;
    /// [`Error::SchemaMismatch`] for a message
    /// of another type, [`Error::Protocol`] for one
    /// not sent by ipcx, [`Error::Decode`] for one
    /// that does not decode: each consumed, the next call receives the next.
    pub fn recv_until_with_priority(&mut self, deadline: Deadline) -> Result<(T, u32)> {
        let d = self.inner.recv_until(deadline)?;
        Ok((T::decode(d.payload)?, d.priority))
    }

    /// Receives one message, waiting until `deadline`.
    ///
    /// # Errors
    /// As [`Consumer::recv_until_with_priority`].
    pub fn recv_until(&mut self, deadline: Deadline) -> Result<T> {
        Ok(self.recv_until_with_priority(deadline)?.0)
    }

    /// Receives one message, blocking while the queue is empty.
    ///
    /// # Errors
    /// As [`Consumer::recv_until_with_priority`].
    pub fn recv(&mut self) -> Result<T> {
        self.recv_until(Deadline::Never)
    }

    /// Receives a message if one is queued, else
    /// [`Error::WouldBlock`].
    ///
    /// # Errors
    /// As [`Consumer::recv_until_with_priority`].
    pub fn try_recv(&mut self) -> Result<T> {
        self.recv_until(Deadline::Now)
    }

    /// Receives a message, waiting at most `timeout`, else
    /// [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`Consumer::recv_until_with_priority`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        self.recv_until(Deadline::after(timeout))
    }

    /// Receives one message with its acknowledgement, waiting until
    /// `deadline`. On a `nats://` queue the message stays in the queue
    /// until [`Received::ack`] (or the drop of the [`Received`]): a
    /// consumer that dies first has it redelivered to another after
    /// `ack_wait` — at least once. On kernel queues the message left the
    /// queue on receive (at most once) and acknowledging does nothing.
    ///
    /// # Errors
    /// As [`Consumer::recv_until_with_priority`].
    pub fn recv_acked_until(&mut self, deadline: Deadline) -> Result<Received<T>> {
        let (d, ack) = self.inner.recv_acked_until(deadline)?;
        let priority = d.priority;
        let message = T::decode(d.payload)?;
        Ok(Received {
            message,
            priority,
            ack,
        })
    }

    /// Receives one message with its acknowledgement, blocking while the
    /// queue is empty.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ipcx::queue::Consumer;
    /// # use serde::{Deserialize, Serialize};
    /// #[derive(ipcx::IpcMessage, Serialize, Deserialize)]
    /// struct Job { id: u64 }
    /// # fn handle(_: &Job) -> Result<(), String> { Ok(()) }
    /// # fn main() -> ipcx::Result<()> {
    /// let endpoint = "nats://127.0.0.1:4222/jobs?pattern=queue".parse()?;
    /// let mut consumer = Consumer::<Job>::open(&endpoint)?;
    /// loop {
    ///     let job = consumer.recv_acked()?;
    ///     match handle(&job) {
    ///         Ok(()) => job.ack()?,  // removed from the queue
    ///         Err(_) => job.nak()?,  // delivered again, perhaps elsewhere
    ///     }
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Consumer::recv_acked_until`].
    pub fn recv_acked(&mut self) -> Result<Received<T>> {
        self.recv_acked_until(Deadline::Never)
    }

    /// As [`Consumer::recv_acked`] if a message is queued now, else
    /// [`Error::WouldBlock`].
    ///
    /// # Errors
    /// As [`Consumer::recv_acked_until`].
    pub fn try_recv_acked(&mut self) -> Result<Received<T>> {
        self.recv_acked_until(Deadline::Now)
    }

    /// As [`Consumer::recv_acked`], waiting at most `timeout`, else
    /// [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`Consumer::recv_acked_until`].
    pub fn recv_acked_timeout(&mut self, timeout: Duration) -> Result<Received<T>> {
        self.recv_acked_until(Deadline::after(timeout))
    }

    /// Receives up to `max` messages (at least one), each with its
    /// acknowledgement, waiting until `deadline` for the first. On a
    /// `nats://` queue it is one pull request for the messages the stream
    /// has now (with none: a wait for one), where [`Consumer::recv_acked`]
    /// makes one request per message. Each message is at least once as
    /// with `recv_acked`, and each `ack_wait` runs from the pull: take no
    /// more than can be handled within `ack_wait` (or call
    /// [`Received::in_progress`]), else the server redelivers the rest to
    /// other consumers meanwhile. [`ack_all`] acknowledges a batch in one
    /// round trip. On kernel queues: the messages queued now, at most
    /// once.
    ///
    /// A message that cannot be handed out (another type, not from ipcx,
    /// not decodable) is an `Err` in its place, consumed as
    /// [`Consumer::recv`] consumes it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use ipcx::queue::Consumer;
    /// # #[derive(ipcx::IpcMessage, serde::Serialize, serde::Deserialize)]
    /// # struct Job { id: u64 }
    /// # fn main() -> ipcx::Result<()> {
    /// let endpoint = "nats://127.0.0.1:4222/jobs?pattern=queue".parse()?;
    /// let mut consumer = Consumer::<Job>::open(&endpoint)?;
    /// let mut done = Vec::new();
    /// for job in consumer.recv_batch(64)? {
    ///     match job {
    ///         Ok(job) => done.push(job), // handled
    ///         Err(e) => eprintln!("skipped: {e}"),
    ///     }
    /// }
    /// ipcx::queue::ack_all(done)?; // one round trip for the batch
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::WouldBlock`] (`Deadline::Now`) or [`Error::Timeout`] when
    /// the queue stayed empty; a failure of the server or the kernel.
    pub fn recv_batch_until(
        &mut self,
        max: usize,
        deadline: Deadline,
    ) -> Result<Vec<Result<Received<T>>>> {
        Ok(self
            .inner
            .recv_batch_acked_until(max, deadline)?
            .into_iter()
            .map(|r| {
                let (bytes, priority, ack) = r?;
                Ok(Received::new(T::decode(&bytes)?, priority, ack))
            })
            .collect())
    }

    /// As [`Consumer::recv_batch_until`], blocking while the queue is
    /// empty.
    ///
    /// # Errors
    /// As [`Consumer::recv_batch_until`].
    pub fn recv_batch(&mut self, max: usize) -> Result<Vec<Result<Received<T>>>> {
        self.recv_batch_until(max, Deadline::Never)
    }

    /// As [`Consumer::recv_batch_until`], waiting at most `timeout`, else
    /// [`Error::Timeout`].
    ///
    /// # Errors
    /// As [`Consumer::recv_batch_until`].
    pub fn recv_batch_timeout(
        &mut self,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<Result<Received<T>>>> {
        self.recv_batch_until(max, Deadline::after(timeout))
    }
}

/// A received message and its acknowledgement ([`Consumer::recv_acked`]):
/// it derefs to the message. [`ack`](Received::ack) once it is handled;
/// dropped without `ack` or `nak` it acknowledges without waiting for the
/// server (or, while the thread panics, gives the message back). See
/// [`Ack`] for what each does on JetStream and on kernel queues.
#[derive(Debug)]
pub struct Received<T> {
    message: T,
    priority: u32,
    ack: Ack,
}

impl<T> Received<T> {
    pub(crate) fn new(message: T, priority: u32, ack: Ack) -> Received<T> {
        Received {
            message,
            priority,
            ack,
        }
    }

    /// Acknowledges the message and waits for the server's confirmation
    /// (JetStream): it leaves the queue for good.
    ///
    /// # Errors
    /// As [`Ack::ack`]: unconfirmed, the message may be delivered again.
    pub fn ack(self) -> Result<()> {
        self.ack.ack()
    }

    /// Gives the message back for redelivery at once (JetStream).
    ///
    /// # Errors
    /// As [`Ack::nak`].
    pub fn nak(self) -> Result<()> {
        self.ack.nak()
    }

    /// Restarts the message's `ack_wait` while a long handler runs.
    ///
    /// # Errors
    /// As [`Ack::in_progress`].
    pub fn in_progress(&mut self) -> Result<()> {
        self.ack.in_progress()
    }

    /// The priority it was sent with (0 on JetStream).
    pub fn priority(&self) -> u32 {
        self.priority
    }

    /// How many times it was delivered, this time included (more than 1:
    /// an earlier consumer did not acknowledge it).
    pub fn deliveries(&self) -> u64 {
        self.ack.deliveries()
    }

    /// The message and its acknowledgement, apart.
    pub fn into_parts(self) -> (T, Ack) {
        (self.message, self.ack)
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

/// Acknowledges every message of `received` and waits until the server
/// confirmed them all: one round trip for the lot on JetStream (the acks
/// go out together), where [`Received::ack`] takes one each. A no-op on
/// kernel queues.
///
/// # Errors
/// As [`Ack::ack`], for the first that was not confirmed; the others
/// were sent all the same.
pub fn ack_all<T>(received: impl IntoIterator<Item = Received<T>>) -> Result<()> {
    Ack::ack_all(received.into_iter().map(|r| r.into_parts().1))
}

/// Removes the queue of `endpoint` (and its type record); `false` if there
/// was none.
///
/// # Errors
/// OS errors other than "no such queue" (`EPERM` for another user's).
pub fn remove(endpoint: &Endpoint) -> Result<bool> {
    standalone::remove(endpoint)
}

/// What the kernel says about the queue of `endpoint`, and its recorded
/// type.
///
/// # Errors
/// An [`Error::Io`] (`ENOENT`) when there is no such queue.
pub fn stat(endpoint: &Endpoint) -> Result<QueueInfo> {
    standalone::stat(endpoint)
}

/// The queues on a NATS server: `server` is a `nats://` endpoint whose
/// servers and options (credentials, TLS) are used, its name is not. Each
/// ipcx queue comes with its endpoint and its [`QueueInfo`], as [`stat`]
/// gives it (without the unacknowledged counts); the account's other
/// JetStream streams are named apart.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> ipcx::Result<()> {
/// let server = "nats://127.0.0.1:4222/any".parse()?;
/// let listing = ipcx::queue::list_broker(&server)?;
/// for (endpoint, info) in &listing.queues {
///     println!("{endpoint}: {} waiting, {:?} consumers", info.status.messages, info.consumers);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Unsupported`] for another scheme; the server unreachable or
/// without JetStream.
#[cfg(feature = "nats")]
pub fn list_broker(server: &Endpoint) -> Result<BrokerListing> {
    standalone::list_broker(server)
}

/// Drops every message queued now; how many.
///
/// # Errors
/// As [`stat`].
pub fn purge(endpoint: &Endpoint) -> Result<usize> {
    standalone::purge(endpoint)
}

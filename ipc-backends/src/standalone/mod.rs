//! Standalone queues: kernel message queues that exist independently of
//! the processes that write and read them (`mq:/NAME?pattern=queue`,
//! `sysv-mq:PATH?pattern=queue`). The typed API is `ipcx::queue`; this
//! module moves bytes.
//!
//! - **Named by the endpoint, outliving every process.** The first open
//!   creates the queue, exclusively, with `mode=` (default 0600); it stays
//!   until [`remove`] (or `mq_unlink`/`ipcrm`, or a reboot).
//! - **One kernel message per ipcx message**, so competing consumers never
//!   see a message interleaved with another: a message is the 16-byte
//!   header ([`header`]) and its payload, and a payload that does not fit
//!   one kernel message is refused before anything is sent.
//! - **Many producers, competing consumers.** The kernel hands each message
//!   to exactly one receiver.
//! - **Backpressure from the kernel.** A full queue blocks `send`; `try_*`
//!   return [`Error::WouldBlock`], `*_timeout` [`Error::Timeout`].
//! - **Priorities** `0..PRIORITY_LEVELS`: higher first, oldest first within
//!   a priority, on both kernels (POSIX natively; System V through `mtype`,
//!   see [`sysv`](self#priorities)).
//! - **Types without a handshake.** The creator records its type in a file
//!   (`meta`); an opener of another type is refused with
//!   [`Error::SchemaMismatch`]. Every message also carries its type's
//!   fingerprint: a consumer that receives another type's message gets
//!   `SchemaMismatch` for it — the message is consumed (the kernel cannot
//!   leave it), reported, never decoded.
//! - **At most once after receive.** A message belongs to the consumer the
//!   kernel gave it to; if that consumer dies before handling it, it is
//!   lost.
//!
//! # Priorities
//!
//! POSIX queues order by priority natively. System V queues carry priority
//! `p` as `mtype = PRIORITY_LEVELS - p` and receive with a negative
//! `msgtyp`, which the kernel serves by walking the queue for the lowest
//! type: a receive costs a walk over the queued messages.

mod ack;
pub mod header;
mod meta;
mod posix;
mod sysv;

use std::borrow::Cow;

use ipc_core::endpoint::Pattern;
use ipc_core::{Deadline, Direction, Encoding, Endpoint, Error, Result, Scheme, TypeTag};

pub use ack::Ack;
pub use header::HEADER_LEN;
use header::Header;
use posix::PosixQueue;
use sysv::SysvQueue;

/// Priorities run from 0 (the default, lowest) to `PRIORITY_LEVELS - 1`
/// (POSIX `MQ_PRIO_MAX` on Linux).
pub const PRIORITY_LEVELS: u32 = crate::sys::mqueue::PRIO_LEVELS;

/// How [`ByteProducer::open_with`] and [`ByteConsumer::open_with`] find
/// their queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Open {
    /// Create it (exclusively, with `mode=`) if it does not exist, else
    /// open it.
    OpenOrCreate,
    /// Create it; an existing queue is an error.
    Create,
    /// Open it; a missing queue is an error.
    Existing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Producer,
    Consumer,
    Admin,
}

/// What the kernel says about a queue ([`stat`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// Messages queued.
    pub messages: usize,
    /// Bytes queued (System V only).
    pub bytes: Option<usize>,
    /// Most messages it holds (POSIX).
    pub capacity_messages: Option<usize>,
    /// Most bytes it holds (System V `msg_qbytes`).
    pub capacity_bytes: Option<usize>,
    /// Largest kernel message, header included (POSIX: the queue's; System
    /// V: this endpoint's, within `msgmax`).
    pub message_size: usize,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub owner_uid: u32,
    /// The last process that sent (System V only).
    pub last_sender: Option<u32>,
    /// The last process that received (System V only).
    pub last_receiver: Option<u32>,
    /// What JetStream says (`nats://` queues only).
    pub jetstream: Option<JetStreamStatus>,
}

/// What the server says about a `nats://` queue's stream and consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JetStreamStatus {
    /// The stream's name.
    pub stream: String,
    /// Copies the cluster keeps.
    pub replicas: usize,
    /// The server leading the stream, in a cluster.
    pub leader: Option<String>,
    /// Messages delivered and not yet acknowledged (once a consumer opened).
    pub ack_pending: Option<usize>,
    /// Of those, messages delivered more than once.
    pub redelivered: Option<usize>,
    /// How long a delivered message waits for its acknowledgement.
    pub ack_wait: Option<std::time::Duration>,
    /// When the stream stored its last message (`None`: never).
    pub last_stored: Option<std::time::SystemTime>,
}

/// The queues on a NATS server ([`list_broker`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerListing {
    /// Each ipcx queue: its endpoint (`nats://SERVERS/NAME?pattern=queue`,
    /// without the credentials of the listing's endpoint) and status.
    /// `producers` and `consumers` count the ipcx handles that answered a
    /// roll call; the unacknowledged counts (`ack_pending`) are left out
    /// (one request per queue: [`stat`] has them).
    pub queues: Vec<(Endpoint, QueueInfo)>,
    /// The names of the account's other JetStream streams (not ipcx
    /// queues).
    pub other_streams: Vec<String>,
}

/// The status of a queue and its recorded type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueInfo {
    /// The kernel's view.
    pub status: Status,
    /// The type its creator recorded, if a record is there.
    pub recorded: Option<TypeTag>,
    /// The endpoint its creator opened it with, if recorded.
    pub recorded_endpoint: Option<String>,
    /// Producer handles open now in live processes (through ipcx, which
    /// records each: the kernel does not count them); `None` when the
    /// records cannot be read. On JetStream, the ipcx handles that
    /// answered a roll call within 300 ms: other NATS clients publishing
    /// to the stream's subject cannot be known.
    pub producers: Option<usize>,
    /// Consumer handles open now in live processes, as `producers`.
    pub consumers: Option<usize>,
}

/// What a message larger than the queue's size runs into.
#[derive(Debug)]
struct KernelLimit {
    at_kernel_limit: bool,
    source: String,
    raise: String,
}

#[derive(Debug)]
enum Kernel {
    Posix(PosixQueue),
    Sysv(SysvQueue),
    /// Not a kernel's, but a JetStream stream: the same API.
    #[cfg(feature = "nats")]
    Nats(Box<crate::nats::jetstream::JsQueue>),
}

fn kind(scheme: Scheme) -> &'static str {
    match scheme {
        Scheme::Mq => "mq",
        Scheme::Nats => "nats",
        _ => "sysv-mq",
    }
}

fn exists(endpoint: &Endpoint) -> Error {
    Error::AddrInUse {
        endpoint: endpoint.to_string(),
        owner: None,
        detail: "the queue already exists; open it instead of creating it, or remove it first (ipcx queue rm)".into(),
    }
}

fn missing(endpoint: &Endpoint) -> Error {
    Error::io(
        format!(
            "{endpoint}: no such queue; create it first (Producer::open creates it, or ipcx queue create)"
        ),
        std::io::Error::from_raw_os_error(libc::ENOENT),
    )
}

/// The error `ipcx::listen`/`connect` give for a standalone-queue endpoint.
pub fn not_a_connection(endpoint: &Endpoint) -> Error {
    Error::Unsupported {
        scheme: endpoint.scheme(),
        reason: format!(
            "{endpoint} names a standalone queue (pattern=queue), which has no listener to connect to: open it with ipcx::queue::Producer/Consumer, or drop ?pattern=queue to use a connection"
        ),
    }
}

/// Refuses `listen`/`connect` on a standalone-queue endpoint.
///
/// # Errors
/// [`not_a_connection`] when `endpoint` has `pattern=queue`.
pub fn refuse_as_connection(endpoint: &Endpoint) -> Result<()> {
    if endpoint.pattern() == Pattern::Queue {
        return Err(not_a_connection(endpoint));
    }
    Ok(())
}

fn check_scheme(endpoint: &Endpoint) -> Result<()> {
    if matches!(endpoint.scheme(), Scheme::Mq | Scheme::SysvMq) {
        return Ok(());
    }
    #[cfg(feature = "nats")]
    if endpoint.scheme() == Scheme::Nats {
        return Ok(());
    }
    Err(Error::Unsupported {
        scheme: endpoint.scheme(),
        reason: format!(
            "{endpoint}: standalone queues are kernel message queues or JetStream streams: use mq:/NAME?pattern=queue, sysv-mq:PATH?pattern=queue or nats://HOST:PORT/NAME?pattern=queue (feature nats)"
        ),
    })
}

/// One opened queue, for one role.
#[derive(Debug)]
struct Queue {
    endpoint: Endpoint,
    kernel: Kernel,
    /// The type this handle sends or expects (fingerprint 0: bytes).
    tag: TypeTag,
    /// The type the queue's creator recorded.
    recorded: Option<TypeTag>,
    /// The endpoint the queue's creator recorded.
    recorded_endpoint: Option<String>,
    /// This producer's or consumer's presence file, for the counts of
    /// [`stat`].
    _presence: Option<meta::Presence>,
    buf: Vec<u8>,
}

impl Queue {
    fn open(endpoint: &Endpoint, open: Open, role: Role, tag: TypeTag) -> Result<Queue> {
        check_scheme(endpoint)?;
        #[cfg(feature = "nats")]
        if endpoint.scheme() == Scheme::Nats {
            return Queue::open_nats(endpoint, open, role, tag);
        }
        let kind = kind(endpoint.scheme());
        let (kernel, created, id) = match endpoint.scheme() {
            Scheme::Mq => {
                let (q, created) = PosixQueue::open(endpoint, open, role)?;
                (Kernel::Posix(q), created, posix::record_id(endpoint))
            }
            _ => {
                let (q, created) = SysvQueue::open(endpoint, open, role)?;
                (Kernel::Sysv(q), created, sysv::record_id(endpoint)?)
            }
        };
        let object = match &kernel {
            Kernel::Posix(q) => q.object()?,
            Kernel::Sysv(q) => q.object(),
            #[cfg(feature = "nats")]
            Kernel::Nats(_) => String::new(),
        };
        let presence = match role {
            Role::Producer => meta::Presence::enter(kind, &id, b'p', endpoint.options().mode),
            Role::Consumer => meta::Presence::enter(kind, &id, b'c', endpoint.options().mode),
            Role::Admin => None,
        };
        let mut q = Queue {
            endpoint: endpoint.clone(),
            kernel,
            tag,
            recorded: None,
            recorded_endpoint: None,
            _presence: presence,
            buf: Vec::new(),
        };
        if created {
            let record = meta::Record {
                tag: q.tag.clone(),
                object,
                endpoint: Some(recorded_endpoint(endpoint)),
            };
            meta::write(kind, &id, &record, endpoint.options().mode);
            q.recorded = Some(record.tag);
            q.recorded_endpoint = record.endpoint;
            tracing::debug!(endpoint = %endpoint, r#type = %q.tag, "created standalone queue");
            return Ok(q);
        }
        if role != Role::Admin {
            let mode = match &q.kernel {
                Kernel::Posix(k) => k.mode()?,
                Kernel::Sysv(k) => k.mode()?,
                #[cfg(feature = "nats")]
                Kernel::Nats(_) => endpoint.options().mode,
            };
            if mode != endpoint.options().mode {
                return Err(Error::PermissionDenied(format!(
                    "{endpoint}: the queue exists with mode {mode:04o}, this endpoint asks for {:04o}; give every opener the creator's mode=, or remove and recreate the queue",
                    endpoint.options().mode
                )));
            }
        }
        if let Some(r) = meta::read(kind, &id, &object) {
            q.recorded = Some(r.tag);
            q.recorded_endpoint = r.endpoint;
        }
        q.check_recorded(role)?;
        Ok(q)
    }

    /// Refuses a handle whose type is not the one the queue records.
    fn check_recorded(&self, role: Role) -> Result<()> {
        if let Some(recorded) = &self.recorded
            && recorded.fingerprint != 0
            && self.tag.fingerprint != 0
            && recorded.fingerprint != self.tag.fingerprint
        {
            return Err(Error::SchemaMismatch {
                direction: if role == Role::Producer {
                    Direction::LocalToPeer
                } else {
                    Direction::PeerToLocal
                },
                local: self.tag.clone(),
                remote: recorded.clone(),
            });
        }
        Ok(())
    }

    /// Opens a JetStream queue: the stream records the type.
    #[cfg(feature = "nats")]
    fn open_nats(endpoint: &Endpoint, open: Open, role: Role, tag: TypeTag) -> Result<Queue> {
        use crate::nats::jetstream::{How, JsQueue, Opener};
        let how = match open {
            Open::OpenOrCreate => How::OpenOrCreate,
            Open::Create => How::Create,
            Open::Existing => How::Existing,
        };
        let opener = match role {
            Role::Producer => Opener::Producer,
            Role::Consumer => Opener::Consumer,
            Role::Admin => Opener::Admin,
        };
        let (js, created, recorded) = JsQueue::open(endpoint, how, opener, &tag)?;
        if created {
            tracing::debug!(endpoint = %endpoint, r#type = %tag, "created JetStream queue");
        }
        let q = Queue {
            endpoint: endpoint.clone(),
            kernel: Kernel::Nats(Box::new(js)),
            tag,
            recorded,
            recorded_endpoint: None,
            _presence: None,
            buf: Vec::new(),
        };
        if role != Role::Admin {
            q.check_recorded(role)?;
        }
        Ok(q)
    }

    /// The descriptor an async handle waits on: the POSIX queue's; `None`
    /// on System V, which nothing can poll.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    fn pollable(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match &self.kernel {
            Kernel::Posix(q) => Some(q.as_fd()),
            Kernel::Sysv(_) => None,
            #[cfg(feature = "nats")]
            Kernel::Nats(_) => None,
        }
    }

    fn message_size(&self) -> usize {
        match &self.kernel {
            Kernel::Posix(q) => q.message_size(),
            Kernel::Sysv(q) => q.message_size(),
            #[cfg(feature = "nats")]
            Kernel::Nats(q) => q.message_size(),
        }
    }

    fn too_large(&self, size: usize) -> Error {
        let max = self.message_size() - HEADER_LEN;
        let limit = match &self.kernel {
            Kernel::Posix(q) => q.limit(),
            Kernel::Sysv(q) => q.limit(),
            #[cfg(feature = "nats")]
            Kernel::Nats(_) => return Error::MessageTooLarge { size, max },
        };
        if limit.at_kernel_limit {
            Error::Limit {
                endpoint: self.endpoint.to_string(),
                option: "message size",
                value: size as u64,
                limit: max as u64,
                source_of_limit: limit.source,
                fix: format!(
                    "a queue message is one kernel message (competing consumers make fragments unsafe): send smaller messages, or {}",
                    limit.raise
                ),
            }
        } else {
            Error::MessageTooLarge { size, max }
        }
    }

    fn send(
        &mut self,
        encoding: Option<Encoding>,
        payload: &[u8],
        priority: u32,
        id: Option<&str>,
        deadline: Deadline,
    ) -> Result<()> {
        self.frame(encoding, payload, priority, id)?;
        let sent = match &mut self.kernel {
            Kernel::Posix(q) => q.send(&self.buf, priority, deadline)?,
            Kernel::Sysv(q) => q.send(&self.buf, priority, deadline)?,
            #[cfg(feature = "nats")]
            Kernel::Nats(q) => q.send(&self.buf, id, deadline)?,
        };
        match (sent, deadline) {
            (true, _) => Ok(()),
            (false, Deadline::Now) => Err(Error::WouldBlock),
            (false, _) => Err(Error::Timeout),
        }
    }

    /// Checks a message and puts it, with its header, in `self.buf`.
    fn frame(
        &mut self,
        encoding: Option<Encoding>,
        payload: &[u8],
        priority: u32,
        id: Option<&str>,
    ) -> Result<()> {
        if payload.len() > self.message_size() - HEADER_LEN {
            return Err(self.too_large(payload.len()));
        }
        #[cfg(feature = "nats")]
        if matches!(self.kernel, Kernel::Nats(_)) && priority != 0 {
            return Err(Error::Unsupported {
                scheme: Scheme::Nats,
                reason: format!(
                    "{}: JetStream delivers a queue's messages in the order they were stored and has no priorities; send with priority 0, or give each priority a queue of its own and have consumers drain the higher one first",
                    self.endpoint
                ),
            });
        }
        if let Some(id) = id {
            check_id(&self.endpoint, id)?;
        }
        if priority >= PRIORITY_LEVELS {
            return Err(Error::Limit {
                endpoint: self.endpoint.to_string(),
                option: "priority",
                value: u64::from(priority),
                limit: u64::from(PRIORITY_LEVELS - 1),
                source_of_limit: "MQ_PRIO_MAX, priorities per queue".into(),
                fix: format!("use priorities 0 to {}", PRIORITY_LEVELS - 1),
            });
        }
        let header = Header {
            encoding,
            fingerprint: self.tag.fingerprint,
        };
        self.buf.clear();
        self.buf.extend_from_slice(&header.encode());
        self.buf.extend_from_slice(payload);
        Ok(())
    }

    /// Receives one message into `self.buf`: its header, its length and
    /// priority.
    fn recv(&mut self, deadline: Deadline, hold: bool) -> Result<(Delivery<'_>, Ack)> {
        let got = match &mut self.kernel {
            Kernel::Posix(q) => q.recv(&mut self.buf, deadline)?,
            Kernel::Sysv(q) => q.recv(&mut self.buf, deadline)?,
            #[cfg(feature = "nats")]
            Kernel::Nats(q) => q.recv(&mut self.buf, deadline)?.map(|len| (len, 0)),
        };
        let Some((len, priority)) = got else {
            return Err(if deadline == Deadline::Now {
                Error::WouldBlock
            } else {
                Error::Timeout
            });
        };
        self.decode(len, priority, hold)
    }

    /// Checks the message of `len` bytes in `self.buf` and settles what
    /// JetStream is to do with it.
    fn decode(&mut self, len: usize, priority: u32, hold: bool) -> Result<(Delivery<'_>, Ack)> {
        // A message that is not this consumer's to decode is taken out of
        // the queue for good (JetStream: terminated, not redelivered).
        let header = Header::decode(&self.buf[..len]);
        let foreign = match &header {
            Err(_) => true,
            Ok(h) => self.tag.fingerprint != 0 && h.fingerprint != self.tag.fingerprint,
        };
        #[cfg(feature = "nats")]
        let ack = match &mut self.kernel {
            Kernel::Nats(q) if foreign => {
                q.terminate_pending();
                Ack::none()
            }
            Kernel::Nats(q) if !hold => {
                q.ack_now();
                Ack::none()
            }
            Kernel::Nats(q) => Ack::pending(q.take_pending()),
            _ => Ack::none(),
        };
        #[cfg(not(feature = "nats"))]
        let ack = {
            let _ = (hold, foreign);
            Ack::none()
        };
        let msg = &self.buf[..len];
        let header = header.map_err(|bad| {
            tracing::warn!(endpoint = %self.endpoint, reason = %bad, "foreign message on a standalone queue");
            Error::Protocol(format!(
                "{}: received {bad}; it was consumed",
                self.endpoint
            ))
        })?;
        if self.tag.fingerprint != 0 && header.fingerprint != self.tag.fingerprint {
            let remote = match &self.recorded {
                _ if header.fingerprint == 0 => TypeTag::BYTES,
                Some(r) if r.fingerprint == header.fingerprint => r.clone(),
                _ => TypeTag::new(Cow::Borrowed("unknown type"), header.fingerprint),
            };
            tracing::warn!(endpoint = %self.endpoint, expected = %self.tag, found = %remote, "message of another type on a standalone queue");
            return Err(Error::SchemaMismatch {
                direction: Direction::PeerToLocal,
                local: self.tag.clone(),
                remote,
            });
        }
        Ok((
            Delivery {
                payload: &msg[HEADER_LEN..],
                priority,
                fingerprint: header.fingerprint,
            },
            ack,
        ))
    }
}

/// A received message made owned.
#[allow(clippy::type_complexity)]
pub(crate) fn owned(r: Result<(Delivery<'_>, Ack)>) -> Result<(Vec<u8>, u32, Ack)> {
    r.map(|(d, ack)| (d.payload.to_vec(), d.priority, ack))
}

/// An error of one message (consumed, the next may be received), not of
/// the queue.
pub(crate) fn is_per_message(e: &Error) -> bool {
    matches!(
        e,
        Error::Protocol(_) | Error::SchemaMismatch { .. } | Error::Decode { .. }
    )
}

/// Checks a message id (`Nats-Msg-Id`): JetStream only, printable, short.
fn check_id(endpoint: &Endpoint, id: &str) -> Result<()> {
    if endpoint.scheme() != Scheme::Nats {
        return Err(Error::Unsupported {
            scheme: endpoint.scheme(),
            reason: format!(
                "{endpoint}: a kernel queue cannot deduplicate by message id; send without one, or use a nats:// queue (JetStream keeps one copy per id within its duplicate window)"
            ),
        });
    }
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Unsupported {
            scheme: endpoint.scheme(),
            reason: format!(
                "{endpoint}: message id {id:?} must be 1 to {MAX_ID_LEN} printable ASCII characters without spaces"
            ),
        });
    }
    Ok(())
}

/// The longest message id.
pub const MAX_ID_LEN: usize = 128;

/// A received message, borrowed from its consumer until the next receive.
#[derive(Debug)]
pub struct Delivery<'a> {
    /// The payload (without the header).
    pub payload: &'a [u8],
    /// The priority it was sent with.
    pub priority: u32,
    /// The fingerprint of its type as its producer wrote it (0: bytes).
    pub fingerprint: u64,
}

/// Sends messages to a standalone queue.
///
/// # Examples
///
/// ```no_run
/// use ipc_backends::standalone::{ByteConsumer, ByteProducer};
/// # fn main() -> ipc_core::Result<()> {
/// let endpoint = "mq:/jobs?pattern=queue".parse()?;
/// let mut producer = ByteProducer::open(&endpoint)?;
/// producer.send(b"resize img-42")?;
/// let mut consumer = ByteConsumer::open(&endpoint)?;
/// assert_eq!(consumer.recv()?, b"resize img-42");
/// ipc_backends::standalone::remove(&endpoint)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ByteProducer {
    q: Queue,
    encoding: Option<Encoding>,
}

impl ByteProducer {
    /// The descriptor an async producer waits on (writable when there is
    /// room): the POSIX queue's; `None` on System V.
    #[cfg(feature = "tokio")]
    pub(crate) fn pollable(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.q.pollable()
    }

    /// Opens the queue of `endpoint`, creating it if it does not exist.
    ///
    /// # Errors
    /// [`Error::Unsupported`] for a scheme other than `mq:`/`sysv-mq:`;
    /// [`Error::Limit`] when `capacity=` or `max_message_size=` exceed the
    /// kernel's limits; [`Error::PermissionDenied`] when the queue exists
    /// with another mode; OS errors.
    pub fn open(endpoint: &Endpoint) -> Result<ByteProducer> {
        ByteProducer::open_with(endpoint, Open::OpenOrCreate, TypeTag::BYTES, None)
    }

    /// Creates the queue of `endpoint`; [`Error::AddrInUse`] if it exists.
    ///
    /// # Errors
    /// As [`ByteProducer::open`].
    pub fn create(endpoint: &Endpoint) -> Result<ByteProducer> {
        ByteProducer::open_with(endpoint, Open::Create, TypeTag::BYTES, None)
    }

    /// Opens as `open` says, sending messages of type `tag` with
    /// `encoding` (`TypeTag::BYTES`, `None`: raw bytes).
    ///
    /// # Errors
    /// As [`ByteProducer::open`]; [`Error::SchemaMismatch`] when the
    /// queue's recorded type is another.
    pub fn open_with(
        endpoint: &Endpoint,
        open: Open,
        tag: TypeTag,
        encoding: Option<Encoding>,
    ) -> Result<ByteProducer> {
        Ok(ByteProducer {
            q: Queue::open(endpoint, open, Role::Producer, tag)?,
            encoding,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.q.endpoint
    }

    /// The largest payload a message can carry.
    pub fn max_message_size(&self) -> usize {
        self.q.message_size() - HEADER_LEN
    }

    /// Sends `msg` with priority `priority`, waiting for room until
    /// `deadline`.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] or [`Error::Limit`] (naming the kernel
    /// limit) when `msg` does not fit one kernel message; [`Error::Limit`]
    /// for a priority of [`PRIORITY_LEVELS`] or more; [`Error::WouldBlock`]
    /// (`Deadline::Now`) or [`Error::Timeout`] when the queue stayed full.
    pub fn send_until(&mut self, msg: &[u8], priority: u32, deadline: Deadline) -> Result<()> {
        self.q.send(self.encoding, msg, priority, None, deadline)
    }

    /// Sends `msg` with message id `id`, waiting for room until
    /// `deadline`. On JetStream a message whose id was already stored
    /// within the stream's duplicate window (two minutes) is stored once:
    /// sending again after an error that left its fate unknown is safe.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on kernel queues (they cannot deduplicate)
    /// and for an id that is empty, longer than [`MAX_ID_LEN`] or not
    /// printable ASCII; otherwise as [`ByteProducer::send_until`].
    pub fn send_with_id_until(&mut self, msg: &[u8], id: &str, deadline: Deadline) -> Result<()> {
        self.q.send(self.encoding, msg, 0, Some(id), deadline)
    }

    /// On a `nats://` queue, the send of `msg` as a future to await on the
    /// runtime ipcx owns (`None` on kernel queues).
    #[cfg(feature = "nats")]
    pub(crate) fn broker_send(
        &mut self,
        msg: &[u8],
        priority: u32,
        id: Option<&str>,
    ) -> Option<Result<impl std::future::Future<Output = Result<bool>> + Send + 'static>> {
        if !matches!(self.q.kernel, Kernel::Nats(_)) {
            return None;
        }
        if let Err(e) = self.q.frame(self.encoding, msg, priority, id) {
            return Some(Err(e));
        }
        match &self.q.kernel {
            Kernel::Nats(q) => Some(Ok(q.send_future(&self.q.buf, id, Deadline::Never))),
            _ => None,
        }
    }

    /// Sends `msg`, blocking while the queue is full.
    ///
    /// # Errors
    /// As [`ByteProducer::send_until`].
    pub fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, 0, Deadline::Never)
    }

    /// Sends `msg` if there is room now; [`Error::WouldBlock`] if not.
    ///
    /// # Errors
    /// As [`ByteProducer::send_until`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_until(msg, 0, Deadline::Now)
    }

    /// Sends `msg`, waiting at most `timeout` for room.
    ///
    /// # Errors
    /// As [`ByteProducer::send_until`].
    pub fn send_timeout(&mut self, msg: &[u8], timeout: std::time::Duration) -> Result<()> {
        self.send_until(msg, 0, Deadline::after(timeout))
    }

    /// Sends `msg` with `priority` (higher is received first).
    ///
    /// # Errors
    /// As [`ByteProducer::send_until`].
    pub fn send_with_priority(&mut self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_until(msg, priority, Deadline::Never)
    }
}

/// Receives messages from a standalone queue, competing with every other
/// consumer of it.
#[derive(Debug)]
pub struct ByteConsumer {
    q: Queue,
}

impl ByteConsumer {
    /// The descriptor an async consumer waits on (readable when a message
    /// is there): the POSIX queue's; `None` on System V.
    #[cfg(feature = "tokio")]
    pub(crate) fn pollable(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.q.pollable()
    }

    /// Opens the queue of `endpoint`, creating it if it does not exist;
    /// receives messages of any type.
    ///
    /// # Errors
    /// As [`ByteProducer::open`].
    pub fn open(endpoint: &Endpoint) -> Result<ByteConsumer> {
        ByteConsumer::open_with(endpoint, Open::OpenOrCreate, TypeTag::BYTES)
    }

    /// Opens as `open` says, expecting messages of type `tag`
    /// (`TypeTag::BYTES`: any).
    ///
    /// # Errors
    /// As [`ByteProducer::open_with`].
    pub fn open_with(endpoint: &Endpoint, open: Open, tag: TypeTag) -> Result<ByteConsumer> {
        Ok(ByteConsumer {
            q: Queue::open(endpoint, open, Role::Consumer, tag)?,
        })
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        &self.q.endpoint
    }

    /// The type the queue's creator recorded, if a record is there.
    pub fn recorded_type(&self) -> Option<&TypeTag> {
        self.q.recorded.as_ref()
    }

    /// Receives one message, waiting until `deadline`. The message is
    /// taken from the queue whatever happens next: at most once.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] (`Deadline::Now`) or [`Error::Timeout`] when
    /// the queue stayed empty; [`Error::SchemaMismatch`] for a message of
    /// another type than this consumer's and [`Error::Protocol`] for one
    /// without an ipcx header — both consumed, not decoded.
    pub fn recv_until(&mut self, deadline: Deadline) -> Result<Delivery<'_>> {
        Ok(self.q.recv(deadline, false)?.0)
    }

    /// Receives one message and its acknowledgement, waiting until
    /// `deadline`. On JetStream the message stays in the queue until the
    /// [`Ack`] acknowledges it (at least once: redelivered to another
    /// consumer if this one dies or `ack_wait` passes first); on kernel
    /// queues it is taken at once (at most once) and the `Ack` does
    /// nothing.
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    pub fn recv_acked_until(&mut self, deadline: Deadline) -> Result<(Delivery<'_>, Ack)> {
        self.q.recv(deadline, true)
    }

    /// Receives up to `max` messages (at least one), each with its
    /// acknowledgement, waiting until `deadline` for the first. On a
    /// `nats://` queue this is one pull request for what the stream has
    /// now (when it has nothing: a wait for one message); every message
    /// returned is delivered to this process and its `ack_wait` runs from
    /// the pull, so take no more than can be handled within `ack_wait`
    /// (or call [`Ack::in_progress`]). A consumer that dies first has them
    /// redelivered to others after `ack_wait`. On kernel queues: the
    /// messages queued now, one receive each, at most once.
    ///
    /// A message that cannot be handed out (another type, not from ipcx)
    /// is an `Err` in its place, consumed as [`ByteConsumer::recv_until`]
    /// consumes it; the others are delivered.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] (`Deadline::Now`) or [`Error::Timeout`] when
    /// the queue stayed empty; a failure of the server or the kernel.
    #[allow(clippy::type_complexity)]
    pub fn recv_batch_acked_until(
        &mut self,
        max: usize,
        deadline: Deadline,
    ) -> Result<Vec<Result<(Vec<u8>, u32, Ack)>>> {
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        #[cfg(feature = "nats")]
        if let Kernel::Nats(q) = &mut self.q.kernel {
            let pull = q.pull_batch_future(max, deadline)?;
            let got = crate::nats::runtime::run(pull)??;
            if got.is_empty() {
                return Err(if deadline == Deadline::Now {
                    Error::WouldBlock
                } else {
                    Error::Timeout
                });
            }
            for m in got {
                out.push(owned(self.broker_take(m, true)));
            }
            return Ok(out);
        }
        match self.q.recv(deadline, true) {
            Err(e) if !is_per_message(&e) => return Err(e),
            first => out.push(owned(first)),
        }
        while out.len() < max {
            match self.q.recv(Deadline::Now, true) {
                Err(Error::WouldBlock) => break,
                Err(e) if !is_per_message(&e) => {
                    out.push(Err(e));
                    break;
                }
                next => out.push(owned(next)),
            }
        }
        Ok(out)
    }

    /// Whether the queue is a `nats://` one (JetStream).
    #[cfg(feature = "nats")]
    pub(crate) fn is_broker(&self) -> bool {
        matches!(self.q.kernel, Kernel::Nats(_))
    }

    /// On a `nats://` queue, a batch pull of up to `max` messages as a
    /// future to await on the runtime ipcx owns (`None` on kernel
    /// queues); each message goes to [`ByteConsumer::broker_take`].
    #[cfg(feature = "nats")]
    #[allow(clippy::type_complexity)]
    pub(crate) fn broker_pull_batch(
        &mut self,
        max: usize,
    ) -> Option<
        Result<
            impl std::future::Future<Output = Result<Vec<async_nats::jetstream::Message>>>
            + Send
            + 'static,
        >,
    > {
        match &mut self.q.kernel {
            Kernel::Nats(q) => Some(q.pull_batch_future(max, Deadline::Never)),
            _ => None,
        }
    }

    /// On a `nats://` queue, the pull of the next message as a future to
    /// await on the runtime ipcx owns (`None` on kernel queues); its
    /// result goes to [`ByteConsumer::broker_take`].
    #[cfg(feature = "nats")]
    #[allow(clippy::type_complexity)]
    pub(crate) fn broker_pull(
        &mut self,
    ) -> Option<
        Result<
            impl std::future::Future<Output = Result<Option<async_nats::jetstream::Message>>>
            + Send
            + 'static,
        >,
    > {
        match &mut self.q.kernel {
            Kernel::Nats(q) => Some(q.pull_future(Deadline::Never)),
            _ => None,
        }
    }

    /// Takes a message [`ByteConsumer::broker_pull`] pulled, as
    /// [`ByteConsumer::recv_acked_until`] would (`hold`) or
    /// [`ByteConsumer::recv_until`].
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    #[cfg(feature = "nats")]
    pub(crate) fn broker_take(
        &mut self,
        m: async_nats::jetstream::Message,
        hold: bool,
    ) -> Result<(Delivery<'_>, Ack)> {
        let len = match &mut self.q.kernel {
            Kernel::Nats(q) => q.take(m, &mut self.q.buf),
            _ => return Err(Error::protocol("a JetStream message for a kernel queue")),
        };
        self.q.decode(len, 0, hold)
    }

    /// Receives one message, blocking while the queue is empty.
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    pub fn recv(&mut self) -> Result<Vec<u8>> {
        Ok(self.recv_until(Deadline::Never)?.payload.to_vec())
    }

    /// Receives a message if one is queued; [`Error::WouldBlock`] if not.
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        Ok(self.recv_until(Deadline::Now)?.payload.to_vec())
    }

    /// Receives a message, waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    pub fn recv_timeout(&mut self, timeout: std::time::Duration) -> Result<Vec<u8>> {
        Ok(self.recv_until(Deadline::after(timeout))?.payload.to_vec())
    }
}

/// Removes the queue of `endpoint` and its type record; `false` if there
/// was none. Handles open elsewhere: POSIX ones keep working until closed,
/// System V ones fail their next call.
///
/// # Errors
/// OS errors other than "no such queue" (`EPERM` when another user owns it).
pub fn remove(endpoint: &Endpoint) -> Result<bool> {
    check_scheme(endpoint)?;
    let kind = kind(endpoint.scheme());
    match endpoint.scheme() {
        #[cfg(feature = "nats")]
        Scheme::Nats => crate::nats::jetstream::remove(endpoint),
        Scheme::Mq => {
            meta::remove(kind, &posix::record_id(endpoint));
            PosixQueue::remove(endpoint)
        }
        _ => {
            if let Ok(id) = sysv::record_id(endpoint) {
                meta::remove(kind, &id);
            }
            SysvQueue::remove(endpoint)
        }
    }
}

/// The status and recorded type of the queue of `endpoint`.
///
/// # Errors
/// An [`Error::Io`] (`ENOENT`) when there is no such queue; OS errors.
pub fn stat(endpoint: &Endpoint) -> Result<QueueInfo> {
    let q = Queue::open(endpoint, Open::Existing, Role::Admin, TypeTag::BYTES)?;
    let status = match &q.kernel {
        Kernel::Posix(k) => k.status()?,
        Kernel::Sysv(k) => k.status()?,
        #[cfg(feature = "nats")]
        Kernel::Nats(k) => {
            // The server counts neither producers nor consumers of a work
            // queue (they share one durable consumer): the open ipcx
            // handles answer a roll call.
            let (status, recorded, present) = k.status()?;
            return Ok(QueueInfo {
                status,
                recorded,
                recorded_endpoint: None,
                producers: Some(present.producers),
                consumers: Some(present.consumers),
            });
        }
    };
    let id = match endpoint.scheme() {
        Scheme::Mq => Some(posix::record_id(endpoint)),
        _ => sysv::record_id(endpoint).ok(),
    };
    let openers = id.and_then(|id| meta::openers(kind(endpoint.scheme()), &id));
    Ok(QueueInfo {
        status,
        recorded: q.recorded,
        recorded_endpoint: q.recorded_endpoint,
        producers: openers.map(|o| o.producers),
        consumers: openers.map(|o| o.consumers),
    })
}

/// The queues on the NATS server of `server`, a `nats://` endpoint whose
/// servers and options (credentials, TLS) are used and whose name is not:
/// every ipcx queue's endpoint and status (messages, bytes, limits, the
/// producer and consumer handles open now), and the names of the other
/// JetStream streams, which are not ipcx queues.
///
/// # Examples
///
/// ```no_run
/// # fn main() -> ipc_core::Result<()> {
/// let server = "nats://127.0.0.1:4222/any".parse()?;
/// for (endpoint, info) in ipc_backends::standalone::list_broker(&server)?.queues {
///     println!("{endpoint}: {} waiting, {:?} consumers", info.status.messages, info.consumers);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
/// [`Error::Unsupported`] for an endpoint that is not `nats://`; the
/// server unreachable, or JetStream not enabled on it.
#[cfg(feature = "nats")]
pub fn list_broker(server: &Endpoint) -> Result<BrokerListing> {
    if server.scheme() != Scheme::Nats {
        return Err(Error::Unsupported {
            scheme: server.scheme(),
            reason: format!(
                "{server}: only a NATS server lists its queues; give nats://HOST:PORT/ANY (kernel queues: ipcx queue ls)"
            ),
        });
    }
    crate::nats::jetstream::list(server)
}

/// The endpoint to record for a queue created with `endpoint`: a System V
/// key file's path made absolute (a relative one names another file from
/// another directory), and the options an opener must repeat.
fn recorded_endpoint(endpoint: &Endpoint) -> String {
    let address = endpoint.address();
    let address = if endpoint.scheme() == Scheme::SysvMq && !address.starts_with('/') {
        std::fs::canonicalize(address)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| address.to_string())
    } else {
        address.to_string()
    };
    let sep = if endpoint.scheme() == Scheme::Mq && !address.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut s = format!("{}:{sep}{address}?pattern=queue", kind(endpoint.scheme()));
    let mode = endpoint.options().mode;
    if mode != ipc_core::endpoint::DEFAULT_MODE {
        s.push_str(&format!("&mode={mode:04o}"));
    }
    s
}

/// Receives and drops every message queued now; how many.
///
/// # Errors
/// As [`stat`].
pub fn purge(endpoint: &Endpoint) -> Result<usize> {
    let mut q = Queue::open(endpoint, Open::Existing, Role::Admin, TypeTag::BYTES)?;
    #[cfg(feature = "nats")]
    if let Kernel::Nats(k) = &q.kernel {
        return k.purge();
    }
    let mut n = 0;
    loop {
        match q.recv(Deadline::Now, false) {
            Ok(_) | Err(Error::Protocol(_) | Error::SchemaMismatch { .. }) => n += 1,
            Err(Error::WouldBlock) => return Ok(n),
            Err(e) => return Err(e),
        }
    }
}

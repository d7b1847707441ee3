//! Async channels and halves over every transport.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use ipc_core::{
    Batch, Channel, Deadline, Endpoint, Error, PeerInfo, Receiver, Result, Schema, Scheme, Sender,
};

use super::Pollable;
use super::bridge::{BridgeReceiver, BridgeSender};
use super::driven::{Driven, Stop, runtime};
use crate::any::{AnyChannel, AnyInPlace, AnyLoan, AnyReceiver, AnySender};
pub use crate::conn::link::ChannelCloser;
use ipc_core::loan::{Commit, Received};

/// Runs `$body` with `$d` bound to the flavor's `Driven` half.
macro_rules! driven {
    ($flavor:expr, $d:ident => $body:expr) => {
        match $flavor {
            Flavor::Direct($d) => $body,
            Flavor::Bridged($d) => $body,
        }
    };
}

#[derive(Debug)]
enum Flavor<H: Pollable + Send + 'static, B: Pollable + Send + 'static> {
    /// Waits on the transport's own descriptor.
    Direct(Driven<H>),
    /// Served by a bridge thread (`super::bridge`).
    Bridged(Driven<B>),
}

/// The sending half of an async connection.
///
/// Cancel safety: dropping the future of [`send`](Self::send) before it
/// completes means the message was either not sent at all or committed
/// whole: a stream frame or a queue message's fragments that found no
/// room are written before the next message (by the next `send`,
/// [`flush`](Self::flush), or drop), never cut short or interleaved.
#[derive(Debug)]
pub struct AsyncSender {
    flavor: Flavor<AnySender, BridgeSender>,
    scheme: Scheme,
    max: usize,
    /// Messages given to [`Sink::start_send`] and not yet sent: up to
    /// [`SINK_BATCH`], sent together as one batch.
    queued: Vec<Vec<u8>>,
    stop: Arc<Stop>,
    /// The buffer lent by [`loan`](Self::loan) where the transport has no
    /// ring to lend, kept for the next loan.
    loan_buf: Vec<u8>,
}

impl AsyncSender {
    /// Drives `sender` from the reactor (or a bridge thread when its
    /// kernel object cannot be polled). Must run inside a tokio runtime.
    ///
    /// # Errors
    /// No runtime; a descriptor the reactor refuses; a thread that cannot
    /// start.
    pub fn new(sender: AnySender) -> Result<AsyncSender> {
        AsyncSender::with_stop(sender, &Stop::new()?)
    }

    fn with_stop(sender: AnySender, stop: &Arc<Stop>) -> Result<AsyncSender> {
        let scheme = sender.scheme();
        let max = sender.max_message_size();
        let flavor = match Driven::new(sender, stop)? {
            Ok(d) => Flavor::Direct(d),
            Err(sender) => Flavor::Bridged(bridged(BridgeSender::new(sender)?, stop)?),
        };
        Ok(AsyncSender {
            flavor,
            scheme,
            max,
            queued: Vec::new(),
            stop: Arc::clone(stop),
            loan_buf: Vec::new(),
        })
    }

    /// A handle that closes this half (and the channel it came from) from
    /// any task or thread: see [`ChannelCloser`].
    pub fn closer(&self) -> ChannelCloser {
        let link = driven!(&self.flavor, d => d.get().link().clone());
        let stop = Arc::clone(&self.stop);
        ChannelCloser::with(link, Arc::new(move || stop.close()))
    }

    /// Sends one message, waiting (without blocking the thread) while the
    /// channel is full, and until a message already begun is written.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] (nothing sent), [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> ipc_core::Result<()> {
    /// let endpoint = "unix:/run/demo.sock".parse()?;
    /// let (mut tx, _rx) = ipc_backends::aio::connect(&endpoint, &ipc_core::Schema::bytes())
    ///     .await?
    ///     .split();
    /// tx.send(b"hello").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        poll_fn(|cx| self.poll_queued(cx)).await?;
        poll_fn(|cx| self.poll_send(cx, msg)).await?;
        self.flush().await
    }

    /// Sends one message if there is room now, without waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when full (nothing sent); as [`send`](Self::send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.try_send_queued()?;
        driven!(&mut self.flavor, d => d.get_mut()?.send_until(msg, Deadline::Now))
    }

    /// Commits one message: `Ready(Ok)` once it is sent or begun (a begun
    /// message is finished by [`poll_flush`](Self::poll_flush) or the next
    /// send). Nothing is sent while this returns `Pending`.
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn poll_send(&mut self, cx: &mut Context<'_>, msg: &[u8]) -> Poll<Result<()>> {
        driven!(&mut self.flavor, d => d.poll_op(cx, |h| h.send_until(msg, Deadline::Now)))
    }

    /// A writable slice of `len` bytes to fill and
    /// [`commit`](AsyncLoan::commit), waiting (without blocking the
    /// thread) for room. On `shm:` and `sysv-shm:` driven by the reactor
    /// it is the ring slot itself (no copy); elsewhere, and on a shared
    /// memory half that spins on a bridge thread, a buffer kept by this
    /// half that `commit` sends with one copy. The initial contents are
    /// unspecified.
    ///
    /// Cancel safety: dropping the future, or the loan, sends nothing.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above `max_message_size` (on shared
    /// memory also above half the ring); [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(tx: &mut ipc_backends::aio::AsyncSender) -> ipc_core::Result<()> {
    /// let mut loan = tx.loan(8).await?;
    /// loan.copy_from_slice(&42u64.to_le_bytes());
    /// loan.commit().await?;
    /// # Ok(()) }
    /// ```
    pub async fn loan(&mut self, len: usize) -> Result<AsyncLoan<'_>> {
        // What the Sink holds goes first, so that order is kept.
        poll_fn(|cx| self.poll_queued(cx)).await?;
        let in_ring = match &self.flavor {
            Flavor::Direct(d) => d.get().is_shared_memory(),
            Flavor::Bridged(_) => false,
        };
        if !in_ring {
            if len > self.max {
                return Err(Error::MessageTooLarge {
                    size: len,
                    max: self.max,
                });
            }
            let mut buf = std::mem::take(&mut self.loan_buf);
            buf.clear();
            buf.resize(len, 0);
            return Ok(AsyncLoan {
                inner: LoanInner::Copy { tx: self, buf },
            });
        }
        let Flavor::Direct(d) = &mut self.flavor else {
            unreachable!("a ring is lent only by a driven half");
        };
        // Wait until a loan would succeed (taking one and dropping it
        // sends nothing); room only grows until we take it below.
        poll_fn(|cx| d.poll_op(cx, |h| h.loan_until(len, Deadline::Now).map(drop))).await?;
        let loan = d.get_mut()?.loan_until(len, Deadline::Now)?;
        Ok(AsyncLoan {
            inner: LoanInner::Ring(loan),
        })
    }

    /// Writes what a cancelled or partly written send left, and a message
    /// given to [`Sink::start_send`].
    ///
    /// # Errors
    /// [`Error::Disconnected`] when the peer is gone.
    pub async fn flush(&mut self) -> Result<()> {
        poll_fn(|cx| self.poll_queued(cx)).await?;
        poll_fn(|cx| self.poll_flush_committed(cx)).await
    }

    fn poll_flush_committed(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        driven!(&mut self.flavor, d => d.poll_op(cx, |h| h.flush_now()))
    }

    /// The connection's largest message.
    pub fn max_message_size(&self) -> usize {
        self.max
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        driven!(&self.flavor, d => d.get().link().is_closed())
    }

    /// Whether the reactor waits on the transport itself (no bridge
    /// thread); for tests.
    #[doc(hidden)]
    pub fn is_reactor_driven(&self) -> bool {
        matches!(self.flavor, Flavor::Direct(_))
    }

    fn poll_queued(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        while !self.queued.is_empty() {
            let refs: Vec<&[u8]> = self.queued.iter().map(Vec::as_slice).collect();
            let n = match driven!(&mut self.flavor, d => d.poll_op(cx, |h| h.send_batch_until(&refs, Deadline::Now)))
            {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r?,
            };
            self.queued.drain(..n);
        }
        Poll::Ready(Ok(()))
    }

    /// Sends what [`Sink::start_send`] queued, as far as there is room
    /// now.
    fn try_send_queued(&mut self) -> Result<()> {
        while !self.queued.is_empty() {
            let refs: Vec<&[u8]> = self.queued.iter().map(Vec::as_slice).collect();
            let n = driven!(&mut self.flavor, d => d.get_mut()?.send_batch_until(&refs, Deadline::Now))?;
            self.queued.drain(..n);
        }
        Ok(())
    }

    /// Sends every message of `msgs`, in order, as one batch where the
    /// transport allows (one `writev` on a stream; on shared memory every
    /// record published at once, one doorbell), waiting without blocking
    /// the thread while the channel is full. The rules are
    /// [`ipc_core::batch`]'s.
    ///
    /// Cancel safety: dropping the future leaves a leading part of the
    /// batch sent (each message whole) and the rest unsent; use
    /// [`poll_send_batch`](Self::poll_send_batch) to know how much.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when any message is too large (nothing
    /// sent); [`Error::Disconnected`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(tx: &mut ipc_backends::aio::AsyncSender) -> ipc_core::Result<()> {
    /// let ticks: Vec<[u8; 8]> = (0..64u64).map(u64::to_le_bytes).collect();
    /// let refs: Vec<&[u8]> = ticks.iter().map(|t| &t[..]).collect();
    /// tx.send_batch(&refs).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        ipc_core::batch::check_sizes(msgs, self.max)?;
        poll_fn(|cx| self.poll_queued(cx)).await?;
        let mut sent = 0;
        while sent < msgs.len() {
            sent += poll_fn(|cx| self.poll_send_batch(cx, &msgs[sent..])).await?;
        }
        self.flush().await
    }

    /// Sends as many of `msgs` as there is room for now; returns how many
    /// of the first went.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when not even the first fits; as
    /// [`send_batch`](Self::send_batch).
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize> {
        self.try_send_queued()?;
        driven!(&mut self.flavor, d => d.get_mut()?.send_batch_until(msgs, Deadline::Now))
    }

    /// Commits the first messages of `msgs` there is room for:
    /// `Ready(Ok(n))`, `n >= 1`, once at least one is sent or begun
    /// (`Ok(0)` for an empty slice). Nothing is sent while this returns
    /// `Pending`.
    ///
    /// # Errors
    /// As [`send_batch`](Self::send_batch).
    pub fn poll_send_batch(&mut self, cx: &mut Context<'_>, msgs: &[&[u8]]) -> Poll<Result<usize>> {
        if msgs.is_empty() {
            return Poll::Ready(Ok(0));
        }
        driven!(&mut self.flavor, d => d.poll_op(cx, |h| h.send_batch_until(msgs, Deadline::Now)))
    }
}

/// Messages [`AsyncSender`]'s `Sink` holds before `poll_ready` sends them:
/// what `start_send` gathers between flushes goes out as one batch.
const SINK_BATCH: usize = 64;

fn bridged<B: Pollable + Send + 'static>(b: B, stop: &Arc<Stop>) -> Result<Driven<B>> {
    Driven::new(b, stop)?.map_err(|_| {
        Error::io(
            "a bridge without an eventfd",
            std::io::ErrorKind::Other.into(),
        )
    })
}

/// Messages as `Vec<u8>`; `poll_flush` waits until each is written whole.
///
/// Items given to `start_send` are held, up to 64, and sent together as
/// one batch ([`AsyncSender::send_batch`]) by `poll_flush`, or by
/// `poll_ready` once 64 are held: `SinkExt::send` (which flushes) sends
/// at once; `send_all`, or `feed` then `flush`, send many per system call
/// or doorbell.
impl Sink<Vec<u8>> for AsyncSender {
    type Error = Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.queued.len() < SINK_BATCH {
            return Poll::Ready(Ok(()));
        }
        this.poll_queued(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Vec<u8>) -> Result<()> {
        let this = self.get_mut();
        if item.len() > this.max {
            return Err(Error::MessageTooLarge {
                size: item.len(),
                max: this.max,
            });
        }
        this.queued.push(item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        if this.poll_queued(cx)?.is_pending() {
            return Poll::Pending;
        }
        this.poll_flush_committed(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        self.poll_flush(cx)
    }
}

/// The receiving half of an async connection.
///
/// Cancel safety: dropping the future of [`recv`](Self::recv) loses
/// nothing; a message partly read stays in the half and the next receive
/// completes it.
#[derive(Debug)]
pub struct AsyncReceiver {
    flavor: Flavor<AnyReceiver, BridgeReceiver>,
    scheme: Scheme,
    /// The stream has ended (`Disconnected` or `Closed` was returned).
    ended: bool,
    stop: Arc<Stop>,
    /// What [`recv_in_place`](Self::recv_in_place) received into where
    /// the transport has no ring to read in place.
    in_place_buf: Vec<u8>,
}

impl AsyncReceiver {
    /// Drives `receiver` from the reactor (or a bridge thread when its
    /// kernel object cannot be polled). Must run inside a tokio runtime.
    ///
    /// # Errors
    /// As [`AsyncSender::new`].
    pub fn new(receiver: AnyReceiver) -> Result<AsyncReceiver> {
        AsyncReceiver::with_stop(receiver, &Stop::new()?)
    }

    fn with_stop(receiver: AnyReceiver, stop: &Arc<Stop>) -> Result<AsyncReceiver> {
        let scheme = receiver.scheme();
        let flavor = match Driven::new(receiver, stop)? {
            Ok(d) => Flavor::Direct(d),
            Err(receiver) => Flavor::Bridged(bridged(BridgeReceiver::new(receiver)?, stop)?),
        };
        Ok(AsyncReceiver {
            flavor,
            scheme,
            ended: false,
            stop: Arc::clone(stop),
            in_place_buf: Vec::new(),
        })
    }

    /// A handle that closes this half (and the channel it came from) from
    /// any task or thread: see [`ChannelCloser`].
    pub fn closer(&self) -> ChannelCloser {
        let link = driven!(&self.flavor, d => d.get().link().clone());
        let stop = Arc::clone(&self.stop);
        ChannelCloser::with(link, Arc::new(move || stop.close()))
    }

    /// Receives one message.
    ///
    /// # Errors
    /// [`Error::Disconnected`] once the peer is gone and everything it sent
    /// was received; [`Error::Protocol`] when the peer broke the framing.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> ipc_core::Result<()> {
    /// let endpoint = "mq:/demo".parse()?;
    /// let mut listener = ipc_backends::aio::listen(&endpoint, &ipc_core::Schema::bytes())?;
    /// let mut conn = listener.accept().await?;
    /// let msg = conn.recv().await?;
    /// conn.send(&msg).await?;
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.recv_into(&mut buf).await?;
        Ok(buf)
    }

    /// Receives one message into `buf`, reusing its allocation.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub async fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        poll_fn(|cx| self.poll_recv_into(cx, buf)).await
    }

    /// Receives one message if one is waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when none is; as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        driven!(&mut self.flavor, d => d.get_mut()?.recv_until(&mut buf, Deadline::Now))?;
        Ok(buf)
    }

    /// Polls for one message into `buf`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn poll_recv_into(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> Poll<Result<()>> {
        driven!(&mut self.flavor, d => d.poll_op(cx, |h| h.recv_until(buf, Deadline::Now)))
    }

    /// Waits for a message, then takes every further one already there,
    /// up to `max` in all, into `batch` (replacing its contents); returns
    /// how many. Many frames per read on a stream, many ring records per
    /// wake-up on shared memory ([`ipc_core::batch`]).
    ///
    /// Cancel safety: dropping the future loses nothing.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(rx: &mut ipc_backends::aio::AsyncReceiver) -> ipc_core::Result<()> {
    /// let mut batch = ipc_core::Batch::new();
    /// let n = rx.recv_batch(&mut batch, 64).await?;
    /// for msg in &batch {
    ///     println!("{} bytes", msg.len());
    /// }
    /// # let _ = n; Ok(()) }
    /// ```
    pub async fn recv_batch(&mut self, batch: &mut Batch, max: usize) -> Result<usize> {
        poll_fn(|cx| self.poll_recv_batch(cx, batch, max)).await
    }

    /// Takes the messages waiting now, up to `max`, into `batch`.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when none is; as [`recv`](Self::recv).
    pub fn try_recv_batch(&mut self, batch: &mut Batch, max: usize) -> Result<usize> {
        driven!(&mut self.flavor, d => d.get_mut()?.recv_batch_until(batch, max, Deadline::Now))
    }

    /// Polls for messages into `batch`, up to `max`.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    pub fn poll_recv_batch(
        &mut self,
        cx: &mut Context<'_>,
        batch: &mut Batch,
        max: usize,
    ) -> Poll<Result<usize>> {
        driven!(&mut self.flavor, d => d.poll_op(cx, |h| h.recv_batch_until(batch, max, Deadline::Now)))
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// Whether the connection is known to be gone.
    pub fn is_closed(&self) -> bool {
        driven!(&self.flavor, d => d.get().link().is_closed())
    }

    /// Whether the reactor waits on the transport itself (no bridge
    /// thread); for tests.
    #[doc(hidden)]
    pub fn is_reactor_driven(&self) -> bool {
        matches!(self.flavor, Flavor::Direct(_))
    }

    /// The next message, in place inside the segment on `shm:` and
    /// `sysv-shm:` driven by the reactor (its ring space is released when
    /// the guard drops); elsewhere, and on a shared-memory half that spins
    /// on a bridge thread, received into a buffer kept by this half.
    ///
    /// The bytes of an in-place message are shared memory: a misbehaving
    /// peer could change them while the guard lives. Validate what you
    /// decode.
    ///
    /// Cancel safety: dropping the future loses nothing.
    ///
    /// # Errors
    /// As [`recv`](Self::recv).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(rx: &mut ipc_backends::aio::AsyncReceiver) -> ipc_core::Result<()> {
    /// let msg = rx.recv_in_place().await?;
    /// println!("{} bytes, in place: {}", msg.len(), msg.is_in_place());
    /// # Ok(()) }
    /// ```
    pub async fn recv_in_place(&mut self) -> Result<AsyncInPlace<'_>> {
        let in_ring = match &self.flavor {
            Flavor::Direct(d) => matches!(d.get().scheme(), Scheme::Shm | Scheme::SysvShm),
            Flavor::Bridged(_) => false,
        };
        if !in_ring {
            let mut buf = std::mem::take(&mut self.in_place_buf);
            let r = self.recv_into(&mut buf).await;
            self.in_place_buf = buf;
            r?;
            return Ok(AsyncInPlace {
                inner: InPlaceInner::Copy(&self.in_place_buf),
            });
        }
        let Flavor::Direct(d) = &mut self.flavor else {
            unreachable!("a ring is read in place only by a driven half");
        };
        // Wait until a message is there without taking it; only this half
        // takes messages, so it is still there below.
        poll_fn(|cx| d.poll_op(cx, |h| h.shm_ready_now().unwrap_or(Err(Error::WouldBlock))))
            .await?;
        let msg = d.get_mut()?.recv_in_place_until(Deadline::Now)?;
        Ok(AsyncInPlace {
            inner: InPlaceInner::Ring(msg),
        })
    }
}

/// A message being written in place, from [`AsyncSender::loan`]: derefs
/// to a writable `[u8]` of the length asked for; sent by
/// [`commit`](Self::commit), dropping it sends nothing.
pub struct AsyncLoan<'a> {
    inner: LoanInner<'a>,
}

enum LoanInner<'a> {
    /// The ring slot (shared memory).
    Ring(AnyLoan<'a>),
    /// A buffer sent with one copy.
    Copy {
        tx: &'a mut AsyncSender,
        buf: Vec<u8>,
    },
}

impl AsyncLoan<'_> {
    /// Sends the message: at once in a ring (room was reserved by the
    /// loan), else as [`AsyncSender::send`] does.
    ///
    /// Cancel safety: as [`AsyncSender::send`] for a copied loan (the
    /// message was sent whole or not at all); a ring loan does not wait.
    ///
    /// # Errors
    /// A ring loan never fails; a copied one as [`AsyncSender::send`].
    pub async fn commit(self) -> Result<()> {
        match self.inner {
            LoanInner::Ring(loan) => loan.commit(),
            LoanInner::Copy { tx, buf } => {
                let r = tx.send(&buf).await;
                tx.loan_buf = buf;
                r
            }
        }
    }

    /// Whether the bytes lie in shared memory (no copy on commit).
    pub fn is_in_place(&self) -> bool {
        matches!(self.inner, LoanInner::Ring(_))
    }
}

impl std::ops::Deref for AsyncLoan<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            LoanInner::Ring(loan) => loan,
            LoanInner::Copy { buf, .. } => buf,
        }
    }
}

impl std::ops::DerefMut for AsyncLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.inner {
            LoanInner::Ring(loan) => loan,
            LoanInner::Copy { buf, .. } => buf,
        }
    }
}

// SAFETY: a ring loan is an `AnyLoan`, which upholds `Commit`'s contract;
// a copied loan's bytes are the heap buffer of the `Vec` it owns, whose
// address and length do not change while it lives (it is never resized
// after the loan is made, and moving the `Vec` does not move its buffer),
// written only through `deref_mut`.
unsafe impl Commit for AsyncLoan<'_> {
    /// Sends the message without waiting: a ring loan never fails; a
    /// copied one returns [`Error::WouldBlock`] when there is no room
    /// (prefer the async [`AsyncLoan::commit`]).
    fn commit(self) -> Result<()> {
        match self.inner {
            LoanInner::Ring(loan) => loan.commit(),
            LoanInner::Copy { tx, buf } => {
                let r = tx.try_send(&buf);
                tx.loan_buf = buf;
                r
            }
        }
    }

    fn is_in_place(&self) -> bool {
        matches!(self.inner, LoanInner::Ring(_))
    }
}

impl std::fmt::Debug for AsyncLoan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncLoan")
            .field("len", &self.len())
            .field("in_place", &self.is_in_place())
            .finish()
    }
}

/// A received message, from [`AsyncReceiver::recv_in_place`]: derefs to
/// its bytes; in a ring, the space is released when it drops.
pub struct AsyncInPlace<'a> {
    inner: InPlaceInner<'a>,
}

enum InPlaceInner<'a> {
    /// In the ring (shared memory), or copied by the blocking half.
    Ring(AnyInPlace<'a>),
    /// The async half's buffer.
    Copy(&'a [u8]),
}

impl AsyncInPlace<'_> {
    /// Whether the bytes are read in place in shared memory (not copied).
    pub fn is_in_place(&self) -> bool {
        match &self.inner {
            InPlaceInner::Ring(m) => m.is_in_place(),
            InPlaceInner::Copy(_) => false,
        }
    }
}

impl std::ops::Deref for AsyncInPlace<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            InPlaceInner::Ring(m) => m,
            InPlaceInner::Copy(b) => b,
        }
    }
}

// SAFETY: an in-ring receipt is an `AnyInPlace`, which upholds
// `Received`'s contract; a copied one borrows the half's buffer, which
// nothing writes while the borrow lives (the half is mutably borrowed), so
// its address, length and contents stay, and it answers `false`.
unsafe impl Received for AsyncInPlace<'_> {
    fn is_in_place(&self) -> bool {
        AsyncInPlace::is_in_place(self)
    }
}

impl std::fmt::Debug for AsyncInPlace<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncInPlace")
            .field("len", &self.len())
            .field("in_place", &self.is_in_place())
            .finish()
    }
}

/// Each message, until the peer is gone (`Disconnected` ends the stream;
/// other errors are items).
impl Stream for AsyncReceiver {
    type Item = Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Vec<u8>>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let mut buf = Vec::new();
        match this.poll_recv_into(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(buf))),
            Poll::Ready(Err(Error::Disconnected | Error::Closed)) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
        }
    }
}

/// An async connection: the mirror of [`AnyChannel`].
#[derive(Debug)]
pub struct AsyncChannel {
    sender: AsyncSender,
    receiver: AsyncReceiver,
    peer: PeerInfo,
}

impl AsyncChannel {
    /// Drives an established blocking connection from the reactor. The
    /// wire does not change, so the peer may be blocking or async.
    ///
    /// # Errors
    /// As [`AsyncSender::new`].
    pub fn new(channel: AnyChannel) -> Result<AsyncChannel> {
        let peer = channel.peer().clone();
        let (tx, rx) = channel.split();
        let stop = Stop::new()?;
        Ok(AsyncChannel {
            sender: AsyncSender::with_stop(tx, &stop)?,
            receiver: AsyncReceiver::with_stop(rx, &stop)?,
            peer,
        })
    }

    /// A handle that closes this channel from any task or thread: see
    /// [`ChannelCloser`].
    pub fn closer(&self) -> ChannelCloser {
        self.sender.closer()
    }

    /// See [`AsyncSender::send`].
    ///
    /// # Errors
    /// As [`AsyncSender::send`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.sender.send(msg).await
    }

    /// See [`AsyncSender::try_send`].
    ///
    /// # Errors
    /// As [`AsyncSender::try_send`].
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.sender.try_send(msg)
    }

    /// See [`AsyncSender::flush`].
    ///
    /// # Errors
    /// As [`AsyncSender::flush`].
    pub async fn flush(&mut self) -> Result<()> {
        self.sender.flush().await
    }

    /// See [`AsyncReceiver::recv`].
    ///
    /// # Errors
    /// As [`AsyncReceiver::recv`].
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        self.receiver.recv().await
    }

    /// See [`AsyncReceiver::recv_into`].
    ///
    /// # Errors
    /// As [`AsyncReceiver::recv_into`].
    pub async fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.receiver.recv_into(buf).await
    }

    /// See [`AsyncSender::send_batch`].
    ///
    /// # Errors
    /// As [`AsyncSender::send_batch`].
    pub async fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<()> {
        self.sender.send_batch(msgs).await
    }

    /// See [`AsyncReceiver::recv_batch`].
    ///
    /// # Errors
    /// As [`AsyncReceiver::recv_batch`].
    pub async fn recv_batch(&mut self, batch: &mut Batch, max: usize) -> Result<usize> {
        self.receiver.recv_batch(batch, max).await
    }

    /// See [`AsyncReceiver::try_recv`].
    ///
    /// # Errors
    /// As [`AsyncReceiver::try_recv`].
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        self.receiver.try_recv()
    }

    /// Splits into halves usable from two tasks.
    pub fn split(self) -> (AsyncSender, AsyncReceiver) {
        (self.sender, self.receiver)
    }

    /// What the handshake learned about the peer.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }

    /// The connection's largest message.
    pub fn max_message_size(&self) -> usize {
        self.sender.max
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.sender.scheme
    }

    /// The sending half.
    pub fn sender(&mut self) -> &mut AsyncSender {
        &mut self.sender
    }

    /// The receiving half.
    pub fn receiver(&mut self) -> &mut AsyncReceiver {
        &mut self.receiver
    }
}

/// Connects to `endpoint`.
///
/// The handshake (a few round trips, bounded by `connect_timeout`) runs
/// on tokio's blocking pool, once per connection; every message after it
/// is driven by the reactor.
///
/// # Errors
/// As the blocking [`crate::connect`]; no tokio runtime.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> ipc_core::Result<()> {
/// let endpoint = "tcp://127.0.0.1:7000".parse()?;
/// let mut conn = ipc_backends::aio::connect(&endpoint, &ipc_core::Schema::bytes()).await?;
/// conn.send(b"ping").await?;
/// let reply = conn.recv().await?;
/// # Ok(()) }
/// ```
pub async fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<AsyncChannel> {
    runtime()?;
    let (e, s) = (endpoint.clone(), schema.clone());
    let channel = tokio::task::spawn_blocking(move || crate::any::connect(&e, &s))
        .await
        .map_err(|e| Error::io(format!("{endpoint}: connecting"), std::io::Error::other(e)))??;
    AsyncChannel::new(channel)
}

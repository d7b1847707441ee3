//! The run-time choice of transport: enums over every backend, chosen by
//! an [`Endpoint`]'s scheme. Dispatch is a `match` per call (static, no
//! `Box<dyn>`), as crossbeam-channel does over its flavors.
//!
//! Adding a backend is one line in [`with_backends!`].
//!
//! In place: [`AnySender::loan`] and [`AnyReceiver::recv_in_place`] (also on
//! [`AnyChannel`]) write and read a message inside the segment on `shm:`
//! and `sysv-shm:`, and work with one copy on every other transport, so code
//! using them switches transport by configuration.

use std::cell::Cell;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut, Range};

use crate::shm;
use ipc_core::{
    Channel, Deadline, Endpoint, Error, Listener, PeerInfo, Receiver, Result, Schema, Scheme,
    Sender, Transport,
};

/// Calls `$m!` with the list of built backends: `Variant => Type, Scheme;`.
macro_rules! with_backends {
    ($m:ident) => {
        $m! {
            Unix => crate::unix::Unix, Scheme::Unix;
            Tcp => crate::tcp::Tcp, Scheme::Tcp;
            Pipe => crate::pipe::Pipe, Scheme::Pipe;
            Fifo => crate::fifo::Fifo, Scheme::Fifo;
            Mq => crate::mq::Mq, Scheme::Mq;
            SysvMq => crate::sysv_mq::SysvMq, Scheme::SysvMq;
            Shm => crate::shm::Shm, Scheme::Shm;
            SysvShm => crate::shm::SysvShm, Scheme::SysvShm;
        }
    };
}

macro_rules! define_any {
    ($($variant:ident => $t:ty, $scheme:path;)*) => {
        /// A connected channel of any transport.
        #[derive(Debug)]
        pub enum AnyChannel {
            $(
                #[doc = concat!("A `", stringify!($variant), "` channel.")]
                $variant(<$t as Transport>::Channel),
            )*
        }

        /// The sending half of an [`AnyChannel`].
        #[derive(Debug)]
        pub enum AnySender {
            $(
                #[doc = concat!("A `", stringify!($variant), "` sender.")]
                $variant(<<$t as Transport>::Channel as Channel>::Sender),
            )*
        }

        /// The receiving half of an [`AnyChannel`].
        #[derive(Debug)]
        pub enum AnyReceiver {
            $(
                #[doc = concat!("A `", stringify!($variant), "` receiver.")]
                $variant(<<$t as Transport>::Channel as Channel>::Receiver),
            )*
        }

        /// A listener of any transport.
        #[derive(Debug)]
        pub enum AnyListener {
            $(
                #[doc = concat!("A `", stringify!($variant), "` listener.")]
                $variant(<$t as Transport>::Listener),
            )*
        }

        impl Sender for AnyChannel {
            #[inline]
            fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
                match self { $(AnyChannel::$variant(c) => c.send_until(msg, deadline),)* }
            }
            fn max_message_size(&self) -> usize {
                match self { $(AnyChannel::$variant(c) => c.max_message_size(),)* }
            }
        }

        impl Receiver for AnyChannel {
            #[inline]
            fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
                match self { $(AnyChannel::$variant(c) => c.recv_until(buf, deadline),)* }
            }
        }

        impl Channel for AnyChannel {
            type Sender = AnySender;
            type Receiver = AnyReceiver;
            fn split(self) -> (AnySender, AnyReceiver) {
                match self {
                    $(AnyChannel::$variant(c) => {
                        let (s, r) = c.split();
                        (AnySender::$variant(s), AnyReceiver::$variant(r))
                    })*
                }
            }
            fn peer(&self) -> &PeerInfo {
                match self { $(AnyChannel::$variant(c) => c.peer(),)* }
            }
        }

        impl Sender for AnySender {
            #[inline]
            fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
                match self { $(AnySender::$variant(c) => c.send_until(msg, deadline),)* }
            }
            fn max_message_size(&self) -> usize {
                match self { $(AnySender::$variant(c) => c.max_message_size(),)* }
            }
        }

        impl Receiver for AnyReceiver {
            #[inline]
            fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
                match self { $(AnyReceiver::$variant(c) => c.recv_until(buf, deadline),)* }
            }
        }

        impl Listener for AnyListener {
            type Channel = AnyChannel;
            fn accept_until(&mut self, deadline: Deadline) -> Result<AnyChannel> {
                match self {
                    $(AnyListener::$variant(l) => l.accept_until(deadline).map(AnyChannel::$variant),)*
                }
            }
            fn endpoint(&self) -> &Endpoint {
                match self { $(AnyListener::$variant(l) => l.endpoint(),)* }
            }
            fn refused(&self) -> u64 {
                match self { $(AnyListener::$variant(l) => l.refused(),)* }
            }
        }

        /// Listens on `endpoint` with the transport its scheme names.
        ///
        /// # Errors
        /// [`Error::Unsupported`] for a scheme this build lacks; otherwise
        /// the transport's errors.
        pub fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<AnyListener> {
            match endpoint.scheme() {
                $($scheme => <$t as Transport>::listen(endpoint, schema).map(AnyListener::$variant),)*
                #[allow(unreachable_patterns)]
                other => Err(unsupported(other)),
            }
        }

        /// Connects to `endpoint` with the transport its scheme names.
        ///
        /// # Errors
        /// [`Error::Unsupported`] for a scheme this build lacks; otherwise
        /// the transport's errors.
        pub fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<AnyChannel> {
            match endpoint.scheme() {
                $($scheme => <$t as Transport>::connect(endpoint, schema).map(AnyChannel::$variant),)*
                #[allow(unreachable_patterns)]
                other => Err(unsupported(other)),
            }
        }

        /// The schemes this build supports.
        pub const SUPPORTED: &[Scheme] = &[$($scheme),*];
    };
}

with_backends!(define_any);

fn unsupported(scheme: Scheme) -> Error {
    let have: Vec<&str> = SUPPORTED.iter().map(|s| s.as_str()).collect();
    Error::Unsupported {
        scheme,
        reason: format!(
            "this version of ipcx does not implement the {scheme} transport yet; available: {}",
            have.join(", ")
        ),
    }
}

// ---------------------------------------------------------------------------
// In place: loans and received messages, inside the segment on shared
// memory, in a reused buffer with one copy elsewhere.

thread_local! {
    /// A buffer kept between loans and receipts on other transports, so
    /// they allocate nothing once it has grown to the largest message.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer taken from [`SPARE`] and given back when dropped.
#[derive(Debug)]
struct Scratch(Vec<u8>);

impl Scratch {
    fn take() -> Scratch {
        // During thread teardown the spare may be gone: start afresh.
        let mut v = SPARE.try_with(Cell::take).unwrap_or_default();
        v.clear();
        Scratch(v)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        SPARE.with(|spare| {
            let kept = spare.take();
            spare.set(if kept.capacity() >= v.capacity() {
                kept
            } else {
                v
            });
        });
    }
}

/// Where a copied loan is sent on commit.
#[derive(Debug)]
enum CopyTo<'a> {
    Sender(&'a mut AnySender),
    Channel(&'a mut AnyChannel),
}

#[derive(Debug)]
enum LoanInner<'a> {
    Ring(shm::Loan<'a>),
    Copy {
        to: CopyTo<'a>,
        buf: Scratch,
        deadline: Deadline,
    },
}

/// A message being written in place, from [`AnySender::loan`] or
/// [`AnyChannel::loan`]: a writable `[u8]` of the length asked for, sent by
/// [`commit`](Self::commit); dropping it sends nothing.
///
/// On `shm:` and `sysv-shm:` the bytes are the ring slot itself (no copy);
/// on every other transport they are a buffer that `commit` sends with one
/// copy. The initial contents are unspecified.
#[derive(Debug)]
pub struct AnyLoan<'a> {
    inner: LoanInner<'a>,
}

impl AnyLoan<'_> {
    /// Publishes the message.
    ///
    /// # Errors
    /// On shared memory never (room was reserved by the loan). On other
    /// transports the send's errors: [`Error::Disconnected`], and the
    /// loan's deadline ([`Error::Timeout`], [`Error::WouldBlock`]) while
    /// waiting for room; nothing is sent on error.
    pub fn commit(self) -> Result<()> {
        match self.inner {
            LoanInner::Ring(loan) => {
                loan.commit();
                Ok(())
            }
            LoanInner::Copy { to, buf, deadline } => match to {
                CopyTo::Sender(s) => s.send_until(&buf.0, deadline),
                CopyTo::Channel(c) => c.send_until(&buf.0, deadline),
            },
        }
    }

    /// Publishes the message (same as [`commit`](Self::commit)).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    pub fn send(self) -> Result<()> {
        self.commit()
    }

    /// Whether the bytes lie in shared memory (no copy on commit).
    pub fn is_in_place(&self) -> bool {
        matches!(self.inner, LoanInner::Ring(_))
    }
}

impl Deref for AnyLoan<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            LoanInner::Ring(loan) => loan,
            LoanInner::Copy { buf, .. } => &buf.0,
        }
    }
}

impl DerefMut for AnyLoan<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.inner {
            LoanInner::Ring(loan) => loan,
            LoanInner::Copy { buf, .. } => &mut buf.0,
        }
    }
}

#[derive(Debug)]
enum InPlaceInner<'a> {
    Ring(shm::InPlace<'a>),
    Copy(Scratch, PhantomData<&'a mut ()>),
}

/// A received message, from [`AnyReceiver::recv_in_place`] or
/// [`AnyChannel::recv_in_place`]: derefs to its bytes; on shared memory the
/// space in the ring is released when it drops.
///
/// On `shm:` and `sysv-shm:` the bytes lie inside the segment when the
/// message lies there in one piece (always for a message sent with a loan);
/// elsewhere they are a buffer the message was received into (one copy).
/// Shared memory is the peer's memory too: validate what you decode.
#[derive(Debug)]
pub struct AnyInPlace<'a> {
    inner: InPlaceInner<'a>,
}

impl AnyInPlace<'_> {
    /// Whether the bytes are read in place in shared memory (not copied).
    pub fn is_in_place(&self) -> bool {
        match &self.inner {
            InPlaceInner::Ring(m) => m.is_in_place(),
            InPlaceInner::Copy(..) => false,
        }
    }
}

impl Deref for AnyInPlace<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.inner {
            InPlaceInner::Ring(m) => m,
            InPlaceInner::Copy(buf, _) => &buf.0,
        }
    }
}

fn copy_loan<'a>(
    to: CopyTo<'a>,
    max: usize,
    len: usize,
    deadline: Deadline,
) -> Result<AnyLoan<'a>> {
    if len > max {
        return Err(Error::MessageTooLarge { size: len, max });
    }
    let mut buf = Scratch::take();
    buf.0.resize(len, 0);
    Ok(AnyLoan {
        inner: LoanInner::Copy { to, buf, deadline },
    })
}

fn copy_recv<'a, R: Receiver>(rx: &'a mut R, deadline: Deadline) -> Result<AnyInPlace<'a>> {
    let mut buf = Scratch::take();
    rx.recv_until(&mut buf.0, deadline)?;
    Ok(AnyInPlace {
        inner: InPlaceInner::Copy(buf, PhantomData),
    })
}

/// Byte senders that lend a buffer to write a message into:
/// [`AnySender`] and [`AnyChannel`].
pub trait LoanSender: Sender {
    /// A writable slice of `len` bytes, sent by [`AnyLoan::commit`]; see
    /// [`AnySender::loan_until`].
    ///
    /// # Errors
    /// As [`AnySender::loan_until`].
    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>>;
}

/// Byte receivers that lend the received message in place:
/// [`AnyReceiver`] and [`AnyChannel`].
pub trait InPlaceReceiver: Receiver {
    /// The next message; see [`AnyReceiver::recv_in_place_until`].
    ///
    /// # Errors
    /// As [`AnyReceiver::recv_in_place_until`].
    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>>;
}

impl AnySender {
    /// A writable slice of `len` bytes to fill and [`commit`](AnyLoan::commit);
    /// dropping the loan sends nothing. On `shm:`/`sysv-shm:` it is the
    /// ring slot and the call waits for room; elsewhere it is a reused
    /// buffer that `commit` sends with one copy (waiting for room then).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above `max_message_size` (on shared
    /// memory also above half the ring), before anything moves;
    /// [`Error::Disconnected`].
    pub fn loan(&mut self, len: usize) -> Result<AnyLoan<'_>> {
        self.loan_until(len, Deadline::Never)
    }

    /// As [`loan`](Self::loan), waiting at most until `deadline` for room
    /// (on other transports the deadline applies to `commit`).
    ///
    /// # Errors
    /// As [`loan`](Self::loan); [`Error::Timeout`] or [`Error::WouldBlock`]
    /// at the deadline.
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
        match self {
            AnySender::Shm(s) | AnySender::SysvShm(s) => Ok(AnyLoan {
                inner: LoanInner::Ring(s.loan_until(len, deadline)?),
            }),
            other => {
                let max = other.max_message_size();
                copy_loan(CopyTo::Sender(other), max, len, deadline)
            }
        }
    }

    /// Whether loans lie in shared memory (`shm:`, `sysv-shm:`).
    pub fn is_shared_memory(&self) -> bool {
        matches!(self, AnySender::Shm(_) | AnySender::SysvShm(_))
    }

    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        match self {
            AnySender::Shm(s) | AnySender::SysvShm(s) => Some(s.mapped_range()),
            _ => None,
        }
    }
}

impl LoanSender for AnySender {
    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
        AnySender::loan_until(self, len, deadline)
    }
}

impl AnyReceiver {
    /// The next message, in place inside the segment on
    /// `shm:`/`sysv-shm:` (its ring space is released when the guard
    /// drops), elsewhere in a reused buffer after a normal receive.
    ///
    /// # Errors
    /// As [`Receiver::recv`]: [`Error::Disconnected`], [`Error::Protocol`].
    pub fn recv_in_place(&mut self) -> Result<AnyInPlace<'_>> {
        self.recv_in_place_until(Deadline::Never)
    }

    /// As [`recv_in_place`](Self::recv_in_place), waiting at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`recv_in_place`](Self::recv_in_place); [`Error::Timeout`] or
    /// [`Error::WouldBlock`] at the deadline.
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
        match self {
            AnyReceiver::Shm(r) | AnyReceiver::SysvShm(r) => Ok(AnyInPlace {
                inner: InPlaceInner::Ring(r.recv_in_place_until(deadline)?),
            }),
            other => copy_recv(other, deadline),
        }
    }

    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        match self {
            AnyReceiver::Shm(r) | AnyReceiver::SysvShm(r) => Some(r.mapped_range()),
            _ => None,
        }
    }
}

impl InPlaceReceiver for AnyReceiver {
    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
        AnyReceiver::recv_in_place_until(self, deadline)
    }
}

impl AnyChannel {
    /// See [`AnySender::loan`].
    ///
    /// # Errors
    /// As [`AnySender::loan`].
    pub fn loan(&mut self, len: usize) -> Result<AnyLoan<'_>> {
        self.loan_until(len, Deadline::Never)
    }

    /// See [`AnySender::loan_until`].
    ///
    /// # Errors
    /// As [`AnySender::loan_until`].
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
        match self {
            AnyChannel::Shm(c) | AnyChannel::SysvShm(c) => Ok(AnyLoan {
                inner: LoanInner::Ring(c.loan_until(len, deadline)?),
            }),
            other => {
                let max = other.max_message_size();
                copy_loan(CopyTo::Channel(other), max, len, deadline)
            }
        }
    }

    /// See [`AnyReceiver::recv_in_place`].
    ///
    /// # Errors
    /// As [`AnyReceiver::recv_in_place`].
    pub fn recv_in_place(&mut self) -> Result<AnyInPlace<'_>> {
        self.recv_in_place_until(Deadline::Never)
    }

    /// See [`AnyReceiver::recv_in_place_until`].
    ///
    /// # Errors
    /// As [`AnyReceiver::recv_in_place_until`].
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
        match self {
            AnyChannel::Shm(c) | AnyChannel::SysvShm(c) => Ok(AnyInPlace {
                inner: InPlaceInner::Ring(c.recv_in_place_until(deadline)?),
            }),
            other => copy_recv(other, deadline),
        }
    }

    /// Whether loans and in-place messages lie in shared memory (`shm:`,
    /// `sysv-shm:`).
    pub fn is_shared_memory(&self) -> bool {
        matches!(self, AnyChannel::Shm(_) | AnyChannel::SysvShm(_))
    }

    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        match self {
            AnyChannel::Shm(c) | AnyChannel::SysvShm(c) => Some(c.mapped_range()),
            _ => None,
        }
    }
}

impl LoanSender for AnyChannel {
    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
        AnyChannel::loan_until(self, len, deadline)
    }
}

impl InPlaceReceiver for AnyChannel {
    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
        AnyChannel::recv_in_place_until(self, deadline)
    }
}

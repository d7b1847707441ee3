//! The run-time choice of transport, chosen by an [`Endpoint`]'s scheme.
//!
//! [`AnyChannel`], [`AnySender`], [`AnyReceiver`] and [`AnyListener`] are
//! structs around private enums over every backend, as crossbeam-channel's
//! `Sender { flavor: SenderFlavor }`: dispatch is a `match` per call
//! (static, no `Box<dyn>`), and adding a transport breaks no user, since no
//! one can match on the variants. Ask [`AnyChannel::scheme`] which one it is.
//!
//! Adding a backend is one line in `with_backends!`, once its channel
//! and halves implement [`LoanSender`] and [`InPlaceReceiver`]
//! (`crate::loan`; a channel's loan must be its sender's, as a
//! [`Duplex`](ipc_core::Duplex) gives).
//!
//! In place: [`AnySender::loan`] and [`AnyReceiver::recv_in_place`] (also on
//! [`AnyChannel`]) write and read a message inside the segment on `shm:`
//! and `sysv-shm:`, and work with one copy on every other transport, so code
//! using them switches transport by configuration.

use std::fmt;
use std::ops::{Deref, DerefMut, Range};

use crate::pipe::PipeChannel;
use crate::shm::ShmChannel;
use ipc_core::loan::{Commit, InPlaceReceiver, LoanSender, Received};
use ipc_core::{
    Batch, Channel, Deadline, Endpoint, Error, Listener, PeerInfo, Receiver, Result, Schema,
    Scheme, Sender, Transport,
};

/// Calls `$m!` with the list of built backends: `Variant => Type, Scheme;`.
#[cfg(feature = "nats")]
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
            Nats => crate::nats::Nats, Scheme::Nats;
        }
    };
}

/// Calls `$m!` with the list of built backends: `Variant => Type, Scheme;`
/// (the same list without `nats://`, which needs the `nats` feature).
#[cfg(not(feature = "nats"))]
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

/// The sending half of transport `$t`.
macro_rules! sender_of {
    ($t:ty) => {
        <<$t as Transport>::Channel as Channel>::Sender
    };
}

/// The receiving half of transport `$t`.
macro_rules! receiver_of {
    ($t:ty) => {
        <<$t as Transport>::Channel as Channel>::Receiver
    };
}

macro_rules! define_any {
    ($($variant:ident => $t:ty, $scheme:path;)*) => {
        #[derive(Debug)]
        enum ChannelFlavor {
            $($variant(<$t as Transport>::Channel),)*
        }

        #[derive(Debug)]
        enum SenderFlavor {
            $($variant(sender_of!($t)),)*
        }

        #[derive(Debug)]
        enum ReceiverFlavor {
            $($variant(receiver_of!($t)),)*
        }

        #[derive(Debug)]
        enum ListenerFlavor {
            $($variant(<$t as Transport>::Listener),)*
        }

        #[derive(Debug)]
        enum LoanFlavor<'a> {
            $($variant(<sender_of!($t) as LoanSender>::Loan<'a>),)*
        }

        #[derive(Debug)]
        enum InPlaceFlavor<'a> {
            $($variant(<receiver_of!($t) as InPlaceReceiver>::InPlace<'a>),)*
        }

        impl Sender for AnyChannel {
            #[inline]
            fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
                match &mut self.flavor { $(ChannelFlavor::$variant(c) => c.send_until(msg, deadline),)* }
            }
            #[inline]
            fn send_batch_until(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
                match &mut self.flavor { $(ChannelFlavor::$variant(c) => c.send_batch_until(msgs, deadline),)* }
            }
            fn max_message_size(&self) -> usize {
                match &self.flavor { $(ChannelFlavor::$variant(c) => c.max_message_size(),)* }
            }
        }

        impl Receiver for AnyChannel {
            #[inline]
            fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
                match &mut self.flavor { $(ChannelFlavor::$variant(c) => c.recv_until(buf, deadline),)* }
            }
            #[inline]
            fn recv_batch_until(&mut self, batch: &mut Batch, max: usize, deadline: Deadline) -> Result<usize> {
                match &mut self.flavor { $(ChannelFlavor::$variant(c) => c.recv_batch_until(batch, max, deadline),)* }
            }
        }

        impl Channel for AnyChannel {
            type Sender = AnySender;
            type Receiver = AnyReceiver;
            fn split(self) -> (AnySender, AnyReceiver) {
                match self.flavor {
                    $(ChannelFlavor::$variant(c) => {
                        let (s, r) = c.split();
                        (
                            AnySender { flavor: SenderFlavor::$variant(s) },
                            AnyReceiver { flavor: ReceiverFlavor::$variant(r) },
                        )
                    })*
                }
            }
            fn peer(&self) -> &PeerInfo {
                match &self.flavor { $(ChannelFlavor::$variant(c) => c.peer(),)* }
            }
        }

        impl LoanSender for AnyChannel {
            type Loan<'a> = AnyLoan<'a>;

            #[inline]
            fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
                match &mut self.flavor {
                    $(ChannelFlavor::$variant(c) => c
                        .loan_until(len, deadline)
                        .map(|l| AnyLoan { flavor: LoanFlavor::$variant(l) }),)*
                }
            }
        }

        impl InPlaceReceiver for AnyChannel {
            type InPlace<'a> = AnyInPlace<'a>;

            #[inline]
            fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
                match &mut self.flavor {
                    $(ChannelFlavor::$variant(c) => c
                        .recv_in_place_until(deadline)
                        .map(|m| AnyInPlace { flavor: InPlaceFlavor::$variant(m) }),)*
                }
            }
        }

        impl Sender for AnySender {
            #[inline]
            fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
                match &mut self.flavor { $(SenderFlavor::$variant(c) => c.send_until(msg, deadline),)* }
            }
            #[inline]
            fn send_batch_until(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
                match &mut self.flavor { $(SenderFlavor::$variant(c) => c.send_batch_until(msgs, deadline),)* }
            }
            fn max_message_size(&self) -> usize {
                match &self.flavor { $(SenderFlavor::$variant(c) => c.max_message_size(),)* }
            }
        }

        impl LoanSender for AnySender {
            type Loan<'a> = AnyLoan<'a>;

            #[inline]
            fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
                match &mut self.flavor {
                    $(SenderFlavor::$variant(s) => s
                        .loan_until(len, deadline)
                        .map(|l| AnyLoan { flavor: LoanFlavor::$variant(l) }),)*
                }
            }
        }

        impl Receiver for AnyReceiver {
            #[inline]
            fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
                match &mut self.flavor { $(ReceiverFlavor::$variant(c) => c.recv_until(buf, deadline),)* }
            }
            #[inline]
            fn recv_batch_until(&mut self, batch: &mut Batch, max: usize, deadline: Deadline) -> Result<usize> {
                match &mut self.flavor { $(ReceiverFlavor::$variant(c) => c.recv_batch_until(batch, max, deadline),)* }
            }
        }

        impl InPlaceReceiver for AnyReceiver {
            type InPlace<'a> = AnyInPlace<'a>;

            #[inline]
            fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
                match &mut self.flavor {
                    $(ReceiverFlavor::$variant(r) => r
                        .recv_in_place_until(deadline)
                        .map(|m| AnyInPlace { flavor: InPlaceFlavor::$variant(m) }),)*
                }
            }
        }

        impl Listener for AnyListener {
            type Channel = AnyChannel;
            fn accept_until(&mut self, deadline: Deadline) -> Result<AnyChannel> {
                match &mut self.flavor {
                    $(ListenerFlavor::$variant(l) => l
                        .accept_until(deadline)
                        .map(|c| AnyChannel { flavor: ChannelFlavor::$variant(c) }),)*
                }
            }
            fn endpoint(&self) -> &Endpoint {
                match &self.flavor { $(ListenerFlavor::$variant(l) => l.endpoint(),)* }
            }
            fn refused(&self) -> u64 {
                match &self.flavor { $(ListenerFlavor::$variant(l) => l.refused(),)* }
            }
        }

        impl crate::aio::Pollable for AnySender {
            fn source(&self) -> Option<crate::aio::Source<'_>> {
                match &self.flavor { $(SenderFlavor::$variant(s) => s.source(),)* }
            }
            fn arm(&self) {
                match &self.flavor { $(SenderFlavor::$variant(s) => s.arm(),)* }
            }
            fn disarm(&self) {
                match &self.flavor { $(SenderFlavor::$variant(s) => s.disarm(),)* }
            }
            fn flush_now(&mut self) -> Result<()> {
                match &mut self.flavor { $(SenderFlavor::$variant(s) => s.flush_now(),)* }
            }
            fn drop_may_wait(&self) -> bool {
                match &self.flavor { $(SenderFlavor::$variant(s) => s.drop_may_wait(),)* }
            }
            fn enter_async(&mut self) {
                match &mut self.flavor { $(SenderFlavor::$variant(s) => s.enter_async(),)* }
            }
            fn link(&self) -> &crate::conn::link::Link {
                match &self.flavor { $(SenderFlavor::$variant(s) => s.link(),)* }
            }
        }

        impl crate::aio::Pollable for AnyReceiver {
            fn source(&self) -> Option<crate::aio::Source<'_>> {
                match &self.flavor { $(ReceiverFlavor::$variant(r) => r.source(),)* }
            }
            fn arm(&self) {
                match &self.flavor { $(ReceiverFlavor::$variant(r) => r.arm(),)* }
            }
            fn disarm(&self) {
                match &self.flavor { $(ReceiverFlavor::$variant(r) => r.disarm(),)* }
            }
            fn enter_async(&mut self) {
                match &mut self.flavor { $(ReceiverFlavor::$variant(r) => r.enter_async(),)* }
            }
            fn link(&self) -> &crate::conn::link::Link {
                match &self.flavor { $(ReceiverFlavor::$variant(r) => r.link(),)* }
            }
            fn unblocker(&self) -> Option<crate::aio::Unblock> {
                match &self.flavor { $(ReceiverFlavor::$variant(r) => r.unblocker(),)* }
            }
        }

        impl AnyListener {
            /// Readable whenever an established connection may be waiting.
            #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
            pub(crate) fn ready_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
                match &self.flavor { $(ListenerFlavor::$variant(l) => crate::conn::accept::Ready::ready_fd(l),)* }
            }

            /// A handle that closes this listener from any thread or task:
            /// a waiting `accept` returns [`Error::Closed`], and the
            /// rendezvous is removed.
            ///
            /// # Examples
            ///
            /// ```no_run
            /// use ipc_core::{Listener, Schema};
            ///
            /// # fn main() -> ipc_core::Result<()> {
            /// let mut listener = ipc_backends::listen(&"mq:/jobs".parse()?, &Schema::bytes())?;
            /// let closer = listener.closer();
            /// std::thread::spawn(move || closer.close());
            /// assert!(matches!(listener.accept(), Err(ipc_core::Error::Closed)));
            /// # Ok(()) }
            /// ```
            pub fn closer(&self) -> crate::conn::accept::ListenerCloser {
                match &self.flavor { $(ListenerFlavor::$variant(l) => crate::conn::accept::Ready::closer(l),)* }
            }
        }

        impl ChannelFlavor {
            fn link(&self) -> &crate::conn::link::Link {
                match self { $(ChannelFlavor::$variant(c) => crate::conn::link::Linked::link(c),)* }
            }

            fn scheme(&self) -> Scheme {
                match self { $(ChannelFlavor::$variant(_) => $scheme,)* }
            }
        }

        impl SenderFlavor {
            fn scheme(&self) -> Scheme {
                match self { $(SenderFlavor::$variant(_) => $scheme,)* }
            }
        }

        impl ReceiverFlavor {
            fn scheme(&self) -> Scheme {
                match self { $(ReceiverFlavor::$variant(_) => $scheme,)* }
            }
        }

        impl ListenerFlavor {
            fn scheme(&self) -> Scheme {
                match self { $(ListenerFlavor::$variant(_) => $scheme,)* }
            }
        }

        impl Deref for AnyLoan<'_> {
            type Target = [u8];

            #[inline]
            fn deref(&self) -> &[u8] {
                match &self.flavor { $(LoanFlavor::$variant(l) => l,)* }
            }
        }

        impl DerefMut for AnyLoan<'_> {
            #[inline]
            fn deref_mut(&mut self) -> &mut [u8] {
                match &mut self.flavor { $(LoanFlavor::$variant(l) => l,)* }
            }
        }

        // SAFETY: the flavor is fixed when the loan is made, and each
        // backend's loan keeps `Commit`'s contract: every deref gives that
        // loan's bytes, whose address and length it keeps fixed, and only
        // `deref_mut` writes them.
        unsafe impl Commit for AnyLoan<'_> {
            #[inline]
            fn commit(self) -> Result<()> {
                match self.flavor { $(LoanFlavor::$variant(l) => Commit::commit(l),)* }
            }

            #[inline]
            fn is_in_place(&self) -> bool {
                match &self.flavor { $(LoanFlavor::$variant(l) => Commit::is_in_place(l),)* }
            }
        }

        impl Deref for AnyInPlace<'_> {
            type Target = [u8];

            #[inline]
            fn deref(&self) -> &[u8] {
                match &self.flavor { $(InPlaceFlavor::$variant(m) => m,)* }
            }
        }

        // SAFETY: the flavor is fixed when the message is received, and
        // each backend's receipt keeps `Received`'s contract (fixed address
        // and length; fixed `is_in_place`, true whenever the peer can write
        // the bytes), which this forwards unchanged.
        unsafe impl Received for AnyInPlace<'_> {
            #[inline]
            fn is_in_place(&self) -> bool {
                match &self.flavor { $(InPlaceFlavor::$variant(m) => Received::is_in_place(m),)* }
            }
        }

        /// Listens on `endpoint` with the transport its scheme names.
        ///
        /// # Errors
        /// [`Error::Unsupported`] for a scheme this build lacks; otherwise
        /// the transport's errors.
        pub fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<AnyListener> {
            crate::standalone::refuse_as_connection(endpoint)?;
            match endpoint.scheme() {
                $($scheme => <$t as Transport>::listen(endpoint, schema)
                    .map(|l| AnyListener { flavor: ListenerFlavor::$variant(l) }),)*
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
            crate::standalone::refuse_as_connection(endpoint)?;
            match endpoint.scheme() {
                $($scheme => <$t as Transport>::connect(endpoint, schema)
                    .map(|c| AnyChannel { flavor: ChannelFlavor::$variant(c) }),)*
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
    if !scheme.is_channel() {
        return Error::Unsupported {
            scheme,
            reason: format!(
                "{scheme}: names a semaphore, not a channel; open it with ipcx::sync::Semaphore::create or ::open"
            ),
        };
    }
    if scheme == Scheme::Nats {
        return Error::Unsupported {
            scheme,
            reason: "this build of ipcx has no nats:// transport: enable the `nats` feature of ipcx (cargo add ipcx --features nats)".into(),
        };
    }
    let have: Vec<&str> = SUPPORTED.iter().map(|s| s.as_str()).collect();
    Error::Unsupported {
        scheme,
        reason: format!(
            "this version of ipcx does not implement the {scheme} transport yet; available: {}",
            have.join(", ")
        ),
    }
}

/// A connected channel of any transport, made by [`connect`] or
/// [`AnyListener`]'s `accept`.
pub struct AnyChannel {
    flavor: ChannelFlavor,
}

/// The sending half of an [`AnyChannel`].
pub struct AnySender {
    flavor: SenderFlavor,
}

/// The receiving half of an [`AnyChannel`].
pub struct AnyReceiver {
    flavor: ReceiverFlavor,
}

/// A listener of any transport, made by [`listen`].
pub struct AnyListener {
    flavor: ListenerFlavor,
}

// Debug shows the transport's own value, as `Unix(Duplex { .. })`.
impl fmt::Debug for AnyChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.flavor.fmt(f)
    }
}

impl fmt::Debug for AnySender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.flavor.fmt(f)
    }
}

impl fmt::Debug for AnyReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.flavor.fmt(f)
    }
}

impl fmt::Debug for AnyListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.flavor.fmt(f)
    }
}

/// A message being written in place, from [`AnySender::loan`] or
/// [`AnyChannel::loan`]: a writable `[u8]` of the length asked for, sent by
/// [`commit`](Self::commit); dropping it sends nothing.
///
/// On `shm:` and `sysv-shm:` the bytes are the ring slot itself (no copy);
/// on every other transport they are a buffer that `commit` sends with one
/// copy. The initial contents are unspecified.
pub struct AnyLoan<'a> {
    flavor: LoanFlavor<'a>,
}

impl AnyLoan<'_> {
    /// Publishes the message.
    ///
    /// # Errors
    /// On shared memory never (room was reserved by the loan). On other
    /// transports the send's errors: [`Error::Disconnected`], and the
    /// loan's deadline ([`Error::Timeout`], [`Error::WouldBlock`]) while
    /// waiting for room; nothing is sent on error.
    #[inline]
    pub fn commit(self) -> Result<()> {
        Commit::commit(self)
    }

    /// Publishes the message (same as [`commit`](Self::commit)).
    ///
    /// # Errors
    /// As [`commit`](Self::commit).
    #[inline]
    pub fn send(self) -> Result<()> {
        Commit::commit(self)
    }

    /// Whether the bytes lie in shared memory (no copy on commit).
    #[inline]
    pub fn is_in_place(&self) -> bool {
        Commit::is_in_place(self)
    }
}

impl fmt::Debug for AnyLoan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.flavor.fmt(f)
    }
}

/// A received message, from [`AnyReceiver::recv_in_place`] or
/// [`AnyChannel::recv_in_place`]: derefs to its bytes; on shared memory the
/// space in the ring is released when it drops.
///
/// On `shm:` and `sysv-shm:` the bytes lie inside the segment when the
/// message lies there in one piece (always for a message sent with a loan);
/// elsewhere they are a buffer the message was received into (one copy).
/// Shared memory is the peer's memory too: validate what you decode.
pub struct AnyInPlace<'a> {
    flavor: InPlaceFlavor<'a>,
}

impl AnyInPlace<'_> {
    /// Whether the bytes are read in place in shared memory (not copied).
    #[inline]
    pub fn is_in_place(&self) -> bool {
        Received::is_in_place(self)
    }
}

impl fmt::Debug for AnyInPlace<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.flavor.fmt(f)
    }
}

impl AnySender {
    /// A handle that closes this half's connection from any thread: a
    /// waiting call wakes with [`Error::Closed`] (see
    /// [`ChannelCloser`](crate::ChannelCloser) for the transports where
    /// an already blocked call waits for its next wake-up).
    pub fn closer(&self) -> crate::ChannelCloser {
        crate::aio::Pollable::link(self).closer()
    }

    /// A writable slice of `len` bytes to fill and [`commit`](AnyLoan::commit);
    /// dropping the loan sends nothing. On `shm:`/`sysv-shm:` it is the
    /// ring slot and the call waits for room; elsewhere it is a reused
    /// buffer that `commit` sends with one copy (waiting for room then).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above `max_message_size` (on shared
    /// memory also above half the ring), before anything moves;
    /// [`Error::Disconnected`].
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<AnyLoan<'_>> {
        LoanSender::loan_until(self, len, Deadline::Never)
    }

    /// As [`loan`](Self::loan), waiting at most until `deadline` for room
    /// (on other transports the deadline applies to `commit`).
    ///
    /// # Errors
    /// As [`loan`](Self::loan); [`Error::Timeout`] or [`Error::WouldBlock`]
    /// at the deadline.
    #[inline]
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
        LoanSender::loan_until(self, len, deadline)
    }

    /// Whether loans lie in shared memory (`shm:`, `sysv-shm:`).
    pub fn is_shared_memory(&self) -> bool {
        is_shared_memory(self.scheme())
    }

    /// The transport of this sender.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipc_core::Scheme;
    /// use ipc_core::{Channel, Schema};
    ///
    /// # fn main() -> ipc_core::Result<()> {
    /// let endpoint = "mq:/orders".parse()?;
    /// let (tx, _rx) = ipc_backends::connect(&endpoint, &Schema::bytes())?.split();
    /// assert_eq!(tx.scheme(), Scheme::Mq);
    /// # Ok(()) }
    /// ```
    pub fn scheme(&self) -> Scheme {
        self.flavor.scheme()
    }

    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        match &self.flavor {
            SenderFlavor::Shm(s) | SenderFlavor::SysvShm(s) => Some(s.mapped_range()),
            _ => None,
        }
    }
}

impl AnyReceiver {
    /// A handle that closes this half's connection from any thread: see
    /// [`AnySender::closer`].
    pub fn closer(&self) -> crate::ChannelCloser {
        crate::aio::Pollable::link(self).closer()
    }

    /// On `shm:`/`sysv-shm:`, whether a message can be received now
    /// without taking it (`WouldBlock` when not); `None` elsewhere.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn shm_ready_now(&mut self) -> Option<Result<()>> {
        match &mut self.flavor {
            ReceiverFlavor::Shm(r) | ReceiverFlavor::SysvShm(r) => Some(r.ready_now()),
            _ => None,
        }
    }

    /// The next message, in place inside the segment on
    /// `shm:`/`sysv-shm:` (its ring space is released when the guard
    /// drops), elsewhere in a reused buffer after a normal receive.
    ///
    /// # Errors
    /// As [`Receiver::recv`]: [`Error::Disconnected`], [`Error::Protocol`].
    #[inline]
    pub fn recv_in_place(&mut self) -> Result<AnyInPlace<'_>> {
        InPlaceReceiver::recv_in_place_until(self, Deadline::Never)
    }

    /// As [`recv_in_place`](Self::recv_in_place), waiting at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`recv_in_place`](Self::recv_in_place); [`Error::Timeout`] or
    /// [`Error::WouldBlock`] at the deadline.
    #[inline]
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
        InPlaceReceiver::recv_in_place_until(self, deadline)
    }

    /// The transport of this receiver.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipc_core::Scheme;
    /// use ipc_core::{Channel, Schema};
    ///
    /// # fn main() -> ipc_core::Result<()> {
    /// let endpoint = "shm:/ticks".parse()?;
    /// let (_tx, rx) = ipc_backends::connect(&endpoint, &Schema::bytes())?.split();
    /// assert_eq!(rx.scheme(), Scheme::Shm);
    /// # Ok(()) }
    /// ```
    pub fn scheme(&self) -> Scheme {
        self.flavor.scheme()
    }

    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        match &self.flavor {
            ReceiverFlavor::Shm(r) | ReceiverFlavor::SysvShm(r) => Some(r.mapped_range()),
            _ => None,
        }
    }
}

impl AnyChannel {
    /// A handle that closes this channel (both halves, also after
    /// [`split`](Channel::split)) from any thread or task: a waiting call
    /// wakes with [`Error::Closed`], as does every later one. Make it
    /// before the calls it must interrupt (see
    /// [`ChannelCloser`](crate::ChannelCloser)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipc_core::{Channel, Receiver, Schema};
    ///
    /// # fn main() -> ipc_core::Result<()> {
    /// let ch = ipc_backends::connect(&"shm:/feed".parse()?, &Schema::bytes())?;
    /// let closer = ch.closer();
    /// let (_tx, mut rx) = ch.split();
    /// std::thread::spawn(move || closer.close());
    /// assert!(matches!(rx.recv(), Err(ipc_core::Error::Closed)));
    /// # Ok(()) }
    /// ```
    pub fn closer(&self) -> crate::ChannelCloser {
        self.flavor.link().closer()
    }

    /// See [`AnySender::loan`].
    ///
    /// # Errors
    /// As [`AnySender::loan`].
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<AnyLoan<'_>> {
        LoanSender::loan_until(self, len, Deadline::Never)
    }

    /// See [`AnySender::loan_until`].
    ///
    /// # Errors
    /// As [`AnySender::loan_until`].
    #[inline]
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<AnyLoan<'_>> {
        LoanSender::loan_until(self, len, deadline)
    }

    /// See [`AnyReceiver::recv_in_place`].
    ///
    /// # Errors
    /// As [`AnyReceiver::recv_in_place`].
    #[inline]
    pub fn recv_in_place(&mut self) -> Result<AnyInPlace<'_>> {
        InPlaceReceiver::recv_in_place_until(self, Deadline::Never)
    }

    /// See [`AnyReceiver::recv_in_place_until`].
    ///
    /// # Errors
    /// As [`AnyReceiver::recv_in_place_until`].
    #[inline]
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<AnyInPlace<'_>> {
        InPlaceReceiver::recv_in_place_until(self, deadline)
    }

    /// Whether loans and in-place messages lie in shared memory (`shm:`,
    /// `sysv-shm:`).
    pub fn is_shared_memory(&self) -> bool {
        is_shared_memory(self.scheme())
    }

    /// The transport of this channel (the scheme of the endpoint it was
    /// opened with).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipc_core::Scheme;
    /// use ipc_core::Schema;
    ///
    /// # fn main() -> ipc_core::Result<()> {
    /// let endpoint = "unix:/tmp/orders.sock".parse()?;
    /// let channel = ipc_backends::connect(&endpoint, &Schema::bytes())?;
    /// assert_eq!(channel.scheme(), Scheme::Unix);
    /// # Ok(()) }
    /// ```
    pub fn scheme(&self) -> Scheme {
        self.flavor.scheme()
    }

    /// The shared-memory channel inside, on `shm:` and `sysv-shm:`; the
    /// channel itself back otherwise. For code that drives
    /// [`ShmSender`](crate::shm::ShmSender) and
    /// [`ShmReceiver`](crate::shm::ShmReceiver) directly.
    ///
    /// # Errors
    /// The channel, unchanged, when it is of another transport.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipc_core::{Channel, Schema};
    ///
    /// # fn main() -> ipc_core::Result<()> {
    /// let endpoint = "shm:/ticks".parse()?;
    /// let channel = ipc_backends::connect(&endpoint, &Schema::bytes())?;
    /// let Ok(shm) = channel.into_shm() else {
    ///     panic!("shm: gives a shared-memory channel");
    /// };
    /// let (mut tx, _rx) = shm.split();
    /// let mut loan = tx.loan(4)?; // ring space, no copy
    /// loan.copy_from_slice(b"tick");
    /// loan.commit();
    /// # Ok(()) }
    /// ```
    #[expect(
        clippy::result_large_err,
        reason = "the error is the channel itself, handed back"
    )]
    pub fn into_shm(self) -> std::result::Result<ShmChannel, AnyChannel> {
        match self.flavor {
            ChannelFlavor::Shm(c) | ChannelFlavor::SysvShm(c) => Ok(c),
            flavor => Err(AnyChannel { flavor }),
        }
    }

    /// The channel of a `pipe:` pair set up by hand
    /// ([`pipe::Pair`](crate::pipe::Pair)), as an `AnyChannel`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipc_backends::{AnyChannel, pipe::Pair};
    /// use ipc_core::Scheme;
    /// use ipc_core::Schema;
    ///
    /// # fn main() -> ipc_core::Result<()> {
    /// let endpoint = "pipe:".parse()?;
    /// let pair = Pair::new()?;
    /// let mut command = std::process::Command::new("child");
    /// pair.prepare(&mut command);
    /// let _child = command.spawn().expect("spawn");
    /// let channel = AnyChannel::from_pipe(pair.into_parent(&endpoint, &Schema::bytes())?);
    /// assert_eq!(channel.scheme(), Scheme::Pipe);
    /// # Ok(()) }
    /// ```
    pub fn from_pipe(channel: PipeChannel) -> AnyChannel {
        AnyChannel {
            flavor: ChannelFlavor::Pipe(channel),
        }
    }

    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        match &self.flavor {
            ChannelFlavor::Shm(c) | ChannelFlavor::SysvShm(c) => Some(c.mapped_range()),
            _ => None,
        }
    }
}

impl AnyListener {
    /// The transport of this listener.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipc_core::Scheme;
    /// use ipc_core::Schema;
    ///
    /// # fn main() -> ipc_core::Result<()> {
    /// let endpoint = "sysv-mq:/var/run/orders".parse()?;
    /// let listener = ipc_backends::listen(&endpoint, &Schema::bytes())?;
    /// assert_eq!(listener.scheme(), Scheme::SysvMq);
    /// # Ok(()) }
    /// ```
    pub fn scheme(&self) -> Scheme {
        self.flavor.scheme()
    }
}

fn is_shared_memory(scheme: Scheme) -> bool {
    matches!(scheme, Scheme::Shm | Scheme::SysvShm)
}

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
//! struct Order { id: u64, item: String }
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug)]
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
//! # In place
//!
//! For zero-copy types, [`TypedSender::loan`] gives a [`Loan`] to fill and
//! send, and [`TypedReceiver::recv_sample`] a [`Sample`] that derefs to the
//! validated value (also on [`TypedChannel`]). On `shm:`/`sysv-shm:` both
//! lie inside the segment, no copy at all, for types aligned to at most 8
//! bytes (the alignment of every ring record; others are copied once); on
//! every other transport the same code moves the bytes with one copy.
//!
//! ```no_run
//! use ipcx::IpcMessage;
//!
//! #[derive(IpcMessage, Clone, Copy, Debug)]
//! #[ipc(zero_copy)]
//! #[repr(C)]
//! struct Tick { price: f64, qty: u32, side: u8, _pad: [u8; 3] }
//!
//! # fn main() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "shm:/ticks".parse()?;
//! let (mut tx, mut rx) = ipcx::typed::connect::<Tick, Tick>(&endpoint)?.split();
//! let mut loan = tx.loan()?;
//! loan.write(Tick { price: 1.5, qty: 10, side: 0, _pad: [0; 3] });
//! loan.send()?;
//! let tick = rx.recv_sample()?; // &Tick inside the segment
//! println!("{}", tick.price);
//! # Ok(()) }
//! ```
//!
//! # Errors on receive
//!
//! A message that does not decode is [`Error::Decode`] naming the type; it
//! has been consumed and the channel stays usable (every transport keeps
//! message boundaries, so the next message is intact).

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut, Range};
use std::process::{Child, Command};
use std::time::Duration;

use ipc_backends::{AnyInPlace, AnyLoan, InPlaceReceiver, LoanSender};
use ipc_core::{
    Channel, Deadline, Endpoint, Error, IpcMessage, Listener, PeerInfo, Receiver, Result, Schema,
    Sender, ZeroCopy,
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

    /// How many connection attempts failed before they were established;
    /// see [`Listener::refused`].
    pub fn refused(&self) -> u64 {
        self.listener.refused()
    }

    /// The underlying byte listener.
    pub fn into_inner(self) -> L {
        self.listener
    }
}

// ---------------------------------------------------------------------------
// Zero-copy types in place

/// Whether `bytes` can be viewed as a `T` where they lie.
fn aligned_for<T>(ptr: *const u8) -> bool {
    ptr.align_offset(align_of::<T>()) == 0
}

/// Checks that `bytes` is a valid `T`, naming `T::NAME` in the error.
fn validate<T: IpcMessage + ZeroCopy>(bytes: &[u8]) -> Result<()> {
    let () = T::LAYOUT_CHECK;
    if bytes.len() != size_of::<T>() {
        return Err(Error::Decode {
            type_name: T::NAME,
            reason: format!(
                "expected exactly {} bytes, got {}",
                size_of::<T>(),
                bytes.len()
            ),
        });
    }
    T::validate(bytes).map_err(|e| match e {
        Error::Decode { type_name, reason } if type_name != T::NAME => Error::Decode {
            type_name: T::NAME,
            reason: format!("{type_name}: {reason}"),
        },
        other => other,
    })
}

#[derive(Debug)]
enum LoanSlot<'a, T> {
    /// The loaned bytes are aligned for `T`: the value is written there.
    Direct(AnyLoan<'a>),
    /// They are not: the value is kept here and copied in on send.
    Local(AnyLoan<'a>, MaybeUninit<T>),
}

/// A `T` being written in place; from [`TypedSender::loan`] or
/// [`TypedChannel::loan`].
///
/// Derefs to [`MaybeUninit<T>`]: fill it (`loan.write(value)`, or field by
/// field through [`as_mut_ptr`](MaybeUninit::as_mut_ptr)), then
/// [`send`](Self::send). The bytes start zeroed, so fields left unwritten
/// are sent as zeros (the receiver rejects them if zero is not a valid
/// value). Dropping the loan sends nothing.
///
/// On `shm:`/`sysv-shm:` the value lies in the ring slot the receiver
/// reads ([`is_in_place`](Self::is_in_place)) when `align_of::<T>()` is at
/// most 8, the alignment of every ring record; types aligned more, and
/// every other transport, move with one copy.
#[derive(Debug)]
pub struct Loan<'a, T> {
    slot: LoanSlot<'a, T>,
}

impl<'a, T: IpcMessage + ZeroCopy> Loan<'a, T> {
    fn new(mut loan: AnyLoan<'a>) -> Self {
        let () = T::LAYOUT_CHECK;
        loan.fill(0);
        if aligned_for::<T>(loan.as_ptr()) {
            Loan {
                slot: LoanSlot::Direct(loan),
            }
        } else {
            Loan {
                slot: LoanSlot::Local(loan, MaybeUninit::zeroed()),
            }
        }
    }

    /// Sends the value.
    ///
    /// # Errors
    /// As [`AnyLoan::commit`]: on shared memory never; on other transports
    /// [`Error::Disconnected`] or the loan's deadline.
    pub fn send(self) -> Result<()> {
        match self.slot {
            LoanSlot::Direct(loan) => loan.commit(),
            LoanSlot::Local(mut loan, value) => {
                // SAFETY:
                // - `value.as_ptr()` is valid for reads of `size_of::<T>()`
                //   bytes: it points at a `MaybeUninit<T>` we own;
                // - every byte is initialised: the value started zeroed and
                //   safe code can only write whole fields or a whole `T`,
                //   and `T: ZeroCopy` has no padding to de-initialise;
                // - the slice lives only within this block, while `value`
                //   is not written.
                let bytes = unsafe {
                    std::slice::from_raw_parts(value.as_ptr().cast::<u8>(), size_of::<T>())
                };
                loan.copy_from_slice(bytes);
                loan.commit()
            }
        }
    }

    /// Sends the value (same as [`send`](Self::send)).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn commit(self) -> Result<()> {
        self.send()
    }

    /// Whether the value is written inside shared memory, where the
    /// receiver reads it (no copy).
    pub fn is_in_place(&self) -> bool {
        matches!(&self.slot, LoanSlot::Direct(loan) if loan.is_in_place())
    }
}

impl<T> Deref for Loan<'_, T> {
    type Target = MaybeUninit<T>;

    fn deref(&self) -> &MaybeUninit<T> {
        match &self.slot {
            // SAFETY:
            // - the loan holds exactly `size_of::<T>()` bytes (made by
            //   `loan_until` with that length), valid while it lives;
            // - the address is aligned for `T` (checked in `new`);
            // - `MaybeUninit<T>` accepts any bytes;
            // - the reference borrows `self`, so the loan outlives it.
            LoanSlot::Direct(loan) => unsafe { &*loan.as_ptr().cast::<MaybeUninit<T>>() },
            LoanSlot::Local(_, value) => value,
        }
    }
}

impl<T> DerefMut for Loan<'_, T> {
    fn deref_mut(&mut self) -> &mut MaybeUninit<T> {
        match &mut self.slot {
            // SAFETY: as in `deref`; `&mut self` makes this the only
            // reference to the loaned bytes.
            LoanSlot::Direct(loan) => unsafe { &mut *loan.as_mut_ptr().cast::<MaybeUninit<T>>() },
            LoanSlot::Local(_, value) => value,
        }
    }
}

#[derive(Debug)]
enum SampleSlot<'a, T> {
    /// Validated and aligned, viewed where it lies.
    Direct(AnyInPlace<'a>, PhantomData<&'a T>),
    /// Not aligned for `T`: validated and copied out.
    Copied(T),
}

/// A received `T`, from [`TypedReceiver::recv_sample`] or
/// [`TypedChannel::recv_sample`]: derefs to `&T`, validated.
///
/// On `shm:`/`sysv-shm:` the `T` lies inside the segment
/// ([`is_in_place`](Self::is_in_place)) and its ring space is released when
/// the sample drops; on other transports it lies in the buffer the message
/// was received into (one copy). A `T` aligned to more than 8 bytes is
/// copied out once.
#[derive(Debug)]
pub struct Sample<'a, T> {
    slot: SampleSlot<'a, T>,
}

impl<'a, T: IpcMessage + ZeroCopy> Sample<'a, T> {
    fn new(msg: AnyInPlace<'a>) -> Result<Self> {
        // In shared memory the peer can still write: only a type for which
        // any bytes are a valid value may be referenced there. Other bytes
        // (a private buffer) cannot change under us.
        let stable = T::EVERY_BIT_PATTERN_VALID || !msg.is_in_place();
        if stable && aligned_for::<T>(msg.as_ptr()) {
            validate::<T>(&msg)?;
            return Ok(Sample {
                slot: SampleSlot::Direct(msg, PhantomData),
            });
        }
        // Copy first, then validate the copy: what is checked is what is kept.
        let value = {
            let () = T::LAYOUT_CHECK;
            if msg.len() != size_of::<T>() {
                return Err(validate::<T>(&msg).err().unwrap_or_else(|| Error::Decode {
                    type_name: T::NAME,
                    reason: format!("expected {} bytes, got {}", size_of::<T>(), msg.len()),
                }));
            }
            let mut copy = MaybeUninit::<T>::uninit();
            // SAFETY: `msg` holds exactly `size_of::<T>()` readable bytes
            // (checked above), `copy` has room for as many, the regions are
            // distinct (one is a local) and byte copies need no alignment.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    msg.as_ptr(),
                    copy.as_mut_ptr().cast::<u8>(),
                    size_of::<T>(),
                );
            }
            // SAFETY: all `size_of::<T>()` bytes of `copy` were just written,
            // so viewing them as initialised bytes is sound.
            let bytes =
                unsafe { std::slice::from_raw_parts(copy.as_ptr().cast::<u8>(), size_of::<T>()) };
            validate::<T>(bytes)?;
            // SAFETY: the bytes are a valid `T`: `T::validate` accepted this
            // very copy, which the `ZeroCopy` contract makes sufficient, and
            // no one else can write to a local.
            unsafe { copy.assume_init() }
        };
        Ok(Sample {
            slot: SampleSlot::Copied(value),
        })
    }

    /// Whether the value is read inside shared memory (not copied).
    pub fn is_in_place(&self) -> bool {
        matches!(&self.slot, SampleSlot::Direct(msg, _) if msg.is_in_place())
    }
}

impl<T> Deref for Sample<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.slot {
            // SAFETY:
            // - the bytes are exactly `size_of::<T>()` long and a valid `T`
            //   (`validate` in `new`), and aligned for `T` (checked there);
            // - they stay unreleased while `msg` lives, which the
            //   reference's borrow of `self` ensures; in shared memory the
            //   slot is direct only when `T::EVERY_BIT_PATTERN_VALID`, so
            //   even a peer that breaks the ring protocol and rewrites the
            //   bytes cannot make them an invalid `T` (see `Sample::new`).
            SampleSlot::Direct(msg, _) => unsafe { &*msg.as_ptr().cast::<T>() },
            SampleSlot::Copied(value) => value,
        }
    }
}

fn loan_message<'a, S: LoanSender, T: IpcMessage + ZeroCopy>(
    sender: &'a mut S,
    deadline: Deadline,
) -> Result<Loan<'a, T>> {
    sender.loan_until(size_of::<T>(), deadline).map(Loan::new)
}

fn recv_sample<'a, R: InPlaceReceiver, T: IpcMessage + ZeroCopy>(
    receiver: &'a mut R,
    deadline: Deadline,
) -> Result<Sample<'a, T>> {
    Sample::new(receiver.recv_in_place_until(deadline)?)
}

impl<Out, In, C> TypedChannel<Out, In, C>
where
    Out: IpcMessage + ZeroCopy,
    In: IpcMessage,
    C: Channel + LoanSender,
{
    /// A `T` to fill in place and [`send`](Loan::send): inside the ring
    /// slot on `shm:`/`sysv-shm:`, one copy elsewhere. Waits for room.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when `Out` exceeds the connection's
    /// limit; [`Error::Disconnected`].
    pub fn loan(&mut self) -> Result<Loan<'_, Out>> {
        self.loan_until(Deadline::Never)
    }

    /// As [`loan`](Self::loan), waiting at most until `deadline` for room
    /// (on transports other than shared memory, when sending).
    ///
    /// # Errors
    /// As [`loan`](Self::loan); [`Error::Timeout`] or [`Error::WouldBlock`].
    pub fn loan_until(&mut self, deadline: Deadline) -> Result<Loan<'_, Out>> {
        loan_message(&mut self.channel, deadline)
    }
}

impl<Out, In, C> TypedChannel<Out, In, C>
where
    Out: IpcMessage,
    In: IpcMessage + ZeroCopy,
    C: Channel + InPlaceReceiver,
{
    /// The next message as a [`Sample`] that derefs to `&In`: inside the
    /// segment on `shm:`/`sysv-shm:`, one copy elsewhere.
    ///
    /// # Errors
    /// [`Error::Decode`] naming `In` for a wrong length or an invalid bit
    /// pattern (the message is consumed; the channel stays usable);
    /// otherwise as [`recv`](Self::recv).
    pub fn recv_sample(&mut self) -> Result<Sample<'_, In>> {
        self.recv_sample_until(Deadline::Never)
    }

    /// As [`recv_sample`](Self::recv_sample), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_sample`](Self::recv_sample); [`Error::Timeout`].
    pub fn recv_sample_timeout(&mut self, timeout: Duration) -> Result<Sample<'_, In>> {
        self.recv_sample_until(Deadline::after(timeout))
    }

    /// As [`recv_sample`](Self::recv_sample), waiting at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`recv_sample`](Self::recv_sample).
    pub fn recv_sample_until(&mut self, deadline: Deadline) -> Result<Sample<'_, In>> {
        recv_sample(&mut self.channel, deadline)
    }
}

impl<Out: IpcMessage, In: IpcMessage> TypedChannel<Out, In, AnyChannel> {
    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        self.channel.mapped_range()
    }
}

impl<Out: IpcMessage + ZeroCopy, S: LoanSender> TypedSender<Out, S> {
    /// See [`TypedChannel::loan`].
    ///
    /// # Errors
    /// As [`TypedChannel::loan`].
    pub fn loan(&mut self) -> Result<Loan<'_, Out>> {
        self.loan_until(Deadline::Never)
    }

    /// See [`TypedChannel::loan_until`].
    ///
    /// # Errors
    /// As [`TypedChannel::loan_until`].
    pub fn loan_until(&mut self, deadline: Deadline) -> Result<Loan<'_, Out>> {
        loan_message(&mut self.sender, deadline)
    }
}

impl<In: IpcMessage + ZeroCopy, R: InPlaceReceiver> TypedReceiver<In, R> {
    /// See [`TypedChannel::recv_sample`].
    ///
    /// # Errors
    /// As [`TypedChannel::recv_sample`].
    pub fn recv_sample(&mut self) -> Result<Sample<'_, In>> {
        self.recv_sample_until(Deadline::Never)
    }

    /// See [`TypedChannel::recv_sample_timeout`].
    ///
    /// # Errors
    /// As [`TypedChannel::recv_sample_timeout`].
    pub fn recv_sample_timeout(&mut self, timeout: Duration) -> Result<Sample<'_, In>> {
        self.recv_sample_until(Deadline::after(timeout))
    }

    /// See [`TypedChannel::recv_sample_until`].
    ///
    /// # Errors
    /// As [`TypedChannel::recv_sample_until`].
    pub fn recv_sample_until(&mut self, deadline: Deadline) -> Result<Sample<'_, In>> {
        recv_sample(&mut self.receiver, deadline)
    }
}

impl<In: IpcMessage> TypedReceiver<In, AnyReceiver> {
    /// The addresses of the shared-memory segment, on `shm:`/`sysv-shm:`.
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Option<Range<usize>> {
        self.receiver.mapped_range()
    }
}

//! Typed channels: send and receive [`IpcMessage`] values instead of bytes.
//!
//! The types live in [`ipc_core::typed`] (they do no I/O, so a library
//! depending on `ipc-core` alone has them, over any transport); this module
//! re-exports them with the run-time choice of transport ([`AnyChannel`])
//! as the default, and opens them from an endpoint.
//!
//! [`connect`] and [`listen`] (also at the crate root as
//! [`connect_typed`](crate::connect_typed) and
//! [`listen_typed`](crate::listen_typed)) announce the types in the
//! handshake, `Schema::new(Out::type_tag(), In::type_tag())`, so peers that
//! disagree on a type refuse each other at connect, on both sides, with
//! [`Error::SchemaMismatch`](crate::Error::SchemaMismatch) naming both
//! types and their fingerprints — never garbage later.
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
//! A message that does not decode is [`Error::Decode`](crate::Error::Decode)
//! naming the type; it has been consumed and the channel stays usable
//! (every transport keeps message boundaries, so the next message is
//! intact).
//!
//! # Over a chosen transport
//!
//! The third parameter is any [`Channel`](crate::Channel): a concrete
//! transport's channel works as well, and in-place calls work on every one
//! whose halves lend ([`LoanSender`](crate::LoanSender),
//! [`InPlaceReceiver`](crate::InPlaceReceiver); every backend's do).
//!
//! ```no_run
//! use ipcx::backends::shm::{Shm, ShmChannel};
//! use ipcx::typed::{TypedChannel, schema};
//! use ipcx::{IpcMessage, Transport};
//!
//! #[derive(IpcMessage, Clone, Copy)]
//! #[ipc(zero_copy)]
//! #[repr(C)]
//! struct Tick { price: f64, qty: u64 }
//!
//! # fn main() -> ipcx::Result<()> {
//! let endpoint = "shm:/ticks".parse()?;
//! let channel = Shm::connect(&endpoint, &schema::<Tick, Tick>())?;
//! let mut ch: TypedChannel<Tick, Tick, ShmChannel> = TypedChannel::new(channel);
//! let mut loan = ch.loan()?; // in the ring: ShmChannel lends natively
//! loan.write(Tick { price: 1.5, qty: 10 });
//! loan.send()?;
//! # Ok(()) }
//! ```

use std::process::{Child, Command};

use ipc_backends::{AnyInPlace, AnyLoan};
use ipc_core::{Endpoint, IpcMessage, Result};

use crate::{AnyChannel, AnyListener, AnyReceiver, AnySender};

pub use ipc_core::typed::schema;

/// A connected channel that sends `Out` and receives `In`, over any
/// transport's channel `C`, by default the run-time choice [`AnyChannel`];
/// see [`ipc_core::typed::TypedChannel`].
pub type TypedChannel<Out, In, C = AnyChannel> = ipc_core::typed::TypedChannel<Out, In, C>;

/// The sending half of a [`TypedChannel`]; see
/// [`ipc_core::typed::TypedSender`].
pub type TypedSender<Out, S = AnySender> = ipc_core::typed::TypedSender<Out, S>;

/// The receiving half of a [`TypedChannel`]; see
/// [`ipc_core::typed::TypedReceiver`].
pub type TypedReceiver<In, R = AnyReceiver> = ipc_core::typed::TypedReceiver<In, R>;

/// Accepts [`TypedChannel`]s; made by [`listen`]. See
/// [`ipc_core::typed::TypedListener`].
pub type TypedListener<Out, In, L = AnyListener> = ipc_core::typed::TypedListener<Out, In, L>;

/// A `T` being written in place, by default in an [`AnyLoan`]; see
/// [`ipc_core::typed::Loan`].
pub type Loan<'a, T, L = AnyLoan<'a>> = ipc_core::typed::Loan<T, L>;

/// A received `T`, by default in an [`AnyInPlace`]; see
/// [`ipc_core::typed::Sample`].
pub type Sample<'a, T, M = AnyInPlace<'a>> = ipc_core::typed::Sample<T, M>;

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

//! Transport-independent core of ipcx: endpoints, the transport traits and
//! their contract, loans and in-place receipts ([`loan`]), errors, the
//! connection handshake, the message trait and typed channels ([`typed`]).
//!
//! A library that only needs to be generic over transports depends on this
//! crate alone, typed channels included; the binary picks the transports
//! (through `ipcx`).
//!
//! This crate makes no system calls.

#![deny(unsafe_op_in_unsafe_fn)]

// Lets the derive's default `::ipc_core::` paths resolve inside this crate.
extern crate self as ipc_core;

pub mod batch;
pub mod endpoint;
pub mod error;
pub mod handshake;
pub mod loan;
pub mod message;
pub mod transport;
pub mod typed;

pub use batch::Batch;
pub use endpoint::{Endpoint, EndpointError, Options, Scheme, Wait};
pub use error::{Direction, Error, Result};
pub use handshake::{PeerInfo, Schema, TypeTag};
pub use loan::{Commit, InPlaceReceiver, LoanSender, Received};
// `IpcMessage` is both the trait and, with the `derive` feature, its derive.
pub use message::{Encoding, IpcMessage, TypeFingerprint, ZeroCopy};
pub use transport::{Channel, Deadline, Duplex, Listener, Receiver, Sender, Transport};

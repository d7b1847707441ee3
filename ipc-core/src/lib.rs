//! Transport-independent core of ipcx: endpoints, the transport traits and
//! their contract, errors and the connection handshake.
//!
//! A library that only needs to be generic over transports depends on this
//! crate alone; the binary picks the transports (through `ipcx`).
//!
//! This crate makes no system calls.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod endpoint;
pub mod error;
pub mod handshake;
pub mod transport;

pub use endpoint::{Endpoint, EndpointError, Options, Scheme, Wait};
pub use error::{Direction, Error, Result};
pub use handshake::{PeerInfo, Schema, TypeTag};
pub use transport::{Channel, Deadline, Duplex, Listener, Receiver, Sender, Transport};

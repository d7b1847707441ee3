//! The operating-system transports of ipcx.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod fragment;
mod handshake;
pub mod mq;
pub mod registry;
pub mod sys;

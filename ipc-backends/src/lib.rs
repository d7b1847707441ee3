//! The operating-system transports of ipcx.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod registry;
pub mod shm;
pub mod sys;

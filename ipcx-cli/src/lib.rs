//! The library behind the `ipcx` command, so its parts can be tested and
//! benchmarked on their own.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod bench;
pub mod cmd;

//! The operating-system transports of ipcx.
//!
//! Each module implements [`ipc_core::Transport`] for one mechanism, and
//! every channel and half lends in place ([`LoanSender`],
//! [`InPlaceReceiver`]: natively on shared memory, with one copy
//! elsewhere); [`any`] chooses among them at run time from an
//! [`Endpoint`](ipc_core::Endpoint).
//! Every system call lives under `sys` (private); what the `ipcx` command
//! needs of the kernel is public through [`registry`] (the objects ipcx
//! left behind) and [`limits`] (the kernel's limits).
//! Beside the channels: [`sync`] (named semaphores, robust mutexes) and
//! [`shared`] (a zero-copy value in a named segment, read by seqlock).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod aio;
pub mod any;
pub mod conn;
pub mod fifo;
pub mod fragment;
#[doc(hidden)]
pub mod fuzzing;
mod loan;
pub mod mq;
#[cfg(feature = "nats")]
pub mod nats;
pub mod pipe;
mod queue;
pub mod registry;
pub mod shared;
pub mod shm;
pub mod standalone;
pub mod stream;
pub mod sync;
mod sys;
pub mod sysv_mq;
pub mod tcp;
pub mod unix;

pub use any::{
    AnyChannel, AnyInPlace, AnyListener, AnyLoan, AnyReceiver, AnySender, connect, listen,
};
pub use conn::{ChannelCloser, ListenerCloser};
pub use ipc_core::loan::{Commit, InPlaceReceiver, LoanSender, Received};
pub use sys::limits::{Limits, limits};

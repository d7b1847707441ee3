//! The async layer: every transport under tokio, with no thread per
//! operation (`docs/async.md`).
//!
//! An async half wraps the blocking half of the same transport and drives
//! its non-blocking operations (`Deadline::Now`) from the reactor: when one
//! would block, the half waits for a descriptor ([`Source`]) to become
//! ready, and tries again. The blocking code keeps every state machine
//! (partial frames, reassembly, rings), so the async layer adds no framing
//! of its own and the wire is the same: blocking and async peers mix.
//!
//! What each mechanism waits on:
//!
//! | transport | waits on | peer death |
//! |---|---|---|
//! | `unix:`, `tcp://` | the socket (`AsyncFd`) | end of file, `EPIPE` |
//! | `pipe:`, `fifo:` | the pipe end | end of file, `EPIPE` |
//! | `mq:` | the queue descriptor (an `mqd_t` is pollable) | the peer's pidfd |
//! | `shm:`, `sysv-shm:` | its doorbell: an eventfd the peer rings after finding the async wait announced in the ring (`sleeping` = 2) | the rendezvous socket (readable only once the peer is gone) |
//! | `shm:`, `sysv-shm:` with `wait=spin` | an eventfd rung by a thread per half (`bridge.rs`) that spins as asked | the blocking half's own detection |
//! | `sysv-mq:` | an eventfd rung by a thread per half (`bridge.rs`) | the blocking half's own detection |
//!
//! | `nats://` | an eventfd its connection's tasks ring (`nats/conn.rs`) | heartbeats |
//!
//! Loans and in-place receipts (`AsyncSender::loan`,
//! `AsyncReceiver::recv_in_place`) lend the ring itself on shared memory
//! the reactor drives, and a buffer kept by the half (one copy) elsewhere.
//!
//! `Pollable` is what a blocking half tells the async layer; it is
//! implemented by every half whether or not the `tokio` feature is on.

use std::os::fd::BorrowedFd;

use ipc_core::Result;

use crate::conn::link::Link;
#[doc(hidden)]
pub use crate::sys::fd::Interest;

#[cfg(feature = "tokio")]
pub(crate) mod bridge;
#[cfg(feature = "tokio")]
mod channel;
#[cfg(feature = "tokio")]
mod driven;
#[cfg(feature = "tokio")]
mod listener;
#[cfg(feature = "tokio")]
pub mod queue;

#[cfg(feature = "tokio")]
pub use channel::{
    AsyncChannel, AsyncInPlace, AsyncLoan, AsyncReceiver, AsyncSender, ChannelCloser, connect,
};
#[cfg(feature = "tokio")]
pub use listener::{AsyncListener, listen};

/// What a half waits on when its operation would block (the async
/// layer's; public only because queue kernels name it).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Becomes ready (for `interest`) when the operation may succeed.
    pub fd: BorrowedFd<'a>,
    /// Which readiness of `fd`.
    pub interest: Interest,
    /// `fd` is an eventfd that counts wake-ups: read it empty after one.
    pub doorbell: bool,
    /// Becomes readable when the peer process is gone, where `fd` does not
    /// tell by itself (a pidfd beside a message queue).
    pub death: Option<BorrowedFd<'a>>,
}

/// What the async layer needs of a blocking half.
#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
pub(crate) trait Pollable {
    /// What to wait on; `None` when the kernel object cannot be polled
    /// (System V), and the half is served by a [`bridge`] thread instead.
    fn source(&self) -> Option<Source<'_>>;

    /// Announces, before a last look and a wait on [`source`](Self::source),
    /// that this side waits asynchronously (the peer must ring the
    /// doorbell rather than only a futex). Called only when the source is
    /// a doorbell ([`Source::doorbell`]); a half waiting on its own
    /// descriptor is woken by the kernel and never armed.
    fn arm(&self) {}

    /// Withdraws [`arm`](Self::arm).
    fn disarm(&self) {}

    /// The half is now driven by the async layer, every operation with
    /// `Deadline::Now`: it must never wait inside one (shared memory then
    /// keeps a message larger than its ring half-done rather than wait
    /// for the peer between chunks).
    fn enter_async(&mut self) {}

    /// Writes what a send committed but could not finish without waiting;
    /// [`Error::WouldBlock`](ipc_core::Error::WouldBlock) while some remains.
    ///
    /// # Errors
    /// `WouldBlock` while bytes remain; `Disconnected` when the peer is gone.
    fn flush_now(&mut self) -> Result<()> {
        Ok(())
    }

    /// The connection's shared "gone" state.
    fn link(&self) -> &Link;

    /// What wakes a receive blocked in the kernel for good (the half is
    /// being dropped), where one exists: a bridge thread then blocks
    /// without a timeout instead of looking at its async side now and then.
    fn unblocker(&self) -> Option<Unblock> {
        None
    }

    /// Whether dropping the half may wait (to deliver the tail of a
    /// committed message, or an end-of-stream marker, to a peer that is
    /// slow to read): an async half then drops it on tokio's blocking pool
    /// rather than on a reactor thread.
    fn drop_may_wait(&self) -> bool {
        false
    }
}

/// Wakes a blocked receive for good (see [`Pollable::unblocker`]).
#[doc(hidden)]
pub type Unblock = Box<dyn Fn() + Send + Sync>;

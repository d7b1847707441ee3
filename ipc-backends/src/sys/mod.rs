//! The operating-system layer: every libc and nix call of ipcx lives below
//! this module, so the transport modules read like their protocols.
//!
//! What each part provides:
//!
//! - [`event`]: an eventfd one thread signals and another polls.
//! - [`epoll`]: an epoll set, for one thread that waits on many
//!   descriptors.
//! - [`fd`]: waiting on descriptors with a [`Deadline`](ipc_core::Deadline),
//!   reads and writes that map `EINTR`, `EAGAIN`, `EPIPE` and EOF onto the
//!   contract's errors.
//! - [`process`]: the calling process's ids, whether a peer process lives,
//!   its start time (to tell a reused pid from the original), and pidfds
//!   that become readable when a process exits.
//! - [`futex`]: sleeping on and waking a word in shared memory.
//! - [`shm`]: POSIX shared memory objects and shared mappings.
//! - [`sysv_shm`]: System V segments; removing a semaphore set by id.
//! - [`scm`]: passing a descriptor over a Unix socket.
//! - [`pipe`]: anonymous pipes and FIFOs, non-blocking reads and writes,
//!   descriptors inherited by a child.
//! - [`mqueue`]: POSIX message queues (pollable descriptors) and their limits.
//! - [`sysv_msg`]: System V message queues as handles that remove what they
//!   own (not pollable; removal wakes blocked callers).
//! - [`limits`]: kernel limits read from `/proc` (and [`limits::Limits`],
//!   public at the crate root).
//! - [`sem`]: POSIX named semaphores; [`sysv_sem`]: System V semaphores
//!   found by `ftok` key, with `SEM_UNDO`.
//! - [`named_shm`]: named segments that persist (POSIX by name, System V
//!   by key); [`robust_mutex`]: a robust process-shared pthread mutex in
//!   one; [`clock`]: `CLOCK_REALTIME` deadlines for the timed waits.
//! - [`socket`]: Unix and TCP stream sockets: bind with permissions, peer
//!   credentials, `TCP_NODELAY`, send/recv with per-call flags.
//! - [`vectored`]: many slices in one `writev`/`sendmsg` (batches of frames).
//!
//! This module is private to the crate: what the `ipcx` command needs of
//! the kernel goes through [`registry`](crate::registry) and
//! [`limits`](crate::limits).
//!
//! Errors are mapped once. Every return code goes through
//! [`Errno::result`](nix::errno::Errno::result) (or a safe nix wrapper,
//! which does the same), never a hand-written `== -1`; every function here
//! returns [`std::io::Result`] (or an `io::Error` beside the failing
//! call's name), except `sem`, `sysv_sem` and `named_shm`, whose callers
//! match on the errno and get a [`nix::Result`], and the transports turn it into [`Error::Io`] carrying
//! the endpoint and the call's name through [`Context`].

pub mod backoff;
pub mod clock;
pub mod epoll;
pub mod event;
pub mod fd;
pub mod futex;
pub mod limits;
pub mod mqueue;
pub mod named_shm;
pub mod pipe;
pub mod process;
pub mod robust_mutex;
pub mod scm;
pub mod sem;
pub mod shm;
pub mod socket;
pub mod sysv_msg;
pub mod sysv_sem;
pub mod sysv_shm;
pub mod vectored;

use ipc_core::{Error, Result};

/// Attaches "what was being done" to an OS error.
pub trait Context<T> {
    /// Maps the error to [`Error::Io`] with `context()` as its context.
    ///
    /// # Errors
    /// The mapped error.
    fn context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for nix::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e.into()))
    }
}

impl<T> Context<T> for std::io::Result<T> {
    fn context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

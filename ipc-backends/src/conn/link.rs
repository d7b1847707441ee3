//! Once a channel has seen `Disconnected`, every operation on it returns
//! `Disconnected`: its two halves share a [`Link`], which the receiving
//! half marks when it has read everything the peer sent and found the peer
//! gone, and which both halves check before each operation (one relaxed
//! load). A sender's own `Disconnected` (`EPIPE`, a dead peer's pidfd)
//! repeats by itself.
//!
//! A link is also how a connection is closed from another thread
//! ([`ChannelCloser`]): it is marked closed, every operation from then on
//! returns [`Error::Closed`], and a waiting one is woken — through the
//! link's stop eventfd where the wait polls descriptors (streams, POSIX
//! queues), and by a waker the transport registered where it sleeps
//! otherwise (a futex on shared memory, a System V queue's
//! removal).

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use ipc_core::{Error, Result};

use crate::sys::event::Event;

const OPEN: u8 = 0;
/// The peer is gone.
const GONE: u8 = 1;
/// This side closed the connection.
const CLOSED: u8 = 2;

/// What wakes a transport's waiter for a local close.
pub(crate) type Waker = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    state: AtomicU8,
    /// Made by the first [`ChannelCloser`]: readable once closed. Waits
    /// that poll descriptors add it when it exists.
    stop: OnceLock<Event>,
    wakers: Mutex<Vec<Waker>>,
}

/// The shared "peer is gone" (or "closed here") state of one connection.
#[derive(Clone, Default)]
pub struct Link(Arc<Inner>);

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Link")
            .field(&self.0.state.load(Ordering::Relaxed))
            .finish()
    }
}

impl Link {
    /// A link whose peer is alive.
    pub(crate) fn new() -> Link {
        Link::default()
    }

    /// `Err(Disconnected)` once the connection is known to be gone,
    /// `Err(Closed)` once it was closed here.
    #[inline]
    pub(crate) fn check(&self) -> Result<()> {
        match self.0.state.load(Ordering::Relaxed) {
            OPEN => Ok(()),
            GONE => Err(Error::Disconnected),
            _ => Err(Error::Closed),
        }
    }

    /// Whether a message of `len` bytes may be sent on a connection whose
    /// limit is `max`: `Disconnected` once the connection is gone,
    /// `MessageTooLarge` above the limit (nothing is sent either way).
    #[inline]
    pub(crate) fn admit(&self, len: usize, max: usize) -> Result<()> {
        self.check()?;
        if len > max {
            return Err(Error::MessageTooLarge { size: len, max });
        }
        Ok(())
    }

    /// Passes `result` through, marking the connection gone when it is a
    /// disconnect (or a protocol error, after which it is unusable). On a
    /// connection closed here, a disconnect is reported as `Closed`: the
    /// close is what ended the call.
    #[inline]
    pub(crate) fn observe<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.is_disconnect()
        {
            match self
                .0
                .state
                .compare_exchange(OPEN, GONE, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => tracing::debug!(error = %e, "connection closed"),
                Err(CLOSED) => return Err(Error::Closed),
                Err(_) => {}
            }
        }
        result
    }

    /// Passes `result` through, as `Closed` when it is a disconnect on a
    /// connection closed here (a sender woken by the close of its socket).
    #[inline]
    pub(crate) fn local<T>(&self, result: Result<T>) -> Result<T> {
        match result {
            Err(e) if e.is_disconnect() && self.closed_here() => Err(Error::Closed),
            other => other,
        }
    }

    /// Marks the connection gone.
    pub(crate) fn close(&self) {
        let _ = self
            .0
            .state
            .compare_exchange(OPEN, GONE, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether this side closed the connection (a [`ChannelCloser`]).
    #[inline]
    pub(crate) fn closed_here(&self) -> bool {
        self.0.state.load(Ordering::Relaxed) == CLOSED
    }

    /// Whether the connection is known to be gone (or closed here).
    pub(crate) fn is_closed(&self) -> bool {
        self.0.state.load(Ordering::Relaxed) != OPEN
    }

    /// The stop eventfd, once a [`ChannelCloser`] exists: a wait that polls
    /// descriptors adds it, and returns `Closed` when it is readable.
    #[inline]
    pub(crate) fn stop_fd(&self) -> Option<BorrowedFd<'_>> {
        self.0.stop.get().map(AsFd::as_fd)
    }

    /// Registers what wakes this transport's sleeping waiters on close.
    pub(crate) fn on_close(&self, waker: Waker) {
        self.0
            .wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
    }

    /// A handle that closes this connection from any thread.
    pub(crate) fn closer(&self) -> ChannelCloser {
        if self.0.stop.get().is_none() {
            match Event::new() {
                Ok(event) => drop(self.0.stop.set(event)),
                // Without it a wait that polls is not woken; the state and
                // the transport's wakers still are.
                Err(e) => tracing::warn!(error = %e, "eventfd for a channel closer"),
            }
        }
        ChannelCloser {
            link: self.clone(),
            also: None,
        }
    }

    fn close_here(&self) {
        // Closing after the peer left still reports Closed: this side's
        // decision is what every later call should hear.
        self.0.state.store(CLOSED, Ordering::Relaxed);
        if let Some(stop) = self.0.stop.get() {
            stop.notify();
        }
        for wake in self
            .0
            .wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            wake();
        }
    }
}

/// A whole channel's link.
pub(crate) trait Linked {
    /// The link its halves share.
    fn link(&self) -> &Link;
}

impl<S: crate::aio::Pollable, R> Linked for ipc_core::Duplex<S, R> {
    fn link(&self) -> &Link {
        self.sender.link()
    }
}

/// Closes a channel (both halves) from any thread or task: every
/// operation waiting on it returns [`Error::Closed`], as does every later
/// one. The connection itself ends, for the peer, when the halves are
/// dropped. Cheap to clone.
///
/// Blocking channels: a call already blocked when the first closer of the
/// connection was made is woken on every transport but `pipe:`, `fifo:`
/// and a `sysv-mq:` send waiting for room, which return at their next
/// wake-up (a message, room, their deadline); make the closer before the
/// calls it must interrupt.
///
/// # Examples
///
/// ```no_run
/// use ipc_core::{Channel, Receiver, Schema};
///
/// # fn main() -> ipc_core::Result<()> {
/// let ch = ipc_backends::connect(&"unix:/tmp/feed.sock".parse()?, &Schema::bytes())?;
/// let closer = ch.closer();
/// let (_tx, mut rx) = ch.split();
/// std::thread::spawn(move || {
///     std::thread::sleep(std::time::Duration::from_secs(1));
///     closer.close();
/// });
/// assert!(matches!(rx.recv(), Err(ipc_core::Error::Closed)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ChannelCloser {
    link: Link,
    /// What else closing does (an async connection's stop).
    also: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl ChannelCloser {
    /// A closer that also runs `also`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn with(link: Link, also: Arc<dyn Fn() + Send + Sync>) -> ChannelCloser {
        ChannelCloser {
            link,
            also: Some(also),
        }
    }

    /// Closes the channel. Idempotent.
    pub fn close(&self) {
        self.link.close_here();
        if let Some(also) = &self.also {
            also();
        }
    }
}

impl std::fmt::Debug for ChannelCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelCloser")
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

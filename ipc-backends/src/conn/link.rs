//! Once a channel has seen `Disconnected`, every operation on it returns
//! `Disconnected`: its two halves share a [`Link`], which the receiving
//! half marks when it has read everything the peer sent and found the peer
//! gone, and which both halves check before each operation (one relaxed
//! load). A sender's own `Disconnected` (`EPIPE`, a dead peer's pidfd)
//! repeats by itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipc_core::{Error, Result};

/// The shared "peer is gone" state of one connection.
#[derive(Debug, Clone, Default)]
pub struct Link(Arc<AtomicBool>);

impl Link {
    /// A link whose peer is alive.
    pub(crate) fn new() -> Link {
        Link::default()
    }

    /// `Err(Disconnected)` once the connection is known to be gone.
    #[inline]
    pub(crate) fn check(&self) -> Result<()> {
        if self.0.load(Ordering::Relaxed) {
            Err(Error::Disconnected)
        } else {
            Ok(())
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
    /// disconnect (or a protocol error, after which it is unusable).
    #[inline]
    pub(crate) fn observe<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && e.is_disconnect()
            && !self.0.swap(true, Ordering::Relaxed)
        {
            tracing::debug!(error = %e, "connection closed");
        }
        result
    }

    /// Marks the connection gone.
    pub(crate) fn close(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the connection is known to be gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

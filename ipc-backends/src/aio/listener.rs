//! Async listeners.

use std::future::poll_fn;
use std::os::fd::OwnedFd;
use std::task::{Context, Poll};

use ipc_core::{Deadline, Endpoint, Error, Listener, Result, Schema, Scheme};
use tokio::io::unix::AsyncFd;

use super::channel::AsyncChannel;
use super::driven::{register, runtime};
use crate::any::AnyListener;

/// An async listener: the mirror of [`AnyListener`].
///
/// Handshakes run on the listener's own threads, as for a blocking
/// listener; [`accept`](Self::accept) waits on an eventfd that is
/// signalled whenever an established connection is queued.
///
/// Cancel safety: dropping the future of [`accept`](Self::accept) loses
/// no connection; it stays queued for the next call.
#[derive(Debug)]
pub struct AsyncListener {
    queued: AsyncFd<OwnedFd>,
    inner: AnyListener,
}

impl AsyncListener {
    /// Drives a blocking listener from the reactor.
    ///
    /// # Errors
    /// No tokio runtime; `pipe:` (which has no listener).
    pub fn new(inner: AnyListener) -> Result<AsyncListener> {
        runtime()?;
        let Some(fd) = inner.ready_fd() else {
            return Err(Error::Unsupported {
                scheme: inner.scheme(),
                reason: "this transport has no listener".into(),
            });
        };
        let queued = register(fd, super::Interest::Read)?;
        Ok(AsyncListener { queued, inner })
    }

    /// Waits for the next established connection.
    ///
    /// # Errors
    /// Only failures of the listener itself ([`Error::is_fatal`]); a
    /// client's failure is logged and counted ([`refused`](Self::refused)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f() -> ipc_core::Result<()> {
    /// let endpoint = "shm:/orders".parse()?;
    /// let mut listener = ipc_backends::aio::listen(&endpoint, &ipc_core::Schema::bytes())?;
    /// loop {
    ///     let mut conn = listener.accept().await?;
    ///     tokio::spawn(async move {
    ///         while let Ok(msg) = conn.recv().await {
    ///             if conn.send(&msg).await.is_err() {
    ///                 break;
    ///             }
    ///         }
    ///     });
    /// }
    /// # }
    /// ```
    pub async fn accept(&mut self) -> Result<AsyncChannel> {
        let channel = poll_fn(|cx| self.poll_accept_blocking(cx)).await?;
        AsyncChannel::new(channel)
    }

    /// The next established connection if one is waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when none is; as [`accept`](Self::accept).
    pub fn try_accept(&mut self) -> Result<AsyncChannel> {
        AsyncChannel::new(self.inner.accept_until(Deadline::Now)?)
    }

    fn poll_accept_blocking(&mut self, cx: &mut Context<'_>) -> Poll<Result<crate::AnyChannel>> {
        loop {
            match self.inner.accept_until(Deadline::Now) {
                Err(Error::WouldBlock) => {}
                other => return Poll::Ready(other),
            }
            match self.queued.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Error::io("waiting on the reactor", e)));
                }
                Poll::Ready(Ok(mut guard)) => {
                    guard.clear_ready();
                    crate::sys::event::drain(std::os::fd::AsFd::as_fd(guard.get_inner()));
                }
            }
        }
    }

    /// A handle that closes this listener from any task or thread: a
    /// waiting [`accept`](Self::accept) returns [`Error::Closed`].
    pub fn closer(&self) -> crate::conn::accept::ListenerCloser {
        self.inner.closer()
    }

    /// The endpoint listened on.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }

    /// The transport.
    pub fn scheme(&self) -> Scheme {
        self.inner.scheme()
    }

    /// Connection attempts that failed before they were established.
    pub fn refused(&self) -> u64 {
        self.inner.refused()
    }
}

/// Listens on `endpoint`. Creating the rendezvous does not wait, so this
/// is not `async`; it must be called inside a tokio runtime.
///
/// # Errors
/// As the blocking [`crate::listen`]; no tokio runtime.
pub fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<AsyncListener> {
    runtime()?;
    AsyncListener::new(crate::any::listen(endpoint, schema)?)
}

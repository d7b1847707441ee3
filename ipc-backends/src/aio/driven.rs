//! Drives a blocking half's non-blocking operations from the reactor.

use std::os::fd::{AsFd, OwnedFd};
use std::task::{Context, Poll};

use ipc_core::{Error, Result};
use tokio::io::unix::AsyncFd;

use super::{Interest, Pollable};

/// A blocking half `H` and what it waits on, registered with the reactor.
///
/// The registered descriptors are duplicates owned here (both halves of
/// a socket share one descriptor, and epoll takes each only once), closed
/// before `H` is dropped.
#[derive(Debug)]
pub(crate) struct Driven<H> {
    ready: AsyncFd<OwnedFd>,
    death: Option<AsyncFd<OwnedFd>>,
    interest: Interest,
    doorbell: bool,
    /// `arm` was called and not yet withdrawn: the peer may be signalling
    /// the doorbell on every publication until `disarm`.
    armed: bool,
    inner: H,
}

/// Whether a reactor is running on this thread.
pub(crate) fn runtime() -> Result<()> {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::io(
            "the async API needs a tokio runtime: call it from inside one (#[tokio::main], Runtime::block_on)",
            std::io::ErrorKind::Unsupported.into(),
        )),
    }
}

/// Registers a duplicate of `fd` with the reactor, for `interest`.
pub(crate) fn register(
    fd: std::os::fd::BorrowedFd<'_>,
    interest: Interest,
) -> Result<AsyncFd<OwnedFd>> {
    let dup = fd
        .try_clone_to_owned()
        .map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e))?;
    let interest = match interest {
        Interest::Read => tokio::io::Interest::READABLE,
        Interest::Write => tokio::io::Interest::WRITABLE,
    };
    // SAFETY: the AsyncFd owns `dup`, so the descriptor stays open and
    // names the same file description until the AsyncFd is dropped, and
    // `as_raw_fd` of an OwnedFd always returns it.
    unsafe { AsyncFd::register_with_interest(dup, interest) }
        .map_err(|e| Error::io("registering with the reactor", e.into()))
}

impl<H: Pollable> Driven<H> {
    /// Registers `inner`'s source. `Ok(Err(inner))` when it has none.
    pub(crate) fn new(mut inner: H) -> Result<std::result::Result<Driven<H>, H>> {
        runtime()?;
        let Some(source) = inner.source() else {
            return Ok(Err(inner));
        };
        let ready = register(source.fd, source.interest)?;
        let death = match source.death {
            Some(fd) => Some(register(fd, Interest::Read)?),
            None => None,
        };
        let (interest, doorbell) = (source.interest, source.doorbell);
        inner.enter_async();
        Ok(Ok(Driven {
            ready,
            death,
            interest,
            doorbell,
            armed: false,
            inner,
        }))
    }

    /// The blocking half.
    pub(crate) fn get(&self) -> &H {
        &self.inner
    }

    /// The blocking half, for operations that do not wait.
    pub(crate) fn get_mut(&mut self) -> &mut H {
        &mut self.inner
    }

    fn arm(&mut self) {
        self.inner.arm();
        self.armed = true;
    }

    /// Withdraws an announcement left by a wait that ended (or whose
    /// future was dropped), so the peer stops ringing.
    fn disarm(&mut self) {
        if self.armed {
            self.inner.disarm();
            self.armed = false;
        }
    }

    /// Runs `op` (a non-blocking operation of the half) until it does not
    /// return `WouldBlock`, waiting on the half's source in between.
    ///
    /// `op` may run several times; each run that returns `WouldBlock` must
    /// have changed nothing a caller can see (the blocking halves keep
    /// partial frames and fragments in themselves), which is what makes
    /// the futures built on this cancel-safe.
    pub(crate) fn poll_op<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut H) -> Result<T>,
    ) -> Poll<Result<T>> {
        loop {
            match op(&mut self.inner) {
                Err(Error::WouldBlock) => {}
                other => {
                    self.disarm();
                    return Poll::Ready(other);
                }
            }
            // Announce the wait, then look once more: a peer that
            // published before seeing the announcement is seen here.
            self.arm();
            match op(&mut self.inner) {
                Err(Error::WouldBlock) => {}
                other => {
                    self.disarm();
                    return Poll::Ready(other);
                }
            }
            if let Some(death) = &self.death
                && death.poll_read_ready(cx).is_ready()
            {
                // The peer is gone: one last look (it may have sent just
                // before it went), then the connection is over.
                self.disarm();
                return Poll::Ready(match op(&mut self.inner) {
                    Err(Error::WouldBlock) => self.inner.link().observe(Err(Error::Disconnected)),
                    other => other,
                });
            }
            let ready = match self.interest {
                Interest::Read => self.ready.poll_read_ready(cx),
                Interest::Write => self.ready.poll_write_ready(cx),
            };
            match ready {
                // Stays armed while asleep.
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => {
                    self.disarm();
                    return Poll::Ready(Err(Error::io("waiting on the reactor", e)));
                }
                Poll::Ready(Ok(mut guard)) => {
                    // Cleared before the next try, so a wake-up after it is
                    // not lost: the try sees what the wake-up announced.
                    guard.clear_ready();
                    if self.doorbell {
                        crate::sys::event::drain(guard.get_inner().as_fd());
                    }
                    self.disarm();
                }
            }
        }
    }
}

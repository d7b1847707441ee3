//! Drives a blocking half's non-blocking operations from the reactor.

use std::mem::ManuallyDrop;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use ipc_core::{Error, Result};
use tokio::io::unix::AsyncFd;

use super::{Interest, Pollable};
use crate::sys::event::Event;

/// A blocking half `H` and what it waits on, registered with the reactor.
///
/// The registered descriptors are duplicates owned here (both halves of
/// a socket share one descriptor, and epoll takes each only once), closed
/// before `H` is dropped.
#[derive(Debug)]
pub(crate) struct Driven<H: Pollable + Send + 'static> {
    ready: AsyncFd<OwnedFd>,
    death: Option<AsyncFd<OwnedFd>>,
    /// The connection's [`Stop`], and its eventfd registered here.
    stop: Arc<Stop>,
    stopped: AsyncFd<OwnedFd>,
    interest: Interest,
    doorbell: bool,
    /// No operation has waited yet: the half may hold what the first one
    /// asks for (a frame read ahead during the handshake) while the
    /// descriptor has never been ready.
    fresh: bool,
    /// `arm` was called and not yet withdrawn: the peer may be signalling
    /// the doorbell on every publication until `disarm`.
    armed: bool,
    /// Taken only by `drop`.
    inner: ManuallyDrop<H>,
}

impl<H: Pollable + Send + 'static> Drop for Driven<H> {
    fn drop(&mut self) {
        // SAFETY: `inner` is taken once, here, and not used after.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        if inner.drop_may_wait()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            // Its drop may wait for a slow peer: not on a reactor thread.
            drop(rt.spawn_blocking(move || drop(inner)));
        }
    }
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

/// What closing an async connection sets, shared by its two halves: a
/// flag every operation checks first, and an eventfd that wakes a waiting
/// one.
#[derive(Debug)]
pub(crate) struct Stop {
    closed: AtomicBool,
    event: Event,
}

impl Stop {
    pub(crate) fn new() -> Result<Arc<Stop>> {
        Ok(Arc::new(Stop {
            closed: AtomicBool::new(false),
            event: Event::new().map_err(|e| Error::io("eventfd", e))?,
        }))
    }

    /// Closes: every operation from now on, and every one waiting, returns
    /// [`Error::Closed`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.event.notify();
    }

    /// `Err(Closed)` once closed.
    pub(crate) fn check(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }
}

impl<H: Pollable + Send + 'static> Driven<H> {
    /// Registers `inner`'s source. `Ok(Err(inner))` when it has none.
    pub(crate) fn new(mut inner: H, stop: &Arc<Stop>) -> Result<std::result::Result<Driven<H>, H>> {
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
        let stopped = register(stop.event.as_fd(), Interest::Read)?;
        inner.enter_async();
        Ok(Ok(Driven {
            ready,
            death,
            stop: Arc::clone(stop),
            stopped,
            interest,
            doorbell,
            fresh: true,
            armed: false,
            inner: ManuallyDrop::new(inner),
        }))
    }

    /// The blocking half.
    pub(crate) fn get(&self) -> &H {
        &self.inner
    }

    /// The blocking half, for operations that do not wait; `Err(Closed)`
    /// once the connection was closed.
    pub(crate) fn get_mut(&mut self) -> Result<&mut H> {
        self.stop.check()?;
        Ok(&mut self.inner)
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
        op: impl FnMut(&mut H) -> Result<T>,
    ) -> Poll<Result<T>> {
        if self.doorbell {
            self.poll_doorbell(cx, op)
        } else {
            self.poll_descriptor(cx, op)
        }
    }

    /// [`poll_op`](Self::poll_op) on the transport's own descriptor, the
    /// way tokio's own I/O types do it: the operation runs only while the
    /// reactor says the descriptor is ready, and a `WouldBlock` clears
    /// that readiness (only as of the readiness the try was made under:
    /// an event since then keeps it), so a wait costs one failed call and
    /// no more. A half clears readiness only when it has nothing to give
    /// without a system call (a `WouldBlock`), so a frame read ahead
    /// is never left behind a cleared readiness — except before the first
    /// wait, which is why the first operation runs untested.
    fn poll_descriptor<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut H) -> Result<T>,
    ) -> Poll<Result<T>> {
        self.stop.check()?;
        if self.fresh {
            match op(&mut self.inner) {
                Err(Error::WouldBlock) => self.fresh = false,
                other => return Poll::Ready(other),
            }
        }
        loop {
            let ready = match self.interest {
                Interest::Read => self.ready.poll_read_ready(cx),
                Interest::Write => self.ready.poll_write_ready(cx),
            };
            let mut guard = match ready {
                Poll::Pending => {
                    // Registered for a wake-up by close (never cleared:
                    // once closed, it stays so).
                    if self.stopped.poll_read_ready(cx).is_ready() {
                        return Poll::Ready(Err(Error::Closed));
                    }
                    if let Some(death) = &self.death
                        && death.poll_read_ready(cx).is_ready()
                    {
                        // The peer is gone: one last look (it may have sent
                        // just before it went), then the connection is over.
                        return Poll::Ready(match op(&mut self.inner) {
                            Err(Error::WouldBlock) => {
                                self.inner.link().observe(Err(Error::Disconnected))
                            }
                            other => other,
                        });
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Error::io("waiting on the reactor", e)));
                }
                Poll::Ready(Ok(guard)) => guard,
            };
            match op(&mut self.inner) {
                Err(Error::WouldBlock) => guard.clear_ready(),
                other => return Poll::Ready(other),
            }
        }
    }

    /// [`poll_op`](Self::poll_op) on a doorbell: the peer rings it only
    /// while this side is armed, so the operation is tried first, then
    /// once more after arming, before sleeping.
    fn poll_doorbell<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut op: impl FnMut(&mut H) -> Result<T>,
    ) -> Poll<Result<T>> {
        loop {
            if let Err(e) = self.stop.check() {
                self.disarm();
                return Poll::Ready(Err(e));
            }
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
            // Registered for a wake-up by close (never cleared: once
            // closed, it stays so).
            if self.stopped.poll_read_ready(cx).is_ready() {
                continue;
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

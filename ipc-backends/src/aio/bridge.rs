//! Halves whose kernel object cannot be polled, served by one thread each.
//!
//! A System V queue has no descriptor, and a shared-memory ring whose side
//! announced `wait=spin` is never rung by its peer (which then skips the
//! wake-up check): neither can wake the reactor. Such a half moves to a
//! thread of its own (64 KiB of stack) that makes the blocking calls, and
//! talks to the async side through a one-message slot and an eventfd the
//! reactor waits on:
//!
//! - **Send.** `try_send` puts the message in the slot if it is free
//!   (`WouldBlock` otherwise) and the thread sends it; the slot frees when
//!   the kernel took it, and the eventfd wakes a waiting sender. A message
//!   in the slot is committed (delivered while the peer lives; a failure
//!   is reported by the next operation), and `flush` waits until the
//!   kernel took it, so an async `send` completes only then, as a blocking
//!   one does: a process that exits right after it loses nothing.
//! - **Receive.** The thread receives one message ahead into the slot and
//!   waits for it to be taken; `try_recv` takes it.
//!
//! The cost: one thread per bridged half, a hand-off (two wake-ups) per
//! message, and a receiving thread that looks every
//! [`SLICE`] whether its async side is gone. This is the price of a kernel
//! object nothing can poll; it is never a thread per operation.

use std::os::fd::AsFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use ipc_core::{Deadline, Error, Receiver, Result, Sender};

use super::{Interest, Pollable, Source};
use crate::conn::link::Link;
use crate::sys::event::Event;

/// How often a receiving thread looks whether its async side is gone.
pub(crate) const SLICE: Duration = Duration::from_millis(100);
/// How long dropping a bridged half waits for its thread to finish (so
/// the connection's kernel objects are gone when the drop returns).
const FINISH: Duration = Duration::from_secs(2);
const STACK: usize = 64 * 1024;

/// What the async side and the thread share.
#[derive(Debug)]
struct Shared<T> {
    state: Mutex<State<T>>,
    /// Wakes the thread.
    changed: Condvar,
    /// Wakes the async side.
    event: Event,
}

#[derive(Debug)]
struct State<T> {
    slot: Option<T>,
    /// A sending thread is handing a message to the kernel.
    busy: bool,
    /// The async side is gone: the thread finishes.
    closed: bool,
    /// The thread has finished (after a failure, or once closed).
    finished: bool,
}

impl<T> Shared<T> {
    fn new() -> Result<Arc<Shared<T>>> {
        Ok(Arc::new(Shared {
            state: Mutex::new(State {
                slot: None,
                busy: false,
                closed: false,
                finished: false,
            }),
            changed: Condvar::new(),
            event: Event::new().map_err(|e| Error::io("eventfd", e))?,
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the async side gone and waits (bounded) for the thread to
    /// finish, unless it is blocked handing a message to a peer that does
    /// not read (it finishes by itself when the peer reads or goes).
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        self.changed.notify_all();
        if state.busy {
            return;
        }
        let _ = self
            .changed
            .wait_timeout_while(state, FINISH, |s| !s.finished);
    }

    fn finish(&self) {
        self.lock().finished = true;
        self.changed.notify_all();
        self.event.notify();
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .stack_size(STACK)
        .spawn(f)
        .map(drop)
        .map_err(|e| Error::io("spawning a bridge thread", e))
}

/// A sending half served by a thread.
#[derive(Debug)]
pub(crate) struct BridgeSender {
    shared: Arc<Shared<Vec<u8>>>,
    /// The failure the thread met, reported once, then `Disconnected`.
    failure: Arc<Mutex<Option<Error>>>,
    max: usize,
    link: Link,
}

impl BridgeSender {
    pub(crate) fn new<S: Sender + Pollable + 'static>(mut inner: S) -> Result<BridgeSender> {
        let link = inner.link().clone();
        let shared = Shared::<Vec<u8>>::new()?;
        let failure = Arc::new(Mutex::new(None));
        let max = inner.max_message_size();
        let (s, f) = (shared.clone(), failure.clone());
        spawn("ipcx-bridge-send", move || {
            loop {
                let msg = {
                    let mut state = s.lock();
                    while state.slot.is_none() && !state.closed {
                        state = s.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                    match state.slot.take() {
                        // Busy while the kernel takes it: a new message
                        // waits its turn.
                        Some(msg) => {
                            state.busy = true;
                            msg
                        }
                        None => break,
                    }
                };
                let sent = inner.send(&msg);
                s.lock().busy = false;
                s.event.notify();
                if let Err(e) = sent {
                    *f.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                    break;
                }
            }
            // Dropping `inner` here closes the connection (CLOSE, or the
            // segment's closed flag), after the last message went out.
            drop(inner);
            s.finish();
        })?;
        Ok(BridgeSender {
            shared,
            failure,
            max,
            link,
        })
    }
}

impl Sender for BridgeSender {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.link.admit(msg.len(), self.max)?;
        debug_assert_eq!(
            deadline,
            Deadline::Now,
            "bridged halves are driven with Deadline::Now"
        );
        let mut state = self.shared.lock();
        if state.finished {
            drop(state);
            return self.failed();
        }
        if state.slot.is_some() || state.busy {
            return Err(deadline.elapsed_error());
        }
        state.slot = Some(msg.to_vec());
        self.shared.changed.notify_all();
        Ok(())
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl BridgeSender {
    /// The failure the thread met, once; then `Disconnected`.
    fn failed(&self) -> Result<()> {
        let failure = self
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.link
            .observe(Err(failure.unwrap_or(Error::Disconnected)))
    }
}

impl Pollable for BridgeSender {
    fn source(&self) -> Option<Source<'_>> {
        Some(Source {
            fd: self.shared.event.as_fd(),
            interest: Interest::Read,
            doorbell: true,
            death: None,
        })
    }

    /// `WouldBlock` until the kernel took the message in the slot (the
    /// thread rings the eventfd when it has).
    fn flush_now(&mut self) -> Result<()> {
        let state = self.shared.lock();
        if state.slot.is_none() && !state.busy {
            return Ok(());
        }
        if state.finished {
            drop(state);
            return self.failed();
        }
        Err(Error::WouldBlock)
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

impl Drop for BridgeSender {
    fn drop(&mut self) {
        self.shared.close();
    }
}

/// A receiving half served by a thread that receives one message ahead.
pub(crate) struct BridgeReceiver {
    shared: Arc<Shared<Result<Vec<u8>>>>,
    link: Link,
    unblock: Option<super::Unblock>,
}

impl BridgeReceiver {
    pub(crate) fn new<R: Receiver + Pollable + 'static>(mut inner: R) -> Result<BridgeReceiver> {
        let link = inner.link().clone();
        let unblock = inner.unblocker();
        // With a way to wake it for good, the thread blocks in the kernel;
        // without, it looks at its async side every SLICE.
        let wait = if unblock.is_some() {
            || Deadline::Never
        } else {
            || Deadline::after(SLICE)
        };
        let shared = Shared::<Result<Vec<u8>>>::new()?;
        let s = shared.clone();
        spawn("ipcx-bridge-recv", move || {
            let mut buf = Vec::new();
            loop {
                {
                    let mut state = s.lock();
                    while state.slot.is_some() && !state.closed {
                        state = s.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                    }
                    if state.closed {
                        break;
                    }
                }
                let got = match inner.recv_until(&mut buf, wait()) {
                    Err(Error::Timeout) => continue,
                    Ok(()) => Ok(std::mem::take(&mut buf)),
                    Err(e) => Err(e),
                };
                let end = got.is_err();
                s.lock().slot = Some(got);
                s.event.notify();
                if end {
                    break;
                }
            }
            drop(inner);
            s.finish();
        })?;
        Ok(BridgeReceiver {
            shared,
            link,
            unblock,
        })
    }
}

impl std::fmt::Debug for BridgeReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BridgeReceiver")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Receiver for BridgeReceiver {
    fn recv_until(&mut self, out: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.link.check()?;
        let mut state = self.shared.lock();
        match state.slot.take() {
            Some(Ok(msg)) => {
                *out = msg;
                self.shared.changed.notify_all();
                Ok(())
            }
            Some(Err(e)) => {
                drop(state);
                self.link.observe(Err(e))
            }
            None if state.finished => self.link.observe(Err(Error::Disconnected)),
            None => Err(deadline.elapsed_error()),
        }
    }
}

impl Pollable for BridgeReceiver {
    fn source(&self) -> Option<Source<'_>> {
        Some(Source {
            fd: self.shared.event.as_fd(),
            interest: Interest::Read,
            doorbell: true,
            death: None,
        })
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

impl Drop for BridgeReceiver {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        if let Some(unblock) = &self.unblock {
            unblock();
        }
        self.shared.close();
    }
}

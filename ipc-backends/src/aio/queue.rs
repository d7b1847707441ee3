//! Async handles on standalone queues (`pattern=queue`).
//!
//! A POSIX queue's descriptor is registered with the reactor: a waiting
//! consumer wakes when a message arrives, a waiting producer when room
//! frees. A System V queue cannot be polled, and a consumer must not take a
//! message it may not deliver (it competes with other consumers, and a
//! message taken ahead by a helper thread would be lost with it): a
//! waiting System V handle retries without blocking, sleeping between
//! tries from 100 µs doubling up to [`MAX_NAP`]. That costs up to 200
//! wake-ups a second while a handle waits (none while it does not) and up
//! to [`MAX_NAP`] of latency on an idle queue.
//!
//! Cancel safety: each try either takes (or puts) one whole message or
//! nothing, and nothing is awaited between a successful try and the
//! return: dropping a `recv` future loses no message, dropping a `send`
//! future means the message was sent or not at all.

use std::os::fd::OwnedFd;
use std::time::Duration;

use ipc_core::{Deadline, Endpoint, Error, Result};
use tokio::io::unix::AsyncFd;

use super::Interest;
use super::driven::{register, runtime};
use crate::standalone::{ByteConsumer, ByteProducer};

/// The longest sleep between two tries on a System V queue.
pub const MAX_NAP: Duration = Duration::from_millis(5);
const FIRST_NAP: Duration = Duration::from_micros(100);

/// How a handle waits between tries.
#[derive(Debug)]
enum Wait {
    Reactor(AsyncFd<OwnedFd>, Interest),
    Nap,
}

impl Wait {
    fn new(fd: Option<std::os::fd::BorrowedFd<'_>>, interest: Interest) -> Result<Wait> {
        runtime()?;
        Ok(match fd {
            Some(fd) => Wait::Reactor(register(fd, interest)?, interest),
            None => Wait::Nap,
        })
    }

    /// Runs `op` until it does not return `WouldBlock`.
    async fn run<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let mut nap = FIRST_NAP;
        loop {
            match op() {
                Err(Error::WouldBlock) => {}
                other => return other,
            }
            match self {
                Wait::Reactor(fd, interest) => {
                    let ready = match interest {
                        Interest::Write => fd.writable().await,
                        Interest::Read => fd.readable().await,
                    };
                    ready
                        .map_err(|e| Error::io("waiting on the reactor", e))?
                        .clear_ready();
                }
                Wait::Nap => {
                    tokio::time::sleep(nap).await;
                    nap = (nap * 2).min(MAX_NAP);
                }
            }
        }
    }
}

/// Sends bytes to a standalone queue, without blocking the thread.
#[derive(Debug)]
pub struct AsyncByteProducer {
    wait: Wait,
    inner: ByteProducer,
}

impl AsyncByteProducer {
    /// Drives `inner` from the reactor. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// No runtime; a descriptor the reactor refuses.
    pub fn new(inner: ByteProducer) -> Result<AsyncByteProducer> {
        Ok(AsyncByteProducer {
            wait: Wait::new(inner.pollable(), Interest::Write)?,
            inner,
        })
    }

    /// Sends one message at `priority`, waiting while the queue is full.
    ///
    /// # Errors
    /// As [`ByteProducer::send_until`].
    pub async fn send_with_priority(&mut self, msg: &[u8], priority: u32) -> Result<()> {
        let inner = &mut self.inner;
        self.wait
            .run(|| inner.send_until(msg, priority, Deadline::Now))
            .await
    }

    /// Sends one message at priority 0.
    ///
    /// # Errors
    /// As [`ByteProducer::send_until`].
    pub async fn send(&mut self, msg: &[u8]) -> Result<()> {
        self.send_with_priority(msg, 0).await
    }

    /// Sends one message if there is room now.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when full; as [`send`](Self::send).
    pub fn try_send(&mut self, msg: &[u8]) -> Result<()> {
        self.inner.send_until(msg, 0, Deadline::Now)
    }

    /// The largest payload.
    pub fn max_message_size(&self) -> usize {
        self.inner.max_message_size()
    }

    /// The queue's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

/// Receives bytes from a standalone queue, without blocking the thread.
#[derive(Debug)]
pub struct AsyncByteConsumer {
    wait: Wait,
    inner: ByteConsumer,
}

impl AsyncByteConsumer {
    /// Drives `inner` from the reactor. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// No runtime; a descriptor the reactor refuses.
    pub fn new(inner: ByteConsumer) -> Result<AsyncByteConsumer> {
        Ok(AsyncByteConsumer {
            wait: Wait::new(inner.pollable(), Interest::Read)?,
            inner,
        })
    }

    /// Receives the next message and its priority. Cancel-safe.
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    pub async fn recv_with_priority(&mut self) -> Result<(Vec<u8>, u32)> {
        let inner = &mut self.inner;
        self.wait
            .run(|| {
                inner
                    .recv_until(Deadline::Now)
                    .map(|d| (d.payload.to_vec(), d.priority))
            })
            .await
    }

    /// Receives the next message. Cancel-safe.
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    pub async fn recv(&mut self) -> Result<Vec<u8>> {
        Ok(self.recv_with_priority().await?.0)
    }

    /// Receives a message if one is waiting.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when none is; as [`recv`](Self::recv).
    pub fn try_recv(&mut self) -> Result<Vec<u8>> {
        self.inner.try_recv()
    }

    /// The queue's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.inner.endpoint()
    }
}

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
//!
//! A `nats://` queue (JetStream) needs no polling: its pulls and publishes
//! are futures of the NATS client, awaited on the runtime ipcx owns. A
//! dropped `recv` or `recv_batch` future stops its pull (the task on that
//! runtime is aborted); what it had pulled, and a message the server
//! sends to its last request before that expires (at most 5 s), is
//! redelivered after `ack_wait` (late, never lost). A dropped
//! `send` future may have stored the message or not; resending it with
//! the same id ([`AsyncByteProducer::send_with_id`]) stores it once.

use std::os::fd::OwnedFd;
use std::time::Duration;

use ipc_core::{Deadline, Endpoint, Error, Result};
use tokio::io::unix::AsyncFd;

use super::Interest;
use super::driven::{register, runtime};
use crate::standalone::{Ack, ByteConsumer, ByteProducer};

/// Awaits `fut` on the runtime ipcx owns for `nats://` (where the NATS
/// client's connection lives), from whatever runtime the caller is on.
#[cfg(feature = "nats")]
async fn on_broker<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    crate::nats::runtime::handle()?
        .spawn(fut)
        .await
        .map_err(|e| Error::io("nats: a runtime task", std::io::Error::other(e)))?
}

/// As [`on_broker`], for a pull: the task is aborted when the caller's
/// future is dropped, so a cancelled receive (a `select!`, a timeout)
/// leaves no task behind that goes on taking messages for nobody; what it
/// had pulled comes back after `ack_wait`.
#[cfg(feature = "nats")]
async fn on_broker_pull<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            // A no-op once the task has finished.
            self.0.abort();
        }
    }
    let task = crate::nats::runtime::handle()?.spawn(fut);
    let _abort = AbortOnDrop(task.abort_handle());
    task.await
        .map_err(|e| Error::io("nats: a runtime task", std::io::Error::other(e)))?
}

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
        #[cfg(feature = "nats")]
        if let Some(send) = self.inner.broker_send(msg, priority, None) {
            return on_broker(send?).await.map(drop);
        }
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

    /// Sends one message with message id `id` (deduplicated on a
    /// `nats://` queue).
    ///
    /// # Errors
    /// As [`ByteProducer::send_with_id_until`].
    pub async fn send_with_id(&mut self, msg: &[u8], id: &str) -> Result<()> {
        #[cfg(feature = "nats")]
        if let Some(send) = self.inner.broker_send(msg, 0, Some(id)) {
            return on_broker(send?).await.map(drop);
        }
        // A kernel queue refuses an id.
        self.inner.send_with_id_until(msg, id, Deadline::Now)
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
        #[cfg(feature = "nats")]
        if let Some(pull) = self.inner.broker_pull() {
            let m = self.pulled(pull?).await?;
            let (d, _) = self.inner.broker_take(m, false)?;
            return Ok((d.payload.to_vec(), d.priority));
        }
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

    /// Receives the next message, its priority and its acknowledgement
    /// ([`ByteConsumer::recv_acked_until`]).
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_until`].
    pub async fn recv_acked(&mut self) -> Result<(Vec<u8>, u32, Ack)> {
        #[cfg(feature = "nats")]
        if let Some(pull) = self.inner.broker_pull() {
            let m = self.pulled(pull?).await?;
            let (d, ack) = self.inner.broker_take(m, true)?;
            return Ok((d.payload.to_vec(), d.priority, ack));
        }
        let inner = &mut self.inner;
        self.wait
            .run(|| {
                inner
                    .recv_acked_until(Deadline::Now)
                    .map(|(d, ack)| (d.payload.to_vec(), d.priority, ack))
            })
            .await
    }

    /// Receives up to `max` messages (at least one), each with its
    /// priority and acknowledgement, waiting for the first
    /// ([`ByteConsumer::recv_batch_acked_until`]: on a `nats://` queue one
    /// pull request for what the stream has now).
    ///
    /// # Errors
    /// As [`ByteConsumer::recv_batch_acked_until`].
    #[allow(clippy::type_complexity)]
    pub async fn recv_batch_acked(
        &mut self,
        max: usize,
    ) -> Result<Vec<Result<(Vec<u8>, u32, Ack)>>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        #[cfg(feature = "nats")]
        if self.inner.is_broker() {
            loop {
                let Some(pull) = self.inner.broker_pull_batch(max) else {
                    return Err(Error::protocol("a nats:// queue became another kind"));
                };
                let got = on_broker_pull(pull?).await?;
                if got.is_empty() {
                    continue;
                }
                return Ok(got
                    .into_iter()
                    .map(|m| crate::standalone::owned(self.inner.broker_take(m, true)))
                    .collect());
            }
        }
        let inner = &mut self.inner;
        let first = self
            .wait
            .run(|| match inner.recv_acked_until(Deadline::Now) {
                Err(e) if crate::standalone::is_per_message(&e) => Ok(Err(e)),
                r => r.map(|(d, ack)| Ok((d.payload.to_vec(), d.priority, ack))),
            })
            .await?;
        let mut out = vec![first];
        match self.inner.recv_batch_acked_until(max - 1, Deadline::Now) {
            Ok(mut more) => out.append(&mut more),
            Err(Error::WouldBlock) => {}
            Err(e) => out.push(Err(e)),
        }
        Ok(out)
    }

    /// Awaits a pull until it brings a message.
    #[cfg(feature = "nats")]
    async fn pulled(
        &mut self,
        first: impl std::future::Future<Output = Result<Option<async_nats::jetstream::Message>>>
        + Send
        + 'static,
    ) -> Result<async_nats::jetstream::Message> {
        if let Some(m) = on_broker_pull(first).await? {
            return Ok(m);
        }
        loop {
            let Some(pull) = self.inner.broker_pull() else {
                return Err(Error::protocol("a nats:// queue became another kind"));
            };
            if let Some(m) = on_broker_pull(pull?).await? {
                return Ok(m);
            }
        }
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

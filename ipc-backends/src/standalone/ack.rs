//! The acknowledgement of a received queue message ([`Ack`]).

use ipc_core::Result;

#[cfg(feature = "nats")]
use crate::nats::jetstream::{Pending, Settle};

/// How a message is settled by a consuming call of [`Ack`].
#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ack,
    Nak,
}

#[cfg(feature = "nats")]
impl From<Outcome> for Settle {
    fn from(o: Outcome) -> Settle {
        match o {
            Outcome::Ack => Settle::Ack,
            Outcome::Nak => Settle::Nak,
        }
    }
}

/// The acknowledgement of a received queue message.
///
/// On JetStream (`nats://…?pattern=queue`) a received message stays in the
/// queue until acknowledged: [`ack`](Ack::ack) removes it, [`nak`](Ack::nak)
/// gives it back for redelivery, and a consumer that dies first has it
/// redelivered to another after `ack_wait` (at least once). Dropped
/// unused, an `Ack` acknowledges without waiting for the server's
/// confirmation — or, while its thread panics, gives the message back.
///
/// [`ack`](Ack::ack), [`nak`](Ack::nak) and
/// [`in_progress`](Ack::in_progress) block the calling thread for a round
/// trip; async code awaits [`ack_async`](Ack::ack_async),
/// [`nak_async`](Ack::nak_async) and
/// [`in_progress_async`](Ack::in_progress_async) instead.
///
/// On kernel queues (`mq:`, `sysv-mq:`) the message left the queue when it
/// was received (at most once): there is nothing to acknowledge, and every
/// method succeeds doing nothing.
#[must_use = "an Ack acknowledges when dropped; call ack() to know the server has it"]
pub struct Ack {
    #[cfg(feature = "nats")]
    pending: Option<Pending>,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("at_least_once", &self.is_at_least_once())
            .field("deliveries", &self.deliveries())
            .finish()
    }
}

impl Ack {
    /// Nothing to acknowledge (a kernel queue's message).
    pub(crate) fn none() -> Ack {
        Ack {
            #[cfg(feature = "nats")]
            pending: None,
        }
    }

    #[cfg(feature = "nats")]
    pub(crate) fn pending(pending: Option<Pending>) -> Ack {
        Ack { pending }
    }

    /// Whether acknowledging does anything: `true` on JetStream (at least
    /// once), `false` on kernel queues (at most once).
    pub fn is_at_least_once(&self) -> bool {
        #[cfg(feature = "nats")]
        {
            self.pending.is_some()
        }
        #[cfg(not(feature = "nats"))]
        {
            false
        }
    }

    /// How many times the message was delivered, this time included: more
    /// than 1 when a consumer before this one received it and did not
    /// acknowledge it. Always 1 on kernel queues.
    pub fn deliveries(&self) -> u64 {
        #[cfg(feature = "nats")]
        if let Some(p) = &self.pending {
            return p.deliveries();
        }
        1
    }

    /// Acknowledges the message and waits until the server confirms: it
    /// is removed from the queue and not delivered again.
    ///
    /// # Errors
    /// [`ipc_core::Error::Io`] when the server did not confirm (the
    /// connection was lost, or `ack_wait` had passed and the message went
    /// to another consumer): the message may be delivered again.
    pub fn ack(self) -> Result<()> {
        self.finish(Outcome::Ack)
    }

    /// Gives the message back: it is redelivered (to this or another
    /// consumer) at once. A no-op on kernel queues.
    ///
    /// # Errors
    /// As [`Ack::ack`]; unconfirmed, the message is redelivered after
    /// `ack_wait` anyway.
    pub fn nak(self) -> Result<()> {
        self.finish(Outcome::Nak)
    }

    /// As [`Ack::ack`], for async code: awaits the server's confirmation
    /// without blocking the thread (the exchange runs on the runtime ipcx
    /// owns for `nats://`, so any executor may await it). Dropped before it
    /// finishes, the acknowledgement still reaches the server, unconfirmed.
    /// Immediately `Ok` on kernel queues.
    ///
    /// # Errors
    /// As [`Ack::ack`].
    pub async fn ack_async(self) -> Result<()> {
        self.finish_async(Outcome::Ack).await
    }

    /// As [`Ack::nak`], for async code (as [`Ack::ack_async`]).
    ///
    /// # Errors
    /// As [`Ack::nak`].
    pub async fn nak_async(self) -> Result<()> {
        self.finish_async(Outcome::Nak).await
    }

    /// [`ack`](Ack::ack) or [`nak`](Ack::nak): settles the message as
    /// `outcome` and waits for the server's confirmation.
    fn finish(mut self, outcome: Outcome) -> Result<()> {
        #[cfg(feature = "nats")]
        if let Some(p) = self.pending.take() {
            return p.settle(outcome.into(), true);
        }
        let _ = (&mut self, outcome);
        Ok(())
    }

    /// [`finish`](Ack::finish) for async code.
    async fn finish_async(mut self, outcome: Outcome) -> Result<()> {
        #[cfg(feature = "nats")]
        if let Some(p) = self.pending.take() {
            return p.settle_async(outcome.into()).await;
        }
        let _ = (&mut self, outcome);
        Ok(())
    }

    /// As [`Ack::in_progress`], for async code (as [`Ack::ack_async`]).
    ///
    /// # Errors
    /// As [`Ack::ack`].
    pub async fn in_progress_async(&mut self) -> Result<()> {
        #[cfg(feature = "nats")]
        if let Some(p) = &self.pending {
            return p.settle_async(Settle::Progress).await;
        }
        Ok(())
    }

    /// Acknowledges every one of `acks` and waits until the server
    /// confirmed them all: the acknowledgements go out together, so the
    /// lot takes about one round trip where [`Ack::ack`] takes one each.
    /// A no-op for kernel queues' `Ack`s.
    ///
    /// # Errors
    /// As [`Ack::ack`], the first that was not confirmed (the others were
    /// sent all the same).
    pub fn ack_all(acks: impl IntoIterator<Item = Ack>) -> Result<()> {
        #[cfg(feature = "nats")]
        {
            let pending: Vec<Pending> = acks
                .into_iter()
                .filter_map(|mut a| a.pending.take())
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            crate::nats::runtime::run(crate::nats::jetstream::confirm_all(pending, Settle::Ack))?
        }
        #[cfg(not(feature = "nats"))]
        {
            acks.into_iter().for_each(drop);
            Ok(())
        }
    }

    /// As [`Ack::ack_all`], for async code (as [`Ack::ack_async`]).
    ///
    /// # Errors
    /// As [`Ack::ack_all`].
    pub async fn ack_all_async(acks: impl IntoIterator<Item = Ack>) -> Result<()> {
        #[cfg(feature = "nats")]
        {
            let pending: Vec<Pending> = acks
                .into_iter()
                .filter_map(|mut a| a.pending.take())
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            crate::nats::runtime::handle()?
                .spawn(crate::nats::jetstream::confirm_all(pending, Settle::Ack))
                .await
                .map_err(|e| {
                    ipc_core::Error::io(
                        "nats: acknowledging queue messages",
                        std::io::Error::other(e),
                    )
                })?
        }
        #[cfg(not(feature = "nats"))]
        {
            acks.into_iter().for_each(drop);
            Ok(())
        }
    }

    /// Tells the server the message is still being handled: its
    /// `ack_wait` starts again (for handlers that may take longer than
    /// `ack_wait`). A no-op on kernel queues.
    ///
    /// # Errors
    /// As [`Ack::ack`].
    pub fn in_progress(&mut self) -> Result<()> {
        #[cfg(feature = "nats")]
        if let Some(p) = &self.pending {
            return p.settle(Settle::Progress, true);
        }
        Ok(())
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        #[cfg(feature = "nats")]
        if let Some(p) = self.pending.take() {
            // Dropped while the handler panics: the message was not handled.
            let how = if std::thread::panicking() {
                Settle::Nak
            } else {
                Settle::Ack
            };
            let _ = p.settle(how, false);
        }
    }
}

//! What the async layer waits on for a shared-memory half.
//!
//! A ring has no descriptor of its own; each side has two doorbells
//! instead (eventfds exchanged at rendezvous, step 5 of
//! `docs/wire-format.md`). An async waiter announces itself by storing
//! [`SLEEPING_ASYNC`](super::ring::SLEEPING_ASYNC) in the ring's
//! `*_sleeping` word (`arm`), looks at the ring once more, and waits on its
//! doorbell; the peer, whose publish already reads that word, rings the
//! doorbell instead of the futex, once per wake-up. The
//! peer's death shows on the rendezvous socket, which becomes readable
//! only when the peer hangs up. The blocking fast path is unchanged: a
//! publish that finds the word 0 makes no system call.
//!
//! A side that announced `wait=spin` is never woken by its peer (the peer
//! skips the check), so its async halves are served by a bridge thread
//! that spins, as the endpoint asked.

use std::os::fd::AsFd;

use crate::aio::{Interest, Pollable, Source};
use crate::conn::link::Link;

use super::ring::SLEEPING_ASYNC;
use super::shared::Event;
use super::{ShmReceiver, ShmSender};

impl Pollable for ShmSender {
    fn source(&self) -> Option<Source<'_>> {
        if self.how.spins() {
            return None;
        }
        Some(Source {
            fd: self.shared.doorbell(Event::Space),
            interest: Interest::Read,
            doorbell: true,
            death: Some(self.shared.socket.as_fd()),
        })
    }

    fn arm(&self) {
        self.shared
            .announce(self.index, Event::Space, SLEEPING_ASYNC);
    }

    fn disarm(&self) {
        self.shared.announce(self.index, Event::Space, 0);
    }

    fn enter_async(&mut self) {
        self.nonblocking = true;
    }

    fn flush_now(&mut self) -> ipc_core::Result<()> {
        self.flush_pending(ipc_core::Deadline::Now)
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

impl Pollable for ShmReceiver {
    fn source(&self) -> Option<Source<'_>> {
        if self.how.spins() {
            return None;
        }
        Some(Source {
            fd: self.shared.doorbell(Event::Data),
            interest: Interest::Read,
            doorbell: true,
            death: Some(self.shared.socket.as_fd()),
        })
    }

    fn arm(&self) {
        self.shared
            .announce(self.index, Event::Data, SLEEPING_ASYNC);
    }

    fn disarm(&self) {
        self.shared.announce(self.index, Event::Data, 0);
    }

    fn enter_async(&mut self) {
        self.nonblocking = true;
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

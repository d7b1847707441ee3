//! A connected channel: a sender on one ring and a receiver on the other,
//! over one mapped segment.

use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use ipc_core::{Channel, Deadline, Endpoint, PeerInfo, Receiver, Result, Sender};

use super::receiver::{InPlace, ShmReceiver};
use super::ring::{Consumer, Producer};
use super::segment::Layout;
use super::sender::{Loan, ShmSender};
use super::shared::{self, Doorbells, Shared, WaitCfg};
use crate::conn::link::Link;
use crate::conn::watch::{self, Wake};
use crate::sys::shm::Mapping;

/// A connected shared-memory channel.
#[derive(Debug)]
pub struct ShmChannel {
    sender: ShmSender,
    receiver: ShmReceiver,
    peer: PeerInfo,
}

impl ShmChannel {
    /// What both halves share (for tests of the wait).
    #[cfg(test)]
    pub(super) fn shared(&self) -> &Shared {
        &self.receiver.shared
    }
}

/// A segment mapped and checked by this side, ready to carry messages.
#[derive(Debug)]
pub(super) struct Mapped {
    pub(super) map: Mapping,
    pub(super) layout: Layout,
    pub(super) doorbells: Doorbells,
}

/// Who this side is in the segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    /// Sends on ring 0, receives on ring 1.
    Listener,
    /// Sends on ring 1, receives on ring 0.
    Client,
}

impl Side {
    /// The ring this side produces into.
    pub(super) fn ring(self) -> usize {
        match self {
            Side::Listener => 0,
            Side::Client => 1,
        }
    }
}

/// Builds a channel over `seg`, for the connection on `socket` with `peer`
/// (whose process started at `peer_start`, when known).
pub(super) fn build(
    seg: Mapped,
    socket: OwnedFd,
    endpoint: &Endpoint,
    side: Side,
    peer: PeerInfo,
    peer_start: Option<u64>,
) -> ShmChannel {
    let Mapped {
        map,
        layout,
        doorbells,
    } = seg;
    let shared = Arc::new_cyclic(|me: &Weak<Shared>| {
        let me: Weak<dyn Wake> = me.clone();
        let watch = match watch::watch(peer.pid, peer_start, me) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::debug!(endpoint = %endpoint, error = %e, "peer not watched: polling");
                None
            }
        };
        let interval = match watch {
            Some(_) => shared::safety_interval(),
            None => shared::LIVENESS_INTERVAL,
        };
        Shared {
            map,
            doorbells,
            socket,
            endpoint: endpoint.to_string(),
            peer_pid: peer.pid,
            peer_start,
            watch,
            interval,
        }
    });
    let (tx, rx) = (side.ring(), 1 - side.ring());
    let max = peer.max_message_size;
    // What the peer announced before the segment carried messages, read
    // once. A peer that claims to spin and then sleeps only delays its own
    // wake-ups (to the end of its sleep slice).
    let consumer_spins = shared.control(tx).consumer_spins.load(Ordering::Acquire) != 0;
    let producer_spins = shared.control(rx).producer_spins.load(Ordering::Acquire) != 0;
    // SAFETY: the rings lie in `shared.map` (layout checked against its
    // size), which the Arc keeps alive as long as they are; this side alone
    // produces into ring `tx` and consumes from ring `rx`.
    let (producer, consumer) = unsafe {
        (
            Producer::new(shared.ring_mem(&layout, tx), consumer_spins),
            Consumer::new(shared.ring_mem(&layout, rx), max as u64, producer_spins),
        )
    };
    let how = WaitCfg::of(endpoint);
    let link = Link::new();
    // A local close wakes this connection's sleepers as a dead peer does.
    let weak = Arc::downgrade(&shared);
    link.on_close(Box::new(move || {
        if let Some(shared) = weak.upgrade() {
            Wake::on_peer_exit(&*shared);
        }
    }));
    ShmChannel {
        sender: ShmSender {
            shared: shared.clone(),
            ring: producer,
            index: tx,
            max,
            how,
            link: link.clone(),
            pending: None,
            nonblocking: false,
            admit_below: max + 1,
        },
        receiver: ShmReceiver {
            shared,
            ring: consumer,
            index: rx,
            how,
            scratch: Vec::new(),
            partial: None,
            nonblocking: false,
            link,
        },
        peer,
    }
}

impl ShmChannel {
    /// The addresses of the mapped segment (for tests that check a message
    /// is written or read in place).
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Range<usize> {
        self.sender.mapped_range()
    }

    /// See [`ShmSender::loan`].
    ///
    /// # Errors
    /// As [`ShmSender::loan`].
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.sender.loan(len)
    }

    /// See [`ShmSender::loan_until`].
    ///
    /// # Errors
    /// As [`ShmSender::loan_until`].
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        self.sender.loan_until(len, deadline)
    }

    /// See [`ShmReceiver::recv_in_place`].
    ///
    /// # Errors
    /// As [`ShmReceiver::recv_in_place`].
    pub fn recv_in_place(&mut self) -> Result<InPlace<'_>> {
        self.receiver.recv_in_place()
    }

    /// See [`ShmReceiver::recv_in_place_until`].
    ///
    /// # Errors
    /// As [`ShmReceiver::recv_in_place_until`].
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<InPlace<'_>> {
        self.receiver.recv_in_place_until(deadline)
    }
}

impl Sender for ShmChannel {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.sender.send_until(msg, deadline)
    }

    fn max_message_size(&self) -> usize {
        self.sender.max
    }

    fn send_batch_until(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
        self.sender.send_batch_until(msgs, deadline)
    }
}

impl Receiver for ShmChannel {
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.receiver.recv_until(buf, deadline)
    }

    fn recv_batch_until(
        &mut self,
        batch: &mut ipc_core::Batch,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        self.receiver.recv_batch_until(batch, max, deadline)
    }
}

impl Channel for ShmChannel {
    type Sender = ShmSender;
    type Receiver = ShmReceiver;

    fn split(self) -> (ShmSender, ShmReceiver) {
        (self.sender, self.receiver)
    }

    fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

impl crate::conn::link::Linked for ShmChannel {
    fn link(&self) -> &Link {
        crate::aio::Pollable::link(&self.sender)
    }
}

//! The sending half: copies into the ring ([`ShmSender::send_until`]) or
//! lends ring space to write in place ([`ShmSender::loan`]).

use std::ops::{Deref, DerefMut, Range};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use ipc_core::{Deadline, Error, Result, Sender};

use super::ring::{self, Producer};
use super::shared::{Event, Shared, WaitCfg};
use crate::conn::link::Link;

mod batch;

/// The sending half of a shared-memory connection.
#[derive(Debug)]
pub struct ShmSender {
    pub(super) shared: Arc<Shared>,
    pub(super) ring: Producer,
    pub(super) index: usize,
    pub(super) max: usize,
    pub(super) how: WaitCfg,
    /// Marked by the receiving half once it has seen the peer gone.
    pub(super) link: Link,
    /// The rest of a message larger than the ring that a non-blocking
    /// send began: written before anything else.
    pub(super) pending: Option<Pending>,
    /// Driven by the async layer: the rest of a message larger than the
    /// ring is not waited for but kept as [`Pending`].
    pub(super) nonblocking: bool,
    /// Sends shorter than this take the fast path: `max + 1`, or 0 while a
    /// message is [`Pending`], so that the one length comparison a send
    /// makes anyway also diverts it to finish that message first.
    pub(super) admit_below: usize,
}

/// What a non-blocking send of a streamed message left to write.
#[derive(Debug)]
pub(super) struct Pending {
    bytes: Vec<u8>,
    done: usize,
}

impl ShmSender {
    /// Whether the peer's receiver closed the ring (it dropped cleanly).
    fn closed(&self) -> bool {
        self.ring.control().consumer_closed.load(Ordering::Acquire) != 0
    }

    /// `Err(Disconnected)` when the peer is known to be gone: its receiver
    /// closed the ring, or our receiver saw the connection end.
    #[inline]
    fn check_open(&self) -> Result<()> {
        self.link.check()?;
        if self.closed() {
            return Err(Error::Disconnected);
        }
        Ok(())
    }

    fn free(&mut self) -> Result<u64> {
        match self.ring.free() {
            Ok(n) => Ok(n),
            Err(v) => Err(self.shared.protocol(self.index, v)),
        }
    }

    /// Bytes free, reading the consumer's tail only when the cached view
    /// has fewer than `need`.
    fn free_for(&mut self, need: u64) -> Result<u64> {
        match self.ring.free_for(need) {
            Ok(n) => Ok(n),
            Err(v) => Err(self.shared.protocol(self.index, v)),
        }
    }

    /// Waits for `need` free bytes (or a closed consumer).
    fn wait_space(&mut self, need: u64, deadline: Deadline) -> Result<()> {
        let (shared, ring, index, link) = (&self.shared, &mut self.ring, self.index, &self.link);
        shared.wait_for(index, Event::Space, self.how, deadline, || {
            if ring.control().consumer_closed.load(Ordering::Acquire) != 0 || link.closed_here() {
                return Ok(true);
            }
            Ok(ring.free().map_err(|v| shared.protocol(index, v))? >= need)
        })?;
        if self.link.closed_here() {
            return Err(Error::Closed);
        }
        if self.closed() {
            return Err(Error::Disconnected);
        }
        Ok(())
    }

    fn publish(&mut self) {
        if self.ring.publish() {
            self.shared.wake(self.index, Event::Data);
        }
    }

    /// Writes what a non-blocking send left ([`Pending`]), waiting for
    /// room until `deadline`; the rest stays pending on `WouldBlock` or
    /// `Timeout`.
    #[cold]
    #[inline(never)]
    pub(super) fn flush_pending(&mut self, deadline: Deadline) -> Result<()> {
        let Some(mut p) = self.pending.take() else {
            return Ok(());
        };
        let r = self.write_pending(&mut p, deadline);
        if matches!(r, Err(Error::WouldBlock | Error::Timeout)) {
            self.pending = Some(p);
        } else {
            self.admit_below = self.max + 1;
        }
        r
    }

    /// A send that the length comparison diverted: too large, or a
    /// message is pending (written first, by `deadline`).
    #[cold]
    #[inline(never)]
    fn admit_slow(&mut self, len: usize, deadline: Deadline) -> Result<()> {
        self.check_size(len)?;
        self.check_open()?;
        self.flush_pending(deadline)
    }

    fn write_pending(&mut self, p: &mut Pending, deadline: Deadline) -> Result<()> {
        while p.done < p.bytes.len() {
            let free = self.free()?;
            if free == 0 {
                self.publish();
                self.wait_space(1, deadline)?;
                continue;
            }
            p.done += self.ring.push(&p.bytes[p.done..], free);
        }
        self.publish();
        Ok(())
    }

    /// The addresses of the mapped segment (for tests that check a loan
    /// lies inside it).
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Range<usize> {
        self.shared.mapped_range()
    }

    fn check_size(&self, len: usize) -> Result<()> {
        if len > self.max {
            return Err(Error::MessageTooLarge {
                size: len,
                max: self.max,
            });
        }
        Ok(())
    }

    /// A writable slice of `len` bytes inside the ring, sent by
    /// [`Loan::send`]; dropping the loan sends nothing. Waits for room.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above `max_message_size` or above what the
    /// ring always holds in one piece (`capacity / 2 - 8`);
    /// [`Error::Disconnected`].
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<Loan<'_>> {
        self.loan_until(len, Deadline::Never)
    }

    /// As [`loan`](Self::loan), waiting at most until `deadline`.
    ///
    /// # Errors
    /// As [`loan`](Self::loan); the deadline's error when no room came.
    #[inline]
    pub fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        // The fast path, inlined: a size always admitted with nothing
        // pending (`admit_below`, as a send checks), at most half a ring,
        // the peer open, and room as of the consumer's tail last read.
        // (The size first: `record_size` of any length is only computed
        // below `max_message_size`.)
        if len < self.admit_below {
            let record = ring::record_size(len as u64);
            if record <= self.ring.capacity() / 2 && self.check_open().is_ok() {
                if let Some(r) = self
                    .ring
                    .reserve_contiguous(record, self.ring.free_cached())
                {
                    return Ok(Loan {
                        tx: self,
                        reserved: r,
                        len,
                    });
                }
            }
        }
        self.loan_waiting(len, deadline)
    }

    /// [`loan_until`](Self::loan_until) past its fast path: every check
    /// with its error, a pending message first, the wait for room.
    #[inline(never)]
    fn loan_waiting(&mut self, len: usize, deadline: Deadline) -> Result<Loan<'_>> {
        self.check_size(len)?;
        let record = ring::record_size(len as u64);
        // Up to half a ring, a contiguous place always comes free once the
        // consumer catches up (a pad is then shorter than the record).
        let half = self.ring.capacity() / 2;
        if record > half {
            return Err(Error::MessageTooLarge {
                size: len,
                max: (half - ring::RECORD_HEADER) as usize,
            });
        }
        self.check_open()?;
        if self.pending.is_some() {
            self.flush_pending(deadline)?;
        }
        // The wait looks at the room the cached tail shows first.
        let (shared, ring, index) = (&self.shared, &mut self.ring, self.index);
        let mut reserved = None;
        shared.wait_for(index, Event::Space, self.how, deadline, || {
            if ring.control().consumer_closed.load(Ordering::Acquire) != 0 {
                return Ok(true);
            }
            // The cached tail first; the shared one only when that is short.
            reserved = ring.reserve_contiguous(record, ring.free_cached());
            if reserved.is_none() {
                let free = ring.free().map_err(|v| shared.protocol(index, v))?;
                reserved = ring.reserve_contiguous(record, free);
            }
            Ok(reserved.is_some())
        })?;
        match reserved {
            Some(r) if !self.closed() => Ok(Loan {
                tx: self,
                reserved: r,
                len,
            }),
            _ => Err(Error::Disconnected),
        }
    }

    /// Writes a record larger than the free space in pieces, waiting for
    /// room between them without a deadline: from the first byte on the
    /// message is committed and only the peer's death stops it. A half
    /// driven by the async layer ([`nonblocking`](Self::nonblocking))
    /// keeps what finds no room as [`Pending`] and returns: the message is
    /// committed, and the rest is written by
    /// [`flush_pending`](Self::flush_pending) before the next.
    fn stream(&mut self, parts: [&[u8]; 3], mut free: u64) -> Result<()> {
        let rest_wait = if self.nonblocking {
            Deadline::Now
        } else {
            Deadline::Never
        };
        for (i, part) in parts.iter().enumerate() {
            let mut done = 0;
            while done < part.len() {
                if free == 0 {
                    self.publish();
                    match self.wait_space(1, rest_wait) {
                        Err(Error::WouldBlock) => {
                            let mut bytes = part[done..].to_vec();
                            for later in &parts[i + 1..] {
                                bytes.extend_from_slice(later);
                            }
                            self.pending = Some(Pending { bytes, done: 0 });
                            self.admit_below = 0;
                            return Ok(());
                        }
                        r => r?,
                    }
                    free = self.free()?;
                    continue;
                }
                let n = self.ring.push(&part[done..], free);
                done += n;
                free -= n as u64;
            }
        }
        self.publish();
        Ok(())
    }
}

impl Sender for ShmSender {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        if msg.len() >= self.admit_below {
            self.admit_slow(msg.len(), deadline)?;
        }
        self.check_open()?;
        let len = msg.len() as u64;
        let record = ring::record_size(len);
        let cap = self.ring.capacity();
        // Fits: wait for the whole record, write it, publish once. Larger
        // than the ring: wait for half a ring, then stream.
        let first = if record <= cap { record } else { cap / 2 };
        let mut free = self.free_for(first)?;
        if free < first {
            self.wait_space(first, deadline)?;
            free = self.free()?;
        }
        if record <= free && self.ring.push_contiguous(msg) {
            self.publish();
            return Ok(());
        }
        let header = ((u64::from(ring::KIND_MESSAGE) << 32) | len).to_le_bytes();
        let pad = [0u8; 8];
        let pad = &pad[..(record - ring::RECORD_HEADER - len) as usize];
        self.stream([&header[..], msg, pad], free)
    }

    fn max_message_size(&self) -> usize {
        self.max
    }

    fn send_batch_until(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
        self.send_batch_records(msgs, deadline)
    }
}

impl Drop for ShmSender {
    fn drop(&mut self) {
        if self.pending.is_some() {
            // A committed message is finished while the peer reads, for a
            // while, not forever.
            let _ = self.flush_pending(Deadline::after(std::time::Duration::from_secs(1)));
        }
        self.ring
            .control()
            .producer_closed
            .store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.shared.wake_closed(self.index, Event::Data);
        self.shared.settle();
    }
}

/// A message being written in place; see [`ShmSender::loan`].
#[derive(Debug)]
pub struct Loan<'a> {
    tx: &'a mut ShmSender,
    reserved: ring::Reserved,
    len: usize,
}

impl Loan<'_> {
    /// Publishes the message.
    #[inline]
    pub fn send(self) {
        self.tx
            .ring
            .commit_reserved(&self.reserved, self.len as u64);
        self.tx.publish();
    }

    /// Publishes the message (same as [`send`](Self::send)).
    pub fn commit(self) {
        self.send();
    }
}

impl Deref for Loan<'_> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `payload` points at `len` reserved bytes inside the ring
        // (reserve_contiguous), which no one else writes until we publish;
        // the mapping lives as long as `tx`, which we borrow.
        unsafe { std::slice::from_raw_parts(self.reserved.payload, self.len) }
    }
}

impl DerefMut for Loan<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; `&mut self` makes this the only Rust
        // reference to those bytes.
        unsafe { std::slice::from_raw_parts_mut(self.reserved.payload, self.len) }
    }
}

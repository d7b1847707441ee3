//! Many ring records per wake-up: after the first message (waited for as
//! a single receive waits), every whole record already published is
//! copied out, and the space is released once, so a sender waiting for
//! room is woken at most once per batch (the rules are
//! `ipc_core::batch`'s).
//!
//! A message larger than what is published (one that streams through the
//! ring) is taken only as the first of a batch, through the
//! single-message path; met later, it ends the batch and starts the next.

use ipc_core::{Batch, Deadline, Receiver, Result};

use super::super::ring::{self, Next};
use super::ShmReceiver;

impl ShmReceiver {
    /// [`ipc_core::Receiver::recv_batch_until`] on shared memory.
    pub(in crate::shm) fn recv_batch_records(
        &mut self,
        batch: &mut Batch,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        batch.clear();
        self.link.check()?;
        if self.partial.is_some() {
            // A streamed message a non-blocking receive began comes first.
            let mut buf = batch.take_scratch();
            let r = self.recv_until(&mut buf, deadline);
            if r.is_ok() {
                batch.push(&buf);
            }
            batch.put_scratch(buf);
            r?;
            self.drain(batch, max.max(1));
            return Ok(batch.len());
        }
        let (len, avail) = match self.next_message(deadline) {
            Ok(next) => next,
            Err(e) => return Err(self.ended(e)),
        };
        if ring::record_size(len) > avail {
            // Streams through the ring: the single-message path.
            let mut buf = batch.take_scratch();
            let r = self.read_body(len, avail, &mut buf);
            if r.is_ok() {
                batch.push(&buf);
            }
            batch.put_scratch(buf);
            if let Err(e) = r {
                return Err(self.ended(e));
            }
        } else {
            self.take_record(batch, len, avail);
        }
        self.drain(batch, max.max(1));
        Ok(batch.len())
    }

    /// Takes every whole record published, up to `max` in `batch`, then
    /// releases the space once. Stops at anything else (a streamed
    /// message, a violation, nothing more): the next receive meets it.
    fn drain(&mut self, batch: &mut Batch, max: usize) {
        while batch.len() < max {
            let mut avail = self.ring.available_cached();
            if avail == 0 {
                match self.ring.available() {
                    Ok(n) if n > 0 => avail = n,
                    _ => break,
                }
            }
            if self.ring.take_run(avail, max, batch) > 0 {
                // The usual records: whole, unwrapped, one copy for all.
                continue;
            }
            match self.ring.next(avail) {
                Ok(Next::Message(len)) if ring::record_size(len) <= avail => {
                    self.take_record(batch, len, avail);
                }
                Ok(Next::Pad(skip)) => self.ring.skip(skip),
                _ => break,
            }
        }
        self.release();
    }

    /// Copies the message of `len` bytes whose whole record is published
    /// (`avail`) at the tail into `batch`, and skips the record; the space
    /// is released by the caller.
    fn take_record(&mut self, batch: &mut Batch, len: u64, avail: u64) {
        let record = ring::record_size(len);
        if let Some(payload) = self.ring.contiguous(len, avail) {
            // SAFETY: `contiguous` checked the record is published and lies
            // unwrapped in the data area, so `len` bytes at `payload` are
            // readable, and they stay ours until we release the space.
            let body = unsafe { std::slice::from_raw_parts(payload, len as usize) };
            batch.push(body);
            self.ring.skip(record);
            return;
        }
        // Wrapped around the ring end: copied in two pieces.
        self.ring.skip(ring::RECORD_HEADER);
        let ring = &mut self.ring;
        batch.push_with(len as usize, |dst| {
            let n = ring.pull(dst, avail - ring::RECORD_HEADER);
            debug_assert_eq!(n, dst.len());
        });
        self.ring.skip(record - ring::RECORD_HEADER - len);
    }
}

//! A batch of messages into the ring: every record written, the head
//! published once, so a sleeping receiver is woken at most once per batch
//! (the rules are `ipc_core::batch`'s).
//!
//! When the ring fills mid-batch, what was written is published (the
//! receiver can make room) before waiting. A message larger than the ring
//! goes through the single-message path (it streams); a half driven by
//! the async layer that leaves such a message pending ends the batch
//! there, the message committed.

use ipc_core::{Deadline, Error, Result, Sender};

use super::super::ring;
use super::ShmSender;

impl ShmSender {
    /// [`ipc_core::Sender::send_batch_until`] on shared memory.
    pub(in crate::shm) fn send_batch_records(
        &mut self,
        msgs: &[&[u8]],
        deadline: Deadline,
    ) -> Result<usize> {
        self.check_open()?;
        ipc_core::batch::check_sizes(msgs, self.max)?;
        if msgs.is_empty() {
            return Ok(0);
        }
        if self.pending.is_some() {
            self.flush_pending(deadline)?;
        }
        let mut written = 0;
        let mut unpublished = false;
        let result = self.write_records(msgs, deadline, &mut written, &mut unpublished);
        if unpublished {
            self.publish();
        }
        match result {
            Ok(()) => Ok(written),
            Err(Error::WouldBlock | Error::Timeout) if written > 0 => Ok(written),
            Err(e) => Err(e),
        }
    }

    fn write_records(
        &mut self,
        msgs: &[&[u8]],
        deadline: Deadline,
        written: &mut usize,
        unpublished: &mut bool,
    ) -> Result<()> {
        let cap = self.ring.capacity();
        let mut rest = msgs;
        while let Some((msg, after)) = rest.split_first() {
            // The usual case: a run of records into the room known free.
            let n = self.ring.push_run(rest);
            if n > 0 {
                *written += n;
                *unpublished = true;
                rest = &rest[n..];
                continue;
            }
            // The first of the rest needs more: a look at the tail, a
            // wait, a wrap, or streaming.
            rest = after;
            let len = msg.len() as u64;
            let record = ring::record_size(len);
            if record > cap {
                if *unpublished {
                    self.publish();
                    *unpublished = false;
                }
                self.send_until(msg, deadline)?;
                *written += 1;
                if self.pending.is_some() {
                    // Committed, its rest pending: nothing may follow yet.
                    return Ok(());
                }
                continue;
            }
            let mut free = self.free_for(record)?;
            if free < record {
                if *unpublished {
                    self.publish();
                    *unpublished = false;
                }
                self.wait_space(record, deadline)?;
                free = self.free()?;
            }
            if !self.ring.push_contiguous(msg) {
                // The record wraps: its pieces byte by byte (all fit).
                let header = ((u64::from(ring::KIND_MESSAGE) << 32) | len).to_le_bytes();
                let pad = [0u8; 8];
                let pad = &pad[..(record - ring::RECORD_HEADER - len) as usize];
                for part in [&header[..], msg, pad] {
                    let n = self.ring.push(part, free);
                    debug_assert_eq!(n, part.len());
                    free -= n as u64;
                }
            }
            *written += 1;
            *unpublished = true;
        }
        Ok(())
    }
}

//! The receiving half: copies a message out of the ring (`recv`) or lends
//! it where it lies ([`ShmReceiver::recv_in_place`]).

use std::ops::{Deref, Range};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use ipc_core::{Deadline, Error, Receiver, Result};

use super::ring::{self, Consumer, Next};
use super::shared::{Event, Shared, WaitCfg};
use crate::conn::link::Link;

/// The receiving half of a shared-memory connection.
#[derive(Debug)]
pub struct ShmReceiver {
    pub(super) shared: Arc<Shared>,
    pub(super) ring: Consumer,
    pub(super) index: usize,
    pub(super) how: WaitCfg,
    pub(super) scratch: Vec<u8>,
    /// Marked here once everything the peer sent was read and the peer is
    /// gone (or broke the ring); the sending half then refuses too.
    pub(super) link: Link,
}

impl ShmReceiver {
    /// Waits for at least one published byte; `Ok(0)` never: returns the
    /// bytes available, or [`Error::Disconnected`] once the producer closed
    /// and everything was read.
    fn wait_data(&mut self, deadline: Deadline) -> Result<u64> {
        let cached = self.ring.available_cached();
        if cached > 0 {
            return Ok(cached);
        }
        let (shared, ring, index) = (&self.shared, &mut self.ring, self.index);
        let mut avail = 0;
        shared.wait_for(index, Event::Data, self.how, deadline, || {
            // Closed before head: the producer publishes its last bytes
            // before it closes, so a head read after seeing it closed has
            // them all.
            let closed = ring.control().producer_closed.load(Ordering::Acquire) != 0;
            avail = ring.available().map_err(|v| shared.protocol(index, v))?;
            Ok(avail > 0 || closed)
        })?;
        match avail {
            0 => Err(Error::Disconnected),
            n => Ok(n),
        }
    }

    /// The addresses of the mapped segment (for tests that check a
    /// message is read in place).
    #[doc(hidden)]
    pub fn mapped_range(&self) -> Range<usize> {
        self.shared.mapped_range()
    }

    fn release(&mut self) {
        if self.ring.release() {
            self.shared.wake(self.index, Event::Space);
        }
    }

    /// A receive failed with `e`: when that ends the connection (the peer
    /// is gone and everything was read, or it broke the ring), both halves
    /// return `Disconnected` from now on. Out of line: the error path
    /// only, so a received message pays one load for the link.
    #[cold]
    #[inline(never)]
    fn ended(&self, e: Error) -> Error {
        if e.is_disconnect() && !self.link.is_closed() {
            self.link.close();
            tracing::debug!(endpoint = self.shared.endpoint, error = %e, "connection closed");
        }
        e
    }

    /// The next message header, skipping padding: its length and the bytes
    /// available.
    fn next_message(&mut self, deadline: Deadline) -> Result<(u64, u64)> {
        loop {
            let avail = self.wait_data(deadline)?;
            match self.ring.next(avail) {
                Ok(Next::Message(len)) => return Ok((len, avail)),
                Ok(Next::Pad(skip)) => {
                    self.ring.skip(skip);
                    self.release();
                }
                Ok(Next::Empty) => {}
                Err(v) => return Err(self.shared.protocol(self.index, v)),
            }
        }
    }

    /// Reads the body of a message of `len` bytes whose header is at the
    /// tail into `buf`.
    fn read_body(&mut self, len: u64, avail: u64, buf: &mut Vec<u8>) -> Result<()> {
        // Every byte is overwritten below: zero only what the buffer grows.
        buf.truncate(len as usize);
        buf.resize(len as usize, 0);
        if let Some(payload) = self.ring.contiguous(len, avail) {
            // SAFETY: `contiguous` checked the record is published and lies
            // unwrapped in the data area, so `len` bytes at `payload` are
            // readable; `buf` holds `len` bytes in a distinct allocation.
            unsafe { std::ptr::copy_nonoverlapping(payload, buf.as_mut_ptr(), len as usize) };
            self.ring.skip(ring::record_size(len));
            self.release();
            return Ok(());
        }
        self.read_streamed(len, avail, buf)
    }

    /// Reads a wrapped or streamed body piece by piece; waits for streamed
    /// chunks without a deadline (the sender is committed), stopping only
    /// if the peer dies.
    fn read_streamed(&mut self, len: u64, mut avail: u64, buf: &mut [u8]) -> Result<()> {
        self.ring.skip(ring::RECORD_HEADER);
        avail -= ring::RECORD_HEADER;
        let mut pad = [0u8; 8];
        let pad_len = (ring::record_size(len) - ring::RECORD_HEADER - len) as usize;
        for part in [buf, &mut pad[..pad_len]] {
            let mut done = 0;
            while done < part.len() {
                if avail == 0 {
                    self.release();
                    avail = self.wait_data(Deadline::Never)?;
                    continue;
                }
                let n = self.ring.pull(&mut part[done..], avail);
                done += n;
                avail -= n as u64;
            }
        }
        self.release();
        Ok(())
    }

    /// The next message, read in place inside the segment when it lies
    /// there in one piece (always, for messages sent with a loan), copied
    /// otherwise. The space is released when the guard drops.
    ///
    /// The bytes are shared memory: a misbehaving peer could change them
    /// while the guard lives. Validate what you decode from them.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    pub fn recv_in_place(&mut self) -> Result<InPlace<'_>> {
        self.recv_in_place_until(Deadline::Never)
    }

    /// As [`recv_in_place`](Self::recv_in_place), waiting at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<InPlace<'_>> {
        self.link.check()?;
        let (len, avail) = match self.next_message(deadline) {
            Ok(next) => next,
            Err(e) => return Err(self.ended(e)),
        };
        if let Some(ptr) = self.ring.contiguous(len, avail) {
            return Ok(InPlace {
                ptr,
                len: len as usize,
                release: Some(ring::record_size(len)),
                rx: self,
            });
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let r = self.read_body(len, avail, &mut scratch);
        self.scratch = scratch;
        if let Err(e) = r {
            return Err(self.ended(e));
        }
        Ok(InPlace {
            ptr: self.scratch.as_ptr(),
            len: self.scratch.len(),
            release: None,
            rx: self,
        })
    }
}

impl Receiver for ShmReceiver {
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.link.check()?;
        let r = match self.next_message(deadline) {
            Ok((len, avail)) => self.read_body(len, avail, buf),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => Err(self.ended(e)),
        }
    }
}

impl Drop for ShmReceiver {
    fn drop(&mut self) {
        self.ring
            .control()
            .consumer_closed
            .store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.shared.wake(self.index, Event::Space);
        self.shared.settle();
    }
}

/// A received message; see [`ShmReceiver::recv_in_place`].
#[derive(Debug)]
pub struct InPlace<'a> {
    rx: &'a mut ShmReceiver,
    ptr: *const u8,
    len: usize,
    /// Record bytes to release on drop when the message is in the ring.
    release: Option<u64>,
}

impl InPlace<'_> {
    /// Whether the bytes are read in place in shared memory (not copied).
    pub fn is_in_place(&self) -> bool {
        self.release.is_some()
    }
}

impl Deref for InPlace<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is `len` published ring bytes (released only on
        // drop) or `rx.scratch`, untouched while this guard borrows `rx`;
        // the mapping lives as long as `rx`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for InPlace<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.release {
            self.rx.ring.skip(n);
            self.rx.release();
        }
    }
}

//! The receiving half: copies a message out of the ring (`recv`) or lends
//! it where it lies ([`ShmReceiver::recv_in_place`]).

use std::ops::{Deref, Range};
use std::sync::Arc;
use std::sync::atomic::{Ordering, fence};

use ipc_core::{Deadline, Error, Receiver, Result};

use super::ring::{self, Consumer, Next};
use super::shared::{Event, Shared, WaitCfg};
use crate::conn::link::Link;

mod batch;

/// The receiving half of a shared-memory connection.
#[derive(Debug)]
pub struct ShmReceiver {
    pub(super) shared: Arc<Shared>,
    pub(super) ring: Consumer,
    pub(super) index: usize,
    pub(super) how: WaitCfg,
    pub(super) scratch: Vec<u8>,
    /// A message larger than the ring that a non-blocking receive began:
    /// finished by the next receive.
    pub(super) partial: Option<Partial>,
    /// Driven by the async layer: a message larger than the ring is not
    /// waited for between chunks but kept as [`Partial`].
    pub(super) nonblocking: bool,
    /// Marked here once everything the peer sent was read and the peer is
    /// gone (or broke the ring); the sending half then refuses too.
    pub(super) link: Link,
}

/// What a non-blocking receive of a streamed message has read so far.
#[derive(Debug)]
pub(super) struct Partial {
    /// The message, `len` bytes, the first `done` of them read.
    body: Vec<u8>,
    done: usize,
    /// Padding bytes still to skip after the body.
    pad: u64,
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
        let (shared, ring, index, link) = (&self.shared, &mut self.ring, self.index, &self.link);
        let mut avail = 0;
        shared.wait_for(index, Event::Data, self.how, deadline, || {
            // Closed before head: the producer publishes its last bytes
            // before it closes, so a head read after seeing it closed has
            // them all.
            let closed = ring.control().producer_closed.load(Ordering::Acquire) != 0;
            avail = ring.available().map_err(|v| shared.protocol(index, v))?;
            Ok(avail > 0 || closed || link.closed_here())
        })?;
        if self.link.closed_here() {
            return Err(Error::Closed);
        }
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

    /// The fast path of a receive: a whole unwrapped message already
    /// published (as of the cached head, or else the head read once) is
    /// copied into `buf` and released. `false`, touching nothing, for
    /// anything else: the full path then waits, skips pads, streams or
    /// reports.
    #[inline]
    fn recv_published(&mut self, buf: &mut Vec<u8>) -> bool {
        let mut avail = self.ring.available_cached();
        if avail == 0 {
            match self.ring.available() {
                Ok(n) => avail = n,
                Err(_) => return false,
            }
        }
        let Some((payload, len)) = self.ring.whole_message(avail) else {
            return false;
        };
        let len = len as usize;
        buf.clear();
        buf.reserve(len);
        // SAFETY: `whole_message` checked the record is published and lies
        // unwrapped in the data area, so `len` bytes at `payload` are
        // readable; `buf` has room for `len` bytes in a distinct
        // allocation, which the copy initialises.
        unsafe {
            std::ptr::copy_nonoverlapping(payload, buf.as_mut_ptr(), len);
            buf.set_len(len);
        }
        self.ring.skip(ring::record_size(len as u64));
        self.release();
        true
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
    /// if the peer dies. A half driven by the async layer
    /// ([`nonblocking`](Self::nonblocking)) keeps what it read as
    /// [`Partial`] and returns `WouldBlock` when the rest is not there yet;
    /// the next receive finishes the message.
    fn read_streamed(&mut self, len: u64, avail: u64, buf: &mut Vec<u8>) -> Result<()> {
        self.ring.skip(ring::RECORD_HEADER);
        let mut p = Partial {
            body: std::mem::take(buf),
            done: 0,
            pad: ring::record_size(len) - ring::RECORD_HEADER - len,
        };
        self.stream_into(&mut p, avail - ring::RECORD_HEADER, buf)
    }

    /// Reads what is published of `p`'s message (`avail` bytes known
    /// published), waiting for the rest unless the half is non-blocking.
    fn advance(&mut self, p: &mut Partial, mut avail: u64) -> Result<()> {
        let wait = if self.nonblocking {
            Deadline::Now
        } else {
            Deadline::Never
        };
        loop {
            if p.done == p.body.len() && p.pad == 0 {
                self.release();
                return Ok(());
            }
            if avail == 0 {
                self.release();
                avail = self.wait_data(wait)?;
                continue;
            }
            if p.done < p.body.len() {
                let n = self.ring.pull(&mut p.body[p.done..], avail);
                p.done += n;
                avail -= n as u64;
            } else {
                let n = p.pad.min(avail);
                self.ring.skip(n);
                p.pad -= n;
                avail -= n;
            }
        }
    }

    /// Whether a message can be received now, without taking it: `Ok`
    /// when one is (a message larger than the ring that a receive began is
    /// read on meanwhile, and kept whole until taken), `WouldBlock` when
    /// not, the receive's errors otherwise.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(crate) fn ready_now(&mut self) -> Result<()> {
        self.link.check()?;
        let r = match self.partial.take() {
            Some(mut p) => {
                let avail = self.ring.available_cached();
                let r = self.advance(&mut p, avail);
                self.partial = Some(p);
                r
            }
            None => match self.next_message(Deadline::Now) {
                // The whole record is published: a receive takes it now.
                Ok((len, avail)) if ring::record_size(len) <= avail => Ok(()),
                // Larger than what is published (a streamed message): read
                // what is there, and keep it (whole, or as far as it got).
                Ok((len, avail)) => {
                    let mut body = vec![0; len as usize];
                    self.read_streamed(len, avail, &mut body).map(|()| {
                        self.partial = Some(Partial {
                            body,
                            done: len as usize,
                            pad: 0,
                        });
                    })
                }
                Err(e) => Err(e),
            },
        };
        r.map_err(|e| match e {
            Error::WouldBlock => e,
            e => self.ended(e),
        })
    }

    /// [`Receiver::recv_until`] when a non-blocking receive began a
    /// streamed message.
    #[cold]
    #[inline(never)]
    fn recv_resumed(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        self.resume(buf).map_err(|e| self.ended(e))
    }

    /// Goes on with a streamed message a non-blocking receive began.
    #[cold]
    #[inline(never)]
    fn resume(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        let Some(mut p) = self.partial.take() else {
            return Err(Error::WouldBlock);
        };
        let avail = self.ring.available_cached();
        self.stream_into(&mut p, avail, buf)
    }

    /// Reads the rest of `p` (`avail` bytes known published), then hands
    /// the body to `buf`, or keeps `p` on `WouldBlock`.
    fn stream_into(&mut self, p: &mut Partial, avail: u64, buf: &mut Vec<u8>) -> Result<()> {
        let r = self.advance(p, avail);
        if matches!(r, Err(Error::WouldBlock)) {
            self.partial = Some(Partial {
                body: std::mem::take(&mut p.body),
                done: p.done,
                pad: p.pad,
            });
        } else {
            *buf = std::mem::take(&mut p.body);
        }
        r
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
    #[inline]
    pub fn recv_in_place(&mut self) -> Result<InPlace<'_>> {
        self.recv_in_place_until(Deadline::Never)
    }

    /// As [`recv_in_place`](Self::recv_in_place), waiting at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    #[inline]
    pub fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<InPlace<'_>> {
        // The fast path, inlined: nothing half read, the link open, and a
        // whole message already published.
        if self.partial.is_none() && self.link.check().is_ok() {
            let avail = match self.ring.available_cached() {
                0 => self.ring.available().unwrap_or(0),
                n => n,
            };
            if let Some((ptr, len)) = self.ring.whole_message(avail) {
                return Ok(InPlace {
                    ptr,
                    len: len as usize,
                    release: Some(ring::record_size(len)),
                    rx: self,
                });
            }
        }
        self.recv_in_place_waiting(deadline)
    }

    /// [`recv_in_place_until`](Self::recv_in_place_until) past its fast
    /// path: a streamed message resumed, the link's error, the wait.
    #[inline(never)]
    fn recv_in_place_waiting(&mut self, deadline: Deadline) -> Result<InPlace<'_>> {
        self.link.check()?;
        if self.partial.is_some() {
            let mut scratch = std::mem::take(&mut self.scratch);
            let r = self.resume(&mut scratch);
            self.scratch = scratch;
            if let Err(e) = r {
                return Err(self.ended(e));
            }
            return Ok(InPlace {
                ptr: self.scratch.as_ptr(),
                len: self.scratch.len(),
                release: None,
                rx: self,
            });
        }
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
    #[inline]
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.link.check()?;
        if self.partial.is_some() {
            return self.recv_resumed(buf);
        }
        if self.recv_published(buf) {
            return Ok(());
        }
        let r = match self.next_message(deadline) {
            Ok((len, avail)) => self.read_body(len, avail, buf),
            Err(e) => Err(e),
        };
        match r {
            Ok(()) => Ok(()),
            Err(e) => Err(self.ended(e)),
        }
    }

    fn recv_batch_until(
        &mut self,
        batch: &mut ipc_core::Batch,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        self.recv_batch_records(batch, max, deadline)
    }
}

impl Drop for ShmReceiver {
    fn drop(&mut self) {
        self.ring
            .control()
            .consumer_closed
            .store(1, Ordering::Release);
        fence(Ordering::SeqCst);
        self.shared.wake_closed(self.index, Event::Space);
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

    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is `len` published ring bytes (released only on
        // drop) or `rx.scratch`, untouched while this guard borrows `rx`;
        // the mapping lives as long as `rx`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for InPlace<'_> {
    #[inline]
    fn drop(&mut self) {
        if let Some(n) = self.release {
            self.rx.ring.skip(n);
            self.rx.release();
        }
    }
}

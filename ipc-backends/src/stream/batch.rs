//! Batches over a framed stream: many frames per `writev`/`sendmsg`, many
//! frames per read (the rules are `ipc_core::batch`'s).
//!
//! Sending: frames are assembled as for one message (small ones copied
//! into the scratch buffer, a large body left where the caller has it as
//! a slice of its own) into chunks of at most 64 KiB copied and 1024
//! slices, each written with one call. A deadline that passes mid-chunk
//! commits the frame the last byte written belongs to (its rest becomes
//! the pending tail, written before anything else) and reports the
//! frames up to it as sent.
//!
//! Receiving: whole frames already in the read buffer are taken without
//! a call; another non-blocking read is made only while the last one
//! filled its whole window (so the kernel may hold more). The first
//! message of a batch, and any frame too large for the buffer, go through
//! the single-message path, with its deadline and partial-frame keeping.

use std::io::IoSlice;
use std::os::fd::AsFd;

use ipc_core::{Batch, Deadline, Error, Result};

use super::{
    COALESCE, Carrier, HEADER_LEN, READ_AHEAD, StreamReceiver, StreamSender, os, set_mode,
    wait_more,
};
use crate::sys::fd::Interest;
use crate::sys::socket::Io;
use crate::sys::vectored::{self, MAX_SLICES};

/// Most bytes copied into one chunk: a pipe's default capacity. A larger
/// batch goes out in several writes.
const CHUNK: usize = 64 * 1024;

/// A piece of a chunk.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// Bytes `start..end` of the scratch buffer (headers, small bodies).
    Scratch(usize, usize),
    /// The body of message `i` of the batch, as the caller holds it.
    Body(usize),
}

impl StreamSender {
    /// [`ipc_core::Sender::send_batch_until`] for a stream.
    pub(super) fn send_batch_frames(
        &mut self,
        msgs: &[&[u8]],
        deadline: Deadline,
    ) -> Result<usize> {
        self.link.check()?;
        ipc_core::batch::check_sizes(msgs, self.max)?;
        if msgs.is_empty() {
            return Ok(0);
        }
        if !self.flush_pending(deadline)? {
            return Err(deadline.elapsed_error());
        }
        let result = self.write_frames(msgs, deadline);
        self.link.local(result)
    }

    fn write_frames(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut pieces = Vec::new();
        let mut ends = Vec::new();
        let mut sent = 0;
        let result = loop {
            if sent == msgs.len() {
                break Ok(sent);
            }
            let n = assemble(&msgs[sent..], &mut scratch, &mut pieces, &mut ends);
            let slices: Vec<IoSlice<'_>> = pieces
                .iter()
                .map(|p| match *p {
                    Piece::Scratch(a, b) => IoSlice::new(&scratch[a..b]),
                    Piece::Body(i) => IoSlice::new(msgs[sent + i]),
                })
                .collect();
            let done = match self.write_slices(slices, deadline) {
                Ok(done) => done,
                Err(e) => break Err(e),
            };
            let whole = ends.partition_point(|&end| end <= done);
            if whole == n {
                sent += n;
                continue;
            }
            // The deadline passed inside this chunk.
            let begun = if whole == 0 { 0 } else { ends[whole - 1] };
            if done == begun {
                break if sent + whole == 0 {
                    Err(deadline.elapsed_error())
                } else {
                    Ok(sent + whole)
                };
            }
            // Frame `whole` is begun: it is committed, its rest pending.
            let msg = msgs[sent + whole];
            let header = (msg.len() as u32).to_le_bytes();
            let at = done - begun;
            let mut rest = Vec::with_capacity(HEADER_LEN + msg.len() - at);
            if at < HEADER_LEN {
                rest.extend_from_slice(&header[at..]);
                rest.extend_from_slice(msg);
            } else {
                rest.extend_from_slice(&msg[at - HEADER_LEN..]);
            }
            self.pending = rest;
            break Ok(sent + whole + 1);
        };
        self.scratch = scratch;
        result
    }

    /// Writes `slices` with as few calls as the kernel takes, waiting
    /// until `deadline`; returns the bytes written (all of them unless the
    /// deadline passed).
    fn write_slices(&mut self, mut slices: Vec<IoSlice<'_>>, deadline: Deadline) -> Result<usize> {
        let total: usize = slices.iter().map(|s| s.len()).sum();
        // Blocking calls poll beside the link's stop once a closer exists.
        let nonblock = deadline != Deadline::Never || self.link.stop_fd().is_some();
        let mut rest: &mut [IoSlice<'_>] = &mut slices;
        let mut done = 0;
        while done < total {
            let r = match self.carrier {
                Carrier::Socket => {
                    vectored::send(self.fd.as_fd(), rest, nonblock).map_err(|e| os(e, "sendmsg"))?
                }
                Carrier::Pipe => {
                    set_mode(&self.fd, &mut self.nonblocking, nonblock)?;
                    vectored::write(self.fd.as_fd(), rest).map_err(|e| os(e, "writev"))?
                }
            };
            match r {
                Io::Done(n) => {
                    done += n;
                    IoSlice::advance_slices(&mut rest, n);
                }
                Io::Closed => return Err(Error::Disconnected),
                Io::WouldBlock => {
                    if !wait_more(self.fd.as_fd(), Interest::Write, deadline, &self.link)? {
                        return Ok(done);
                    }
                }
            }
        }
        Ok(done)
    }
}

/// Lays out the frames of the first messages of `msgs` that fit one
/// chunk (at least one): headers and small bodies copied into `scratch`,
/// large bodies as their own pieces; `ends[i]` is where frame `i` ends in
/// the chunk's bytes. Returns how many frames.
fn assemble(
    msgs: &[&[u8]],
    scratch: &mut Vec<u8>,
    pieces: &mut Vec<Piece>,
    ends: &mut Vec<usize>,
) -> usize {
    scratch.clear();
    pieces.clear();
    ends.clear();
    let mut total = 0;
    for (i, msg) in msgs.iter().enumerate() {
        let copied = if msg.len() <= COALESCE { msg.len() } else { 0 };
        if i > 0 && (pieces.len() + 2 > MAX_SLICES || scratch.len() + HEADER_LEN + copied > CHUNK) {
            break;
        }
        let start = scratch.len();
        scratch.extend_from_slice(&(msg.len() as u32).to_le_bytes());
        scratch.extend_from_slice(&msg[..copied]);
        match pieces.last_mut() {
            Some(Piece::Scratch(_, end)) if *end == start => *end = scratch.len(),
            _ => pieces.push(Piece::Scratch(start, scratch.len())),
        }
        if copied < msg.len() {
            pieces.push(Piece::Body(i));
        }
        total += HEADER_LEN + msg.len();
        ends.push(total);
    }
    ends.len()
}

impl StreamReceiver {
    /// [`ipc_core::Receiver::recv_batch_until`] for a stream.
    pub(super) fn recv_batch_frames(
        &mut self,
        batch: &mut Batch,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        batch.clear();
        self.link.check()?;
        let result = self.take_frames(batch, max.max(1), deadline);
        self.link.observe(result)
    }

    fn take_frames(&mut self, batch: &mut Batch, max: usize, deadline: Deadline) -> Result<usize> {
        // Whether a read may find more: none made yet, or the last one
        // filled its whole window.
        let mut more = true;
        while batch.len() < max {
            let first = batch.is_empty();
            if self.in_progress.is_none() {
                match self.buffered_frame() {
                    Whole(len) => {
                        let body = self.start + HEADER_LEN;
                        batch.push(self.bytes(body, body + len));
                        self.start = body + len;
                        continue;
                    }
                    Short => {}
                    Large => {
                        if !first {
                            break;
                        }
                        self.take_one(batch, deadline)?;
                        continue;
                    }
                }
            } else {
                // A frame a timed receive began: the single-message path
                // finishes it.
                if !first {
                    break;
                }
                self.take_one(batch, deadline)?;
                continue;
            }
            if !first && !more {
                break;
            }
            let before = self.buffered();
            match self.fill(READ_AHEAD, if first { deadline } else { Deadline::Now }) {
                Ok(true) => more = self.buffered() - before >= READ_AHEAD,
                Ok(false) if first => return Err(deadline.elapsed_error()),
                Err(e) if first => return Err(e),
                // Met again by the next call.
                Ok(false) | Err(_) => break,
            }
        }
        Ok(batch.len())
    }

    /// One message through the single-message path, into `batch`.
    fn take_one(&mut self, batch: &mut Batch, deadline: Deadline) -> Result<()> {
        let mut buf = batch.take_scratch();
        let r = self.recv_frame(&mut buf, deadline);
        if r.is_ok() {
            batch.push(&buf);
        }
        batch.put_scratch(buf);
        r
    }

    /// What the buffer holds at `start`.
    fn buffered_frame(&self) -> Buffered {
        if self.buffered() < HEADER_LEN {
            return Short;
        }
        let h = self.bytes(self.start, self.start + HEADER_LEN);
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len > self.max {
            // The single-message path reports it.
            Large
        } else if self.buffered() >= HEADER_LEN + len {
            Whole(len)
        } else if HEADER_LEN + len > READ_AHEAD {
            Large
        } else {
            Short
        }
    }
}

/// What the receive buffer holds at its start.
enum Buffered {
    /// A whole frame with a body of this many bytes.
    Whole(usize),
    /// Part of a frame that one more read can complete.
    Short,
    /// The header of a frame too large to assemble in the buffer (or
    /// above the limit): for the single-message path.
    Large,
}

use Buffered::{Large, Short, Whole};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_frames_share_one_piece_and_large_bodies_are_their_own() {
        let big = vec![9u8; COALESCE + 1];
        let msgs: [&[u8]; 4] = [b"ab", b"", &big, b"c"];
        let (mut scratch, mut pieces, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        assert_eq!(assemble(&msgs, &mut scratch, &mut pieces, &mut ends), 4);
        let h = HEADER_LEN;
        assert_eq!(
            ends,
            [
                h + 2,
                2 * h + 2,
                3 * h + 2 + big.len(),
                4 * h + 3 + big.len()
            ]
        );
        // Headers and small bodies copied; the large body left in place.
        assert_eq!(scratch.len(), 4 * h + 3);
        match pieces[..] {
            [Piece::Scratch(0, a), Piece::Body(2), Piece::Scratch(b, c)] => {
                assert_eq!((a, b, c), (3 * h + 2, 3 * h + 2, 4 * h + 3));
            }
            _ => panic!("{pieces:?}"),
        }
    }

    #[test]
    fn a_chunk_stops_at_its_copy_limit_but_takes_at_least_one() {
        let small = vec![1u8; COALESCE];
        let msgs: Vec<&[u8]> = vec![&small; 1000];
        let (mut scratch, mut pieces, mut ends) = (Vec::new(), Vec::new(), Vec::new());
        let n = assemble(&msgs, &mut scratch, &mut pieces, &mut ends);
        assert_eq!(n, CHUNK / (HEADER_LEN + COALESCE));
        assert!(scratch.len() <= CHUNK);
        let huge = vec![0u8; 2 * CHUNK];
        let one: [&[u8]; 2] = [&huge, &huge];
        assert_eq!(assemble(&one, &mut scratch, &mut pieces, &mut ends), 2);
        let many_large: Vec<&[u8]> = vec![&huge; MAX_SLICES];
        let n = assemble(&many_large, &mut scratch, &mut pieces, &mut ends);
        assert!(
            n < MAX_SLICES && pieces.len() <= MAX_SLICES,
            "{n} frames, {} pieces",
            pieces.len()
        );
    }
}

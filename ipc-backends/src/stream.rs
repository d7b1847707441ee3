//! Message framing over a byte stream (Unix and TCP sockets, pipes and FIFOs).
//!
//! Each message is a frame: its length as a little-endian `u32`, then its
//! bytes. The receiver checks the length against the connection's
//! `max_message_size` before reserving memory, so a lying peer costs at most
//! one maximum-size buffer and gets a [`Error::Protocol`].
//!
//! Blocking operations make exactly one `send`/`recv` call for a message
//! of up to 8 KiB (`sendmsg`/`recvmsg` of two slices for a larger one);
//! operations with a deadline use `MSG_DONTWAIT` and `poll(2)`.
//!
//! A message is never half-delivered from the receiver's view: a timed
//! receive that runs out of time mid-frame keeps what it read and resumes
//! on the next call. A timed send that has written part of a frame when its
//! deadline passes has committed the message (it returns `Ok`); the rest is
//! written before the next message, and on drop.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use ipc_core::handshake::{Hello, MAX_HELLO_LEN};
use ipc_core::{Deadline, Endpoint, Error, Result, Schema};

use crate::conn::handshake::{self, Framed, Limit};
use crate::conn::link::Link;
use crate::sys::backoff::Backoff;
use crate::sys::fd::{Interest, Ready, wait, wait_any};
use crate::sys::pipe;
use crate::sys::socket::{self, How, Io};

mod batch;

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;
/// Size of the receive buffer.
const READ_BUF: usize = 64 * 1024;
/// Most read into the buffer in one `recv`.
const READ_AHEAD: usize = 8 * 1024;
/// A frame body of at least this many bytes not yet in the buffer is read
/// straight into the caller's buffer (with the next frame's header into
/// ours, in the same call: `recvmsg`/`readv` of two slices) instead of
/// being read into ours (`recv`/`read`) and copied out. Below it the copy
/// costs less than the kernel's import of a two-slice vector: over
/// loopback TCP a 4 KiB message took 8 % less CPU time through the buffer
/// (docs/benchmarks.md, "Where the cycles go").
/// One read of such a body and the next header fits [`READ_AHEAD`].
const DIRECT_BODY: usize = READ_AHEAD - HEADER_LEN + 1;
/// The naps of a handshake's read on a pipe
/// ([`StreamReceiver::wait_readable`]), from 20 µs up to 1 ms: a peer's
/// hello, written within microseconds of our read or milliseconds later
/// (a child that is still starting), is read at most 1 ms late.
const HANDSHAKE_NAPS: Backoff = Backoff::new(Duration::from_micros(20), Duration::from_millis(1));
/// Where reads start in the receive buffer: a frame read into an empty
/// buffer then has its body 16-byte aligned, which keeps the copy out of it
/// on the fast path of `memcpy`.
const ALIGN_PAD: usize = 16 - HEADER_LEN;

/// What carries the bytes: a socket (`send`/`recv` with per-call
/// `MSG_DONTWAIT`, shut down on drop) or one end of a pipe or FIFO
/// (`read`/`write`, closed on drop). A pipe end has no per-call flag, so
/// its `O_NONBLOCK` is switched when an operation's mode differs from the
/// last one's: a loop of blocking operations makes one call per message,
/// and a peer's death still wakes it (end of file, `EPIPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Socket,
    Pipe,
}

/// The sending half of a framed stream.
#[derive(Debug)]
pub struct StreamSender {
    fd: Arc<OwnedFd>,
    carrier: Carrier,
    /// Whether a pipe end is in `O_NONBLOCK` mode now.
    nonblocking: bool,
    max: usize,
    /// The unsent tail of a frame whose deadline passed mid-write.
    pending: Vec<u8>,
    /// Reused buffer in which small frames are assembled.
    scratch: Vec<u8>,
    link: Link,
}

/// The receiving half of a framed stream.
#[derive(Debug)]
pub struct StreamReceiver {
    fd: Arc<OwnedFd>,
    carrier: Carrier,
    /// Whether a pipe end is in `O_NONBLOCK` mode now.
    nonblocking: bool,
    max: usize,
    buf: Box<[MaybeUninit<u8>]>,
    start: usize,
    end: usize,
    /// Length of the frame being read, once its header is consumed.
    in_progress: Option<usize>,
    /// The part of that frame read so far, kept across timeouts.
    partial: Vec<u8>,
    /// Body length of the last frame: a read for a new frame asks for one
    /// of that size (see [`Self::fill`]).
    last_len: usize,
    /// While set, a read that would block waits by napping and reading
    /// again instead of polling (a pipe during the handshake: see
    /// [`Self::wait_readable`]).
    nap: Option<Backoff>,
    link: Link,
}

/// Splits a connected stream socket into framed halves that share it.
pub fn halves(fd: OwnedFd, max: usize) -> (StreamSender, StreamReceiver) {
    let fd = Arc::new(fd);
    framed(fd.clone(), fd, Carrier::Socket, max)
}

/// Frames a pair of pipe (or FIFO) ends: messages are written to `write`
/// and read from `read`. Both must be non-blocking.
pub fn pipe_halves(read: OwnedFd, write: OwnedFd, max: usize) -> (StreamSender, StreamReceiver) {
    framed(Arc::new(read), Arc::new(write), Carrier::Pipe, max)
}

fn framed(
    read: Arc<OwnedFd>,
    write: Arc<OwnedFd>,
    carrier: Carrier,
    max: usize,
) -> (StreamSender, StreamReceiver) {
    let link = Link::new();
    if carrier == Carrier::Socket {
        // A call blocked before the first closer was made is woken too.
        let fd = Arc::clone(&read);
        link.on_close(Box::new(move || socket::shutdown(fd.as_fd(), How::Both)));
    }
    (
        StreamSender {
            fd: write,
            carrier,
            nonblocking: true,
            max,
            pending: Vec::new(),
            scratch: Vec::new(),
            link: link.clone(),
        },
        StreamReceiver {
            fd: read,
            carrier,
            nonblocking: true,
            max,
            buf: vec![MaybeUninit::uninit(); READ_BUF].into_boxed_slice(),
            start: 0,
            end: 0,
            in_progress: None,
            partial: Vec::new(),
            last_len: 0,
            nap: None,
            link,
        },
    )
}

/// Puts a pipe end in the mode an operation needs, if it is not already.
#[inline]
fn set_mode(fd: &OwnedFd, current: &mut bool, nonblock: bool) -> Result<()> {
    if *current != nonblock {
        switch_mode(fd, current, nonblock)?;
    }
    Ok(())
}

#[cold]
#[inline(never)]
fn switch_mode(fd: &OwnedFd, current: &mut bool, nonblock: bool) -> Result<()> {
    pipe::set_nonblocking(fd.as_fd(), nonblock).map_err(|e| os(e, "fcntl(O_NONBLOCK)"))?;
    *current = nonblock;
    Ok(())
}

fn os(e: std::io::Error, what: &str) -> Error {
    Error::io(what.to_string(), e)
}

/// Frames up to this size are copied into one buffer by a batch; larger
/// bodies go out as their own slices.
const COALESCE: usize = 512;

/// A single message's frame up to this size is assembled in one buffer and
/// sent with one `send(2)`/`write(2)`; a larger one goes out as two slices
/// (length and message) with `sendmsg(2)`/`writev(2)`. Copying up to 8 KiB
/// costs less than the kernel's import of a two-slice vector: over loopback
/// TCP a 4 KiB message took 3 % less CPU time copied (docs/benchmarks.md,
/// "Where the cycles go").
const SEND_COPY: usize = 8 * 1024;

impl StreamSender {
    /// Writes `a` then `b` fully, starting at byte `done` of the two,
    /// waiting until `deadline`. Returns how many bytes went out in total.
    fn write_two(
        &mut self,
        a: &[u8],
        b: &[u8],
        mut done: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        let total = a.len() + b.len();
        // Blocking calls poll beside the link's stop once a closer exists.
        let nonblock = deadline != Deadline::Never || self.link.stop_fd().is_some();
        while done < total {
            let (x, y) = if done < a.len() {
                (&a[done..], b)
            } else {
                (&b[done - a.len()..], &[][..])
            };
            let sent = match self.carrier {
                Carrier::Socket => {
                    socket::send_two(self.fd.as_fd(), x, y, nonblock).map_err(|e| os(e, "send"))?
                }
                Carrier::Pipe => {
                    set_mode(&self.fd, &mut self.nonblocking, nonblock)?;
                    pipe::write_two(self.fd.as_fd(), x, y).map_err(|e| os(e, "write"))?
                }
            };
            match sent {
                Io::Done(n) => done += n,
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

    fn flush_pending(&mut self, deadline: Deadline) -> Result<bool> {
        if self.pending.is_empty() {
            return Ok(true);
        }
        let pending = std::mem::take(&mut self.pending);
        // A close here (its shutdown of the socket) is what ends the write.
        let written = self.write_two(&pending, &[], 0, deadline);
        let done = self.link.local(written)?;
        if done < pending.len() {
            self.pending = pending[done..].to_vec();
            return Ok(false);
        }
        Ok(true)
    }

    /// Writes any committed but unsent bytes, waiting until `deadline`.
    ///
    /// # Errors
    /// [`Error::Disconnected`] if the peer is gone; the deadline's error if
    /// bytes remain.
    pub fn flush(&mut self, deadline: Deadline) -> Result<()> {
        if self.flush_pending(deadline)? {
            Ok(())
        } else {
            Err(deadline.elapsed_error())
        }
    }
}

impl ipc_core::Sender for StreamSender {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.link.admit(msg.len(), self.max)?;
        if !self.pending.is_empty() && !self.flush_pending(deadline)? {
            return Err(deadline.elapsed_error());
        }
        let header = (msg.len() as u32).to_le_bytes();
        let total = HEADER_LEN + msg.len();
        let mut done = 0;
        if total <= SEND_COPY {
            // The usual case: one call that writes the whole frame.
            // The buffer grows to the largest frame copied so far (not to
            // SEND_COPY at once: an idle connection keeps a small one).
            self.scratch.clear();
            self.scratch.reserve(total);
            self.scratch.extend_from_slice(&header);
            self.scratch.extend_from_slice(msg);
            let nonblock = deadline != Deadline::Never || self.link.stop_fd().is_some();
            let sent = match self.carrier {
                Carrier::Socket => socket::send_two(self.fd.as_fd(), &self.scratch, &[], nonblock),
                Carrier::Pipe => {
                    set_mode(&self.fd, &mut self.nonblocking, nonblock)?;
                    pipe::write_two(self.fd.as_fd(), &self.scratch, &[])
                }
            };
            match sent {
                Ok(Io::Done(n)) if n == total => return Ok(()),
                // The rest, or the wait for room, below.
                Ok(Io::Done(n)) => done = n,
                Ok(Io::WouldBlock) if deadline == Deadline::Now => {
                    return Err(deadline.elapsed_error());
                }
                Ok(Io::WouldBlock) => {}
                Ok(Io::Closed) => return self.link.local(Err(Error::Disconnected)),
                Err(e) => {
                    let what = match self.carrier {
                        Carrier::Socket => "send",
                        Carrier::Pipe => "write",
                    };
                    return self.link.local(Err(os(e, what)));
                }
            }
        }
        let mut frame = std::mem::take(&mut self.scratch);
        let (a, b): (&[u8], &[u8]) = if total <= SEND_COPY {
            frame.clear();
            frame.reserve(total);
            frame.extend_from_slice(&header);
            frame.extend_from_slice(msg);
            (&frame, &[])
        } else {
            (&header, msg)
        };
        let result = self.write_two(a, b, done, deadline);
        let outcome = match result {
            Ok(0) => Err(deadline.elapsed_error()),
            Ok(done) if done < total => {
                let mut rest = Vec::with_capacity(total - done);
                if done < a.len() {
                    rest.extend_from_slice(&a[done..]);
                    rest.extend_from_slice(b);
                } else {
                    rest.extend_from_slice(&b[done - a.len()..]);
                }
                self.pending = rest;
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e),
        };
        self.scratch = frame;
        self.link.local(outcome)
    }

    fn send_batch_until(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize> {
        self.send_batch_frames(msgs, deadline)
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl Drop for StreamSender {
    fn drop(&mut self) {
        // Deliver a committed message's tail; a dead peer ends this at once.
        let _ = self.flush_pending(Deadline::after(std::time::Duration::from_secs(5)));
        if self.carrier == Carrier::Socket {
            socket::shutdown(self.fd.as_fd(), How::Write);
        }
    }
}

impl StreamReceiver {
    /// One read into the buffer from byte `at`, at most `want` bytes (and
    /// at most [`READ_AHEAD`]).
    fn read_some(&mut self, at: usize, want: usize, nonblock: bool) -> Result<Io> {
        let limit = (at + want.min(READ_AHEAD)).min(self.buf.len());
        let buf = &mut self.buf[at..limit];
        match self.carrier {
            Carrier::Socket => {
                socket::recv_uninit(self.fd.as_fd(), buf, nonblock).map_err(|e| os(e, "recv"))
            }
            Carrier::Pipe => {
                set_mode(&self.fd, &mut self.nonblocking, nonblock)?;
                pipe::read_uninit(self.fd.as_fd(), buf).map_err(|e| os(e, "read"))
            }
        }
    }

    /// Bytes a read asks for past the frame at hand: the next header on
    /// a pipe, nothing on a socket (see [`Self::fill`]).
    fn ahead(&self) -> usize {
        match self.carrier {
            Carrier::Socket => 0,
            Carrier::Pipe => HEADER_LEN,
        }
    }

    fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Reads more into the buffer, at most `want` bytes in this call.
    /// `Ok(false)` when the deadline passed.
    ///
    /// A reader asks for what the frame at hand needs, not for
    /// everything there: one read per message, as a reader of fixed-size
    /// messages makes. On a socket that is the frame and no more, one
    /// read per `send` of the peer: a read that also took the next
    /// frame's header would end in the next socket buffer, and the
    /// kernel's walk to it made `unix:` at 64 B cost 3.44 µs of CPU a
    /// message against 2.97 µs without (docs/benchmarks.md, "`unix:` at
    /// 64 B: a read that ends where the `send` ended"). A pipe keeps no
    /// such boundaries (writes share its pages), and there a read that
    /// takes the next header too made fewer calls (2.02 a message at
    /// 4 KiB on one core, against 2.07 for a read of the frame alone).
    /// A reader that drained all there was at each wake-up would go back
    /// to sleep after every few messages, and on a shared core every
    /// sleep hands the core to the writer and back (ten times the context
    /// switches per message).
    fn fill(&mut self, want: usize, deadline: Deadline) -> Result<bool> {
        self.fill_from(ALIGN_PAD, want, deadline)
    }

    /// [`Self::fill`], reading into an empty buffer from byte `pad`:
    /// [`ALIGN_PAD`] when the read begins with a header, `ALIGN_PAD +
    /// HEADER_LEN` when it begins with a body (which is then aligned).
    fn fill_from(&mut self, pad: usize, want: usize, deadline: Deadline) -> Result<bool> {
        if self.start == self.end {
            self.start = pad;
            self.end = pad;
        } else if self.end + READ_AHEAD > self.buf.len() {
            self.buf.copy_within(self.start..self.end, ALIGN_PAD);
            self.end = self.end - self.start + ALIGN_PAD;
            self.start = ALIGN_PAD;
        }
        // Blocking calls poll beside the link's stop once a closer exists.
        let nonblock = deadline != Deadline::Never || self.link.stop_fd().is_some();
        loop {
            let r = self.read_some(self.end, want, nonblock)?;
            match r {
                Io::Done(0) | Io::Closed => return Err(Error::Disconnected),
                Io::Done(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Io::WouldBlock => {
                    if !self.wait_readable(deadline)? {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Waits after a read that would have blocked, until `deadline`:
    /// `false` when it passed. Polls ([`wait_more`]), but on a pipe
    /// during the handshake naps instead (20 µs, doubling up to 1 ms,
    /// then the caller reads again): Linux marks a pipe that was ever
    /// polled (`poll_usage`, never cleared) and from then on wakes its
    /// wait queue at every write, which cost `pipe:` 64 B messages 14 %
    /// more CPU on one core and about 25 % across two
    /// (docs/benchmarks.md, "`pipe:` at 64 B: the connect's one poll").
    /// A connect then leaves the pipes as a hand-written program would;
    /// later timed or async waits poll as they must.
    fn wait_readable(&mut self, deadline: Deadline) -> Result<bool> {
        let Some(naps) = &mut self.nap else {
            return wait_more(self.fd.as_fd(), Interest::Read, deadline, &self.link);
        };
        // The link is not shared before the handshake ends: no closer can
        // ask a napping read to stop.
        debug_assert!(self.link.stop_fd().is_none());
        Ok(naps.pause(deadline))
    }

    fn bytes(&self, from: usize, to: usize) -> &[u8] {
        debug_assert!(from <= to && to <= self.end);
        // `fill` and the direct read of `read_body` advance `end` only by
        // what the read reported; `copy_within` moves only such bytes.
        // SAFETY: so bytes below `end` are initialised, and `from..to` lies
        // within the buffer (`to <= end`).
        unsafe { std::slice::from_raw_parts(self.buf.as_ptr().add(from).cast::<u8>(), to - from) }
    }

    /// Reads the rest of a frame of `len` bytes into `out`, directly from
    /// the socket when large. `Ok(false)` when the deadline passed.
    fn read_body(&mut self, out: &mut Vec<u8>, len: usize, deadline: Deadline) -> Result<bool> {
        while out.len() < len {
            let want = len - out.len();
            if self.buffered() > 0 {
                let take = want.min(self.buffered());
                out.extend_from_slice(self.bytes(self.start, self.start + take));
                self.start += take;
                continue;
            }
            if want < DIRECT_BODY {
                // The rest of the body (and on a pipe the next header).
                if !self.fill_from(ALIGN_PAD + HEADER_LEN, want + self.ahead(), deadline)? {
                    return Ok(false);
                }
                continue;
            }
            // The body straight into `out`, and the next header, when it
            // is there, into the (empty) buffer: one call, no copy.
            out.reserve(want);
            self.start = ALIGN_PAD;
            self.end = ALIGN_PAD;
            // Blocking calls poll beside the link's stop once a closer exists.
            let nonblock = deadline != Deadline::Never || self.link.stop_fd().is_some();
            let spare = &mut out.spare_capacity_mut()[..want];
            let next = &mut self.buf[ALIGN_PAD..ALIGN_PAD + HEADER_LEN];
            let got = match self.carrier {
                Carrier::Socket => socket::recv_two_uninit(self.fd.as_fd(), spare, next, nonblock)
                    .map_err(|e| os(e, "recv"))?,
                Carrier::Pipe => {
                    set_mode(&self.fd, &mut self.nonblocking, nonblock)?;
                    pipe::read_two_uninit(self.fd.as_fd(), spare, next)
                        .map_err(|e| os(e, "read"))?
                }
            };
            match got {
                Io::Done(0) | Io::Closed => return Err(Error::Disconnected),
                Io::Done(n) => {
                    let body = n.min(want);
                    // SAFETY: the read initialised the first `body` bytes
                    // of the spare capacity (it fills `spare` before
                    // `next`), and body <= want <= spare capacity.
                    unsafe { out.set_len(out.len() + body) };
                    // The rest went to the buffer from ALIGN_PAD.
                    self.end += n - body;
                }
                Io::WouldBlock => {
                    if !self.wait_readable(deadline)? {
                        return Ok(false);
                    }
                }
            }
        }
        Ok(true)
    }
}

impl ipc_core::Receiver for StreamReceiver {
    fn recv_until(&mut self, out: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.link.check()?;
        match self.recv_frame(out, deadline) {
            Ok(()) => Ok(()),
            Err(e) => self.link.observe(Err(e)),
        }
    }

    fn recv_batch_until(
        &mut self,
        batch: &mut ipc_core::Batch,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        self.recv_batch_frames(batch, max, deadline)
    }
}

impl StreamReceiver {
    fn recv_frame(&mut self, out: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let len = match self.in_progress {
            Some(len) => len,
            None => {
                while self.buffered() < HEADER_LEN {
                    // A frame like the last one (and on a pipe the next
                    // header: see `Self::fill`).
                    let want = HEADER_LEN + self.last_len + self.ahead() - self.buffered();
                    if !self.fill(want, deadline)? {
                        return Err(deadline.elapsed_error());
                    }
                }
                let h = self.bytes(self.start, self.start + HEADER_LEN);
                let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
                if len > self.max {
                    return Err(Error::protocol(format!(
                        "the peer announced a {len}-byte message, over the agreed max_message_size of {}",
                        self.max
                    )));
                }
                self.start += HEADER_LEN;
                self.last_len = len;
                self.in_progress = Some(len);
                self.partial.clear();
                len
            }
        };
        out.clear();
        std::mem::swap(out, &mut self.partial);
        if !self.read_body(out, len, deadline)? {
            std::mem::swap(out, &mut self.partial);
            return Err(deadline.elapsed_error());
        }
        self.in_progress = None;
        Ok(())
    }
}

impl Drop for StreamReceiver {
    fn drop(&mut self) {
        if self.carrier == Carrier::Socket {
            socket::shutdown(self.fd.as_fd(), How::Read);
        }
    }
}

impl Limit for StreamSender {
    fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

impl Limit for StreamReceiver {
    fn set_max(&mut self, max: usize) {
        self.max = max;
    }
}

/// A connected stream channel (Unix, TCP, FIFO pair, pipe pair).
pub type StreamChannel = ipc_core::Duplex<StreamSender, StreamReceiver>;

/// Runs the handshake over freshly framed halves, within `deadline`;
/// `vet` adds the transport's checks of the peer's hello.
///
/// # Errors
/// The handshake's errors ([`crate::conn::handshake::drive`]).
pub(crate) fn establish_halves(
    (mut sender, mut receiver): (StreamSender, StreamReceiver),
    endpoint: &Endpoint,
    schema: &Schema,
    deadline: Deadline,
    vet: impl FnOnce(&Hello) -> Result<()>,
) -> Result<StreamChannel> {
    let local = handshake::local_hello(endpoint, schema);
    if receiver.carrier == Carrier::Pipe {
        receiver.nap = Some(HANDSHAKE_NAPS);
    }
    let mut wire = Framed::new(&mut sender, &mut receiver);
    let peer = handshake::drive(&mut wire, endpoint, &local, deadline, vet)?;
    wire.agree(&peer);
    receiver.nap = None;
    Ok(ipc_core::Duplex {
        sender,
        receiver,
        peer,
    })
}

/// Frames a freshly connected stream socket and runs the handshake.
///
/// # Errors
/// As [`establish_halves`].
pub(crate) fn establish(
    fd: OwnedFd,
    endpoint: &Endpoint,
    schema: &Schema,
    deadline: Deadline,
    vet: impl FnOnce(&Hello) -> Result<()>,
) -> Result<StreamChannel> {
    establish_halves(halves(fd, MAX_HELLO_LEN), endpoint, schema, deadline, vet)
}

/// Waits for the descriptor after a call that would have blocked, until
/// `deadline`. `Deadline::Now` returns at once, without a `poll(2)`: the
/// call just made is the look a non-blocking operation asked for (the
/// async layer then waits on the reactor). Once a closer exists, the
/// link's stop is polled too: `Closed` when it fires.
fn wait_more(
    fd: std::os::fd::BorrowedFd<'_>,
    interest: Interest,
    deadline: Deadline,
    link: &Link,
) -> Result<bool> {
    if deadline == Deadline::Now {
        return Ok(false);
    }
    let Some(stop) = link.stop_fd() else {
        return Ok(wait(fd, interest, deadline)?);
    };
    match wait_any(&[(fd, interest), (stop, Interest::Read)], deadline)? {
        Ready::TimedOut => Ok(false),
        Ready::Index(0) => Ok(true),
        Ready::Index(_) => Err(Error::Closed),
    }
}

impl crate::aio::Pollable for StreamSender {
    fn source(&self) -> Option<crate::aio::Source<'_>> {
        Some(crate::aio::Source {
            fd: self.fd.as_fd(),
            interest: Interest::Write,
            doorbell: false,
            death: None,
        })
    }

    fn flush_now(&mut self) -> Result<()> {
        self.flush(Deadline::Now)
    }

    fn link(&self) -> &Link {
        &self.link
    }

    fn drop_may_wait(&self) -> bool {
        !self.pending.is_empty()
    }
}

impl crate::aio::Pollable for StreamReceiver {
    fn source(&self) -> Option<crate::aio::Source<'_>> {
        Some(crate::aio::Source {
            fd: self.fd.as_fd(),
            interest: Interest::Read,
            doorbell: false,
            death: None,
        })
    }

    fn link(&self) -> &Link {
        &self.link
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    use std::time::{Duration, Instant};

    use ipc_core::{Deadline, Error, Receiver, Sender};

    use super::*;

    /// Sizes on both sides of where a frame stops being copied whole
    /// ([`SEND_COPY`]) and a body stops going through the buffer
    /// ([`DIRECT_BODY`]), and of the old limits.
    const SIZES: [usize; 16] = [
        0, 1, 64, 511, 512, 1023, 1024, 4092, 4096, 8187, 8188, 8189, 8192, 20_000, 4096, 64,
    ];

    fn body(i: usize, len: usize) -> Vec<u8> {
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    }

    fn pair() -> (UnixStream, UnixStream) {
        UnixStream::pair().expect("socketpair")
    }

    /// A handshake over pipes waits by napping, not polling (a polled
    /// pipe wakes its readers at every later write): a hello that comes
    /// late is still read, a peer that hangs up ends the handshake at
    /// once, a silent one at the deadline, and the channel naps no more
    /// once established. (That no poll is made is seen with `strace`,
    /// docs/benchmarks.md.)
    #[test]
    fn pipe_handshakes_nap_yet_end_on_time() {
        use crate::sys::pipe::pipe;
        fn shake((read, write): (OwnedFd, OwnedFd), within: Duration) -> Result<StreamChannel> {
            let ep: Endpoint = "pipe:".parse().unwrap();
            let halves = pipe_halves(read, write, 0);
            let deadline = Deadline::after(within);
            establish_halves(halves, &ep, &Schema::bytes(), deadline, |_| Ok(()))
        }
        // A peer that says hello 150 ms late.
        let ((a_read, b_write), (b_read, a_write)) = (pipe().unwrap(), pipe().unwrap());
        let late = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            shake((b_read, b_write), Duration::from_secs(5)).map(|_| ())
        });
        let ch = shake((a_read, a_write), Duration::from_secs(5)).expect("a late hello");
        late.join().unwrap().expect("the late side");
        assert_eq!(ch.receiver.nap, None, "naps only during the handshake");
        // A peer that hangs up after 100 ms: at once.
        let ((a_read, b_write), (b_read, a_write)) = (pipe().unwrap(), pipe().unwrap());
        let gone = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop((b_read, b_write));
        });
        let started = Instant::now();
        match shake((a_read, a_write), Duration::from_secs(30)) {
            Err(Error::Disconnected) => {}
            other => panic!("a peer that hung up: {:?}", other.map(|_| ())),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        gone.join().unwrap();
        // A silent peer (its ends open): at the deadline.
        let ((a_read, _b_write), (_b_read, a_write)) = (pipe().unwrap(), pipe().unwrap());
        let started = Instant::now();
        let r = shake((a_read, a_write), Duration::from_millis(300));
        let took = started.elapsed();
        assert!(
            matches!(r, Err(Error::ConnectTimeout { .. })),
            "{:?}",
            r.map(|_| ())
        );
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }

    #[test]
    fn frames_around_the_copy_limits_arrive_whole() {
        assert_eq!(SEND_COPY, 8192);
        assert_eq!(HEADER_LEN + DIRECT_BODY - 1, READ_AHEAD);
        let (a, b) = pair();
        let (mut tx, _rx_a) = halves(OwnedFd::from(a), 1 << 20);
        let (_tx_b, mut rx) = halves(OwnedFd::from(b), 1 << 20);
        let sender = std::thread::spawn(move || {
            // Twice over, so the receiver's guess of the next frame's
            // size (the last one's) is both right and wrong.
            for round in 0..2 {
                for (i, &len) in SIZES.iter().enumerate() {
                    tx.send_until(&body(round * 100 + i, len), Deadline::Never)
                        .expect("send");
                }
            }
            tx
        });
        let mut out = Vec::new();
        for round in 0..2 {
            for (i, &len) in SIZES.iter().enumerate() {
                rx.recv_until(&mut out, Deadline::after(Duration::from_secs(10)))
                    .expect("recv");
                assert_eq!(
                    out,
                    body(round * 100 + i, len),
                    "message {i} of {len} bytes"
                );
            }
        }
        drop(sender.join().expect("sender thread"));
    }

    /// A frame's tail left pending, then the channel closed here: the
    /// write that finishes it reports `Closed` (the close ended it, by its
    /// shutdown of the socket), as every other call does, not
    /// `Disconnected`.
    #[test]
    fn a_pending_tail_met_by_a_close_is_closed() {
        let (a, b) = pair();
        nix::sys::socket::setsockopt(&a, nix::sys::socket::sockopt::SndBuf, &1).expect("SO_SNDBUF");
        let (mut tx, _rx_a) = halves(OwnedFd::from(a), 1 << 20);
        let (_tx_b, _rx_b) = halves(OwnedFd::from(b), 1 << 20);
        while tx.pending.is_empty() {
            match tx.send_until(&[7; 8000], Deadline::Now) {
                Ok(()) => {}
                other => panic!("the socket filled before a frame was cut short: {other:?}"),
            }
        }
        tx.link.closer().close();
        assert!(matches!(tx.flush(Deadline::Now), Err(Error::Closed)));
    }

    /// A frame copied whole ([`SEND_COPY`]) that the socket takes only in
    /// part: the message is committed, its tail kept and written first by
    /// the next call, and the reader sees every message whole and in order.
    #[test]
    fn copied_frames_cut_short_by_a_full_socket_arrive_whole() {
        const LENS: [usize; 6] = [513, 1000, 4092, 4096, 5000, 8188];
        let (a, b) = pair();
        // The smallest send buffer the kernel allows (a few KiB): frames
        // of 513 bytes to 8 KiB are cut short.
        nix::sys::socket::setsockopt(&a, nix::sys::socket::sockopt::SndBuf, &1).expect("SO_SNDBUF");
        let (mut tx, _rx_a) = halves(OwnedFd::from(a), 1 << 20);
        let (_tx_b, mut rx) = halves(OwnedFd::from(b), 1 << 20);
        let give_up = Instant::now() + Duration::from_secs(30);
        let (mut committed, mut received, mut short) = (0usize, 0usize, 0usize);
        let mut out = Vec::new();
        while received < 300 {
            if committed < 300 {
                let len = LENS[committed % LENS.len()];
                match tx.send_until(&body(committed, len), Deadline::Now) {
                    Ok(()) => {
                        committed += 1;
                        short += usize::from(!tx.pending.is_empty());
                        continue;
                    }
                    Err(Error::WouldBlock | Error::Timeout) => {}
                    Err(e) => panic!("send {committed}: {e:?}"),
                }
            } else if !tx.pending.is_empty() {
                match tx.flush(Deadline::Now) {
                    Ok(()) | Err(Error::WouldBlock | Error::Timeout) => {}
                    Err(e) => panic!("flush: {e:?}"),
                }
            }
            // The socket is full (or all is sent): read what is there.
            match rx.recv_until(&mut out, Deadline::after(Duration::from_millis(1))) {
                Ok(()) => {
                    let len = LENS[received % LENS.len()];
                    assert_eq!(out, body(received, len), "message {received}");
                    received += 1;
                }
                Err(Error::Timeout) => {
                    assert!(Instant::now() < give_up, "message {received} never came")
                }
                Err(e) => panic!("recv {received}: {e:?}"),
            }
        }
        assert!(tx.pending.is_empty());
        assert!(short > 0, "no frame was cut short");
    }

    #[test]
    fn bodies_dribbled_in_pieces_survive_timed_receives() {
        let (mut raw, b) = pair();
        let (_tx_b, mut rx) = halves(OwnedFd::from(b), 1 << 20);
        let writer = std::thread::spawn(move || {
            let mut wire = Vec::new();
            for (i, &len) in SIZES.iter().enumerate() {
                wire.extend_from_slice(&(len as u32).to_le_bytes());
                wire.extend_from_slice(&body(i, len));
            }
            // Pieces that end mid-header and mid-body, with pauses longer
            // than the receiver's deadline.
            for piece in wire.chunks(701) {
                raw.write_all(piece).expect("write");
                std::thread::sleep(Duration::from_millis(2));
            }
            raw
        });
        let give_up = Instant::now() + Duration::from_secs(30);
        let mut out = Vec::new();
        let mut timeouts = 0;
        for (i, &len) in SIZES.iter().enumerate() {
            loop {
                match rx.recv_until(&mut out, Deadline::after(Duration::from_micros(300))) {
                    Ok(()) => break,
                    Err(Error::Timeout) => {
                        timeouts += 1;
                        assert!(Instant::now() < give_up, "message {i} never came");
                    }
                    Err(e) => panic!("message {i}: {e:?}"),
                }
            }
            assert_eq!(out, body(i, len), "message {i} of {len} bytes");
        }
        assert!(timeouts > 0, "no receive ran out of time mid-frame");
        drop(writer.join().expect("writer thread"));
    }
}

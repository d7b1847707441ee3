//! Many messages per system call or wake-up: what [`Sender::send_batch`]
//! and [`Receiver::recv_batch`] promise, and [`Batch`], the buffer a
//! batched receive fills.
//!
//! # Sending a batch
//!
//! [`Sender::send_batch_until`] sends a slice of messages in order, with
//! as few system calls or wake-ups as the transport allows:
//!
//! | transport | one batch costs |
//! |---|---|
//! | `pipe:`, `fifo:`, `unix:`, `tcp://` | one `writev`/`sendmsg` for up to 1024 frames (fewer when the kernel buffer is full) |
//! | `shm:`, `sysv-shm:` | every record written, the head published once, at most one wake-up |
//! | `mq:`, `sysv-mq:` | one `mq_timedsend`/`msgsnd` per message: the kernel moves one message per call |
//! | `nats://` | one per message (the client library coalesces its writes already) |
//!
//! The rules, the same on every transport:
//!
//! - **Sizes are checked first.** When any message of the batch is above
//!   `max_message_size`, the whole batch is refused with
//!   [`Error::MessageTooLarge`] naming the first such message, and nothing
//!   of it is sent: neither the messages before it nor those after.
//! - **Ordered, whole messages.** The messages go out in slice order; a
//!   receiver sees them in that order, each whole, interleaved with
//!   nothing else this sender sends.
//! - **The count says what went.** `Ok(n)`: the first `n` messages are
//!   committed (delivered while the peer lives), the rest were not sent.
//!   With [`Deadline::Never`] `n` is the whole batch. A deadline that
//!   passes after at least one message went returns `Ok(n)` with
//!   `n < msgs.len()`; one that passes before any went returns
//!   [`Error::WouldBlock`]/[`Error::Timeout`], as a single send does. A
//!   message is never torn: one whose first byte went out is committed,
//!   and its rest is written before anything else.
//! - **A lone message is not held back.** Nothing waits for a batch to
//!   fill: a batch goes out when it is sent, and a single
//!   [`Sender::send`] is unchanged.
//! - **Disconnected.** [`Error::Disconnected`] when the peer is gone; the
//!   messages before the point where it was seen may have reached it.
//!
//! # Receiving many
//!
//! [`Receiver::recv_batch_until`] waits (until the deadline) for one
//! message, then takes every further message already there without
//! waiting, up to `max`, into a [`Batch`]: on a stream one `read` brings
//! in many frames, on shared memory many records are consumed and the
//! sender is woken (if it waits for room) once. An error met after at
//! least one message was taken is not lost: that call returns what it
//! took, and the next call reports the error (a connection that ended
//! reports [`Error::Disconnected`]).
//!
//! ```
//! use ipc_core::{Batch, Receiver, Result, Sender};
//!
//! /// Forwards everything `rx` receives to `tx`, many messages at a time.
//! fn forward(rx: &mut impl Receiver, tx: &mut impl Sender) -> Result<()> {
//!     let mut batch = Batch::new();
//!     loop {
//!         rx.recv_batch(&mut batch, 64)?;
//!         let msgs: Vec<&[u8]> = batch.iter().collect();
//!         tx.send_batch(&msgs)?;
//!     }
//! }
//! ```
//!
//! [`Sender::send_batch`]: crate::Sender::send_batch
//! [`Sender::send_batch_until`]: crate::Sender::send_batch_until
//! [`Sender::send`]: crate::Sender::send
//! [`Receiver::recv_batch`]: crate::Receiver::recv_batch
//! [`Receiver::recv_batch_until`]: crate::Receiver::recv_batch_until
//! [`Deadline::Never`]: crate::Deadline::Never
//! [`Error::MessageTooLarge`]: crate::Error::MessageTooLarge
//! [`Error::WouldBlock`]: crate::Error::WouldBlock
//! [`Error::Timeout`]: crate::Error::Timeout
//! [`Error::Disconnected`]: crate::Error::Disconnected

use std::fmt;

use crate::error::{Error, Result};
use crate::transport::{Deadline, Receiver, Sender};

/// Messages received together: one contiguous buffer and where each
/// message lies in it, so that receiving many allocates nothing once the
/// buffer has grown.
///
/// # Examples
///
/// ```
/// use ipc_core::Batch;
///
/// let mut batch = Batch::new();
/// batch.push(b"one");
/// batch.push(b"");
/// batch.push(b"three");
/// assert_eq!(batch.len(), 3);
/// assert_eq!(batch.get(2), Some(&b"three"[..]));
/// let all: Vec<&[u8]> = batch.iter().collect();
/// assert_eq!(all, [&b"one"[..], b"", b"three"]);
/// ```
#[derive(Default, Clone)]
pub struct Batch {
    /// The messages, possibly with bytes between them (the framing of a
    /// region appended whole by [`push_region`](Self::push_region)).
    bytes: Vec<u8>,
    spans: Vec<Span>,
    /// The bytes of the messages alone.
    payload: usize,
    /// A reused buffer for receivers that take one message at a time.
    scratch: Vec<u8>,
}

/// Where a message lies in [`Batch::bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// An empty batch with room for `messages` messages of `bytes` bytes
    /// in all (a receive that copies framed messages in at once also
    /// keeps their framing: on shared memory up to 15 bytes a message).
    pub fn with_capacity(messages: usize, bytes: usize) -> Batch {
        Batch {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(messages),
            payload: 0,
            scratch: Vec::new(),
        }
    }

    /// How many messages it holds.
    #[inline]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The bytes of every message together.
    pub fn total_bytes(&self) -> usize {
        self.payload
    }

    /// Message `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let span = self.spans.get(i)?;
        self.bytes.get(span.start..span.end)
    }

    /// The messages, in the order received.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            batch: self,
            next: 0,
        }
    }

    /// Removes every message, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.spans.clear();
        self.payload = 0;
    }

    /// Appends a message.
    #[inline]
    pub fn push(&mut self, msg: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(msg);
        self.spans.push(Span {
            start,
            end: self.bytes.len(),
        });
        self.payload += msg.len();
    }

    /// Appends a message of `len` bytes that `fill` writes (the slice it
    /// gets is zeroed first).
    pub fn push_with(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) {
        let start = self.bytes.len();
        self.bytes.resize(start + len, 0);
        fill(&mut self.bytes[start..]);
        self.spans.push(Span {
            start,
            end: self.bytes.len(),
        });
        self.payload += len;
    }

    /// Appends many messages that lie in a region of memory with framing
    /// between them, copying the region once instead of each message on
    /// its own: `scan` names each message by its place in the region (in
    /// order, with [`Regions::message`]) and returns how many bytes of it
    /// it covered (at most `len`); those bytes are copied in. For a
    /// transport's receive, whose buffer holds many framed messages; the
    /// framing is kept in the batch's buffer but never handed out. A
    /// message named beyond the covered bytes is a caller's bug: it and
    /// those after it are left out.
    ///
    /// The region is read through its pointer only (`scan` reads it as it
    /// likes, then one copy), never through a reference, so it may be
    /// memory another process writes meanwhile: such writes make the
    /// bytes handed out garbage, never out of bounds.
    ///
    /// # Safety
    /// `region` is valid for reads of `len` bytes until this returns.
    #[doc(hidden)]
    #[inline]
    pub unsafe fn push_region(
        &mut self,
        region: *const u8,
        len: usize,
        scan: impl FnOnce(&mut Regions<'_>) -> usize,
    ) {
        let base = self.bytes.len();
        let first = self.spans.len();
        let mut r = Regions {
            spans: &mut self.spans,
            base,
            reach: base,
            payload: 0,
        };
        let used = scan(&mut r).min(len);
        let mut payload = r.payload;
        if r.reach > base + used {
            let bad = self.spans[first..]
                .iter()
                .position(|s| s.end > base + used)
                .unwrap_or(self.spans.len() - first);
            self.spans.truncate(first + bad);
            payload = self.spans[first..].iter().map(|s| s.end - s.start).sum();
        }
        self.bytes.reserve(used);
        // SAFETY: `used <= len` bytes from `region` are readable (the
        // caller's promise); `reserve` made room for them past `base`, in
        // our own allocation, which cannot overlap the region; the copy
        // initialises them before `set_len` covers them.
        unsafe {
            std::ptr::copy_nonoverlapping(region, self.bytes.as_mut_ptr().add(base), used);
            self.bytes.set_len(base + used);
        }
        self.payload += payload;
    }

    /// The reused single-message buffer, taken out (put it back with
    /// [`put_scratch`](Self::put_scratch)).
    #[doc(hidden)]
    pub fn take_scratch(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.scratch)
    }

    /// Gives back the buffer [`take_scratch`](Self::take_scratch) took.
    #[doc(hidden)]
    pub fn put_scratch(&mut self, scratch: Vec<u8>) {
        self.scratch = scratch;
    }
}

/// The messages a [`Batch::push_region`] scan names.
#[doc(hidden)]
#[derive(Debug)]
pub struct Regions<'a> {
    spans: &'a mut Vec<Span>,
    base: usize,
    /// The furthest end of a message named.
    reach: usize,
    payload: usize,
}

impl Regions<'_> {
    /// A message of `len` bytes at offset `start` of the region.
    #[inline]
    pub fn message(&mut self, start: usize, len: usize) {
        // Saturating: a message named past any region is left out, not
        // wrapped around into one.
        let start = self.base.saturating_add(start);
        let end = start.saturating_add(len);
        self.spans.push(Span { start, end });
        self.reach = self.reach.max(end);
        self.payload += len;
    }

    /// How many messages the batch holds, these included.
    #[inline]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether the batch holds none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }
}

/// Equal when they hold the same messages.
impl PartialEq for Batch {
    fn eq(&self, other: &Batch) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Batch {}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("messages", &self.len())
            .field("bytes", &self.payload)
            .finish()
    }
}

impl<'a> IntoIterator for &'a Batch {
    type Item = &'a [u8];
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// The messages of a [`Batch`], in order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    batch: &'a Batch,
    next: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let m = self.batch.get(self.next)?;
        self.next += 1;
        Some(m)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batch.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// Refuses a batch with a message above `max`, naming the first such
/// message: what every [`send_batch_until`](crate::Sender::send_batch_until)
/// checks before any byte moves.
///
/// # Errors
/// [`Error::MessageTooLarge`] for the first message above `max`.
///
/// # Examples
///
/// ```
/// use ipc_core::batch::check_sizes;
///
/// assert!(check_sizes(&[&b"ab"[..], b"c"], 2).is_ok());
/// assert!(check_sizes(&[&b"ab"[..], b"abc"], 2).is_err());
/// ```
pub fn check_sizes(msgs: &[&[u8]], max: usize) -> Result<()> {
    // The longest first, without a branch a message (the usual answer is
    // that all fit); then which one did not.
    if msgs.iter().fold(0, |longest, m| longest.max(m.len())) <= max {
        return Ok(());
    }
    match msgs.iter().find(|m| m.len() > max) {
        Some(m) => Err(Error::MessageTooLarge { size: m.len(), max }),
        None => Ok(()),
    }
}

/// Sends `msgs` one [`send_until`](crate::Sender::send_until) at a time
/// under one deadline, with the batch rules above (sizes are the
/// caller's to check first): what a transport that moves one message per
/// system call does.
///
/// # Errors
/// As [`Sender::send_batch_until`].
pub fn send_each<S: Sender + ?Sized>(
    tx: &mut S,
    msgs: &[&[u8]],
    deadline: Deadline,
) -> Result<usize> {
    for (sent, msg) in msgs.iter().enumerate() {
        match tx.send_until(msg, deadline) {
            Ok(()) => {}
            Err(Error::WouldBlock | Error::Timeout) if sent > 0 => return Ok(sent),
            Err(e) => return Err(e),
        }
    }
    Ok(msgs.len())
}

/// Receives into `batch` one [`recv_until`](crate::Receiver::recv_until)
/// at a time: the first waits until `deadline`, the others take only what
/// is there, up to `max` (at least one). What a transport that moves one
/// message per system call does.
///
/// # Errors
/// As [`Receiver::recv_batch_until`].
pub fn recv_each<R: Receiver + ?Sized>(
    rx: &mut R,
    batch: &mut Batch,
    max: usize,
    deadline: Deadline,
) -> Result<usize> {
    batch.clear();
    let mut buf = batch.take_scratch();
    let first = rx.recv_until(&mut buf, deadline);
    if first.is_ok() {
        batch.push(&buf);
        // An error here ends the batch; the next call meets it again.
        while batch.len() < max && rx.recv_until(&mut buf, Deadline::Now).is_ok() {
            batch.push(&buf);
        }
    }
    batch.put_scratch(buf);
    first.map(|()| batch.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_keeps_boundaries_and_reuses() {
        let mut b = Batch::with_capacity(4, 64);
        assert!(b.is_empty());
        b.push(b"");
        b.push_with(3, |s| s.copy_from_slice(b"xyz"));
        b.push(b"ab");
        assert_eq!(b.len(), 3);
        assert_eq!(b.total_bytes(), 5);
        assert_eq!(b.get(0), Some(&b""[..]));
        assert_eq!(b.get(1), Some(&b"xyz"[..]));
        assert_eq!(b.get(3), None);
        assert_eq!(b.iter().len(), 3);
        b.clear();
        assert_eq!(b.len(), 0);
        assert_eq!(b.iter().next(), None);
    }

    /// A region goes in with one copy; its framing is never handed out,
    /// and messages pushed before and after it keep their places.
    #[test]
    fn a_region_keeps_its_messages_and_hides_its_framing() {
        let mut b = Batch::new();
        b.push(b"first");
        let region = b"[ab][][cde]tail";
        // SAFETY: the region is a live local array.
        unsafe {
            b.push_region(region.as_ptr(), region.len(), |r| {
                r.message(1, 2);
                r.message(5, 0);
                r.message(7, 3);
                assert_eq!(r.len(), 4);
                11
            })
        };
        b.push(b"last");
        let all: Vec<&[u8]> = b.iter().collect();
        assert_eq!(all, [&b"first"[..], b"ab", b"", b"cde", b"last"]);
        assert_eq!(b.total_bytes(), 5 + 2 + 3 + 4);
        let mut plain = Batch::new();
        for m in &all {
            plain.push(m);
        }
        assert_eq!(b, plain);
        b.clear();
        assert_eq!((b.len(), b.total_bytes()), (0, 0));
    }

    /// Bytes named beyond what the scan covered are never handed out.
    #[test]
    fn a_region_message_beyond_the_scan_is_left_out() {
        let mut b = Batch::new();
        let region = b"abcdef";
        // SAFETY: the region is a live local array.
        unsafe {
            b.push_region(region.as_ptr(), region.len(), |r| {
                r.message(0, 2);
                r.message(2, 4);
                3
            })
        };
        assert_eq!(b.iter().collect::<Vec<_>>(), [&b"ab"[..]]);
        assert_eq!(b.total_bytes(), 2);
        // A place past any region saturates and is left out too.
        // SAFETY: as above.
        unsafe {
            b.push_region(region.as_ptr(), region.len(), |r| {
                r.message(usize::MAX - 1, 5);
                6
            })
        };
        assert_eq!(b.iter().collect::<Vec<_>>(), [&b"ab"[..]]);
        assert_eq!((b.len(), b.total_bytes()), (1, 2));
    }

    #[test]
    fn sizes_are_checked_first() {
        assert!(check_sizes(&[], 0).is_ok());
        match check_sizes(&[&b"a"[..], b"abcd", b"abcdef"], 3) {
            Err(Error::MessageTooLarge { size: 4, max: 3 }) => {}
            other => panic!("{other:?}"),
        }
    }
}

//! Typed batches: many values encoded and handed to the transport's
//! [`Sender::send_batch_until`] in one go, and many received with
//! [`Receiver::recv_batch_until`] and decoded.

use crate::batch::Batch;
use crate::{Deadline, IpcMessage, Receiver, Result, Sender};

/// Encodes `msgs` for one batch: postcard types one after another into
/// `buf`, zero-copy types as their own bytes; the messages' bytes, in
/// order. Shared with the async typed senders (`ipcx::tokio::typed`).
///
/// # Errors
/// [`Error::Encode`](crate::Error::Encode) for the first value that does
/// not encode.
#[doc(hidden)]
pub fn encode_batch<'a, T: IpcMessage>(
    buf: &'a mut Vec<u8>,
    msgs: &'a [T],
) -> Result<Vec<&'a [u8]>> {
    buf.clear();
    let mut spans = Vec::with_capacity(msgs.len());
    for msg in msgs {
        if msg.wire_bytes().is_some() {
            spans.push(None);
        } else {
            let start = buf.len();
            msg.encode(buf)?;
            spans.push(Some((start, buf.len())));
        }
    }
    let buf: &'a Vec<u8> = buf;
    Ok(msgs
        .iter()
        .zip(spans)
        .map(|(msg, span)| match span {
            Some((start, end)) => &buf[start..end],
            None => msg.wire_bytes().unwrap_or_default(),
        })
        .collect())
}

/// Encodes `msgs` ([`encode_batch`]) and sends them as one batch.
pub(super) fn send_messages<S: Sender, T: IpcMessage>(
    sender: &mut S,
    buf: &mut Vec<u8>,
    msgs: &[T],
    deadline: Deadline,
) -> Result<usize> {
    let refs = encode_batch(buf, msgs)?;
    sender.send_batch_until(&refs, deadline)
}

/// Messages received in a batch and not yet decoded: the rest of a batch
/// that a message that does not decode cut short. Shared by the blocking
/// typed receivers and the async ones (`ipcx::tokio::typed`).
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Inbox {
    batch: Batch,
    next: usize,
}

impl Inbox {
    /// Whether undecoded messages of an earlier batch wait.
    pub fn waiting(&self) -> bool {
        self.next < self.batch.len()
    }

    /// The next waiting message, decoded (consumed even when it does not
    /// decode), if one waits.
    pub fn take_one<T: IpcMessage>(&mut self) -> Option<Result<T>> {
        if !self.waiting() {
            return None;
        }
        let m = self.batch.get(self.next).map(T::decode);
        self.next += 1;
        m
    }

    /// The batch to receive the next messages into (emptied of what was
    /// decoded).
    pub fn refill(&mut self) -> &mut Batch {
        self.next = 0;
        &mut self.batch
    }

    /// Decodes up to `max` (at least one) waiting messages, appending the
    /// values to `out`; returns how many. A message that does not decode
    /// ends the batch before it; its [`Error::Decode`](crate::Error::Decode)
    /// is returned by the call that meets it first, which consumes it.
    ///
    /// # Errors
    /// `Decode`, as above.
    pub fn decode_into<T: IpcMessage>(&mut self, out: &mut Vec<T>, max: usize) -> Result<usize> {
        let mut taken = 0;
        while taken < max.max(1) {
            let Some(bytes) = self.batch.get(self.next) else {
                break;
            };
            match T::decode(bytes) {
                Ok(v) => {
                    out.push(v);
                    self.next += 1;
                    taken += 1;
                }
                Err(e) if taken == 0 => {
                    self.next += 1;
                    return Err(e);
                }
                Err(_) => break,
            }
        }
        Ok(taken)
    }

    /// Receives up to `max` values into `out` (appended): those waiting
    /// first, else a batch from `receiver` (waiting until `deadline` for
    /// the first); see [`decode_into`](Self::decode_into).
    ///
    /// # Errors
    /// The receiver's; `Decode`.
    pub fn recv<R: Receiver, T: IpcMessage>(
        &mut self,
        receiver: &mut R,
        out: &mut Vec<T>,
        max: usize,
        deadline: Deadline,
    ) -> Result<usize> {
        if !self.waiting() {
            receiver.recv_batch_until(self.refill(), max.max(1), deadline)?;
        }
        self.decode_into(out, max)
    }
}

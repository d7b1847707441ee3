//! Messages written and read in place: loans and in-place receipts.
//!
//! A [`LoanSender`] lends a writable buffer of the message's length; the
//! caller fills it and [`commit`](Commit::commit)s it. An
//! [`InPlaceReceiver`] lends the next received message as bytes to read
//! where they lie. On shared memory both are the ring itself (no copy); any
//! other transport implements them with one copy through [`CopyLoan`] and
//! [`CopyInPlace`], so code written against these traits runs on every
//! transport and gets zero-copy where the transport has it.
//!
//! - A loan holds exactly the length asked for; its initial bytes are
//!   unspecified. Dropping it sends nothing.
//! - [`Commit::commit`] sends the message or, on error, sends nothing
//!   (the [`Sender`] contract). A loan taken with a deadline applies it
//!   to the wait for room, wherever that wait happens.
//! - A received message is consumed once lent: dropping the guard releases
//!   it (on shared memory, its ring space).
//! - Bytes in shared memory are the peer's memory too:
//!   [`Received::is_in_place`] says so, and readers that decode in place
//!   must not rely on such bytes staying unchanged.
//!
//! ```
//! use ipc_core::loan::{Commit, InPlaceReceiver, LoanSender};
//! use ipc_core::Result;
//!
//! /// Echoes one message, without a copy on shared memory.
//! fn echo<C: LoanSender + InPlaceReceiver>(ch: &mut C) -> Result<()> {
//!     let len = ch.recv_in_place()?.len();
//!     let mut loan = ch.loan(len)?;
//!     loan.fill(7);
//!     loan.commit()
//! }
//! ```

use std::cell::Cell;
use std::fmt;
use std::ops::{Deref, DerefMut};

use crate::error::{Error, Result};
use crate::transport::{Deadline, Duplex, Receiver, Sender};

/// A message being written: a writable `[u8]` of the length asked for,
/// sent by [`commit`](Commit::commit); dropping it sends nothing.
///
/// # Safety
///
/// Code that views the bytes as a value (the typed layer's `Loan<T>`)
/// relies on these, so an implementation must guarantee them:
/// - every `deref` and `deref_mut` returns a slice of the same address and
///   length for as long as the value lives, wherever it is moved (the
///   bytes do not live inside the value itself);
/// - the bytes change only through `deref_mut` while it lives.
pub unsafe trait Commit: DerefMut<Target = [u8]> {
    /// Sends the message.
    ///
    /// # Errors
    /// As [`Sender::send_until`] with the loan's deadline; nothing is sent
    /// on error. A loan of ring space that was reserved already never
    /// fails.
    fn commit(self) -> Result<()>
    where
        Self: Sized;

    /// Whether the bytes lie in the transport's shared memory, where the
    /// receiver reads them (no copy on commit).
    fn is_in_place(&self) -> bool;
}

/// A received message lent in place: derefs to its bytes, released when
/// dropped.
///
/// # Safety
///
/// Code that views the bytes as a value (the typed layer's `Sample<T>`)
/// relies on these, so an implementation must guarantee them:
/// - every `deref` returns a slice of the same address and length for as
///   long as the value lives, wherever it is moved (the bytes do not live
///   inside the value itself);
/// - [`is_in_place`](Received::is_in_place) returns the same answer every
///   time, and returns `true` whenever another process (or anything but
///   this value) can write the bytes while it lives; when it returns
///   `false` the bytes do not change while it lives.
pub unsafe trait Received: Deref<Target = [u8]> {
    /// Whether the bytes are read in place in memory the peer can write
    /// (not copied).
    fn is_in_place(&self) -> bool;
}

/// Senders that lend a buffer to write a message into: shared-memory
/// senders lend ring space, the others a reused buffer ([`CopyLoan`]).
pub trait LoanSender: Sender {
    /// The loan this sender hands out.
    type Loan<'a>: Commit
    where
        Self: 'a;

    /// A writable message of `len` bytes to fill and
    /// [`commit`](Commit::commit), waiting at most until `deadline` for
    /// room (in ring space now, or for a copying loan at commit).
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] above
    /// [`max_message_size`](Sender::max_message_size) (shared memory may
    /// also refuse more than half its ring), before anything moves;
    /// [`Error::Disconnected`]; [`Error::Timeout`] or
    /// [`Error::WouldBlock`] at the deadline.
    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<Self::Loan<'_>>;

    /// As [`loan_until`](LoanSender::loan_until), waiting as long as it
    /// takes.
    ///
    /// # Errors
    /// As [`loan_until`](LoanSender::loan_until).
    fn loan(&mut self, len: usize) -> Result<Self::Loan<'_>> {
        self.loan_until(len, Deadline::Never)
    }
}

/// Receivers that lend the next message where it lies: shared-memory
/// receivers inside the ring, the others in a reused buffer
/// ([`CopyInPlace`]).
pub trait InPlaceReceiver: Receiver {
    /// The received message this receiver hands out.
    type InPlace<'a>: Received
    where
        Self: 'a;

    /// The next message, waiting at most until `deadline`.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<Self::InPlace<'_>>;

    /// The next message, waiting as long as it takes.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    fn recv_in_place(&mut self) -> Result<Self::InPlace<'_>> {
        self.recv_in_place_until(Deadline::Never)
    }
}

// A duplex channel lends what its halves lend, so a channel's loan and its
// sender's loan are one type.
impl<S: LoanSender, R: Receiver> LoanSender for Duplex<S, R> {
    type Loan<'a>
        = S::Loan<'a>
    where
        Self: 'a;

    #[inline]
    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<S::Loan<'_>> {
        self.sender.loan_until(len, deadline)
    }
}

impl<S: Sender, R: InPlaceReceiver> InPlaceReceiver for Duplex<S, R> {
    type InPlace<'a>
        = R::InPlace<'a>
    where
        Self: 'a;

    #[inline]
    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<R::InPlace<'_>> {
        self.receiver.recv_in_place_until(deadline)
    }
}

// ---------------------------------------------------------------------------
// The copying implementation, for transports without shared memory.

thread_local! {
    /// A buffer kept between copying loans and receipts, so they allocate
    /// nothing once it has grown to the largest message.
    static SPARE: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// A buffer taken from [`SPARE`] and given back when dropped.
struct Scratch(Vec<u8>);

impl Scratch {
    fn take() -> Scratch {
        // During thread teardown the spare may be gone: start afresh.
        let mut v = SPARE.try_with(Cell::take).unwrap_or_default();
        v.clear();
        Scratch(v)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        // Keep the larger of the two; during thread teardown, neither.
        let _ = SPARE.try_with(|spare| {
            let kept = spare.take();
            spare.set(if kept.capacity() >= v.capacity() {
                kept
            } else {
                v
            });
        });
    }
}

/// A loan that any [`Sender`] can give: a reused buffer that
/// [`commit`](Commit::commit) sends with one copy.
///
/// Transports without shared memory implement [`LoanSender`] with it:
///
/// ```
/// use ipc_core::loan::{CopyLoan, LoanSender};
/// use ipc_core::{Deadline, Result, Sender};
///
/// struct Mine;
///
/// impl Sender for Mine {
///     fn send_until(&mut self, msg: &[u8], _deadline: Deadline) -> Result<()> {
///         println!("{} bytes", msg.len());
///         Ok(())
///     }
///     fn max_message_size(&self) -> usize {
///         1024
///     }
/// }
///
/// impl LoanSender for Mine {
///     type Loan<'a> = CopyLoan<'a, Mine>;
///     fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<CopyLoan<'_, Mine>> {
///         CopyLoan::new(self, len, deadline)
///     }
/// }
/// ```
pub struct CopyLoan<'a, S: ?Sized> {
    sender: &'a mut S,
    buf: Scratch,
    deadline: Deadline,
}

impl<'a, S: Sender + ?Sized> CopyLoan<'a, S> {
    /// A zeroed buffer of `len` bytes that [`commit`](Commit::commit) sends
    /// through `sender` with `send_until(_, deadline)`. Allocates only
    /// while the thread's reused buffer is smaller than `len`.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when `len` exceeds `sender`'s
    /// [`max_message_size`](Sender::max_message_size).
    pub fn new(sender: &'a mut S, len: usize, deadline: Deadline) -> Result<Self> {
        let max = sender.max_message_size();
        if len > max {
            return Err(Error::MessageTooLarge { size: len, max });
        }
        let mut buf = Scratch::take();
        buf.0.resize(len, 0);
        Ok(CopyLoan {
            sender,
            buf,
            deadline,
        })
    }
}

impl<S: ?Sized> Deref for CopyLoan<'_, S> {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.buf.0
    }
}

impl<S: ?Sized> DerefMut for CopyLoan<'_, S> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf.0
    }
}

// SAFETY:
// - the bytes are the heap buffer of a `Vec` that is neither resized nor
//   replaced while the loan lives (only `new` and `Drop` touch its length),
//   so every deref gives the same address and length, also after a move;
// - nothing but `deref_mut` writes them: the buffer is owned by the loan.
unsafe impl<S: Sender + ?Sized> Commit for CopyLoan<'_, S> {
    fn commit(self) -> Result<()> {
        self.sender.send_until(&self.buf.0, self.deadline)
    }

    fn is_in_place(&self) -> bool {
        false
    }
}

impl<S: ?Sized> fmt::Debug for CopyLoan<'_, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyLoan")
            .field("len", &self.buf.0.len())
            .field("deadline", &self.deadline)
            .finish()
    }
}

/// A message that any [`Receiver`] can lend: received into a reused
/// buffer with one copy.
///
/// Transports without shared memory implement [`InPlaceReceiver`] with it:
///
/// ```
/// use ipc_core::loan::{CopyInPlace, InPlaceReceiver};
/// use ipc_core::{Deadline, Receiver, Result};
///
/// struct Mine;
///
/// impl Receiver for Mine {
///     fn recv_until(&mut self, buf: &mut Vec<u8>, _deadline: Deadline) -> Result<()> {
///         buf.clear();
///         buf.extend_from_slice(b"hi");
///         Ok(())
///     }
/// }
///
/// impl InPlaceReceiver for Mine {
///     type InPlace<'a> = CopyInPlace;
///     fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<CopyInPlace> {
///         CopyInPlace::recv(self, deadline)
///     }
/// }
///
/// assert_eq!(&Mine.recv_in_place().unwrap()[..], b"hi");
/// ```
pub struct CopyInPlace {
    buf: Scratch,
}

impl CopyInPlace {
    /// Receives the next message from `receiver` into the thread's reused
    /// buffer, waiting at most until `deadline`.
    ///
    /// # Errors
    /// As [`Receiver::recv_until`].
    pub fn recv<R: Receiver + ?Sized>(receiver: &mut R, deadline: Deadline) -> Result<Self> {
        let mut buf = Scratch::take();
        receiver.recv_until(&mut buf.0, deadline)?;
        Ok(CopyInPlace { buf })
    }
}

impl Deref for CopyInPlace {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.buf.0
    }
}

// SAFETY: the bytes are the heap buffer of a `Vec` owned by this value and
// never written after `recv` filled it (there is no `DerefMut`), so every
// deref gives the same address, length and contents, also after a move;
// nothing else can write them, and `is_in_place` is always `false`.
unsafe impl Received for CopyInPlace {
    fn is_in_place(&self) -> bool {
        false
    }
}

impl fmt::Debug for CopyInPlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CopyInPlace")
            .field("len", &self.buf.0.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it sends; receives what it holds.
    struct Memory {
        sent: Vec<Vec<u8>>,
        max: usize,
    }

    impl Sender for Memory {
        fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
            if deadline == Deadline::Now && self.sent.len() >= 2 {
                return Err(Error::WouldBlock);
            }
            self.sent.push(msg.to_vec());
            Ok(())
        }

        fn max_message_size(&self) -> usize {
            self.max
        }
    }

    impl Receiver for Memory {
        fn recv_until(&mut self, buf: &mut Vec<u8>, _deadline: Deadline) -> Result<()> {
            let msg = self.sent.pop().ok_or(Error::Disconnected)?;
            buf.clear();
            buf.extend_from_slice(&msg);
            Ok(())
        }
    }

    impl LoanSender for Memory {
        type Loan<'a> = CopyLoan<'a, Memory>;

        fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<CopyLoan<'_, Memory>> {
            CopyLoan::new(self, len, deadline)
        }
    }

    impl InPlaceReceiver for Memory {
        type InPlace<'a> = CopyInPlace;

        fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<CopyInPlace> {
            CopyInPlace::recv(self, deadline)
        }
    }

    #[test]
    fn copy_loan_sends_on_commit_only() {
        let mut m = Memory {
            sent: Vec::new(),
            max: 8,
        };
        let mut loan = m.loan(3).expect("loan");
        assert_eq!(&loan[..], &[0, 0, 0]);
        assert!(!loan.is_in_place());
        loan.copy_from_slice(b"abc");
        loan.commit().expect("commit");
        drop(m.loan(2).expect("loan"));
        assert_eq!(m.sent, vec![b"abc".to_vec()]);
        assert!(matches!(
            m.loan(9),
            Err(Error::MessageTooLarge { size: 9, max: 8 })
        ));
    }

    #[test]
    fn copy_loan_keeps_its_deadline() {
        let mut m = Memory {
            sent: vec![Vec::new(), Vec::new()],
            max: 8,
        };
        let loan = m.loan_until(1, Deadline::Now).expect("loan");
        assert!(matches!(loan.commit(), Err(Error::WouldBlock)));
        assert_eq!(m.sent.len(), 2);
    }

    #[test]
    fn copy_in_place_and_duplex() {
        let mut d = Duplex {
            sender: Memory {
                sent: Vec::new(),
                max: 64,
            },
            receiver: Memory {
                sent: vec![b"second".to_vec(), b"first".to_vec()],
                max: 64,
            },
            peer: crate::handshake::PeerInfo {
                pid: 1,
                uid: 0,
                max_message_size: 64,
                send: crate::handshake::TypeTag::BYTES,
                recv: crate::handshake::TypeTag::BYTES,
            },
        };
        let msg = d.recv_in_place().expect("recv");
        assert!(!msg.is_in_place());
        assert_eq!(&msg[..], b"first");
        drop(msg);
        let mut loan = d.loan(6).expect("loan");
        loan.copy_from_slice(b"second");
        loan.commit().expect("commit");
        assert_eq!(d.sender.sent, vec![b"second".to_vec()]);
        assert_eq!(&d.recv_in_place().expect("recv")[..], b"second");
        assert!(matches!(d.recv_in_place(), Err(Error::Disconnected)));
    }
}

//! Zero-copy types in place: [`Loan`] and [`Sample`] over any transport's
//! byte loans and in-place receipts ([`crate::loan`]).

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use super::{TypedChannel, TypedReceiver, TypedSender};
use crate::loan::{Commit, InPlaceReceiver, LoanSender, Received};
use crate::{Channel, Deadline, Error, IpcMessage, Result, ZeroCopy};

/// Whether bytes at `ptr` can be viewed as a `T` where they lie.
fn aligned_for<T>(ptr: *const u8) -> bool {
    ptr.align_offset(align_of::<T>()) == 0
}

/// The error for `len` bytes where a `T` was expected.
fn wrong_length<T: IpcMessage>(len: usize) -> Error {
    Error::Decode {
        type_name: T::NAME,
        reason: format!("expected exactly {} bytes, got {len}", size_of::<T>()),
    }
}

/// Checks that `bytes` is a valid `T`, naming `T::NAME` in the error.
fn validate<T: IpcMessage + ZeroCopy>(bytes: &[u8]) -> Result<()> {
    let () = T::LAYOUT_CHECK;
    if bytes.len() != size_of::<T>() {
        return Err(wrong_length::<T>(bytes.len()));
    }
    T::validate(bytes).map_err(|e| match e {
        Error::Decode { type_name, reason } if type_name != T::NAME => Error::Decode {
            type_name: T::NAME,
            reason: format!("{type_name}: {reason}"),
        },
        other => other,
    })
}

#[derive(Debug)]
enum LoanSlot<T, L> {
    /// The loaned bytes are aligned for `T`: the value is written there.
    Direct(L),
    /// They are not: the value is kept here and copied in on send.
    Local(L, MaybeUninit<T>),
}

/// A `T` being written in place; from [`TypedSender::loan`] or
/// [`TypedChannel::loan`], over the transport's byte loan `L`.
///
/// Derefs to [`MaybeUninit<T>`]: fill it (`loan.write(value)`, or field by
/// field through [`as_mut_ptr`](MaybeUninit::as_mut_ptr)), then
/// [`send`](Self::send). The bytes start zeroed, so fields left unwritten
/// are sent as zeros (the receiver rejects them if zero is not a valid
/// value). Dropping the loan sends nothing.
///
/// On shared memory (`shm:`/`sysv-shm:`) the value lies in the ring slot
/// the receiver reads ([`is_in_place`](Self::is_in_place)) when
/// `align_of::<T>()` is at most 8, the alignment of every ring record;
/// types aligned more, and every other transport, move with one copy.
#[derive(Debug)]
pub struct Loan<T, L> {
    slot: LoanSlot<T, L>,
}

impl<T: IpcMessage + ZeroCopy, L: Commit> Loan<T, L> {
    fn new(mut loan: L) -> Result<Self> {
        let () = T::LAYOUT_CHECK;
        // The transport lends what was asked; a loan that is not is refused
        // here rather than trusted below.
        if loan.len() != size_of::<T>() {
            return Err(Error::protocol(format!(
                "a loan for {} holds {} bytes, not {}",
                T::NAME,
                loan.len(),
                size_of::<T>()
            )));
        }
        loan.fill(0);
        let slot = if aligned_for::<T>(loan.as_ptr()) {
            LoanSlot::Direct(loan)
        } else {
            LoanSlot::Local(loan, MaybeUninit::zeroed())
        };
        Ok(Loan { slot })
    }

    /// A loan of a `T` over the byte loan `loan` (for layers that lend
    /// bytes their own way, such as the async one).
    ///
    /// # Errors
    /// [`Error::Protocol`] when `loan` is not `size_of::<T>()` bytes.
    #[doc(hidden)]
    pub fn from_bytes(loan: L) -> Result<Self> {
        Loan::new(loan)
    }

    /// Sends the value.
    ///
    /// # Errors
    /// As [`Commit::commit`]: on shared memory never; on other transports
    /// [`Error::Disconnected`] or the loan's deadline.
    pub fn send(self) -> Result<()> {
        self.into_filled().commit()
    }

    /// The byte loan holding the value, not yet sent (for layers that send
    /// it their own way, such as the async one).
    #[doc(hidden)]
    pub fn into_filled(self) -> L {
        match self.slot {
            LoanSlot::Direct(loan) => loan,
            LoanSlot::Local(mut loan, value) => {
                // SAFETY:
                // - `value.as_ptr()` is valid for reads of `size_of::<T>()`
                //   bytes: it points at a `MaybeUninit<T>` we own;
                // - every byte is initialised: the value started zeroed and
                //   safe code can only write whole fields or a whole `T`,
                //   and `T: ZeroCopy` has no padding to de-initialise;
                // - the slice lives only within this block, while `value`
                //   is not written.
                let bytes = unsafe {
                    std::slice::from_raw_parts(value.as_ptr().cast::<u8>(), size_of::<T>())
                };
                loan.copy_from_slice(bytes);
                loan
            }
        }
    }

    /// Sends the value (same as [`send`](Self::send)).
    ///
    /// # Errors
    /// As [`send`](Self::send).
    pub fn commit(self) -> Result<()> {
        self.send()
    }

    /// Whether the value is written inside shared memory, where the
    /// receiver reads it (no copy).
    pub fn is_in_place(&self) -> bool {
        matches!(&self.slot, LoanSlot::Direct(loan) if loan.is_in_place())
    }
}

impl<T, L: Commit> Deref for Loan<T, L> {
    type Target = MaybeUninit<T>;

    fn deref(&self) -> &MaybeUninit<T> {
        match &self.slot {
            // SAFETY:
            // - the loan holds exactly `size_of::<T>()` bytes (checked in
            //   `new`), valid while it lives, at an address aligned for `T`
            //   (checked there); `Commit`'s contract keeps address and
            //   length what they were then, the loan moved or not;
            // - `MaybeUninit<T>` accepts any bytes;
            // - the reference borrows `self`, so the loan outlives it.
            LoanSlot::Direct(loan) => unsafe { &*loan.as_ptr().cast::<MaybeUninit<T>>() },
            LoanSlot::Local(_, value) => value,
        }
    }
}

impl<T, L: Commit> DerefMut for Loan<T, L> {
    fn deref_mut(&mut self) -> &mut MaybeUninit<T> {
        match &mut self.slot {
            // SAFETY: as in `deref`; `&mut self` makes this the only
            // reference to the loaned bytes, and `Commit`'s contract lets
            // nothing else write them.
            LoanSlot::Direct(loan) => unsafe { &mut *loan.as_mut_ptr().cast::<MaybeUninit<T>>() },
            LoanSlot::Local(_, value) => value,
        }
    }
}

#[derive(Debug)]
enum SampleSlot<T, M> {
    /// Validated and aligned, viewed where it lies.
    Direct(M, PhantomData<T>),
    /// Not aligned for `T`, or in memory the peer may still write:
    /// validated and copied out.
    Copied(T),
}

/// A received `T`, from [`TypedReceiver::recv_sample`] or
/// [`TypedChannel::recv_sample`], over the transport's in-place message
/// `M`: derefs to `&T`, validated.
///
/// On shared memory (`shm:`/`sysv-shm:`) the `T` lies inside the segment
/// ([`is_in_place`](Self::is_in_place)) and its ring space is released
/// when the sample drops; on other transports it lies in the buffer the
/// message was received into (one copy). A `T` aligned to more than 8
/// bytes, or one with invalid bit patterns in shared memory, is copied out
/// once.
#[derive(Debug)]
pub struct Sample<T, M> {
    slot: SampleSlot<T, M>,
}

impl<T: IpcMessage + ZeroCopy, M: Received> Sample<T, M> {
    /// A sample of the received bytes `msg` (for layers that receive them
    /// their own way, such as the async one).
    ///
    /// # Errors
    /// As [`TypedChannel::recv_sample`] for bytes that are not a `T`.
    #[doc(hidden)]
    pub fn from_received(msg: M) -> Result<Self> {
        Sample::new(msg)
    }

    fn new(msg: M) -> Result<Self> {
        // In shared memory the peer can still write: only a type for which
        // any bytes are a valid value may be referenced there. Other bytes
        // (a private buffer) cannot change under us (`Received`'s contract).
        let stable = T::EVERY_BIT_PATTERN_VALID || !msg.is_in_place();
        if stable && aligned_for::<T>(msg.as_ptr()) {
            validate::<T>(&msg)?;
            return Ok(Sample {
                slot: SampleSlot::Direct(msg, PhantomData),
            });
        }
        // Copy first, then validate the copy: what is checked is what is kept.
        let value = {
            let () = T::LAYOUT_CHECK;
            if msg.len() != size_of::<T>() {
                return Err(validate::<T>(&msg)
                    .err()
                    .unwrap_or_else(|| wrong_length::<T>(msg.len())));
            }
            let mut copy = MaybeUninit::<T>::uninit();
            // SAFETY: `msg` holds exactly `size_of::<T>()` readable bytes
            // (checked above), `copy` has room for as many, the regions are
            // distinct (one is a local) and byte copies need no alignment.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    msg.as_ptr(),
                    copy.as_mut_ptr().cast::<u8>(),
                    size_of::<T>(),
                );
            }
            // SAFETY: all `size_of::<T>()` bytes of `copy` were just written,
            // so viewing them as initialised bytes is sound.
            let bytes =
                unsafe { std::slice::from_raw_parts(copy.as_ptr().cast::<u8>(), size_of::<T>()) };
            validate::<T>(bytes)?;
            // SAFETY: the bytes are a valid `T`: `T::validate` accepted this
            // very copy, which the `ZeroCopy` contract makes sufficient, and
            // no one else can write to a local.
            unsafe { copy.assume_init() }
        };
        Ok(Sample {
            slot: SampleSlot::Copied(value),
        })
    }

    /// Whether the value is read inside shared memory (not copied).
    pub fn is_in_place(&self) -> bool {
        matches!(&self.slot, SampleSlot::Direct(msg, _) if msg.is_in_place())
    }
}

impl<T, M: Received> Deref for Sample<T, M> {
    type Target = T;

    fn deref(&self) -> &T {
        match &self.slot {
            // SAFETY:
            // - the bytes are exactly `size_of::<T>()` long and a valid `T`
            //   (`validate` in `new`), and aligned for `T` (checked there);
            //   `Received`'s contract keeps address, length and (when not
            //   in place) contents what they were then, moved or not;
            // - they stay unreleased while `msg` lives, which the
            //   reference's borrow of `self` ensures; in shared memory the
            //   slot is direct only when `T::EVERY_BIT_PATTERN_VALID`, so
            //   even a peer that breaks the ring protocol and rewrites the
            //   bytes cannot make them an invalid `T` (see `Sample::new`).
            SampleSlot::Direct(msg, _) => unsafe { &*msg.as_ptr().cast::<T>() },
            SampleSlot::Copied(value) => value,
        }
    }
}

fn loan_message<S: LoanSender, T: IpcMessage + ZeroCopy>(
    sender: &mut S,
    deadline: Deadline,
) -> Result<Loan<T, S::Loan<'_>>> {
    Loan::new(sender.loan_until(size_of::<T>(), deadline)?)
}

fn recv_sample<R: InPlaceReceiver, T: IpcMessage + ZeroCopy>(
    receiver: &mut R,
    deadline: Deadline,
) -> Result<Sample<T, R::InPlace<'_>>> {
    Sample::new(receiver.recv_in_place_until(deadline)?)
}

impl<Out, In, C> TypedChannel<Out, In, C>
where
    Out: IpcMessage + ZeroCopy,
    In: IpcMessage,
    C: Channel + LoanSender,
{
    /// A `T` to fill in place and [`send`](Loan::send): inside the ring
    /// slot on shared memory, one copy elsewhere. Waits for room.
    ///
    /// # Errors
    /// [`Error::MessageTooLarge`] when `Out` exceeds the connection's
    /// limit; [`Error::Disconnected`].
    pub fn loan(&mut self) -> Result<Loan<Out, C::Loan<'_>>> {
        self.loan_until(Deadline::Never)
    }

    /// As [`loan`](Self::loan), waiting at most until `deadline` for room
    /// (on transports other than shared memory, when sending).
    ///
    /// # Errors
    /// As [`loan`](Self::loan); [`Error::Timeout`] or [`Error::WouldBlock`].
    pub fn loan_until(&mut self, deadline: Deadline) -> Result<Loan<Out, C::Loan<'_>>> {
        loan_message(&mut self.channel, deadline)
    }
}

impl<Out, In, C> TypedChannel<Out, In, C>
where
    Out: IpcMessage,
    In: IpcMessage + ZeroCopy,
    C: Channel + InPlaceReceiver,
{
    /// The next message as a [`Sample`] that derefs to `&In`: inside the
    /// segment on shared memory, one copy elsewhere.
    ///
    /// # Errors
    /// [`Error::Decode`] naming `In` for a wrong length or an invalid bit
    /// pattern (the message is consumed; the channel stays usable);
    /// otherwise as [`recv`](Self::recv).
    pub fn recv_sample(&mut self) -> Result<Sample<In, C::InPlace<'_>>> {
        self.recv_sample_until(Deadline::Never)
    }

    /// As [`recv_sample`](Self::recv_sample), waiting at most `timeout`.
    ///
    /// # Errors
    /// As [`recv_sample`](Self::recv_sample); [`Error::Timeout`].
    pub fn recv_sample_timeout(&mut self, timeout: Duration) -> Result<Sample<In, C::InPlace<'_>>> {
        self.recv_sample_until(Deadline::after(timeout))
    }

    /// As [`recv_sample`](Self::recv_sample), waiting at most until
    /// `deadline`.
    ///
    /// # Errors
    /// As [`recv_sample`](Self::recv_sample).
    pub fn recv_sample_until(&mut self, deadline: Deadline) -> Result<Sample<In, C::InPlace<'_>>> {
        recv_sample(&mut self.channel, deadline)
    }
}

impl<Out: IpcMessage + ZeroCopy, S: LoanSender> TypedSender<Out, S> {
    /// See [`TypedChannel::loan`].
    ///
    /// # Errors
    /// As [`TypedChannel::loan`].
    pub fn loan(&mut self) -> Result<Loan<Out, S::Loan<'_>>> {
        self.loan_until(Deadline::Never)
    }

    /// See [`TypedChannel::loan_until`].
    ///
    /// # Errors
    /// As [`TypedChannel::loan_until`].
    pub fn loan_until(&mut self, deadline: Deadline) -> Result<Loan<Out, S::Loan<'_>>> {
        loan_message(&mut self.sender, deadline)
    }
}

impl<In: IpcMessage + ZeroCopy, R: InPlaceReceiver> TypedReceiver<In, R> {
    /// See [`TypedChannel::recv_sample`].
    ///
    /// # Errors
    /// As [`TypedChannel::recv_sample`].
    pub fn recv_sample(&mut self) -> Result<Sample<In, R::InPlace<'_>>> {
        self.recv_sample_until(Deadline::Never)
    }

    /// See [`TypedChannel::recv_sample_timeout`].
    ///
    /// # Errors
    /// As [`TypedChannel::recv_sample_timeout`].
    pub fn recv_sample_timeout(&mut self, timeout: Duration) -> Result<Sample<In, R::InPlace<'_>>> {
        self.recv_sample_until(Deadline::after(timeout))
    }

    /// See [`TypedChannel::recv_sample_until`].
    ///
    /// # Errors
    /// As [`TypedChannel::recv_sample_until`].
    pub fn recv_sample_until(&mut self, deadline: Deadline) -> Result<Sample<In, R::InPlace<'_>>> {
        recv_sample(&mut self.receiver, deadline)
    }
}

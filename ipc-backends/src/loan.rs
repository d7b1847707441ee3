//! Every backend's loans and in-place receipts ([`ipc_core::loan`]): the
//! shared-memory halves lend ring space natively; every other half lends a
//! reused buffer moved with one copy ([`CopyLoan`], [`CopyInPlace`]).
//! Channels built as a [`Duplex`](ipc_core::Duplex) lend what their halves
//! lend (implemented in `ipc-core`).
//!
//! A new backend adds its halves to [`copy!`] (or implements the traits
//! natively), so that [`crate::any`] can dispatch to them.

use ipc_core::loan::{Commit, CopyInPlace, CopyLoan, InPlaceReceiver, LoanSender, Received};
use ipc_core::{Deadline, Result};

use crate::mq::{MqReceiver, MqSender};
use crate::shm::{self, ShmChannel, ShmReceiver, ShmSender};
use crate::stream::{StreamReceiver, StreamSender};
use crate::sysv_mq::{SysvMqReceiver, SysvMqSender};

// ------------------------------------------------------------ shared memory

impl LoanSender for ShmSender {
    type Loan<'a> = shm::Loan<'a>;

    #[inline]
    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<shm::Loan<'_>> {
        ShmSender::loan_until(self, len, deadline)
    }
}

impl LoanSender for ShmChannel {
    type Loan<'a> = shm::Loan<'a>;

    #[inline]
    fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<shm::Loan<'_>> {
        ShmChannel::loan_until(self, len, deadline)
    }
}

impl InPlaceReceiver for ShmReceiver {
    type InPlace<'a> = shm::InPlace<'a>;

    #[inline]
    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<shm::InPlace<'_>> {
        ShmReceiver::recv_in_place_until(self, deadline)
    }
}

impl InPlaceReceiver for ShmChannel {
    type InPlace<'a> = shm::InPlace<'a>;

    #[inline]
    fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<shm::InPlace<'_>> {
        ShmChannel::recv_in_place_until(self, deadline)
    }
}

// SAFETY:
// - the bytes are the `len` payload bytes reserved in the ring at a raw
//   address the loan stores (not inside the loan), fixed from
//   `loan_until` until commit or drop, so every deref agrees, moved or not;
// - the consumer does not read, and nothing else writes, reserved space
//   before it is published by `commit`: only `deref_mut` writes it.
unsafe impl Commit for shm::Loan<'_> {
    #[inline]
    fn commit(self) -> Result<()> {
        // Room was reserved by the loan: publishing cannot fail.
        shm::Loan::commit(self);
        Ok(())
    }

    #[inline]
    fn is_in_place(&self) -> bool {
        true
    }
}

// SAFETY:
// - the bytes are either published ring bytes, released only when the
//   guard drops, or the receiver's scratch buffer, which the guard's
//   exclusive borrow of the receiver keeps untouched; either way their
//   address and length are stored in the guard, fixed while it lives;
// - `is_in_place` is fixed at creation and is `true` exactly when the
//   bytes lie in the segment the peer maps; the scratch buffer is private
//   and unchanged while the guard lives.
unsafe impl Received for shm::InPlace<'_> {
    #[inline]
    fn is_in_place(&self) -> bool {
        shm::InPlace::is_in_place(self)
    }
}

// ------------------------------------------------------------------ copies

/// Implements the loan traits with one copy for each sender and receiver
/// listed.
macro_rules! copy {
    (senders: $($s:ty),*; receivers: $($r:ty),*;) => {
        $(
            impl LoanSender for $s {
                type Loan<'a> = CopyLoan<'a, $s>;

                #[inline]
                fn loan_until(&mut self, len: usize, deadline: Deadline) -> Result<Self::Loan<'_>> {
                    CopyLoan::new(self, len, deadline)
                }
            }
        )*
        $(
            impl InPlaceReceiver for $r {
                type InPlace<'a> = CopyInPlace;

                #[inline]
                fn recv_in_place_until(&mut self, deadline: Deadline) -> Result<CopyInPlace> {
                    CopyInPlace::recv(self, deadline)
                }
            }
        )*
    };
}

copy! {
    senders: StreamSender, MqSender, SysvMqSender;
    receivers: StreamReceiver, MqReceiver, SysvMqReceiver;
}

#[cfg(feature = "nats")]
copy! {
    senders: crate::nats::NatsSender;
    receivers: crate::nats::NatsReceiver;
}

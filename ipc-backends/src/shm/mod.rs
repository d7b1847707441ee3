//! Shared-memory transports: `shm:` (POSIX shared memory) and `sysv-shm:`
//! (System V shared memory), both with futex wake-ups on words in the
//! segment.
//!
//! Per connection one segment holds a header and one ring per direction
//! ([`segment`], [`ring`]). Clients meet the listener on an abstract Unix
//! socket ([`rendezvous`]) for the handshake and the hand-over of the
//! segment; every message then moves through shared memory. The listener
//! is a [`conn::Acceptor`](crate::conn::Acceptor): each client's handshake
//! and hand-over run off the accept path, within `connect_timeout`.
//!
//! - No system call on the fast path: a side only sleeps after publishing
//!   that it may sleep and re-checking the ring, and the other side only
//!   wakes it when that flag is set (`docs/shm-architecture.md` argues why
//!   no wake-up is lost).
//! - `wait=spin|block|adaptive` and `spin_us` choose how a side waits;
//!   `capacity` is the ring size in bytes per direction (rounded up to a
//!   power of two, at least 4096; default: room for one message of
//!   `max_message_size`, between 1 MiB and 4 MiB). The listener's value is
//!   used. A loan holds at most half a ring.
//! - The peer is untrusted: see [`ring`] for what is read from it and how
//!   it is validated.
//! - Once a receiver has seen `Disconnected`, both halves of its channel
//!   return `Disconnected`.
//! - Zero-copy: [`ShmSender::loan`] and [`ShmReceiver::recv_in_place`].

mod aio;
mod channel;
mod connect;
mod handover;
mod listen;
pub mod posix;
mod receiver;
pub mod rendezvous;
pub mod ring;
pub mod segment;
mod sender;
mod shared;
pub mod sysv;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod wake_model;
mod wire;

use ipc_core::{Endpoint, Error, Result, Schema, Scheme, Transport};

pub use channel::ShmChannel;
pub use listen::ShmListener;
pub use receiver::{InPlace, ShmReceiver};
pub use sender::{Loan, ShmSender};

/// `shm:` — POSIX shared memory with futex wake-ups.
#[derive(Debug, Clone, Copy)]
pub struct Shm;

/// `sysv-shm:` — System V shared memory with futex wake-ups.
#[derive(Debug, Clone, Copy)]
pub struct SysvShm;

impl Transport for Shm {
    type Listener = ShmListener;
    type Channel = ShmChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<ShmListener> {
        listen::bind(Scheme::Shm, endpoint, schema)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<ShmChannel> {
        connect::connect(Scheme::Shm, endpoint, schema)
    }
}

impl Transport for SysvShm {
    type Listener = ShmListener;
    type Channel = ShmChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<ShmListener> {
        listen::bind(Scheme::SysvShm, endpoint, schema)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<ShmChannel> {
        connect::connect(Scheme::SysvShm, endpoint, schema)
    }
}

fn check_scheme(want: Scheme, endpoint: &Endpoint) -> Result<()> {
    if endpoint.scheme() != want {
        return Err(Error::Unsupported {
            scheme: endpoint.scheme(),
            reason: format!(
                "the {want}: transport was asked to open {endpoint}; use {}",
                want.example()
            ),
        });
    }
    Ok(())
}

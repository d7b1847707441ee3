//! `sysv-mq:PATH` — System V message queues.
//!
//! The listener owns the rendezvous queue under key `ftok(PATH, 'x')`
//! (creating an empty file at `PATH` if none is there); each connection is
//! a pair of private queues. System V queues outlive their processes, so
//! each is recorded in the [registry](crate::registry) under the side that
//! reads it, which removes it on close; [`remove_orphans`] removes those
//! of dead owners. These queues cannot be polled: a watcher thread per
//! connection removes the queues when the peer dies, which wakes blocked
//! calls. `capacity=` is the queue length in messages (at most
//! `/proc/sys/kernel/msgmnb` bytes). The wire format is in
//! `docs/wire-format.md`.

pub use crate::queue::sysv::{
    SysvIn, SysvMq, SysvMqChannel, SysvMqListener, SysvMqReceiver, SysvMqSender, SysvOut,
    remove_orphans,
};

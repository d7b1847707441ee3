//! `mq:/NAME` — POSIX message queues.
//!
//! The listener owns the rendezvous queue `/ipcx.NAME`; each connection
//! is a pair of private queues, `/ipcx.NAME.PID.N.up` (client to server)
//! and `.down`, whose names are unlinked as soon as both sides hold them.
//! Messages larger than a queue message are fragmented
//! ([`crate::fragment`]); a killed peer is noticed at once through its
//! pidfd. `capacity=` is the queue length in messages (at most
//! `/proc/sys/fs/mqueue/msg_max`); every queue counts against the user's
//! `RLIMIT_MSGQUEUE`. The wire format is in `docs/wire-format.md`.

pub use crate::queue::sizing::{
    posix_connection_bytes as connection_bytes,
    posix_default_connection_bytes as default_connection_bytes,
};

pub use crate::queue::posix::{
    Mq, MqChannel, MqIn, MqListener, MqOut, MqReceiver, MqSender, rendezvous_name,
};

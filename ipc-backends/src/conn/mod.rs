//! The connection layer: every step of a connection that is not how bytes
//! move, written once and used by every transport.
//!
//! - `handshake`: the one handshake driver (hello both ways, check, verdict
//!   both ways, conclude) over a transport's `handshake::Wire`.
//! - `request`: the 16-byte connect request of the kernel-object
//!   rendezvous (`fifo:`, `mq:`, `sysv-mq:`).
//! - `authorize`: the one peer-credential policy.
//! - `fail`: deadlines and errno mapped to the matchable errors
//!   (`NoListener`, `ConnectTimeout`, `AddrInUse`).
//! - `accept`: listeners whose handshakes run off the accept path, so
//!   `accept` returns established connections only.
//! - `dial`: connect, waiting for a listener when `wait_for_listener`
//!   asks for it.
//! - `link`: once a channel has seen `Disconnected`, every operation on
//!   it (both halves) returns `Disconnected`.
//! - `watch`: the one death watcher of the process: a thread on an epoll
//!   set of pidfds, one per peer process, that flags and wakes the
//!   connections of a peer that exits (for transports whose objects give
//!   no end-of-file).
//!
//! A backend supplies only what is its own: how bytes move and how its
//! rendezvous is found.

pub(crate) mod accept;
pub(crate) mod authorize;
pub(crate) mod dial;
pub(crate) mod fail;
pub(crate) mod handshake;
pub(crate) mod link;
pub(crate) mod request;
pub(crate) mod watch;

pub use accept::{Acceptor, ListenerCloser, close_all_listeners};
pub use link::ChannelCloser;

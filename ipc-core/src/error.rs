//! The error type every transport returns.
//!
//! Callers act on the variants: [`Error::Disconnected`], [`Error::Timeout`],
//! [`Error::WouldBlock`], [`Error::MessageTooLarge`], [`Error::SchemaMismatch`],
//! [`Error::PermissionDenied`], [`Error::Protocol`], [`Error::NoListener`],
//! [`Error::ConnectTimeout`] and [`Error::AddrInUse`] are distinct from
//! [`Error::Io`], which carries the endpoint and the system call that failed.
//!
//! # Whose error is it?
//!
//! An error that ends one connection never ends a listener or a server loop.
//! [`Error::is_fatal`] tells them apart: a listener's `accept` only returns
//! errors of the listener itself (handshake failures of clients are logged
//! and dropped), and a server loop goes on after any error for which
//! `is_fatal()` is `false`.
//!
//! ```
//! # use ipc_core::Error;
//! assert!(!Error::Disconnected.is_fatal());
//! assert!(!Error::Timeout.is_fatal());
//! let e = Error::NoListener { endpoint: "unix:/run/a.sock".into(), reason: "no socket file".into() };
//! assert!(e.is_fatal());
//! ```

use std::io;
use std::time::Duration;

use crate::endpoint::{EndpointError, Scheme};
use crate::handshake::TypeTag;

/// Shorthand for `Result<T, ipc_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which direction of a connection a schema mismatch is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// What this side sends and the peer receives.
    LocalToPeer,
    /// What the peer sends and this side receives.
    PeerToLocal,
}

/// Everything that can go wrong in ipcx.
///
/// # Examples
///
/// Acting on the variants a caller can do something about:
///
/// ```
/// use std::time::Duration;
/// use ipc_core::{Error, Receiver};
///
/// fn next_order<R: Receiver>(rx: &mut R) -> Result<Option<Vec<u8>>, Error> {
///     match rx.recv_timeout(Duration::from_millis(100)) {
///         Ok(msg) => Ok(Some(msg)),
///         // Nothing yet: come back later.
///         Err(Error::Timeout) => Ok(None),
///         // The peer is gone for good; so is this channel.
///         Err(Error::Disconnected) => Ok(None),
///         // A lying peer, a full disk, …: give up on this one.
///         Err(e) => Err(e),
///     }
/// }
/// # let _ = next_order::<ipc_core::Duplex<Never, Never>>;
/// # #[derive(Debug)] struct Never;
/// # impl ipc_core::Sender for Never {
/// #     fn send_until(&mut self, _: &[u8], _: ipc_core::Deadline) -> ipc_core::Result<()> { Ok(()) }
/// #     fn max_message_size(&self) -> usize { 0 }
/// # }
/// # impl Receiver for Never {
/// #     fn recv_until(&mut self, _: &mut Vec<u8>, d: ipc_core::Deadline) -> ipc_core::Result<()> { Err(d.elapsed_error()) }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed its end, exited or was killed. Messages it sent before
    /// are delivered first; after this no more will come.
    #[error("peer disconnected")]
    Disconnected,
    /// This side closed the listener or channel (its closer's `close()`
    /// ran, on this or another thread or task): whoever waited on it was
    /// woken, and nothing more happens on it.
    #[error("closed by this process")]
    Closed,
    /// A `*_timeout` operation reached its deadline; nothing was sent or
    /// consumed.
    #[error("timed out")]
    Timeout,
    /// A `try_*` operation could not complete at once; nothing was sent or
    /// consumed.
    #[error("operation would block")]
    WouldBlock,
    /// A message is larger than the connection's `max_message_size`. Nothing
    /// was sent.
    #[error(
        "message of {size} bytes exceeds max_message_size of {max} bytes; raise max_message_size on both peers' endpoints or split the message"
    )]
    MessageTooLarge {
        /// The message's size in bytes.
        size: usize,
        /// The connection's limit (the smaller of both peers' values).
        max: usize,
    },
    /// The peers disagree on a message type. Raised on both sides at connect.
    #[error(
        "schema mismatch: {}",
        match direction {
            Direction::LocalToPeer => format!(
                "this side sends {local} but the peer expects {remote}"
            ),
            Direction::PeerToLocal => format!(
                "the peer sends {remote} but this side expects {local}"
            ),
        }
    )]
    SchemaMismatch {
        /// Which direction disagrees.
        direction: Direction,
        /// This side's type in that direction.
        local: TypeTag,
        /// The peer's type in that direction.
        remote: TypeTag,
    },
    /// The peers speak different versions of the ipcx protocol.
    #[error(
        "protocol version mismatch: this side speaks ipcx protocol {local}, the peer speaks {remote}; run the same ipcx version on both sides"
    )]
    VersionMismatch {
        /// This side's protocol version.
        local: u16,
        /// The peer's protocol version.
        remote: u16,
    },
    /// A peer or kernel object failed an access check.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The peer broke the wire protocol (bad length, bad header, corrupt
    /// ring). The connection is unusable.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// An endpoint string or option is invalid.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The transport is not available in this build or on this system.
    #[error("{scheme}: not supported: {reason}")]
    Unsupported {
        /// The scheme that was asked for.
        scheme: Scheme,
        /// Why, and what to use instead.
        reason: String,
    },
    /// An option asks for more than a kernel limit allows.
    #[error(
        "{endpoint}: {option}={value} exceeds the kernel limit {limit} ({source_of_limit}); {fix}"
    )]
    Limit {
        /// The endpoint being opened.
        endpoint: String,
        /// The option at fault.
        option: &'static str,
        /// Its value.
        value: u64,
        /// The limit in force.
        limit: u64,
        /// Where the limit lives (`/proc/sys/fs/mqueue/msg_max`).
        source_of_limit: String,
        /// What to do about it.
        fix: String,
    },
    /// A message could not be encoded (serde refused the value).
    #[error("cannot encode {type_name}: {reason}")]
    Encode {
        /// The message's wire name.
        type_name: &'static str,
        /// What serde reported.
        reason: String,
    },
    /// A message could not be decoded into its type.
    #[error("cannot decode {type_name}: {reason}")]
    Decode {
        /// The Rust type (or wire name) being decoded.
        type_name: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The peer reported that it could not handle a request: the handler of
    /// a request–reply server returned an error (or panicked), or could not
    /// decode the request. The connection stays usable.
    #[error("the server could not handle the request: {0}")]
    Remote(String),
    /// Nothing listens on the endpoint: its rendezvous object does not
    /// exist, refuses connections, or belongs to a process that is dead.
    /// The same on every transport.
    #[error(
        "{endpoint}: no listener ({reason}); start the listener first, or let the client wait for it with ?wait_for_listener=5s"
    )]
    NoListener {
        /// The endpoint connected to.
        endpoint: String,
        /// What was found instead of a listener.
        reason: String,
    },
    /// Connecting (the rendezvous or the handshake) took longer than the
    /// endpoint's `connect_timeout`.
    #[error(
        "{endpoint}: {step} took longer than connect_timeout ({timeout:?}); is the peer an ipcx peer that is accepting? raise connect_timeout if it is only slow"
    )]
    ConnectTimeout {
        /// The endpoint.
        endpoint: String,
        /// The step that ran out of time (`handshake`, `connect`, …).
        step: String,
        /// The `connect_timeout` in force.
        timeout: Duration,
    },
    /// The endpoint's name is taken by a live listener (or by a file that
    /// is not ours).
    #[error(
        "{endpoint}: already in use{}; stop that listener or choose another name",
        match owner {
            Some(pid) => format!(" by process {pid}"),
            None => format!(" ({detail})"),
        }
    )]
    AddrInUse {
        /// The endpoint listened on.
        endpoint: String,
        /// The live listener's pid, when known.
        owner: Option<u32>,
        /// What is in the way, when the owner is not known.
        detail: String,
    },
    /// A process died holding a shared lock or in the middle of a write
    /// to shared state (`ipcx::sync`, `ipcx::shared`), and nobody has
    /// repaired it since: `lock()` it, which reports the death and lets
    /// the caller repair the state.
    #[error(
        "{object}: {}died in the middle of a write; lock() it to repair the state",
        match pid { Some(pid) => format!("process {pid} "), None => "its last writer ".into() }
    )]
    OwnerDied {
        /// The endpoint of the lock or region.
        object: String,
        /// The process that died, when known.
        pid: Option<u32>,
    },
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// The endpoint and the call, e.g. `unix:/run/a.sock: bind`, and a
        /// hint where one helps.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] with its context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Protocol`].
    pub fn protocol(what: impl Into<String>) -> Error {
        Error::Protocol(what.into())
    }

    /// Whether the peer is gone for good (the connection should be dropped).
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            Error::Disconnected | Error::Closed | Error::Protocol(_)
        )
    }

    /// Whether this error concerns one connection or one peer only: the
    /// peer left, lied, was refused in the handshake, was too slow, or one
    /// message could not be handled. A listener or a server loop goes on
    /// after such an error.
    pub fn is_per_connection(&self) -> bool {
        matches!(
            self,
            Error::Disconnected
                | Error::Protocol(_)
                | Error::MessageTooLarge { .. }
                | Error::SchemaMismatch { .. }
                | Error::VersionMismatch { .. }
                | Error::PermissionDenied(_)
                | Error::ConnectTimeout { .. }
                | Error::Encode { .. }
                | Error::Decode { .. }
                | Error::Remote(_)
        )
    }

    /// Whether the object that returned this error (a listener, a server)
    /// cannot go on: not a per-connection error and not a timeout.
    ///
    /// ```
    /// # use ipc_core::Error;
    /// // A serve loop: per-client trouble is logged, the listener's own ends it.
    /// fn on_accept_error(e: Error) -> Result<(), Error> {
    ///     if e.is_fatal() { Err(e) } else { Ok(()) }
    /// }
    /// assert!(on_accept_error(Error::Timeout).is_ok());
    /// assert!(on_accept_error(Error::protocol("garbage hello")).is_ok());
    /// ```
    pub fn is_fatal(&self) -> bool {
        !self.is_per_connection() && !matches!(self, Error::Timeout | Error::WouldBlock)
    }
}

/// An I/O error from the caller's own code (`?` on a `std::io::Result` in a
/// function returning `ipc_core::Result`). Kinds the contract names map to
/// their variants; everything else is [`Error::Io`].
impl From<io::Error> for Error {
    fn from(e: io::Error) -> Error {
        match e.kind() {
            io::ErrorKind::WouldBlock => Error::WouldBlock,
            io::ErrorKind::TimedOut => Error::Timeout,
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => Error::Disconnected,
            _ => Error::Io {
                context: "I/O".into(),
                source: e,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_convert_and_classify() {
        fn read() -> Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))?;
            Ok(())
        }
        assert!(matches!(read(), Err(Error::Disconnected)));
        let e: Error = io::Error::from(io::ErrorKind::NotFound).into();
        assert!(matches!(e, Error::Io { .. }) && e.is_fatal());
        let busy = Error::AddrInUse {
            endpoint: "mq:/x".into(),
            owner: Some(42),
            detail: String::new(),
        };
        assert!(busy.to_string().contains("by process 42"), "{busy}");
        assert!(busy.is_fatal());
        let slow = Error::ConnectTimeout {
            endpoint: "unix:/a".into(),
            step: "handshake".into(),
            timeout: Duration::from_secs(5),
        };
        assert!(slow.is_per_connection() && !slow.is_fatal());
        assert!(!Error::WouldBlock.is_fatal());
    }
}

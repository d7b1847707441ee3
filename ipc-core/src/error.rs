//! The error type every transport returns.
//!
//! Callers act on the variants: [`Error::Disconnected`], [`Error::Timeout`],
//! [`Error::WouldBlock`], [`Error::MessageTooLarge`], [`Error::SchemaMismatch`],
//! [`Error::PermissionDenied`] and [`Error::Protocol`] are distinct from
//! [`Error::Io`], which carries the endpoint and the system call that failed.

use std::io;

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
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer closed its end, exited or was killed. Messages it sent before
    /// are delivered first; after this no more will come.
    #[error("peer disconnected")]
    Disconnected,
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
        matches!(self, Error::Disconnected | Error::Protocol(_))
    }
}

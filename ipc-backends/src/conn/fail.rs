//! Deadlines and errno mapped once to the errors callers match on.

use std::io;

use ipc_core::{Endpoint, Error};

/// Nothing listens on `endpoint`; `reason` says what was found instead.
pub(crate) fn no_listener(endpoint: &Endpoint, reason: impl Into<String>) -> Error {
    Error::NoListener {
        endpoint: endpoint.to_string(),
        reason: reason.into(),
    }
}

/// `step` of connecting to `endpoint` ran past `connect_timeout`.
pub(crate) fn connect_timeout(endpoint: &Endpoint, step: &str) -> Error {
    Error::ConnectTimeout {
        endpoint: endpoint.to_string(),
        step: step.to_string(),
        timeout: endpoint.options().connect_timeout,
    }
}

/// Turns the deadline errors of a connect step into [`Error::ConnectTimeout`].
pub(crate) fn in_step(endpoint: &Endpoint, step: &str, e: Error) -> Error {
    match e {
        Error::Timeout | Error::WouldBlock => connect_timeout(endpoint, step),
        e => e,
    }
}

/// The name of `endpoint` is held by a live process (`owner`, when known).
pub(crate) fn addr_in_use(endpoint: &Endpoint, owner: Option<u32>, detail: &str) -> Error {
    Error::AddrInUse {
        endpoint: endpoint.to_string(),
        owner,
        detail: detail.to_string(),
    }
}

/// Maps the error of opening or connecting to a rendezvous object: the
/// errno values that mean "nothing listens there" become
/// [`Error::NoListener`], `EACCES`/`EPERM` [`Error::PermissionDenied`],
/// everything else [`Error::Io`] naming the call.
pub(crate) fn rendezvous(endpoint: &Endpoint, call: &str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOENT) => no_listener(endpoint, format!("{call}: no such object")),
        Some(libc::ECONNREFUSED) => no_listener(endpoint, format!("{call}: connection refused")),
        Some(libc::ENXIO) => no_listener(endpoint, format!("{call}: no process has it open")),
        Some(libc::EIDRM) => no_listener(endpoint, format!("{call}: removed")),
        Some(libc::EACCES | libc::EPERM) => Error::PermissionDenied(format!(
            "{endpoint}: {call}: the listener's mode does not admit this user; widen it with mode= on the listener"
        )),
        _ => Error::io(format!("{endpoint}: {call}"), e),
    }
}

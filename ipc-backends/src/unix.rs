//! `unix:` — Unix domain stream sockets, by path or in the abstract
//! namespace (`unix:@name`).
//!
//! - The socket file is created with `mode` (default 0600) before the
//!   socket listens, and removed when the listener drops (only if it is
//!   still ours: same device and inode).
//! - A socket file left by a dead listener is reclaimed on `listen`; a live
//!   one makes `listen` fail. Socket files are recorded in the
//!   [`registry`](crate::registry) so `ipcx clean` can remove those of
//!   killed listeners.
//! - Peers are identified by `SO_PEERCRED` (kernel-verified) and checked
//!   against `allow_uid`. An abstract socket has no permission bits, so
//!   without `allow_uid` it admits only this process's own uid.

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Transport, endpoint::UnixAddress};

use crate::registry::{self, Record};
use crate::stream::{self, StreamChannel};
use crate::sys::process;
use crate::sys::socket::{self, FileId, ListenError, UnixName};

/// The `unix:` transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unix;

/// A listening Unix socket.
#[derive(Debug)]
pub struct UnixListener {
    fd: OwnedFd,
    endpoint: Endpoint,
    schema: Schema,
    /// The socket file and its identity, for removal on drop.
    file: Option<(String, FileId)>,
}

fn name(endpoint: &Endpoint) -> UnixName<'_> {
    match endpoint.unix_address() {
        Some(UnixAddress::Abstract(n)) => UnixName::Abstract(n),
        Some(UnixAddress::Path(p)) => UnixName::Path(p),
        None => UnixName::Path(endpoint.address()),
    }
}

/// Checks a kernel-verified peer uid against the endpoint's policy.
fn authorize(endpoint: &Endpoint, uid: u32) -> Result<()> {
    let allowed = match (endpoint.options().allow_uid.is_empty(), name(endpoint)) {
        (true, UnixName::Abstract(_)) => uid == process::uid(),
        _ => endpoint.allows_uid(uid),
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::PermissionDenied(format!(
            "{endpoint}: peer uid {uid} is not allowed; add it to allow_uid (e.g. ?allow_uid={uid})"
        )))
    }
}

fn establish(fd: OwnedFd, endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
    let (pid, uid) = socket::peer_credentials(fd.as_fd())
        .map_err(|e| Error::io(format!("{endpoint}: getsockopt(SO_PEERCRED)"), e))?;
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    let mut ch = stream::establish(fd, endpoint, schema, deadline, |_| authorize(endpoint, uid))?;
    ch.peer.uid = uid;
    if ch.peer.pid == 0 {
        ch.peer.pid = pid;
    }
    Ok(ch)
}

impl Transport for Unix {
    type Listener = UnixListener;
    type Channel = StreamChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<UnixListener> {
        let n = name(endpoint);
        let fd = socket::unix_listen(n, endpoint.options().mode).map_err(|e| match e {
            ListenError::InUse => Error::io(
                format!("{endpoint}: bind: a live listener already serves this address; stop it or choose another path"),
                std::io::ErrorKind::AddrInUse.into(),
            ),
            ListenError::NotASocket => Error::io(
                format!("{endpoint}: bind: a file that is not a socket is in the way; remove it or choose another path"),
                std::io::ErrorKind::AlreadyExists.into(),
            ),
            ListenError::Os(call, e) => Error::io(format!("{endpoint}: {call}"), e),
        })?;
        let file = match n {
            UnixName::Path(p) => {
                let _ = registry::register(&Record::mine("socket", p, endpoint.to_string()));
                socket::file_id(p).map(|id| (p.to_string(), id))
            }
            UnixName::Abstract(_) => None,
        };
        Ok(UnixListener {
            fd,
            endpoint: endpoint.clone(),
            schema: schema.clone(),
            file,
        })
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
        let fd = socket::unix_connect(name(endpoint)).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => " (no socket file: is the listener running?)",
                std::io::ErrorKind::ConnectionRefused => {
                    " (nothing listens: the listener is not running)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    " (the socket's mode does not admit this user; widen it with mode=)"
                }
                _ => "",
            };
            Error::io(format!("{endpoint}: connect{hint}"), e)
        })?;
        establish(fd, endpoint, schema)
    }
}

impl ipc_core::Listener for UnixListener {
    type Channel = StreamChannel;

    fn accept_until(&mut self, deadline: Deadline) -> Result<StreamChannel> {
        let fd = stream::accept_next(self.fd.as_fd(), &self.endpoint, deadline)?;
        establish(fd, &self.endpoint, &self.schema)
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        if let Some((path, id)) = &self.file {
            if socket::file_id(path) == Some(*id) {
                let _ = std::fs::remove_file(path);
            }
            registry::unregister("socket", path);
        }
    }
}

/// Removes a socket file recorded by a dead listener (for `ipcx clean`).
///
/// # Errors
/// The I/O error of the removal, other than the file being gone already.
pub fn remove_orphan(path: &str) -> std::io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

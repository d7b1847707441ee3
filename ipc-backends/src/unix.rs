//! `unix:` — Unix domain stream sockets, by path or in the abstract
//! namespace (`unix:@name`).
//!
//! - The socket file is created with `mode` (default 0600) before the
//!   socket listens, and removed when the listener drops (only if it is
//!   still ours: same device and inode).
//! - A socket file left by a dead listener is reclaimed on `listen`; a live
//!   one makes `listen` fail with [`Error::AddrInUse`]. Socket files are
//!   recorded in the [`registry`] so `ipcx clean` can
//!   remove those of killed listeners.
//! - Peers are identified by `SO_PEERCRED` (kernel-verified) and checked by
//!   `conn::authorize`: an abstract socket has no
//!   permission bits, so without `allow_uid` it admits only this process's
//!   own uid.

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Transport, endpoint::UnixAddress};

use crate::conn::accept::{Acceptor, Sockets};
use crate::conn::authorize::{Object, authorize};
use crate::conn::{dial::dial, fail};
use crate::registry::{self, Kind, Record};
use crate::stream::{self, StreamChannel};
use crate::sys::socket::{self, ListenError, UnixName};

/// Registry kind of a socket file.
const KIND: Kind = Kind::SocketFile;

/// The `unix:` transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unix;

/// A listening Unix socket.
pub type UnixListener = Acceptor<StreamChannel>;

fn name(endpoint: &Endpoint) -> UnixName<'_> {
    match endpoint.unix_address() {
        Some(UnixAddress::Abstract(n)) => UnixName::Abstract(n),
        Some(UnixAddress::Path(p)) => UnixName::Path(p),
        None => UnixName::Path(endpoint.address()),
    }
}

fn object(endpoint: &Endpoint) -> Object {
    match name(endpoint) {
        UnixName::Abstract(_) => Object::Unprotected,
        UnixName::Path(_) => Object::Permissions,
    }
}

fn establish(fd: OwnedFd, endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
    let (pid, uid) = socket::peer_credentials(fd.as_fd())
        .map_err(|e| Error::io(format!("{endpoint}: getsockopt(SO_PEERCRED)"), e))?;
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    let mut ch = stream::establish(fd, endpoint, schema, deadline, |_| {
        authorize(endpoint, object(endpoint), pid, uid)
    })?;
    ch.peer.uid = uid;
    ch.peer.pid = pid;
    Ok(ch)
}

impl Transport for Unix {
    type Listener = UnixListener;
    type Channel = StreamChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<UnixListener> {
        let n = name(endpoint);
        let fd = socket::unix_listen(n, endpoint.options().mode).map_err(|e| match e {
            ListenError::InUse => {
                let owner = match n {
                    UnixName::Path(p) => registry::live_owner(KIND, p),
                    UnixName::Abstract(_) => None,
                };
                fail::addr_in_use(endpoint, owner, "a live listener serves this address")
            }
            ListenError::NotASocket => fail::addr_in_use(
                endpoint,
                None,
                "a file that is not a socket is in the way; remove it",
            ),
            ListenError::Os(call, e) => Error::io(format!("{endpoint}: {call}"), e),
        })?;
        let file = match n {
            UnixName::Path(p) => {
                let _ = registry::register(&Record::mine(KIND, p, endpoint.to_string()));
                socket::file_id(p).map(|id| (p.to_string(), id))
            }
            UnixName::Abstract(_) => None,
        };
        let (ep, schema) = (endpoint.clone(), schema.clone());
        let sockets =
            Sockets::new(fd, endpoint, move |fd| establish(fd, &ep, &schema))?.on_drop(move || {
                // Remove the socket file only if it is still ours.
                if let Some((path, id)) = file {
                    if socket::file_id(&path) == Some(id) {
                        let _ = std::fs::remove_file(&path);
                    }
                    registry::unregister(KIND, &path);
                }
            });
        Acceptor::start(endpoint.clone(), sockets)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
        dial(endpoint, || {
            let fd = socket::unix_connect(name(endpoint))
                .map_err(|e| fail::rendezvous(endpoint, "connect", e))?;
            establish(fd, endpoint, schema)
        })
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

//! The listening side: the endpoint's abstract socket, accepted by an
//! [`Acceptor`]. Each client's handshake, segment creation and hand-over
//! run on a handshake thread of its own, bounded by `connect_timeout`, so
//! `accept` returns established channels only.

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Scheme};

use super::channel::{self, ShmChannel, Side};
use super::{check_scheme, handover, rendezvous, sysv, wire};
use crate::conn::accept::{Acceptor, Sockets};
use crate::conn::fail;
use crate::sys::process;
use crate::sys::socket::{self, ListenError, UnixName};

/// Listens for shared-memory clients on an endpoint.
pub type ShmListener = Acceptor<ShmChannel>;

/// What every connection of one listener is made with.
struct Ctx {
    scheme: Scheme,
    endpoint: Endpoint,
    schema: Schema,
}

/// Binds the endpoint's rendezvous socket and starts accepting.
///
/// # Errors
/// [`Error::Unsupported`] for an endpoint of another scheme,
/// [`Error::AddrInUse`] when a live listener has the endpoint,
/// [`Error::Io`] otherwise.
pub(super) fn bind(scheme: Scheme, endpoint: &Endpoint, schema: &Schema) -> Result<ShmListener> {
    check_scheme(scheme, endpoint)?;
    if scheme == Scheme::SysvShm {
        sysv::remove_orphans();
    }
    let name = rendezvous::socket_name(endpoint);
    let fd = socket::unix_listen(UnixName::Abstract(&name), endpoint.options().mode).map_err(
        |e| match e {
            ListenError::InUse => fail::addr_in_use(
                endpoint,
                None,
                &format!("another process listens on @{name}; pick another name or stop it"),
            ),
            ListenError::NotASocket => Error::io(
                format!("{endpoint}: bind(@{name})"),
                std::io::Error::from(std::io::ErrorKind::AlreadyExists),
            ),
            ListenError::Os(call, e) => Error::io(format!("{endpoint}: {call}(@{name})"), e),
        },
    )?;
    // Closing the socket (when the accepting thread ends) frees the
    // abstract name at once.
    let ctx = Ctx {
        scheme,
        endpoint: endpoint.clone(),
        schema: schema.clone(),
    };
    let sockets = Sockets::new(fd, endpoint, move |conn| serve(conn, &ctx))?;
    Acceptor::start(endpoint.clone(), sockets)
}

/// Establishes one client's connection on the handshake thread: the
/// handshake, then the segment's hand-over, within `connect_timeout`.
fn serve(conn: OwnedFd, ctx: &Ctx) -> Result<ShmChannel> {
    let ep = &ctx.endpoint;
    let deadline = Deadline::after(ep.options().connect_timeout);
    let creds = wire::peer_credentials(ep, conn.as_fd())?;
    let peer = wire::handshake(ep, &ctx.schema, &conn, creds, deadline)?;
    let peer_start = process::start_time(peer.pid);
    let seg = handover::offer(ctx.scheme, ep, conn.as_fd(), &peer, peer_start, deadline)?;
    tracing::debug!(
        endpoint = %ep,
        peer.pid,
        peer.uid,
        ring = seg.layout.ring_capacity,
        "handed over the segment"
    );
    Ok(channel::build(
        seg,
        conn,
        ep,
        Side::Listener,
        peer,
        peer_start,
    ))
}

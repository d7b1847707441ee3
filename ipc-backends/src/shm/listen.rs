//! The listening side: the endpoint's abstract socket, accepted by an
//! [`Acceptor`]. Each client's handshake, segment creation and hand-over
//! run on a handshake thread of its own, bounded by `connect_timeout`, so
//! `accept` returns established channels only.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Scheme};

use super::channel::{self, ShmChannel, Side};
use super::{check_scheme, handover, rendezvous, sysv, wire};
use crate::conn::accept::{Acceptor, Closer, Incoming, Next, Stop, next_socket};
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

/// The listening socket, owned by the accepting thread; closed on drop,
/// which frees the abstract name at once.
struct Listening {
    fd: OwnedFd,
    stop: Stop,
    ctx: Arc<Ctx>,
}

impl Incoming for Listening {
    type Channel = ShmChannel;

    fn next(&mut self) -> Result<Next<ShmChannel>> {
        let raw = next_socket(self.fd.as_fd(), &self.stop, &self.ctx.endpoint)?;
        let ctx = self.ctx.clone();
        Ok(Next::of(raw, |conn| Box::new(move || serve(conn, &ctx))))
    }

    fn closer(&self) -> Closer {
        self.stop.closer()
    }
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
    let listening = Listening {
        fd,
        stop: Stop::new(endpoint)?,
        ctx: Arc::new(Ctx {
            scheme,
            endpoint: endpoint.clone(),
            schema: schema.clone(),
        }),
    };
    Acceptor::start(endpoint.clone(), listening)
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

//! The client's side: connect to the endpoint's abstract socket, run the
//! handshake, take over the segment the listener created.

use std::os::fd::AsFd;

use ipc_core::{Deadline, Endpoint, Result, Schema, Scheme};

use super::channel::{self, ShmChannel, Side};
use super::{check_scheme, handover, rendezvous, wire};
use crate::conn::{dial::dial, fail};
use crate::sys::socket::{self, UnixName};

/// Connects to the listener of `endpoint`, waiting for one as
/// `wait_for_listener` asks.
///
/// # Errors
/// [`Error::NoListener`](ipc_core::Error::NoListener) when nothing listens,
/// [`Error::ConnectTimeout`](ipc_core::Error::ConnectTimeout) when a step
/// outlasts `connect_timeout`, the handshake's refusals, and what
/// [`handover::take`] reports.
pub(super) fn connect(scheme: Scheme, endpoint: &Endpoint, schema: &Schema) -> Result<ShmChannel> {
    check_scheme(scheme, endpoint)?;
    dial(endpoint, || attempt(scheme, endpoint, schema))
}

fn attempt(scheme: Scheme, ep: &Endpoint, schema: &Schema) -> Result<ShmChannel> {
    let deadline = Deadline::after(ep.options().connect_timeout);
    let name = rendezvous::socket_name(ep);
    let conn = socket::unix_connect(UnixName::Abstract(&name))
        .map_err(|e| fail::rendezvous(ep, &format!("connect(@{name})"), e))?;
    let creds = wire::peer_credentials(ep, conn.as_fd())?;
    let peer = wire::handshake(ep, schema, &conn, creds, deadline)?;
    let seg = handover::take(scheme, ep, conn.as_fd(), &peer, deadline)?;
    tracing::debug!(
        endpoint = %ep,
        peer.pid,
        peer.uid,
        ring = seg.layout.ring_capacity,
        "mapped the listener's segment"
    );
    let start = Some(seg.layout.listener_start).filter(|&t| t != 0);
    Ok(channel::build(seg, conn, ep, Side::Client, peer, start))
}

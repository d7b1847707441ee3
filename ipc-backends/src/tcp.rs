//! `tcp://` — TCP, for peers on other machines. `TCP_NODELAY` is set on
//! every connection, so small messages go out at once.
//!
//! The uid a TCP peer announces cannot be verified, so `allow_uid` does not
//! apply (the endpoint parser refuses it); restrict who can reach the port
//! with the network instead.

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Transport};

use crate::conn::accept::{Acceptor, Sockets};
use crate::conn::{dial::dial, fail};
use crate::stream::{self, StreamChannel};
use crate::sys::socket;

/// The `tcp://` transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

/// A listening TCP socket.
pub type TcpListener = Acceptor<StreamChannel>;

fn establish(fd: OwnedFd, endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    stream::establish(fd, endpoint, schema, deadline, |_| Ok(()))
}

/// Establishes an accepted connection on its handshake thread.
fn serve(fd: OwnedFd, endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
    socket::set_nodelay(fd.as_fd())
        .map_err(|e| Error::io(format!("{endpoint}: setsockopt(TCP_NODELAY)"), e))?;
    establish(fd, endpoint, schema)
}

impl Transport for Tcp {
    type Listener = TcpListener;
    type Channel = StreamChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<TcpListener> {
        let (fd, local) = socket::tcp_listen(endpoint.address()).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AddrInUse {
                fail::addr_in_use(endpoint, None, "another socket is bound to this port")
            } else {
                Error::io(format!("{endpoint}: bind"), e)
            }
        })?;
        let host = endpoint.address().rsplit_once(':').map_or("", |(h, _)| h);
        let port = local.rsplit_once(':').map_or("0", |(_, p)| p);
        let resolved = endpoint.with_address(format!("{host}:{port}"));
        let (ep, schema) = (resolved.clone(), schema.clone());
        let sockets = Sockets::new(fd, &resolved, move |fd| serve(fd, &ep, &schema))?;
        Acceptor::start(resolved, sockets)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
        dial(endpoint, || {
            let fd = socket::tcp_connect(endpoint.address(), endpoint.options().connect_timeout)
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::TimedOut => fail::connect_timeout(endpoint, "connect"),
                    _ => fail::rendezvous(endpoint, "connect", e),
                })?;
            establish(fd, endpoint, schema)
        })
    }
}

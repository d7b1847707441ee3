//! `tcp://` — TCP, for peers on other machines. `TCP_NODELAY` is set on
//! every connection, so small messages go out at once.
//!
//! The uid a TCP peer announces cannot be verified, so `allow_uid` does not
//! apply (the endpoint parser refuses it); restrict who can reach the port
//! with the network instead.

use std::os::fd::{AsFd, OwnedFd};

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Transport};

use crate::stream::{self, StreamChannel};
use crate::sys::socket;

/// The `tcp://` transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tcp;

/// A listening TCP socket.
#[derive(Debug)]
pub struct TcpListener {
    fd: OwnedFd,
    endpoint: Endpoint,
    schema: Schema,
}

fn establish(fd: OwnedFd, endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    stream::establish(fd, endpoint, schema, deadline, |_| Ok(()))
}

impl Transport for Tcp {
    type Listener = TcpListener;
    type Channel = StreamChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<TcpListener> {
        let (fd, local) = socket::tcp_listen(endpoint.address())
            .map_err(|e| Error::io(format!("{endpoint}: bind"), e))?;
        let host = endpoint.address().rsplit_once(':').map_or("", |(h, _)| h);
        let port = local.rsplit_once(':').map_or("0", |(_, p)| p);
        Ok(TcpListener {
            fd,
            endpoint: endpoint.with_address(format!("{host}:{port}")),
            schema: schema.clone(),
        })
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<StreamChannel> {
        let fd = socket::tcp_connect(endpoint.address(), endpoint.options().connect_timeout)
            .map_err(|e| Error::io(format!("{endpoint}: connect"), e))?;
        establish(fd, endpoint, schema)
    }
}

impl ipc_core::Listener for TcpListener {
    type Channel = StreamChannel;

    fn accept_until(&mut self, deadline: Deadline) -> Result<StreamChannel> {
        let fd = stream::accept_next(self.fd.as_fd(), &self.endpoint, deadline)?;
        socket::set_nodelay(fd.as_fd())
            .map_err(|e| Error::io(format!("{}: setsockopt(TCP_NODELAY)", self.endpoint), e))?;
        establish(fd, &self.endpoint, &self.schema)
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

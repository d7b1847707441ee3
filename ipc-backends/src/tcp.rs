//! `tcp://` — TCP, for peers on other machines. `TCP_NODELAY` is set on
//! every connection, so small messages go out at once.
//!
//! The uid a TCP peer announces cannot be verified, so `allow_uid` does not
//! apply (the endpoint parser refuses it); restrict who can reach the port
//! with the network instead.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Transport};

use crate::conn::accept::{Acceptor, Closer, Incoming, Next, Stop, next_socket};
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

/// The listening socket, owned by the accepting thread.
struct Listening {
    fd: OwnedFd,
    stop: Stop,
    ctx: Arc<(Endpoint, Schema)>,
}

impl Incoming for Listening {
    type Channel = StreamChannel;

    fn next(&mut self) -> Result<Next<StreamChannel>> {
        let raw = next_socket(self.fd.as_fd(), &self.stop, &self.ctx.0)?;
        let ctx = self.ctx.clone();
        Ok(Next::of(raw, |fd| {
            Box::new(move || {
                let endpoint = &ctx.0;
                socket::set_nodelay(fd.as_fd())
                    .map_err(|e| Error::io(format!("{endpoint}: setsockopt(TCP_NODELAY)"), e))?;
                establish(fd, endpoint, &ctx.1)
            })
        }))
    }

    fn closer(&self) -> Closer {
        self.stop.closer()
    }
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
        let listening = Listening {
            fd,
            stop: Stop::new(endpoint)?,
            ctx: Arc::new((resolved.clone(), schema.clone())),
        };
        Acceptor::start(resolved, listening)
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

//! `nats://HOST:PORT/NAME` — channels through a NATS server, so peers on
//! different machines (or a cluster) keep the contract of every other
//! transport (`docs/nats.md`).
//!
//! Subjects of a name `NAME`:
//!
//! - `ipcx.NAME.connect` — connection requests. Every listener of the name
//!   subscribes in the queue group `ipcx.NAME`, so the server gives each
//!   request to one of them (connections spread over the servers of one
//!   name; several listeners on a name are not `AddrInUse`).
//! - `ipcx.NAME.c.ID.up` (client to server) and `ipcx.NAME.c.ID.down`
//!   (server to client) — one connection, `ID` a fresh NUID chosen by the
//!   client. Frames: `wire.rs`.
//!
//! A client subscribes to its `down` subject, then sends `ID` as a NATS
//! request on the connect subject (no responders: [`Error::NoListener`]);
//! the listener that takes it subscribes to `up` and replies. Then the ipcx
//! handshake runs over the two subjects (`conn::handshake::drive`), and
//! messages follow with sequence numbers (a gap is [`Error::Protocol`]) and
//! credit (a send waits for the receiver's grant: backpressure). Each side
//! sends a heartbeat every `heartbeat=` (1 s by default) and takes the peer
//! for gone after three silent intervals.
//!
//! Both the blocking and the async API run on one tokio runtime ipcx
//! starts, lazily, for the process ([`runtime`]).

mod conn;
pub mod jetstream;
mod options;
pub mod runtime;
pub(crate) mod wire;

use std::sync::mpsc;
use std::time::Duration;

use async_nats::{Client, Subject};
use bytes::Bytes;
use ipc_core::endpoint::DEFAULT_MAX_MESSAGE_SIZE;
use ipc_core::handshake::{Hello, MAX_HELLO_LEN};
use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Transport};

pub use conn::{NatsChannel, NatsReceiver, NatsSender, death_bound};
pub use options::check_server;
pub use wire::DATA_HEADER;

use crate::conn::accept::{Acceptor, Closer, Incoming, Next};
use crate::conn::{dial::dial, fail, handshake};

/// The `nats://` transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nats;

/// A `nats://` listener.
pub type NatsListener = Acceptor<NatsChannel>;

use options::parts;

fn connect_subject(name: &str) -> String {
    format!("ipcx.{name}.connect")
}

fn conn_subject(name: &str, id: &str, dir: &str) -> Subject {
    Subject::from(format!("ipcx.{name}.c.{id}.{dir}"))
}

/// Connects a NATS client to the endpoint's server and works out the
/// largest message: `max_message_size`, which must fit the server's
/// `max_payload` with the frame header.
fn client(endpoint: &Endpoint) -> Result<(Client, usize)> {
    let client = options::connect(endpoint)?;
    let max_payload = client.server_info().max_payload;
    let limit = max_payload.saturating_sub(wire::DATA_HEADER);
    let wanted = endpoint.options().max_message_size;
    let max = if wanted <= limit {
        wanted
    } else if wanted == DEFAULT_MAX_MESSAGE_SIZE {
        // The default gives way to the server's limit; an explicit value
        // does not.
        limit
    } else {
        return Err(Error::Limit {
            endpoint: endpoint.to_string(),
            option: "max_message_size",
            value: wanted as u64,
            limit: limit as u64,
            source_of_limit: format!(
                "the NATS server's max_payload of {max_payload} bytes (its INFO), less the {}-byte frame header",
                wire::DATA_HEADER
            ),
            fix: format!(
                "use max_message_size={limit} or less, or raise max_payload in the server's configuration"
            ),
        });
    };
    Ok((client, max))
}

/// Runs the handshake on a connection's shared state and assembles it.
fn establish(
    shared: &std::sync::Arc<conn::Shared>,
    endpoint: &Endpoint,
    schema: &Schema,
    max: usize,
    deadline: Deadline,
) -> Result<NatsChannel> {
    let (mut tx, rx) = conn::halves(shared);
    conn::set_max(&mut tx, MAX_HELLO_LEN);
    let local = Hello::new(
        schema,
        crate::sys::process::pid(),
        crate::sys::process::uid(),
        max,
    );
    let mut wire = conn::HandshakeWire(shared);
    let peer = handshake::drive(&mut wire, endpoint, &local, deadline, |_| Ok(()))?;
    conn::settle(shared, deadline)
        .map_err(|e| fail::in_step(endpoint, "delivering the handshake's verdict", e))?;
    Ok(conn::channel(tx, rx, peer))
}

impl Transport for Nats {
    type Listener = NatsListener;
    type Channel = NatsChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<NatsListener> {
        // No server is not "no listener" for a listener.
        let (client, max) = client(endpoint).map_err(|e| match e {
            Error::NoListener { reason, .. } => Error::io(
                format!("{endpoint}: listen"),
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, reason),
            ),
            e => e,
        })?;
        let (_, name) = parts(endpoint);
        let subject = connect_subject(name);
        let group = format!("ipcx.{name}");
        let c = client.clone();
        // Once the server has the subscription (a round trip), a client
        // told that the listener is up finds it.
        let sub = runtime::run(async move {
            let sub = c.queue_subscribe(subject, group).await?;
            if !conn::sync(&c).await {
                return Err("the NATS server did not confirm the subscription".into());
            }
            Ok::<_, async_nats::Error>(sub)
        })?
        .map_err(|e| Error::io(format!("{endpoint}: subscribing"), std::io::Error::other(e)))?;
        let (tx, rx) = mpsc::channel();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let feed = tx.clone();
        runtime::handle()?.spawn(async move {
            use futures_core::Stream;
            let mut sub = sub;
            loop {
                let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut sub).poll_next(cx));
                let msg = tokio::select! {
                    m = next => m,
                    _ = stopped.changed() => None,
                };
                let Some(msg) = msg else {
                    let _ = feed.send(Req::Closed);
                    return;
                };
                if feed.send(Req::Conn(msg)).is_err() {
                    return;
                }
            }
        });
        let incoming = Requests {
            rx,
            _tx: tx,
            stop: std::sync::Arc::new(stop),
            client,
            endpoint: endpoint.clone(),
            schema: schema.clone(),
            max,
        };
        Acceptor::start(endpoint.clone(), incoming)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<NatsChannel> {
        dial(endpoint, || connect_once(endpoint, schema))
    }
}

fn connect_once(endpoint: &Endpoint, schema: &Schema) -> Result<NatsChannel> {
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    let (client, max) = client(endpoint)?;
    let (_, name) = parts(endpoint);
    let id = nuid::next().to_string();
    let (up, down) = (
        conn_subject(name, &id, "up"),
        conn_subject(name, &id, "down"),
    );
    let request = connect_subject(name);
    let timeout = deadline.remaining().unwrap_or(Duration::MAX);
    let c = client.clone();
    let req_id = Bytes::from(wire::connect_request(&id));
    // A subscriber is dropped on the runtime (its drop needs one).
    let reply = runtime::run(async move {
        let sub = c
            .subscribe(down)
            .await
            .map_err(|e| Err(RequestFailed::Subscribe(e.to_string())))?;
        match tokio::time::timeout(timeout, c.request(request, req_id)).await {
            Ok(Ok(m)) if m.payload == wire::ACCEPTED => Ok(sub),
            Ok(Ok(m)) => Err(Err(RequestFailed::Refused(
                String::from_utf8_lossy(&m.payload).into_owned(),
            ))),
            Ok(Err(e)) => Err(Ok(Some(e))),
            Err(_) => Err(Ok(None)),
        }
    })?;
    let sub = match reply {
        Ok(sub) => sub,
        Err(Err(RequestFailed::Subscribe(e))) => {
            return Err(Error::io(
                format!("{endpoint}: subscribing"),
                std::io::Error::other(e),
            ));
        }
        Err(Err(RequestFailed::Refused(why))) => {
            return Err(Error::protocol(format!(
                "{endpoint}: the listener refused the connection: {why}"
            )));
        }
        Err(Ok(None)) => return Err(fail::connect_timeout(endpoint, "the connect request")),
        Err(Ok(Some(e))) => {
            return Err(match e.kind() {
                async_nats::RequestErrorKind::NoResponders => fail::no_listener(
                    endpoint,
                    format!("the NATS server has no listener on ipcx.{name}.connect"),
                ),
                async_nats::RequestErrorKind::TimedOut => {
                    fail::connect_timeout(endpoint, "the connect request")
                }
                async_nats::RequestErrorKind::Other => Error::io(
                    format!("{endpoint}: connect request"),
                    std::io::Error::other(e),
                ),
            });
        }
    };
    let shared = conn::start(client, up, sub, endpoint.heartbeat(), max)?;
    establish(&shared, endpoint, schema, max, deadline)
}

/// Why a connect request failed before any NATS error.
enum RequestFailed {
    Subscribe(String),
    /// The listener's reply: why it refused.
    Refused(String),
}

enum Req {
    Conn(async_nats::Message),
    Closed,
}

/// The listener's side: connect requests from the queue-group subscription.
struct Requests {
    rx: mpsc::Receiver<Req>,
    /// Keeps `rx` open for the closer's `Closed`.
    _tx: mpsc::Sender<Req>,
    stop: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    client: Client,
    endpoint: Endpoint,
    schema: Schema,
    max: usize,
}

impl Drop for Requests {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl Incoming for Requests {
    type Channel = NatsChannel;

    fn next(&mut self) -> Result<Next<NatsChannel>> {
        let msg = match self.rx.recv() {
            Ok(Req::Conn(m)) => m,
            Ok(Req::Closed) | Err(_) => return Ok(Next::Closed),
        };
        let Some(reply) = msg.reply.clone() else {
            return Ok(Next::Refused(Error::protocol(
                "nats: a connect request without a reply subject",
            )));
        };
        let id = match wire::decode_connect(&msg.payload) {
            Ok(id) => id.to_string(),
            Err(why) => {
                // The client learns why at once, rather than waiting out
                // its connect timeout; a failed reply changes nothing here.
                let c = self.client.clone();
                let text = Bytes::from(why.clone());
                let _ = runtime::run(async move { c.publish(reply, text).await });
                return Ok(Next::Refused(Error::protocol(format!(
                    "nats: refused a connect request: {why}"
                ))));
            }
        };
        let (client, endpoint, schema, max) = (
            self.client.clone(),
            self.endpoint.clone(),
            self.schema.clone(),
            self.max,
        );
        Ok(Next::Request(Box::new(move || {
            let deadline = Deadline::after(endpoint.options().connect_timeout);
            let (_, name) = parts(&endpoint);
            let (up, down) = (
                conn_subject(name, &id, "up"),
                conn_subject(name, &id, "down"),
            );
            let c = client.clone();
            let sub = runtime::run(async move {
                let sub = c.subscribe(up).await.map_err(|e| e.to_string())?;
                c.publish(reply, Bytes::from_static(wire::ACCEPTED))
                    .await
                    .map_err(|e| e.to_string())?;
                Ok::<_, String>(sub)
            })?
            .map_err(|e| Error::io(format!("{endpoint}: accepting"), std::io::Error::other(e)))?;
            let shared = conn::start(client, down, sub, endpoint.heartbeat(), max)?;
            establish(&shared, &endpoint, &schema, max, deadline)
        })))
    }

    fn closer(&self) -> Closer {
        let stop = std::sync::Arc::clone(&self.stop);
        let tx = self._tx.clone();
        let tx = std::sync::Mutex::new(tx);
        Box::new(move || {
            let _ = stop.send(true);
            let _ = tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .send(Req::Closed);
        })
    }
}

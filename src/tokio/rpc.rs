//! Request–reply under tokio: an async [`Client`] with any number of calls
//! in flight on one connection, and a [`Server`] that runs each request as
//! a task of its own.
//!
//! The wire is the blocking [`crate::rpc`]'s, so blocking and async
//! clients and servers mix.
//!
//! ```no_run
//! use ipcx::IpcMessage;
//! use ipcx::tokio::rpc::{Client, Server};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize)]
//! struct Add { a: i64, b: i64 }
//!
//! #[derive(IpcMessage, Serialize, Deserialize)]
//! struct Sum(i64);
//!
//! # async fn f() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "unix:/tmp/adder.sock".parse()?;
//! let server = Server::serve(&endpoint, |req: Add| async move {
//!     req.a.checked_add(req.b).map(Sum).ok_or("overflow")
//! })?;
//! let client = Client::<Add, Sum>::connect(&endpoint).await?;
//! assert_eq!(client.call(&Add { a: 2, b: 3 }).await?.0, 5);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::tokio::sync::{Semaphore, mpsc, oneshot, watch};
use ::tokio::task::JoinSet;
use ipc_core::{Deadline, Endpoint, Error, IpcMessage, PeerInfo, Result};

pub use crate::rpc::ServerOptions;
use crate::rpc::{
    REQUEST_HEADER, client_schema, decode_reply, decode_request, encode_reply, encode_request,
    lock, panic_message, reply_id, server_schema, too_large,
};

use super::{Channel, Listener, Sender};

/// The calls waiting for replies, and why the connection ended.
#[derive(Default)]
struct Pending {
    calls: HashMap<u64, oneshot::Sender<Vec<u8>>>,
    ended: Option<Ended>,
}

#[derive(Clone)]
enum Ended {
    Disconnected,
    Broken(String),
}

impl Ended {
    fn error(&self) -> Error {
        match self {
            Ended::Disconnected => Error::Disconnected,
            Ended::Broken(why) => Error::protocol(why.clone()),
        }
    }
}

struct ClientInner {
    sender: ::tokio::sync::Mutex<(Sender, Vec<u8>)>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
    peer: PeerInfo,
}

/// An async request–reply client. Cloning it is cheap and the clones share
/// the connection: many tasks may call at once, each call waits only for
/// its own reply (matched by id).
pub struct Client<Req, Resp> {
    inner: Arc<ClientInner>,
    types: PhantomData<fn(&Req) -> Resp>,
}

impl<Req, Resp> Clone for Client<Req, Resp> {
    fn clone(&self) -> Self {
        Client {
            inner: Arc::clone(&self.inner),
            types: PhantomData,
        }
    }
}

impl<Req, Resp> std::fmt::Debug for Client<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.inner.peer)
            .finish()
    }
}

/// Removes a call that ends before its reply (cancelled, timed out).
struct Registered<'a> {
    id: u64,
    pending: &'a Mutex<Pending>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        lock(self.pending).calls.remove(&self.id);
    }
}

impl<Req: IpcMessage, Resp: IpcMessage> Client<Req, Resp> {
    /// Connects to a server of `Req`/`Resp` at `endpoint`.
    ///
    /// # Errors
    /// As [`super::connect`]; [`Error::SchemaMismatch`] when the server
    /// serves other types.
    pub async fn connect(endpoint: &Endpoint) -> Result<Self> {
        let channel = super::connect_with(endpoint, &client_schema::<Req, Resp>()).await?;
        Ok(Self::from_channel(channel))
    }

    /// A client over a connection whose handshake announced
    /// [`client_schema`]. Spawns the task that reads replies.
    pub fn from_channel(channel: Channel) -> Self {
        let peer = channel.peer().clone();
        let (sender, mut receiver) = channel.split();
        let pending = Arc::new(Mutex::new(Pending::default()));
        let replies = Arc::clone(&pending);
        ::tokio::spawn(async move {
            let mut buf = Vec::new();
            let end = loop {
                if let Err(e) = receiver.recv_into(&mut buf).await {
                    break e;
                }
                let id = match reply_id(&buf) {
                    Ok(id) => id,
                    Err(e) => break e,
                };
                // An unknown id is a call that gave up: nobody to tell.
                if let Some(call) = lock(&replies).calls.remove(&id) {
                    let _ = call.send(buf[8..].to_vec());
                }
            };
            let mut p = lock(&replies);
            p.ended = Some(match end {
                Error::Disconnected => Ended::Disconnected,
                other => Ended::Broken(other.to_string()),
            });
            // Dropping the waiting calls' senders wakes them.
            p.calls.clear();
        });
        Client {
            inner: Arc::new(ClientInner {
                sender: ::tokio::sync::Mutex::new((sender, Vec::new())),
                pending,
                next_id: AtomicU64::new(1),
                peer,
            }),
            types: PhantomData,
        }
    }

    /// Calls the server and waits for its reply.
    ///
    /// Cancel safety: dropping the future may leave the request sent; its
    /// reply is then dropped when it arrives.
    ///
    /// # Errors
    /// [`Error::Remote`] for a handler error or panic, [`Error::Decode`],
    /// [`Error::Disconnected`] when the server went away.
    pub async fn call(&self, req: &Req) -> Result<Resp> {
        self.call_until(req, Deadline::Never).await
    }

    /// As [`call`](Self::call), giving up after `timeout` (the server
    /// drops the request if it has not started it by then).
    ///
    /// # Errors
    /// As [`call`](Self::call); [`Error::Timeout`].
    pub async fn call_timeout(&self, req: &Req, timeout: Duration) -> Result<Resp> {
        let deadline = Deadline::after(timeout);
        match ::tokio::time::timeout(timeout, self.call_until(req, deadline)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout),
        }
    }

    async fn call_until(&self, req: &Req, deadline: Deadline) -> Result<Resp> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut p = lock(&self.inner.pending);
            if let Some(end) = &p.ended {
                return Err(end.error());
            }
            p.calls.insert(id, tx);
        }
        let _registered = Registered {
            id,
            pending: &self.inner.pending,
        };
        {
            let mut out = self.inner.sender.lock().await;
            let (sender, buf) = &mut *out;
            encode_request(buf, id, deadline, req)?;
            sender.send(buf).await?;
        }
        match rx.await {
            Ok(reply) => decode_reply(&reply),
            Err(_) => Err(lock(&self.inner.pending)
                .ended
                .as_ref()
                .map_or(Error::Disconnected, Ended::error)),
        }
    }

    /// What the handshake learned about the server.
    pub fn peer(&self) -> &PeerInfo {
        &self.inner.peer
    }
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    expired: AtomicU64,
}

/// A running async request–reply server; made by [`Server::serve`].
///
/// Each request runs as a task of its own (at most
/// [`ServerOptions::max_in_flight`] at once, and
/// [`ServerOptions::max_in_flight_per_connection`] per connection, beyond
/// which that connection is not read), and each reply goes back as soon
/// as its handler finishes. A handler error or panic goes back to its
/// caller as [`Error::Remote`]; a client's failure ends only its
/// connection.
pub struct Server {
    endpoint: Endpoint,
    stop: watch::Sender<bool>,
    task: Option<::tokio::task::JoinHandle<()>>,
    counters: Arc<Counters>,
    refused: Arc<AtomicU64>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.endpoint.to_string())
            .finish()
    }
}

impl Server {
    /// Listens on `endpoint` and serves `Req`/`Resp` with `handler`, with
    /// the default [`ServerOptions`].
    ///
    /// # Errors
    /// As [`super::listen`].
    pub fn serve<Req, Resp, E, F, Fut>(endpoint: &Endpoint, handler: F) -> Result<Server>
    where
        Req: IpcMessage + Send + 'static,
        Resp: IpcMessage + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Resp, E>> + Send + 'static,
    {
        let listener = super::listen_with(endpoint, &server_schema::<Req, Resp>())?;
        Ok(Server::with_options(
            listener,
            ServerOptions::default(),
            handler,
        ))
    }

    /// Serves on `listener`, which must announce [`server_schema`].
    pub fn with_options<Req, Resp, E, F, Fut>(
        mut listener: Listener,
        options: ServerOptions,
        handler: F,
    ) -> Server
    where
        Req: IpcMessage + Send + 'static,
        Resp: IpcMessage + Send + 'static,
        E: Display + Send + 'static,
        F: Fn(Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<Resp, E>> + Send + 'static,
    {
        let endpoint = listener.endpoint().clone();
        let (stop, stopped) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let refused = Arc::new(AtomicU64::new(0));
        let (c, r) = (Arc::clone(&counters), Arc::clone(&refused));
        let handler = Arc::new(handler);
        let all = Arc::new(Semaphore::new(options.max_in_flight.max(1)));
        let per_connection = options.max_in_flight_per_connection.max(1);
        let task = ::tokio::spawn(async move {
            let mut connections = JoinSet::new();
            let mut stopping = stopped.clone();
            loop {
                let accepted = ::tokio::select! {
                    _ = stopping.changed() => break,
                    accepted = listener.accept() => accepted,
                };
                r.store(listener.refused(), Ordering::Relaxed);
                match accepted {
                    Ok(conn) => {
                        c.accepted.fetch_add(1, Ordering::Relaxed);
                        connections.spawn(serve_connection::<Req, Resp, E, F, Fut>(
                            conn,
                            Arc::clone(&handler),
                            Arc::clone(&all),
                            per_connection,
                            Arc::clone(&c),
                            stopped.clone(),
                        ));
                    }
                    Err(e) => {
                        tracing::error!(endpoint = %listener.endpoint(), error = %e, "rpc listener failed");
                        break;
                    }
                }
                // Reap finished connections as we go.
                while connections.try_join_next().is_some() {}
            }
            drop(listener);
            while connections.join_next().await.is_some() {}
        });
        Server {
            endpoint,
            stop,
            task: Some(task),
            counters,
            refused,
        }
    }

    /// The endpoint served.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.counters.accepted.load(Ordering::Relaxed)
    }

    /// Connection attempts refused before they were established.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Requests dropped because their caller had given up before a
    /// handler started them.
    pub fn expired(&self) -> u64 {
        self.counters.expired.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection (their clients get
    /// [`Error::Disconnected`]) once their running requests have
    /// answered, and waits for all of it.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve_connection<Req, Resp, E, F, Fut>(
    conn: Channel,
    handler: Arc<F>,
    all: Arc<Semaphore>,
    per_connection: usize,
    counters: Arc<Counters>,
    mut stopped: watch::Receiver<bool>,
) where
    Req: IpcMessage + Send + 'static,
    Resp: IpcMessage + Send + 'static,
    E: Display + Send + 'static,
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<Resp, E>> + Send + 'static,
{
    let (mut tx, mut rx) = conn.split();
    let (replies, mut outgoing) = mpsc::channel::<Vec<u8>>(per_connection);
    let writer = ::tokio::spawn(async move {
        while let Some(reply) = outgoing.recv().await {
            let sent = match tx.send(&reply).await {
                Err(Error::MessageTooLarge { size, max }) => {
                    tx.send(&too_large(&reply, size, max)).await
                }
                other => other,
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let mine = Arc::new(Semaphore::new(per_connection));
    let mut requests = JoinSet::new();
    loop {
        // Room for one more request of this connection, and overall.
        let Ok(slot) = Arc::clone(&mine).acquire_owned().await else {
            break;
        };
        let mut request = Vec::new();
        let got = ::tokio::select! {
            _ = stopped.changed() => break,
            got = rx.recv_into(&mut request) => got,
        };
        // The client left or broke the framing; a request without the
        // envelope has no id to answer to.
        if got.is_err() || request.len() < REQUEST_HEADER {
            break;
        }
        let received = Instant::now();
        let Ok(permit) = Arc::clone(&all).acquire_owned().await else {
            break;
        };
        let (h, out, c) = (Arc::clone(&handler), replies.clone(), Arc::clone(&counters));
        requests.spawn(async move {
            let _held = (slot, permit);
            let budget = u32::from_le_bytes(request[8..12].try_into().unwrap_or_default());
            if budget != 0 && received.elapsed() > Duration::from_millis(budget.into()) {
                c.expired.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let reply = match decode_request::<Req>(&request) {
                Err(reply) => reply,
                Ok(req) => {
                    // Its own task, so a panic is caught and answered.
                    let outcome =
                        ::tokio::spawn(h(req))
                            .await
                            .map_err(|e| match e.try_into_panic() {
                                Ok(panic) => panic_message(panic),
                                Err(e) => e.to_string(),
                            });
                    encode_reply(&request, outcome)
                }
            };
            let _ = out.send(reply).await;
        });
        while requests.try_join_next().is_some() {}
    }
    // Answer what is running, then close: the writer ends with the last
    // reply sender.
    while requests.join_next().await.is_some() {}
    drop(replies);
    let _ = writer.await;
}

//! The answering side: [`Server`] and [`ServerOptions`].

use std::fmt::Display;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_core::{
    Channel, Deadline, Endpoint, Error, IpcMessage, Listener, Receiver, Result, Sender,
};

use super::pool::{Job, Pool};
use super::{
    POLL, REQUEST_HEADER, STATUS_BAD_REQUEST, STATUS_HANDLER_ERROR, STATUS_OK, lock, server_schema,
};

/// How many requests a [`Server`] handles at once.
///
/// ```
/// use ipcx::rpc::ServerOptions;
/// let o = ServerOptions { max_in_flight: 128, ..ServerOptions::default() };
/// assert_eq!(o.max_in_flight_per_connection, 16);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerOptions {
    /// Requests handled at once over all connections: the most handler
    /// threads the server runs. More wait in a queue. Default 64.
    pub max_in_flight: usize,
    /// Requests of one connection handled at once; beyond it the server
    /// stops reading that connection (its client's sends then block).
    /// Default 16.
    pub max_in_flight_per_connection: usize,
}

impl Default for ServerOptions {
    fn default() -> ServerOptions {
        ServerOptions {
            max_in_flight: 64,
            max_in_flight_per_connection: 16,
        }
    }
}

struct ServerState {
    stop: AtomicBool,
    refused: AtomicU64,
    accepted: AtomicU64,
    expired: AtomicU64,
    connections: Mutex<Vec<JoinHandle<()>>>,
    pool: Arc<Pool>,
}

/// A running request–reply server; made by [`Server::serve`].
///
/// Requests are handled concurrently — those of one connection too (up to
/// [`ServerOptions`]) — and each reply goes back as soon as it is ready,
/// matched by its correlation id. Dropping it shuts it down, as
/// [`shutdown`](Self::shutdown) does.
pub struct Server {
    state: Arc<ServerState>,
    endpoint: Endpoint,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Server {
    /// Listens on `endpoint` and answers every client's requests with
    /// `handler`, many at once ([`ServerOptions::default`]), until
    /// [`shutdown`](Self::shutdown).
    ///
    /// The handler's error (anything [`Display`]) goes back to the caller
    /// as [`Error::Remote`] with its text.
    ///
    /// # Errors
    /// As [`crate::listen`] (the endpoint is taken, permissions, limits).
    pub fn serve<Req, Resp, E, F>(endpoint: &Endpoint, handler: F) -> Result<Server>
    where
        Req: IpcMessage + 'static,
        Resp: IpcMessage + 'static,
        E: Display,
        F: Fn(Req) -> std::result::Result<Resp, E> + Send + Sync + 'static,
    {
        let listener = crate::listen_with(endpoint, &server_schema::<Req, Resp>())?;
        Server::with_options(listener, ServerOptions::default(), handler)
    }

    /// As [`serve`](Self::serve), on a listener already made, of any
    /// transport; its handshake should announce
    /// [`server_schema::<Req, Resp>()`](server_schema) (as `serve` does).
    ///
    /// # Errors
    /// [`Error::Io`] when the accept thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipcx::backends::unix::Unix;
    /// use ipcx::rpc::{Server, server_schema};
    /// use ipcx::{IpcMessage, Transport};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(IpcMessage, Serialize, Deserialize)]
    /// struct Add { a: i64, b: i64 }
    ///
    /// #[derive(IpcMessage, Serialize, Deserialize)]
    /// struct Sum(i64);
    ///
    /// # fn main() -> ipcx::Result<()> {
    /// let endpoint = "unix:/tmp/adder.sock".parse()?;
    /// let listener = Unix::listen(&endpoint, &server_schema::<Add, Sum>())?;
    /// let server = Server::from_listener(listener, |req: Add| {
    ///     req.a.checked_add(req.b).map(Sum).ok_or("overflow")
    /// })?;
    /// # server.shutdown();
    /// # Ok(()) }
    /// ```
    pub fn from_listener<L, Req, Resp, E, F>(listener: L, handler: F) -> Result<Server>
    where
        L: Listener + 'static,
        L::Channel: 'static,
        Req: IpcMessage + 'static,
        Resp: IpcMessage + 'static,
        E: Display,
        F: Fn(Req) -> std::result::Result<Resp, E> + Send + Sync + 'static,
    {
        Server::with_options(listener, ServerOptions::default(), handler)
    }

    /// As [`from_listener`](Self::from_listener), with `options` bounding
    /// how many requests are handled at once.
    ///
    /// # Errors
    /// [`Error::Io`] when the accept thread cannot be started.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipcx::rpc::{Server, ServerOptions, server_schema};
    /// use ipcx::IpcMessage;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(IpcMessage, Serialize, Deserialize)]
    /// struct Ping;
    ///
    /// # fn main() -> ipcx::Result<()> {
    /// let endpoint = "unix:/tmp/pinger.sock".parse()?;
    /// let listener = ipcx::listen_with(&endpoint, &server_schema::<Ping, Ping>())?;
    /// let options = ServerOptions { max_in_flight: 8, max_in_flight_per_connection: 2 };
    /// let server = Server::with_options(listener, options, |p: Ping| Ok::<_, String>(p))?;
    /// # server.shutdown();
    /// # Ok(()) }
    /// ```
    pub fn with_options<L, Req, Resp, E, F>(
        mut listener: L,
        options: ServerOptions,
        handler: F,
    ) -> Result<Server>
    where
        L: Listener + 'static,
        L::Channel: 'static,
        Req: IpcMessage + 'static,
        Resp: IpcMessage + 'static,
        E: Display,
        F: Fn(Req) -> std::result::Result<Resp, E> + Send + Sync + 'static,
    {
        let endpoint = listener.endpoint().clone();
        let state = Arc::new(ServerState {
            stop: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            connections: Mutex::new(Vec::new()),
            pool: Arc::new(Pool::new(options.max_in_flight)),
        });
        let handler = Arc::new(handler);
        let per_connection = options.max_in_flight_per_connection.max(1);
        let st = Arc::clone(&state);
        let acceptor = std::thread::Builder::new()
            .name("ipcx-rpc-accept".into())
            .spawn(move || {
                while !st.stop.load(Ordering::Acquire) {
                    match listener.accept_until(Deadline::after(POLL)) {
                        Ok(channel) => {
                            st.accepted.fetch_add(1, Ordering::Relaxed);
                            let h = Arc::clone(&handler);
                            let s = Arc::clone(&st);
                            let spawned = std::thread::Builder::new()
                                .name("ipcx-rpc-conn".into())
                                .spawn(move || {
                                    serve_connection::<_, Req, Resp, E, F>(
                                        channel,
                                        &h,
                                        &s,
                                        per_connection,
                                    )
                                });
                            let mut conns = lock(&st.connections);
                            conns.retain(|c| !c.is_finished());
                            // A failed spawn drops the channel: that client
                            // sees Disconnected.
                            if let Ok(handle) = spawned {
                                conns.push(handle);
                            }
                        }
                        Err(Error::Timeout | Error::WouldBlock) => {}
                        Err(e) => {
                            // Only the listener's own failures reach here:
                            // it accepts no more; served clients go on.
                            tracing::error!(%e, "rpc server: the listener failed");
                            break;
                        }
                    }
                    st.refused.store(listener.refused(), Ordering::Relaxed);
                }
            })
            .map_err(|e| Error::io(format!("{endpoint}: starting the accept thread"), e))?;
        Ok(Server {
            state,
            endpoint,
            acceptor: Some(acceptor),
        })
    }

    /// The endpoint served (a TCP port 0 is resolved): give it to clients.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// How many clients were accepted so far.
    pub fn accepted(&self) -> u64 {
        self.state.accepted.load(Ordering::Relaxed)
    }

    /// How many clients were refused at accept (failed handshake: other
    /// types, protocol version, uid not allowed, or a broken hello).
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::Relaxed)
    }

    /// How many requests were dropped unhandled because their caller's
    /// deadline (`call_timeout`) had passed before a handler was free.
    pub fn expired(&self) -> u64 {
        self.state.expired.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection (after the requests being
    /// handled are answered) and waits for the server's threads.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.state.stop.store(true, Ordering::Release);
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let conns = std::mem::take(&mut *lock(&self.state.connections));
        for c in conns {
            let _ = c.join();
        }
        self.state.pool.stop_and_join();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// One connection's sending half and its requests in flight.
struct Conn<S> {
    tx: Mutex<S>,
    in_flight: Mutex<usize>,
    done: Condvar,
    /// Set once a reply could not be sent: the client is gone.
    gone: AtomicBool,
}

impl<S> Conn<S> {
    /// Waits until fewer than `max` requests are in flight, then counts one.
    fn enter(&self, max: usize) {
        let mut n = lock(&self.in_flight);
        while *n >= max {
            n = self.done.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    fn leave(&self) {
        *lock(&self.in_flight) -= 1;
        self.done.notify_all();
    }

    /// Waits until every request in flight is answered.
    fn drain(&self) {
        let mut n = lock(&self.in_flight);
        while *n > 0 {
            n = self.done.wait(n).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Reads one connection's requests and hands each to the pool; replies go
/// back as their handlers finish. Ends when the client leaves or the server
/// stops, once the requests in flight are answered.
fn serve_connection<C, Req, Resp, E, F>(
    channel: C,
    handler: &Arc<F>,
    state: &Arc<ServerState>,
    per_connection: usize,
) where
    C: Channel,
    C::Sender: 'static,
    Req: IpcMessage + 'static,
    Resp: IpcMessage + 'static,
    E: Display,
    F: Fn(Req) -> std::result::Result<Resp, E> + Send + Sync + 'static,
{
    let (tx, mut rx) = channel.split();
    let conn = Arc::new(Conn {
        tx: Mutex::new(tx),
        in_flight: Mutex::new(0),
        done: Condvar::new(),
        gone: AtomicBool::new(false),
    });
    let mut request = Vec::new();
    while !state.stop.load(Ordering::Acquire) && !conn.gone.load(Ordering::Acquire) {
        match rx.recv_until(&mut request, Deadline::after(POLL)) {
            Ok(()) => {}
            Err(Error::Timeout | Error::WouldBlock) => continue,
            // The client left (or broke the framing): this connection ends.
            Err(_) => break,
        }
        if request.len() < REQUEST_HEADER {
            // No id to answer to: the client does not speak the envelope.
            break;
        }
        let received = std::time::Instant::now();
        conn.enter(per_connection);
        let (conn2, h, st) = (Arc::clone(&conn), Arc::clone(handler), Arc::clone(state));
        let req = std::mem::take(&mut request);
        let job: Job = Box::new(move || {
            let budget = u32::from_le_bytes(req[8..12].try_into().unwrap_or_default());
            if budget != 0 && received.elapsed() > Duration::from_millis(budget.into()) {
                // Nobody waits for this reply any more.
                st.expired.fetch_add(1, Ordering::Relaxed);
            } else {
                let reply = answer::<Req, Resp, E, F>(&req, &*h);
                if send_reply(&mut *lock(&conn2.tx), reply).is_err() {
                    conn2.gone.store(true, Ordering::Release);
                }
            }
            conn2.leave();
        });
        if state.pool.submit(job).is_err() {
            // No handler thread at all: this connection cannot be served.
            conn.leave();
            break;
        }
    }
    conn.drain();
}

/// Sends a reply; one too large for the connection is replaced by a
/// HANDLER ERROR saying so.
fn send_reply<S: Sender>(tx: &mut S, reply: Vec<u8>) -> Result<()> {
    match tx.send(&reply) {
        Err(Error::MessageTooLarge { size, max }) => tx.send(&too_large(&reply, size, max)),
        other => other,
    }
}

/// The HANDLER ERROR that replaces a reply of `size` bytes over `max`.
pub(crate) fn too_large(reply: &[u8], size: usize, max: usize) -> Vec<u8> {
    failure(
        reply,
        STATUS_HANDLER_ERROR,
        &format!(
            "the reply of {size} bytes exceeds max_message_size {max}; raise max_message_size on both endpoints"
        ),
    )
}

/// The reply to one request: its id, a status and the payload.
fn answer<Req, Resp, E, F>(request: &[u8], handler: &F) -> Vec<u8>
where
    Req: IpcMessage,
    Resp: IpcMessage,
    E: Display,
    F: Fn(Req) -> std::result::Result<Resp, E>,
{
    match decode_request::<Req>(request) {
        Err(reply) => reply,
        Ok(req) => {
            let outcome = catch_unwind(AssertUnwindSafe(|| handler(req))).map_err(panic_message);
            encode_reply(request, outcome)
        }
    }
}

/// The request's value, or the BAD REQUEST reply when it does not decode.
pub(crate) fn decode_request<Req: IpcMessage>(request: &[u8]) -> std::result::Result<Req, Vec<u8>> {
    Req::decode(&request[REQUEST_HEADER..])
        .map_err(|e| failure(request, STATUS_BAD_REQUEST, &e.to_string()))
}

/// The reply to `request` (whose first 8 bytes are its id): the response,
/// the handler's error, or (`Err`) what a panicking handler said.
pub(crate) fn encode_reply<Resp: IpcMessage, E: Display>(
    request: &[u8],
    outcome: std::result::Result<std::result::Result<Resp, E>, String>,
) -> Vec<u8> {
    match outcome {
        Ok(Ok(resp)) => {
            let mut reply = Vec::with_capacity(64);
            reply.extend_from_slice(&request[..8]);
            reply.push(STATUS_OK);
            let encoded = match resp.wire_bytes() {
                Some(bytes) => {
                    reply.extend_from_slice(bytes);
                    Ok(())
                }
                None => resp.encode(&mut reply),
            };
            match encoded {
                Ok(()) => reply,
                Err(e) => failure(request, STATUS_HANDLER_ERROR, &e.to_string()),
            }
        }
        Ok(Err(e)) => failure(request, STATUS_HANDLER_ERROR, &e.to_string()),
        Err(what) => failure(
            request,
            STATUS_HANDLER_ERROR,
            &format!("the handler panicked: {what}"),
        ),
    }
}

/// A reply of `status` carrying `text`.
fn failure(request: &[u8], status: u8, text: &str) -> Vec<u8> {
    let mut reply = Vec::with_capacity(9 + text.len());
    reply.extend_from_slice(&request[..8]);
    reply.push(status);
    reply.extend_from_slice(text.as_bytes());
    reply
}

/// What a panic's payload says.
pub(crate) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".into())
}

//! Request–reply over any transport: a [`Client`] calls, a [`Server`]
//! answers many clients at once.
//!
//! ```no_run
//! use ipcx::IpcMessage;
//! use ipcx::rpc::{Client, Server};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize)]
//! struct Add { a: i64, b: i64 }
//!
//! #[derive(IpcMessage, Serialize, Deserialize)]
//! struct Sum(i64);
//!
//! # fn main() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "unix:/tmp/adder.sock".parse()?;
//! let server = Server::serve(&endpoint, |req: Add| {
//!     req.a.checked_add(req.b).map(Sum).ok_or("overflow")
//! })?;
//! // In another process (or thread):
//! let client = Client::<Add, Sum>::connect(&endpoint)?;
//! assert_eq!(client.call(&Add { a: 2, b: 3 })?.0, 5);
//! server.shutdown();
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - Every request carries a correlation id (wire layout in
//!   `docs/wire-format.md`, "Request–reply"), so a client may have any
//!   number of calls in flight, from several threads ([`Client`] is `Sync`)
//!   or from one ([`Client::start`]). A reply that arrives after its call
//!   timed out is dropped.
//! - The server reads each connection on a thread of its own and handles
//!   requests concurrently on a pool of handler threads — those of one
//!   connection too — bounded by [`ServerOptions`] (64 at once overall, 16
//!   per connection, by default); each reply goes back as soon as its
//!   handler returns, so a slow request holds up no other. A caller's
//!   deadline travels with its request: a request still waiting for a
//!   handler when its caller has given up is dropped ([`Server::expired`]).
//!   A handler error, a handler panic, or a request that does not decode
//!   is returned to that caller as [`Error::Remote`]; the connection and
//!   the server carry on.
//! - A client that disappears ends only its connection; a client that fails
//!   its handshake (other types, other protocol version) is refused and
//!   counted ([`Server::refused`]); neither stops the server.
//! - [`Server::shutdown`] stops accepting, closes every connection (their
//!   clients get [`Error::Disconnected`]) and waits for the threads.
//! - The handshake announces `rpc.request<Req>` / `rpc.reply<Resp>` type
//!   tags, distinct from the plain types, so a typed channel of the same
//!   types (which does not speak the envelope) is refused at connect.

use std::collections::HashMap;
use std::fmt::Display;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use ipc_core::message::Fnv64;
use ipc_core::{
    Channel, Deadline, Endpoint, Error, IpcMessage, Listener, PeerInfo, Receiver, Result, Schema,
    Sender, TypeTag,
};

use crate::AnySender;

/// Length of a request's envelope: the `u64` correlation id and the `u32`
/// milliseconds the caller still waits (0: no deadline).
pub const REQUEST_HEADER: usize = 12;
/// Length of a reply's envelope: the `u64` id and a status byte.
pub const REPLY_HEADER: usize = 9;
/// Reply status: the payload is the encoded response.
pub const STATUS_OK: u8 = 0;
/// Reply status: the handler failed; the payload is its UTF-8 message.
pub const STATUS_HANDLER_ERROR: u8 = 1;
/// Reply status: the server could not decode the request; the payload is
/// the UTF-8 reason.
pub const STATUS_BAD_REQUEST: u8 = 2;

/// How often blocked server threads look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);

fn envelope_tag(kind: &str, inner: TypeTag) -> TypeTag {
    TypeTag::new(
        format!("{kind}<{}>", inner.name),
        Fnv64::new()
            .str("ipcx.rpc.v2")
            .str(kind)
            .u64(inner.fingerprint)
            .finish(),
    )
}

/// The schema a client of `Req`/`Resp` announces (a server announces the
/// mirror image, [`server_schema`]).
pub fn client_schema<Req: IpcMessage, Resp: IpcMessage>() -> Schema {
    Schema::new(
        envelope_tag("rpc.request", Req::type_tag()),
        envelope_tag("rpc.reply", Resp::type_tag()),
    )
}

/// The schema a server of `Req`/`Resp` announces: the mirror image of
/// [`client_schema`]. A listener given to [`Server::from_listener`]
/// announces it.
pub fn server_schema<Req: IpcMessage, Resp: IpcMessage>() -> Schema {
    let client = client_schema::<Req, Resp>();
    Schema::new(client.recv, client.send)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ------------------------------------------------------------------ client

/// Replies waiting for their callers, and whether the connection is gone.
#[derive(Default)]
struct Pending {
    /// Calls in flight: `None` until the reply arrives.
    calls: HashMap<u64, Option<Vec<u8>>>,
    /// Set once the reply reader stopped; every waiting call fails with it.
    closed: Option<String>,
    disconnected: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    arrived: Condvar,
}

struct Outgoing<S> {
    /// `None` once the client is being dropped.
    sender: Option<S>,
    buf: Vec<u8>,
}

/// A request–reply client sending `Req` and receiving `Resp`, over any
/// transport (`S` is its channel's sending half, by default the run-time
/// choice [`AnySender`]).
///
/// Calls may be made from several threads at once (`&self`); each waits
/// only for its own reply.
pub struct Client<Req, Resp, S = AnySender> {
    out: Mutex<Outgoing<S>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    peer: PeerInfo,
    /// Signalled by the reply reader once it has dropped its receiving half.
    reader_done: Mutex<Option<mpsc::Receiver<()>>>,
    types: PhantomData<fn(&Req) -> Resp>,
}

impl<Req, Resp, S> Drop for Client<Req, Resp, S> {
    fn drop(&mut self) {
        // Closing the sending half makes the server close the connection;
        // the reader then sees the end and drops the receiving half, which
        // removes what only its owner can remove (a System V queue has no
        // other). Wait for that, boundedly: a process that exits right
        // after dropping its client would otherwise end the reader first.
        drop(lock(&self.out).sender.take());
        let done = self
            .reader_done
            .get_mut()
            .map_or_else(|poisoned| poisoned.into_inner().take(), Option::take);
        if let Some(done) = done {
            let _ = done.recv_timeout(READER_DRAIN);
        }
    }
}

/// How long dropping a [`Client`] waits for the server to close.
const READER_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

impl<Req, Resp, S> std::fmt::Debug for Client<Req, Resp, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("peer", &self.peer).finish()
    }
}

impl<Req: IpcMessage, Resp: IpcMessage> Client<Req, Resp> {
    /// Connects to a [`Server`] at `endpoint`.
    ///
    /// # Errors
    /// As [`crate::connect`]; [`Error::SchemaMismatch`] when the server
    /// handles other request or reply types.
    pub fn connect(endpoint: &Endpoint) -> Result<Self> {
        let channel = crate::connect_with(endpoint, &client_schema::<Req, Resp>())?;
        Ok(Self::from_channel(channel))
    }
}

impl<Req: IpcMessage, Resp: IpcMessage, S: Sender> Client<Req, Resp, S> {
    /// A client over a channel already connected to a [`Server`], of any
    /// transport; its handshake should have announced
    /// [`client_schema::<Req, Resp>()`](client_schema) (as
    /// [`connect`](Client::connect) does). Starts the thread that reads
    /// replies.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use ipcx::backends::unix::Unix;
    /// use ipcx::rpc::{Client, client_schema};
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
    /// let channel = Unix::connect(&endpoint, &client_schema::<Add, Sum>())?;
    /// let client = Client::<Add, Sum, _>::from_channel(channel);
    /// assert_eq!(client.call(&Add { a: 2, b: 3 })?.0, 5);
    /// # Ok(()) }
    /// ```
    pub fn from_channel<C>(channel: C) -> Self
    where
        C: Channel<Sender = S>,
        C::Receiver: 'static,
    {
        let peer = channel.peer().clone();
        let (sender, receiver) = channel.split();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            arrived: Condvar::new(),
        });
        let reader = Arc::clone(&shared);
        let (done_tx, reader_done) = mpsc::channel();
        // It ends when the server closes the connection, which it does once
        // this client's sender half is dropped (see `Drop for Client`).
        std::thread::Builder::new()
            .name("ipcx-rpc-replies".into())
            .spawn(move || {
                read_replies(receiver, &reader);
                let _ = done_tx.send(());
            })
            .map_or_else(
                |e| {
                    let mut p = lock(&shared.pending);
                    p.closed = Some(format!("cannot start the reply reader thread: {e}"));
                },
                drop,
            );
        Client {
            out: Mutex::new(Outgoing {
                sender: Some(sender),
                buf: Vec::new(),
            }),
            shared,
            next_id: AtomicU64::new(1),
            peer,
            reader_done: Mutex::new(Some(reader_done)),
            types: PhantomData,
        }
    }

    /// Calls the server and waits for its reply.
    ///
    /// # Errors
    /// [`Error::Remote`] when the handler failed (the client stays usable);
    /// [`Error::Disconnected`] when the server went away;
    /// [`Error::Decode`] when the reply is not a valid `Resp`; send errors
    /// as [`Sender::send`].
    pub fn call(&self, req: &Req) -> Result<Resp> {
        self.start_until(req, Deadline::Never)?.wait()
    }

    /// Calls the server, waiting at most `timeout` in all (sending and
    /// waiting for the reply).
    ///
    /// # Errors
    /// As [`call`](Self::call); [`Error::Timeout`] at the deadline (a late
    /// reply is dropped).
    pub fn call_timeout(&self, req: &Req, timeout: Duration) -> Result<Resp> {
        let deadline = Deadline::after(timeout);
        self.start_until(req, deadline)?.wait_until(deadline)
    }

    /// Sends a request and returns at once; [`Call::wait`] collects the
    /// reply. Several calls can be started before any is waited for.
    ///
    /// # Errors
    /// As [`call`](Self::call), for the sending part.
    pub fn start(&self, req: &Req) -> Result<Call<'_, Resp>> {
        self.start_until(req, Deadline::Never)
    }

    fn start_until(&self, req: &Req, deadline: Deadline) -> Result<Call<'_, Resp>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut p = lock(&self.shared.pending);
            if let Some(err) = closed_error(&p) {
                return Err(err);
            }
            p.calls.insert(id, None);
        }
        let call = Call {
            id,
            shared: &self.shared,
            types: PhantomData,
        };
        let mut out = lock(&self.out);
        let Outgoing { sender, buf } = &mut *out;
        buf.clear();
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&budget_ms(deadline).to_le_bytes());
        match req.wire_bytes() {
            Some(bytes) => buf.extend_from_slice(bytes),
            None => req.encode(buf)?,
        }
        sender
            .as_mut()
            .ok_or(Error::Disconnected)?
            .send_until(buf, deadline)?;
        Ok(call)
    }

    /// What the handshake learned about the server.
    pub fn peer(&self) -> &PeerInfo {
        &self.peer
    }
}

/// What a request tells the server of its deadline: the milliseconds left,
/// rounded up, at least 1; 0 for none.
fn budget_ms(deadline: Deadline) -> u32 {
    match deadline.remaining() {
        None => 0,
        Some(left) => u32::try_from(left.as_millis().max(1).div_ceil(1)).unwrap_or(u32::MAX),
    }
}

fn closed_error(p: &Pending) -> Option<Error> {
    if p.disconnected {
        Some(Error::Disconnected)
    } else {
        p.closed.as_ref().map(|why| Error::protocol(why.clone()))
    }
}

fn read_replies<R: Receiver>(mut receiver: R, shared: &Shared) {
    let end = read_until_end(&mut receiver, shared);
    drop(receiver);
    let mut p = lock(&shared.pending);
    match end {
        Error::Disconnected => p.disconnected = true,
        other => p.closed = Some(other.to_string()),
    }
    shared.arrived.notify_all();
}

/// Routes replies to their calls until the connection ends; returns how.
fn read_until_end<R: Receiver>(receiver: &mut R, shared: &Shared) -> Error {
    let mut buf = Vec::new();
    loop {
        if let Err(e) = receiver.recv_until(&mut buf, Deadline::Never) {
            break e;
        }
        if buf.len() < REPLY_HEADER {
            break Error::protocol(format!(
                "the server sent a {}-byte reply, shorter than its {REPLY_HEADER}-byte header",
                buf.len()
            ));
        }
        let id = u64::from_le_bytes(buf[..8].try_into().unwrap_or_default());
        let mut p = lock(&shared.pending);
        // An unknown id is a call that timed out or was dropped: its reply
        // has nobody to go to.
        if let Some(slot) = p.calls.get_mut(&id) {
            *slot = Some(buf[8..].to_vec());
            shared.arrived.notify_all();
        }
    }
}

/// A call in flight, made by [`Client::start`]. Dropping it abandons the
/// call (its reply is dropped when it comes).
pub struct Call<'a, Resp> {
    id: u64,
    shared: &'a Shared,
    types: PhantomData<fn() -> Resp>,
}

impl<Resp> std::fmt::Debug for Call<'_, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call").field("id", &self.id).finish()
    }
}

impl<Resp: IpcMessage> Call<'_, Resp> {
    /// The correlation id this call carries on the wire.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Waits for the reply.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn wait(self) -> Result<Resp> {
        self.wait_until(Deadline::Never)
    }

    /// Waits at most `timeout` for the reply.
    ///
    /// # Errors
    /// As [`Client::call_timeout`].
    pub fn wait_timeout(self, timeout: Duration) -> Result<Resp> {
        self.wait_until(Deadline::after(timeout))
    }

    fn wait_until(self, deadline: Deadline) -> Result<Resp> {
        let mut p = lock(&self.shared.pending);
        let reply = loop {
            if let Some(Some(_)) = p.calls.get(&self.id) {
                break p.calls.remove(&self.id).flatten().unwrap_or_default();
            }
            if let Some(err) = closed_error(&p) {
                return Err(err);
            }
            p = match deadline.remaining() {
                None => self
                    .shared
                    .arrived
                    .wait(p)
                    .unwrap_or_else(|e| e.into_inner()),
                Some(left) if left.is_zero() => return Err(deadline.elapsed_error()),
                Some(left) => {
                    self.shared
                        .arrived
                        .wait_timeout(p, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        };
        drop(p);
        // `reply` is everything after the id: status, then payload.
        let (status, payload) = reply.split_first().unwrap_or((&STATUS_OK, &[]));
        match *status {
            STATUS_OK => Resp::decode(payload),
            STATUS_HANDLER_ERROR => Err(Error::Remote(String::from_utf8_lossy(payload).into())),
            STATUS_BAD_REQUEST => Err(Error::Remote(format!(
                "the server could not decode the request: {}",
                String::from_utf8_lossy(payload)
            ))),
            other => Err(Error::protocol(format!(
                "the server sent reply status {other}, not one of 0, 1, 2"
            ))),
        }
    }
}

impl<Resp> Drop for Call<'_, Resp> {
    fn drop(&mut self) {
        lock(&self.shared.pending).calls.remove(&self.id);
    }
}

// ------------------------------------------------------------------ server

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

/// One request to handle: run on a handler thread of the [`Pool`].
type Job = Box<dyn FnOnce() + Send>;

/// The handler threads, started on demand up to `max`; they stay for the
/// server's life.
struct Pool {
    max: usize,
    queue: Mutex<PoolQueue>,
    work: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Default)]
struct PoolQueue {
    jobs: std::collections::VecDeque<Job>,
    idle: usize,
    started: usize,
    stop: bool,
}

impl Pool {
    fn new(max: usize) -> Pool {
        Pool {
            max: max.max(1),
            queue: Mutex::new(PoolQueue::default()),
            work: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// Queues `job`, starting a handler thread when none is idle and the
    /// bound allows. `Err(job)` when no thread could be started at all.
    fn submit(self: &Arc<Self>, job: Job) -> std::result::Result<(), Job> {
        let mut q = lock(&self.queue);
        q.jobs.push_back(job);
        // Idle threads that were woken but have not taken a job yet still
        // count as idle: compare with the jobs waiting, not with zero.
        if q.jobs.len() > q.idle && q.started < self.max {
            let pool = Arc::clone(self);
            match std::thread::Builder::new()
                .name("ipcx-rpc-handler".into())
                .spawn(move || pool.work_loop())
            {
                Ok(t) => {
                    q.started += 1;
                    lock(&self.threads).push(t);
                }
                Err(e) if q.started == 0 => {
                    tracing::error!(%e, "rpc server: cannot start a handler thread");
                    return Err(q.jobs.pop_back().expect("the job just queued"));
                }
                // The threads already running will take it.
                Err(_) => {}
            }
        }
        drop(q);
        self.work.notify_one();
        Ok(())
    }

    fn work_loop(&self) {
        let mut q = lock(&self.queue);
        loop {
            if let Some(job) = q.jobs.pop_front() {
                drop(q);
                job();
                q = lock(&self.queue);
                continue;
            }
            if q.stop {
                return;
            }
            q.idle += 1;
            q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
            q.idle -= 1;
        }
    }

    /// Lets the threads finish the queued jobs, then joins them.
    fn stop_and_join(&self) {
        lock(&self.queue).stop = true;
        self.work.notify_all();
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
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
fn send_reply<S: Sender>(tx: &mut S, mut reply: Vec<u8>) -> Result<()> {
    match tx.send(&reply) {
        Err(Error::MessageTooLarge { size, max }) => {
            reply.truncate(8);
            reply.push(STATUS_HANDLER_ERROR);
            reply.extend_from_slice(
                format!(
                    "the reply of {size} bytes exceeds max_message_size {max}; raise max_message_size on both endpoints"
                )
                .as_bytes(),
            );
            tx.send(&reply)
        }
        other => other,
    }
}

/// The reply to one request: its id, a status and the payload.
fn answer<Req, Resp, E, F>(request: &[u8], handler: &F) -> Vec<u8>
where
    Req: IpcMessage,
    Resp: IpcMessage,
    E: Display,
    F: Fn(Req) -> std::result::Result<Resp, E>,
{
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(&request[..8]);
    let fail = |reply: &mut Vec<u8>, status: u8, text: &str| {
        reply.truncate(8);
        reply.push(status);
        reply.extend_from_slice(text.as_bytes());
    };
    match Req::decode(&request[REQUEST_HEADER..]) {
        Err(e) => fail(&mut reply, STATUS_BAD_REQUEST, &e.to_string()),
        Ok(req) => match catch_unwind(AssertUnwindSafe(|| handler(req))) {
            Ok(Ok(resp)) => {
                reply.push(STATUS_OK);
                let encoded = match resp.wire_bytes() {
                    Some(bytes) => {
                        reply.extend_from_slice(bytes);
                        Ok(())
                    }
                    None => resp.encode(&mut reply),
                };
                if let Err(e) = encoded {
                    fail(&mut reply, STATUS_HANDLER_ERROR, &e.to_string());
                }
            }
            Ok(Err(e)) => fail(&mut reply, STATUS_HANDLER_ERROR, &e.to_string()),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a non-string payload".into());
                fail(
                    &mut reply,
                    STATUS_HANDLER_ERROR,
                    &format!("the handler panicked: {what}"),
                );
            }
        },
    }
    reply
}

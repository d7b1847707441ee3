//! Listeners whose handshakes run off the accept path.
//!
//! A listener is an [`Acceptor`]: one thread waits on the transport's
//! rendezvous ([`Incoming::next`]) and hands each connection request to a
//! handshake thread of its own, bounded by the endpoint's
//! `connect_timeout` (a thread that finished a handshake waits 2 s for the
//! next request before it ends, so a burst of clients reuses a few
//! threads; a request that finds none idle starts one). Established connections queue for
//! [`Listener::accept`](ipc_core::Listener::accept); a client that fails
//! its handshake (silent, malformed, refused) is logged and dropped. So a
//! silent or malicious client costs the listener one pending slot for at
//! most `connect_timeout`, and `accept` only ever returns established
//! connections or an error of the listener itself.
//!
//! At most [`MAX_PENDING`] handshakes run at once; a request beyond that is
//! refused at once (the client sees its connect fail). Dropping the
//! acceptor wakes its thread ([`Incoming::closer`]), which drops the
//! transport's rendezvous state (removing its names) before the drop
//! returns.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use ipc_core::{Deadline, Endpoint, Error, Listener, Result};

use crate::sys::Context;
use crate::sys::event::Event;

/// Most handshakes in progress at once per listener.
pub const MAX_PENDING: usize = 256;
/// Established connections that may wait for `accept`.
const BACKLOG: usize = 128;

/// The work that completes one connection request: the handshake and the
/// transport's set-up. Runs on its own thread.
pub(crate) type Establish<C> = Box<dyn FnOnce() -> Result<C> + Send>;

/// What a transport's rendezvous produced.
pub(crate) enum Next<C> {
    /// A connection request and the work that establishes it.
    Request(Establish<C>),
    /// Something that is not a request arrived (logged; the listener goes on).
    Refused(Error),
    /// The listener was closed.
    Closed,
}

impl<C> Next<C> {
    /// The [`Next`] of a raw arrival `raw`, with `establish` making the
    /// work for a connection.
    pub(crate) fn of<T>(raw: Raw<T>, establish: impl FnOnce(T) -> Establish<C>) -> Next<C> {
        match raw {
            Raw::Conn(t) => Next::Request(establish(t)),
            Raw::Refused(e) => Next::Refused(e),
            Raw::Closed => Next::Closed,
        }
    }
}

/// What a rendezvous produced before any transport work: a connection
/// (socket, request), a refusal, or the close.
pub(crate) enum Raw<T> {
    /// A new connection or request.
    Conn(T),
    /// Something that is not a request (logged; the listener goes on).
    Refused(Error),
    /// The listener was closed.
    Closed,
}

/// Makes a blocked [`Incoming::next`] return [`Next::Closed`].
pub(crate) type Closer = Box<dyn Fn() + Send + Sync>;

/// A transport's listening side: where connection requests arrive.
pub(crate) trait Incoming: Send + 'static {
    /// The connections it establishes.
    type Channel: Send + 'static;

    /// Waits for the next request. Must return promptly (with
    /// [`Next::Closed`]) once the closer ran.
    ///
    /// # Errors
    /// A failure of the listener itself, which ends it.
    fn next(&mut self) -> Result<Next<Self::Channel>>;

    /// What wakes a `next` blocked on another thread.
    fn closer(&self) -> Closer;
}

/// A listener of any transport: accepts established connections.
pub struct Acceptor<C> {
    endpoint: Endpoint,
    ready: mpsc::Receiver<Result<C>>,
    closer: Arc<Closer>,
    /// This acceptor's entry in [`LIVE`].
    live: u64,
    thread: Option<JoinHandle<()>>,
    /// The listener's own failure, repeated by every later accept.
    failed: Option<String>,
    refused: Arc<AtomicU64>,
    /// Signalled whenever something is queued for `accept` (and when the
    /// accepting thread ends): what an async listener waits on.
    queued: Arc<Event>,
    /// Set by a [`ListenerCloser`].
    closed: Arc<AtomicBool>,
}

/// Closes a listener from any thread or task: its rendezvous is removed,
/// and an `accept` waiting on it (blocking or async) returns
/// [`Error::Closed`], as does every later one. Connections already
/// accepted are not affected. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// use ipc_core::{Listener, Schema};
///
/// # fn main() -> ipc_core::Result<()> {
/// let mut listener = ipc_backends::listen(&"unix:/tmp/svc.sock".parse()?, &Schema::bytes())?;
/// let closer = listener.closer();
/// std::thread::spawn(move || closer.close());
/// assert!(matches!(listener.accept(), Err(ipc_core::Error::Closed)));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ListenerCloser {
    closer: Arc<Closer>,
    closed: Arc<AtomicBool>,
}

impl ListenerCloser {
    /// Closes the listener. Idempotent.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        (self.closer)();
    }
}

impl std::fmt::Debug for ListenerCloser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerCloser")
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl<C> Acceptor<C> {
    /// A handle that closes this listener from any thread or task.
    pub fn closer(&self) -> ListenerCloser {
        ListenerCloser {
            closer: self.closer.clone(),
            closed: self.closed.clone(),
        }
    }
}

/// What every listener type offers beyond [`Listener`]: what an async
/// listener waits on, and a closer.
pub(crate) trait Ready {
    /// Readable whenever an established connection (or the listener's
    /// failure) may be waiting to be accepted.
    fn ready_fd(&self) -> Option<BorrowedFd<'_>>;
    /// See [`Acceptor::closer`].
    fn closer(&self) -> ListenerCloser;
}

impl<C> Ready for Acceptor<C> {
    fn ready_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.queued.as_fd())
    }

    fn closer(&self) -> ListenerCloser {
        Acceptor::closer(self)
    }
}

impl Ready for crate::pipe::PipeListener {
    fn ready_fd(&self) -> Option<BorrowedFd<'_>> {
        match *self {}
    }

    fn closer(&self) -> ListenerCloser {
        match *self {}
    }
}

impl<C> std::fmt::Debug for Acceptor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("endpoint", &self.endpoint.to_string())
            .finish_non_exhaustive()
    }
}

impl<C: Send + 'static> Acceptor<C> {
    /// Starts accepting on `incoming`, which listens on `endpoint`.
    ///
    /// # Errors
    /// [`Error::Io`] when the accepting thread cannot be started.
    pub(crate) fn start<I: Incoming<Channel = C>>(endpoint: Endpoint, incoming: I) -> Result<Self> {
        let (tx, ready) = mpsc::sync_channel(BACKLOG);
        let closer = Arc::new(incoming.closer());
        let name = endpoint.to_string();
        let refused = Arc::new(AtomicU64::new(0));
        let count = refused.clone();
        let done = Arc::new((Mutex::new(false), Condvar::new()));
        let finished = done.clone();
        let queued =
            Arc::new(Event::new().map_err(|e| Error::io(format!("{endpoint}: eventfd"), e))?);
        let tx = Queue {
            tx,
            queued: queued.clone(),
        };
        let signal = queued.clone();
        let thread = std::thread::Builder::new()
            .name("ipcx-accept".into())
            .spawn(move || {
                // `run` owns the rendezvous: it is dropped (its names
                // removed) before `done` is set.
                run(incoming, tx, &name, &count);
                signal.notify();
                *finished.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
                finished.1.notify_all();
            })
            .map_err(|e| Error::io(format!("{endpoint}: spawning the accepting thread"), e))?;
        let live = NEXT_LIVE.fetch_add(1, Ordering::Relaxed);
        live_listeners().push((live, closer.clone(), done));
        tracing::info!(%endpoint, "listening");
        Ok(Acceptor {
            endpoint,
            ready,
            closer,
            live,
            thread: Some(thread),
            failed: None,
            refused,
            queued,
            closed: Arc::new(AtomicBool::new(false)),
        })
    }
}

/// Where established connections queue for `accept`.
struct Queue<C> {
    tx: mpsc::SyncSender<Result<C>>,
    queued: Arc<Event>,
}

impl<C> Clone for Queue<C> {
    fn clone(&self) -> Self {
        Queue {
            tx: self.tx.clone(),
            queued: self.queued.clone(),
        }
    }
}

impl<C> Queue<C> {
    /// Queues `item`; `false` when the listener is gone.
    fn send(&self, item: Result<C>) -> bool {
        let sent = self.tx.send(item).is_ok();
        self.queued.notify();
        sent
    }
}

fn run<I: Incoming>(
    mut incoming: I,
    tx: Queue<I::Channel>,
    endpoint: &str,
    refused: &Arc<AtomicU64>,
) {
    let pending = Arc::new(AtomicUsize::new(0));
    let pool = Pool::new();
    let _close = PoolCloser(pool.clone());
    loop {
        let job = match incoming.next() {
            Ok(Next::Request(job)) => job,
            Ok(Next::Refused(e)) => {
                refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(endpoint, error = %e, "refused a connection request");
                continue;
            }
            Ok(Next::Closed) => return,
            Err(e) => {
                tracing::error!(endpoint, error = %e, "listener failed");
                tx.send(Err(e));
                return;
            }
        };
        if pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING {
            pending.fetch_sub(1, Ordering::AcqRel);
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                endpoint,
                "{MAX_PENDING} handshakes already in progress: refused a connection"
            );
            continue;
        }
        let (tx, count, ep) = (tx.clone(), pending.clone(), endpoint.to_string());
        let failures = refused.clone();
        let task: Task = Box::new(move || {
            let result = job();
            count.fetch_sub(1, Ordering::AcqRel);
            match result {
                Ok(c) => {
                    // A listener dropped meanwhile drops the connection.
                    tx.send(Ok(c));
                }
                Err(e) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(endpoint = ep, error = %e, "handshake failed");
                }
            }
        });
        if let Err(e) = pool.run(task) {
            pending.fetch_sub(1, Ordering::AcqRel);
            refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(endpoint, error = %e, "cannot start a handshake thread: refused a connection");
        }
    }
}

/// Closes a listener's [`Pool`] when its accepting loop ends, however.
struct PoolCloser(Arc<Pool>);

impl Drop for PoolCloser {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A handshake and what follows it (queueing or logging), run on a
/// handshake thread.
type Task = Box<dyn FnOnce() + Send>;

/// How long a handshake thread waits for another request before it ends.
const HANDSHAKE_THREAD_IDLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The handshake threads of one listener. A thread that finished a
/// handshake waits [`HANDSHAKE_THREAD_IDLE`] for the next before it ends,
/// so a burst of clients costs a few threads rather than one each (a
/// thread's start and end are some fifteen system calls); a request that
/// finds no thread idle starts one, so handshakes never wait for each
/// other. Bounded by [`MAX_PENDING`] as before: one thread per handshake
/// in progress at most.
struct Pool {
    state: Mutex<PoolState>,
    wake: Condvar,
}

#[derive(Default)]
struct PoolState {
    tasks: std::collections::VecDeque<Task>,
    /// Threads waiting for a task.
    idle: usize,
    /// The listener stopped accepting: idle threads end.
    closed: bool,
}

impl Pool {
    fn new() -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(PoolState::default()),
            wake: Condvar::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        // A task's panic never holds the lock (tasks run outside it).
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `task` on an idle handshake thread, or on a new one when none
    /// is idle.
    ///
    /// # Errors
    /// The OS error when a thread was needed and could not be started
    /// (the task is dropped).
    fn run(self: &Arc<Pool>, task: Task) -> std::io::Result<()> {
        let mut state = self.lock();
        let start = state.idle <= state.tasks.len();
        state.tasks.push_back(task);
        if !start {
            drop(state);
            self.wake.notify_one();
            return Ok(());
        }
        drop(state);
        let pool = self.clone();
        let spawned = std::thread::Builder::new()
            .name("ipcx-handshake".into())
            .stack_size(256 * 1024)
            .spawn(move || pool.work());
        match spawned {
            Ok(_) => Ok(()),
            // Taken back (the newest: only this thread adds tasks), unless
            // an idle thread took it meanwhile and runs it.
            Err(e) => match self.lock().tasks.pop_back() {
                Some(_) => Err(e),
                None => Ok(()),
            },
        }
    }

    /// A handshake thread: tasks until none comes for a while.
    fn work(&self) {
        let mut state = self.lock();
        loop {
            if let Some(task) = state.tasks.pop_front() {
                drop(state);
                // A panicking handshake ends this thread only; the count
                // of handshakes in progress is then off by one, as it was
                // with a thread per handshake.
                task();
                state = self.lock();
                continue;
            }
            if state.closed {
                return;
            }
            state.idle += 1;
            let (next, waited) = self
                .wake
                .wait_timeout(state, HANDSHAKE_THREAD_IDLE)
                .unwrap_or_else(|p| p.into_inner());
            state = next;
            state.idle -= 1;
            if waited.timed_out() && state.tasks.is_empty() {
                return;
            }
        }
    }

    /// The listener stopped: idle threads end now, busy ones after their
    /// task.
    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_all();
    }
}

impl<C: ipc_core::Channel + 'static> Listener for Acceptor<C> {
    type Channel = C;

    fn accept_until(&mut self, deadline: Deadline) -> Result<C> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        if let Some(why) = &self.failed {
            return Err(listener_failed(&self.endpoint, why));
        }
        let got = match deadline {
            Deadline::Never => self
                .ready
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
            Deadline::Now => self.ready.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            }),
            Deadline::At(_) => {
                let left = deadline.remaining().unwrap_or_default();
                self.ready.recv_timeout(left)
            }
        };
        match got {
            Ok(Ok(c)) => {
                let peer = c.peer();
                tracing::debug!(endpoint = %self.endpoint, peer.pid, peer.uid, "accepted");
                Ok(c)
            }
            Ok(Err(e)) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
            Err(RecvTimeoutError::Timeout) => Err(deadline.elapsed_error()),
            Err(RecvTimeoutError::Disconnected) if self.closed.load(Ordering::Acquire) => {
                Err(Error::Closed)
            }
            Err(RecvTimeoutError::Disconnected) => {
                let why = "its accepting thread ended".to_string();
                let e = listener_failed(&self.endpoint, &why);
                self.failed = Some(why);
                Err(e)
            }
        }
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

fn listener_failed(endpoint: &Endpoint, why: &str) -> Error {
    Error::io(
        format!("{endpoint}: the listener failed earlier ({why}); listen again"),
        std::io::ErrorKind::BrokenPipe.into(),
    )
}

impl<C> Drop for Acceptor<C> {
    fn drop(&mut self) {
        live_listeners().retain(|(id, ..)| *id != self.live);
        (self.closer)();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        tracing::info!(endpoint = %self.endpoint, "stopped listening");
    }
}

/// Every listener of this process: its closer and the flag its accepting
/// thread sets once the rendezvous is dropped.
type Live = (u64, Arc<Closer>, Arc<(Mutex<bool>, Condvar)>);

static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());
static NEXT_LIVE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn live_listeners() -> std::sync::MutexGuard<'static, Vec<Live>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Closes every listener of this process — each stops accepting and
/// removes its names (socket file, rendezvous FIFO or queue, key file) —
/// waiting at most `timeout` for them all. For a process about to end on
/// a signal (`ipcx::shutdown`): the listeners' owners never see it, and
/// their `accept` then reports the listener closed. Returns how many
/// closed in time.
pub fn close_all_listeners(timeout: std::time::Duration) -> usize {
    let live = std::mem::take(&mut *live_listeners());
    for (_, closer, _) in &live {
        closer();
    }
    let until = std::time::Instant::now() + timeout;
    let mut closed = 0;
    for (_, _, done) in &live {
        let mut finished = done.0.lock().unwrap_or_else(|e| e.into_inner());
        while !*finished {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                break;
            }
            finished = done
                .1
                .wait_timeout(finished, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        closed += usize::from(*finished);
    }
    closed
}

/// The closable wait of a rendezvous on a descriptor: [`Stop::wait`]
/// returns when the descriptor is ready or when the closer ran.
#[derive(Debug, Clone)]
pub(crate) struct Stop(Arc<crate::sys::event::Event>);

impl Stop {
    /// A new stop, not yet signalled.
    ///
    /// # Errors
    /// [`Error::Io`] from `eventfd(2)`.
    pub(crate) fn new(endpoint: &Endpoint) -> Result<Stop> {
        crate::sys::event::Event::new()
            .map(|e| Stop(Arc::new(e)))
            .map_err(|e| Error::io(format!("{endpoint}: eventfd"), e))
    }

    /// Waits until `fd` is ready for `interest` (`Ok(true)`) or the stop
    /// was signalled (`Ok(false)`).
    ///
    /// # Errors
    /// [`Error::Io`] from `poll(2)`.
    pub(crate) fn wait(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        interest: crate::sys::fd::Interest,
    ) -> Result<bool> {
        use crate::sys::fd::{Interest, Ready, wait_any};
        use std::os::fd::AsFd;
        let ready = wait_any(
            &[(self.0.as_fd(), Interest::Read), (fd, interest)],
            Deadline::Never,
        )
        .context(|| "poll".into())?;
        Ok(ready == Ready::Index(1))
    }

    /// The closer that signals this stop.
    pub(crate) fn closer(&self) -> Closer {
        let event = self.0.clone();
        Box::new(move || event.notify())
    }
}

/// Accepts the next stream connection on a listening socket, waiting until
/// one comes or `stop` is signalled (`Ok(None)`). Transient failures
/// (out of descriptors or memory, an aborted connection) are refusals of
/// that one connection, not the listener's.
///
/// # Errors
/// A failure of `accept4(2)` or `poll(2)` that ends the listener.
pub(crate) fn next_socket(
    listener: std::os::fd::BorrowedFd<'_>,
    stop: &Stop,
    endpoint: &Endpoint,
) -> Result<Raw<std::os::fd::OwnedFd>> {
    loop {
        match crate::sys::socket::accept(listener) {
            Ok(Some(fd)) => return Ok(Raw::Conn(fd)),
            Ok(None) => {
                if !stop.wait(listener, crate::sys::fd::Interest::Read)? {
                    return Ok(Raw::Closed);
                }
            }
            Err(e) => match e.raw_os_error() {
                Some(
                    libc::EMFILE
                    | libc::ENFILE
                    | libc::ENOBUFS
                    | libc::ENOMEM
                    | libc::ECONNABORTED
                    | libc::EPERM
                    | libc::EPROTO,
                ) => {
                    // Give the process a moment to free descriptors.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    return Ok(Raw::Refused(Error::io(format!("{endpoint}: accept"), e)));
                }
                _ => return Err(Error::io(format!("{endpoint}: accept"), e)),
            },
        }
    }
}

/// The rendezvous of a stream-socket listener (`unix:`, `tcp://`, the
/// shared-memory socket): connections come from `accept4(2)`, and each is
/// established by `establish` on its handshake thread. `on_drop` runs when
/// the accepting thread ends (removing a socket file, say).
pub(crate) struct Sockets<C> {
    fd: std::os::fd::OwnedFd,
    stop: Stop,
    endpoint: Endpoint,
    establish: Arc<dyn Fn(std::os::fd::OwnedFd) -> Result<C> + Send + Sync>,
    on_drop: Option<Box<dyn FnOnce() + Send>>,
}

impl<C: Send + 'static> Sockets<C> {
    /// Accepts on the listening socket `fd` of `endpoint`.
    ///
    /// # Errors
    /// [`Error::Io`] from `eventfd(2)`.
    pub(crate) fn new(
        fd: std::os::fd::OwnedFd,
        endpoint: &Endpoint,
        establish: impl Fn(std::os::fd::OwnedFd) -> Result<C> + Send + Sync + 'static,
    ) -> Result<Sockets<C>> {
        Ok(Sockets {
            fd,
            stop: Stop::new(endpoint)?,
            endpoint: endpoint.clone(),
            establish: Arc::new(establish),
            on_drop: None,
        })
    }

    /// Runs `f` once the listener is closed.
    pub(crate) fn on_drop(mut self, f: impl FnOnce() + Send + 'static) -> Sockets<C> {
        self.on_drop = Some(Box::new(f));
        self
    }
}

impl<C: Send + 'static> Incoming for Sockets<C> {
    type Channel = C;

    fn next(&mut self) -> Result<Next<C>> {
        use std::os::fd::AsFd;
        let raw = next_socket(self.fd.as_fd(), &self.stop, &self.endpoint)?;
        let establish = self.establish.clone();
        Ok(Next::of(raw, |fd| Box::new(move || establish(fd))))
    }

    fn closer(&self) -> Closer {
        self.stop.closer()
    }
}

impl<C> Drop for Sockets<C> {
    fn drop(&mut self) {
        if let Some(f) = self.on_drop.take() {
            f();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipc_core::{Channel, PeerInfo, Receiver, Schema, Sender};
    use std::sync::Mutex;
    use std::time::Duration;

    /// A channel that only carries its peer's pid.
    #[derive(Debug)]
    struct Fake(PeerInfo);

    impl Sender for Fake {
        fn send_until(&mut self, _: &[u8], _: Deadline) -> Result<()> {
            Ok(())
        }
        fn max_message_size(&self) -> usize {
            0
        }
    }

    impl Receiver for Fake {
        fn recv_until(&mut self, _: &mut Vec<u8>, d: Deadline) -> Result<()> {
            Err(d.elapsed_error())
        }
    }

    impl Channel for Fake {
        type Sender = Fake;
        type Receiver = Fake;
        fn split(self) -> (Fake, Fake) {
            (Fake(self.0.clone()), self)
        }
        fn peer(&self) -> &PeerInfo {
            &self.0
        }
    }

    fn info(pid: u32) -> PeerInfo {
        let hello = ipc_core::handshake::Hello::new(&Schema::bytes(), pid, 0, 64);
        ipc_core::handshake::check(&hello, &hello).unwrap()
    }

    /// Requests come from a queue; `None` is the close.
    struct Queue(
        Arc<Mutex<mpsc::Receiver<Option<Next<Fake>>>>>,
        mpsc::Sender<Option<Next<Fake>>>,
    );

    impl Incoming for Queue {
        type Channel = Fake;
        fn next(&mut self) -> Result<Next<Fake>> {
            match self.0.lock().unwrap().recv() {
                Ok(Some(n)) => Ok(n),
                _ => Ok(Next::Closed),
            }
        }
        fn closer(&self) -> Closer {
            let tx = Mutex::new(self.1.clone());
            Box::new(move || {
                let _ = tx.lock().unwrap().send(None);
            })
        }
    }

    #[test]
    fn slow_and_failing_handshakes_do_not_hold_up_accept() {
        let (tx, rx) = mpsc::channel();
        let incoming = Queue(Arc::new(Mutex::new(rx)), tx.clone());
        let ep: Endpoint = "tcp://127.0.0.1:0".parse().unwrap();
        let mut acceptor = Acceptor::start(ep, incoming).unwrap();
        let (release, gate) = mpsc::channel::<()>();
        // A client that stays silent until released, one that fails, a
        // malformed request, then a good one.
        tx.send(Some(Next::Request(Box::new(move || {
            let _ = gate.recv();
            Ok(Fake(info(1)))
        }))))
        .unwrap();
        tx.send(Some(Next::Request(Box::new(|| {
            Err(Error::protocol("garbage hello"))
        }))))
        .unwrap();
        tx.send(Some(Next::Refused(Error::protocol("bad request"))))
            .unwrap();
        tx.send(Some(Next::Request(Box::new(|| Ok(Fake(info(3)))))))
            .unwrap();
        let first = acceptor.accept_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(first.peer().pid, 3, "the good client is accepted first");
        let waited = std::time::Instant::now();
        while acceptor.refused() < 2 && waited.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(acceptor.refused(), 2);
        release.send(()).unwrap();
        let second = acceptor.accept_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(second.peer().pid, 1);
        assert!(matches!(
            acceptor.accept_timeout(Duration::from_millis(10)),
            Err(Error::Timeout)
        ));
        assert!(matches!(
            acceptor.accept_until(Deadline::Now),
            Err(Error::WouldBlock)
        ));
        // Dropping wakes and joins the accepting thread.
        drop(acceptor);
    }

    #[test]
    fn a_listener_failure_is_fatal_and_repeated() {
        struct Broken;
        impl Incoming for Broken {
            type Channel = Fake;
            fn next(&mut self) -> Result<Next<Fake>> {
                Err(Error::io("accept", std::io::ErrorKind::Other.into()))
            }
            fn closer(&self) -> Closer {
                Box::new(|| {})
            }
        }
        let ep: Endpoint = "tcp://127.0.0.1:0".parse().unwrap();
        let mut acceptor = Acceptor::start(ep, Broken).unwrap();
        let e = acceptor.accept().unwrap_err();
        assert!(e.is_fatal(), "{e}");
        let again = acceptor.accept().unwrap_err();
        assert!(again.is_fatal() && again.to_string().contains("failed earlier"));
    }

    /// The id of the thread that ran a task.
    fn ran_on(pool: &Arc<Pool>) -> std::thread::ThreadId {
        let (tx, rx) = mpsc::channel();
        pool.run(Box::new(move || {
            let _ = tx.send(std::thread::current().id());
        }))
        .unwrap();
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the task ran")
    }

    #[test]
    fn handshake_threads_are_reused_and_end_when_closed() {
        let pool = Pool::new();
        let first = ran_on(&pool);
        for _ in 0..20 {
            // Time for the thread to go idle after its task.
            std::thread::sleep(std::time::Duration::from_millis(5));
            assert_eq!(
                ran_on(&pool),
                first,
                "one thread serves requests one at a time"
            );
        }
        pool.close();
        let start = std::time::Instant::now();
        while Arc::strong_count(&pool) > 1 {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "the idle thread ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn handshakes_in_progress_never_wait_for_each_other() {
        // Five tasks that each wait for all five: they finish only if each
        // has a thread of its own.
        let pool = Pool::new();
        let barrier = Arc::new(std::sync::Barrier::new(5));
        let (tx, rx) = mpsc::channel();
        for _ in 0..5 {
            let (barrier, tx) = (barrier.clone(), tx.clone());
            pool.run(Box::new(move || {
                barrier.wait();
                let _ = tx.send(std::thread::current().id());
            }))
            .unwrap();
        }
        let mut ids: Vec<_> = (0..5)
            .map(|_| {
                rx.recv_timeout(std::time::Duration::from_secs(10))
                    .expect("every task ran at once")
            })
            .collect();
        ids.sort_by_key(|id| format!("{id:?}"));
        ids.dedup();
        assert_eq!(ids.len(), 5);
        pool.close();
    }
}

//! One `nats://` connection: what its two halves share, the tasks that
//! move its frames on the NATS client, and the halves themselves.
//!
//! Three tasks per connection run on the runtime ipcx owns
//! ([`super::runtime`]): the *writer* publishes the outgoing frames, in
//! order, on the outgoing subject (all but a blocking sender's messages,
//! which that sender publishes itself: the handshake's wait for the
//! server orders them after its frames, and the close is queued after
//! them); the *reader* takes the incoming
//! subject's frames into [`State`] (messages in sequence, credit, the end);
//! the *heartbeat* publishes a heartbeat every interval and declares the
//! peer gone after three silent ones. The halves never wait on the
//! runtime: they wait on a condition variable (blocking API) or an eventfd
//! (the async layer's doorbell).

use std::collections::VecDeque;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use async_nats::{Client, Subject, Subscriber};
use bytes::Bytes;
use ipc_core::{Deadline, Error, PeerInfo, Receiver, Result, Sender};
use tokio::sync::{mpsc, watch};

use super::wire::{self, Frame, GRANT_MSGS, WINDOW_BYTES, WINDOW_MSGS};
use crate::aio::{Interest, Pollable, Source};
use crate::conn::handshake::Wire;
use crate::conn::link::Link;
use crate::sys::event::Event;

/// Heartbeat intervals of silence after which the peer is gone.
pub(crate) const SILENT_INTERVALS: u32 = 3;

/// Why the incoming side ended.
#[derive(Debug, Clone)]
enum End {
    /// The peer closed the connection, everything it sent was read.
    Closed,
    /// No frame for [`SILENT_INTERVALS`] heartbeats.
    Silent(Duration),
    /// The peer broke the protocol, or the server dropped a message.
    Broken(String),
}

/// What the reader task fills and the halves take from.
#[derive(Debug)]
struct State {
    /// Messages in order, not yet received.
    inbox: VecDeque<Bytes>,
    /// The sequence number the next message must carry.
    expected: u64,
    /// Totals this side may send (the peer's grants).
    granted_msgs: u64,
    granted_bytes: u64,
    /// Totals this side has received by `recv`, and granted to the peer.
    consumed_msgs: u64,
    consumed_bytes: u64,
    conveyed_msgs: u64,
    conveyed_bytes: u64,
    /// Messages the peer may have sent in all (the first window, then the
    /// last grant): one past it is a protocol error.
    allowed_msgs: u64,
    /// The peer waits for credit.
    peer_blocked: bool,
    /// When the last frame arrived.
    heard: Instant,
    /// The peer's hello and verdict, during the handshake.
    hello: Option<Bytes>,
    verdict: Option<u8>,
    /// Set once the incoming side is over; what is in `inbox` is still read.
    end: Option<End>,
    /// The largest message either side sends.
    max: usize,
    /// Threads waiting on the condition variable (notified only then).
    waiting: u32,
}

/// What a connection's halves and tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    cond: Condvar,
    /// Rung when a message, a hello or verdict, or the end arrives, while
    /// the receiving half waits in the async layer (`rx_armed`).
    rx_bell: Event,
    /// Rung when credit or the end arrives, while the sending half waits
    /// in the async layer (`tx_armed`).
    tx_bell: Event,
    rx_armed: AtomicBool,
    tx_armed: AtomicBool,
    out: mpsc::UnboundedSender<Out>,
    /// The NATS client and outgoing subject, for a sender that publishes
    /// its messages itself.
    client: Client,
    subject: Subject,
    /// Dropped with the last half: the tasks stop.
    _alive: watch::Sender<()>,
    /// Sequence number of the last message sent (the sender's).
    sent: std::sync::atomic::AtomicU64,
    /// Halves alive: the last one to go closes the connection.
    halves: AtomicUsize,
    /// The close frame went out.
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish(&self, frame: Vec<u8>) -> Result<()> {
        self.out
            .send(Out::Frame(Bytes::from(frame)))
            .map_err(|_| Error::Disconnected)
    }

    /// Waits until every frame queued so far has reached the NATS server
    /// (one round trip, [`sync`]), at most `limit`.
    fn flush(&self, limit: Duration) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.out
            .send(Out::Flush(tx))
            .map_err(|_| Error::Disconnected)?;
        match rx.recv_timeout(limit) {
            Ok(true) => Ok(()),
            Ok(false) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(Error::Disconnected)
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout),
        }
    }

    /// Wakes whoever waits for anything: the end of the connection.
    fn ring(&self) {
        self.cond.notify_all();
        self.rx_bell.notify();
        self.tx_bell.notify();
    }

    /// Waits on the condition variable until `deadline`; `false` once it passed.
    fn wait<'a>(
        &self,
        g: MutexGuard<'a, State>,
        deadline: Deadline,
    ) -> (MutexGuard<'a, State>, bool) {
        match deadline {
            Deadline::Now => (g, false),
            Deadline::Never => {
                let mut g = g;
                g.waiting += 1;
                let mut g = self.cond.wait(g).unwrap_or_else(|e| e.into_inner());
                g.waiting -= 1;
                (g, true)
            }
            Deadline::At(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return (g, false);
                }
                let mut g = g;
                g.waiting += 1;
                let (mut g, _) = self
                    .cond
                    .wait_timeout(g, left)
                    .unwrap_or_else(|e| e.into_inner());
                g.waiting -= 1;
                (g, true)
            }
        }
    }
}

/// What the writer task is given.
#[derive(Debug)]
enum Out {
    /// A frame to publish.
    Frame(Bytes),
    /// Flush, then say whether it worked.
    Flush(std::sync::mpsc::SyncSender<bool>),
}

/// Longest a dropped connection waits for its last messages and its close
/// to reach the server.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

impl Shared {
    /// One half is gone; the last one closes the connection.
    fn release(&self) {
        if self.halves.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.close();
        }
    }

    /// Tells the peer the connection is over, after everything sent, and
    /// (unless on the runtime's own threads, which must not wait) waits
    /// until it all reached the server, so that messages sent just before
    /// the process exits are not lost with it. Once.
    ///
    /// This runs on the thread that dropped the last half, never in the
    /// drop of [`Shared`] itself: the reader and heartbeat tasks hold it
    /// for a moment at every frame and tick, so that drop may run on the
    /// runtime, which cannot wait, while the application's thread goes on
    /// (and its process exits) with the close not yet sent.
    fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let last = self.sent.load(Ordering::Acquire);
        let _ = self.out.send(Out::Frame(Bytes::from(wire::close(last))));
        if std::thread::current().name() != Some(super::runtime::THREAD_NAME) {
            let _ = self.flush(CLOSE_FLUSH);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Halves never made (a set-up that failed): close all the same.
        self.close();
    }
}

/// Longest a [`sync`] waits for the server.
const SYNC_LIMIT: Duration = Duration::from_secs(5);

/// Waits until the NATS server has processed everything `client` sent
/// before: a message to a fresh inbox of its own comes back (the server
/// handles a client's operations in order). `client.flush()` alone only
/// hands the bytes to the kernel, which a process that exits next can
/// still lose (a close with unread input resets the TCP connection).
/// `false` when the server did not answer within [`SYNC_LIMIT`].
pub(crate) async fn sync(client: &Client) -> bool {
    use futures_core::Stream;
    let round_trip = async {
        let inbox = client.new_inbox();
        let mut sub = client.subscribe(inbox.clone()).await.ok()?;
        client.publish(inbox, Bytes::new()).await.ok()?;
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut sub).poll_next(cx)).await
    };
    matches!(
        tokio::time::timeout(SYNC_LIMIT, round_trip).await,
        Ok(Some(_))
    )
}

/// Waits until everything the connection queued reached the server: run
/// once the handshake concluded, so that a connect that returned has had
/// its verdict delivered whatever the process does next.
pub(crate) fn settle(shared: &Shared, deadline: Deadline) -> Result<()> {
    shared.flush(deadline.remaining().unwrap_or(CLOSE_FLUSH))
}

fn waited(deadline: Deadline) -> Error {
    match deadline {
        Deadline::Now => Error::WouldBlock,
        _ => Error::Timeout,
    }
}

fn ended(end: &End) -> Error {
    match end {
        End::Closed => Error::Disconnected,
        End::Silent(d) => {
            tracing::debug!(silent = ?d, "nats: peer silent, taken as gone");
            Error::Disconnected
        }
        End::Broken(why) => Error::Protocol(why.clone()),
    }
}

/// Starts the tasks of a connection that publishes on `out_subject` and
/// reads `incoming`, and returns what its halves share.
pub(crate) fn start(
    client: Client,
    out_subject: Subject,
    incoming: Subscriber,
    heartbeat: Duration,
    max: usize,
) -> Result<Arc<Shared>> {
    let rt = super::runtime::handle()?;
    // `incoming` is dropped here on an early return; its drop needs a runtime.
    let _enter = rt.enter();
    let event = || Event::new().map_err(|e| Error::io("nats: eventfd", e));
    let (out, out_rx) = mpsc::unbounded_channel();
    let (alive, alive_rx) = watch::channel(());
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            inbox: VecDeque::new(),
            expected: 1,
            granted_msgs: WINDOW_MSGS,
            granted_bytes: WINDOW_BYTES,
            consumed_msgs: 0,
            consumed_bytes: 0,
            conveyed_msgs: 0,
            conveyed_bytes: 0,
            allowed_msgs: WINDOW_MSGS,
            peer_blocked: false,
            heard: Instant::now(),
            hello: None,
            verdict: None,
            end: None,
            max,
            waiting: 0,
        }),
        cond: Condvar::new(),
        rx_bell: event()?,
        tx_bell: event()?,
        rx_armed: AtomicBool::new(false),
        tx_armed: AtomicBool::new(false),
        out: out.clone(),
        client: client.clone(),
        subject: out_subject.clone(),
        _alive: alive,
        sent: std::sync::atomic::AtomicU64::new(0),
        halves: AtomicUsize::new(0),
        closed: AtomicBool::new(false),
    });
    rt.spawn(writer(client, out_subject, out_rx));
    rt.spawn(reader(Arc::downgrade(&shared), incoming, alive_rx.clone()));
    rt.spawn(beat(Arc::downgrade(&shared), out, heartbeat, alive_rx));
    Ok(shared)
}

/// Polls `fut` on this thread until it completes or `deadline` passes
/// (`None`: it was dropped unfinished). For futures that need no runtime
/// of their own to make progress (a NATS client's queue: the runtime's
/// connection task drains it).
fn block_on_until<F: std::future::Future>(fut: F, deadline: Deadline) -> Option<F::Output> {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    thread_local! {
        // One per thread, not one per call (an allocation per message): a
        // wake-up left over from an earlier call only makes a later park
        // return early, and the loop polls again.
        static WAKER: Waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    }
    // A fresh one while the thread's locals are being destroyed.
    let waker = WAKER
        .try_with(Waker::clone)
        .unwrap_or_else(|_| Waker::from(Arc::new(Unpark(std::thread::current()))));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return Some(v);
        }
        match deadline {
            Deadline::Now => return None,
            Deadline::Never => std::thread::park(),
            Deadline::At(t) => {
                let left = t.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                std::thread::park_timeout(left);
            }
        }
    }
}

/// Frames the writer takes off its queue at a time.
const WRITER_BATCH: usize = 64;

/// Publishes every frame in order; once every half and task let go of the
/// queue (the close frame is then the last), flushes and ends.
async fn writer(client: Client, subject: Subject, mut frames: mpsc::UnboundedReceiver<Out>) {
    // Whatever queued while the last batch went out is taken at once.
    let mut batch = Vec::with_capacity(WRITER_BATCH);
    while frames.recv_many(&mut batch, WRITER_BATCH).await > 0 {
        for out in batch.drain(..) {
            match out {
                Out::Frame(frame) => {
                    if let Err(e) = client.publish(subject.clone(), frame).await {
                        tracing::debug!(%subject, error = %e, "nats: publish failed");
                        return;
                    }
                }
                Out::Flush(done) => {
                    let ok = sync(&client).await;
                    let _ = done.try_send(ok);
                }
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), client.flush()).await;
}

async fn reader(shared: Weak<Shared>, mut sub: Subscriber, mut alive: watch::Receiver<()>) {
    use futures_core::Stream;
    use std::task::Poll;
    let mut batch = Vec::with_capacity(READER_BATCH);
    loop {
        let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut sub).poll_next(cx));
        let msg = tokio::select! {
            m = next => m,
            _ = alive.changed() => return,
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Some(msg) = msg else {
            end(&shared, End::Broken("nats: the subscription ended".into()));
            return;
        };
        // With it, whatever else already arrived: taken under one lock,
        // with one wake-up of the half waiting for it.
        batch.push(msg.payload);
        let mut over = false;
        while batch.len() < READER_BATCH {
            let more =
                std::future::poll_fn(|cx| match std::pin::Pin::new(&mut sub).poll_next(cx) {
                    Poll::Ready(m) => Poll::Ready(Some(m)),
                    Poll::Pending => Poll::Ready(None),
                })
                .await;
            match more {
                Some(Some(m)) => batch.push(m.payload),
                Some(None) => {
                    over = true;
                    break;
                }
                None => break,
            }
        }
        if let Err(e) = take(&shared, batch.drain(..)) {
            let why = match e {
                Error::Protocol(why) => why,
                e => e.to_string(),
            };
            end(&shared, End::Broken(why));
            return;
        }
        if over {
            end(&shared, End::Broken("nats: the subscription ended".into()));
            return;
        }
    }
}

/// Frames the reader takes into the state at a time, at most.
const READER_BATCH: usize = 256;

fn end(shared: &Shared, why: End) {
    let mut g = shared.lock();
    if g.end.is_none() {
        g.end = Some(why);
    }
    drop(g);
    shared.ring();
}

/// Takes incoming frames into the state, under one lock, and wakes the
/// halves that wait for what they brought.
fn take(shared: &Shared, frames: impl Iterator<Item = Bytes>) -> Result<()> {
    let mut g = shared.lock();
    // Once per batch (a clock read per frame was 2 % of a small message's
    // cost): the frames arrived together.
    g.heard = Instant::now();
    let (mut rx, mut tx) = (false, false);
    for payload in frames {
        let (r, t) = take_one(shared, &mut g, payload)?;
        rx |= r;
        tx |= t;
    }
    // Only a half that waits is woken: a blocked thread (the condition
    // variable) or an async task (the doorbell, once armed: it looks
    // again after arming, so a frame taken before is not missed).
    let waiting = g.waiting > 0;
    drop(g);
    if waiting && (rx || tx) {
        shared.cond.notify_all();
    }
    if rx && shared.rx_armed.load(Ordering::SeqCst) {
        shared.rx_bell.notify();
    }
    if tx && shared.tx_armed.load(Ordering::SeqCst) {
        shared.tx_bell.notify();
    }
    Ok(())
}

/// Takes one frame into the state; whether the receiving and the sending
/// half may have to be woken.
fn take_one(shared: &Shared, g: &mut State, payload: Bytes) -> Result<(bool, bool)> {
    if g.end.is_some() {
        return Ok((false, false));
    }
    match wire::decode(&payload)? {
        Frame::Heartbeat => return Ok((false, false)),
        Frame::Hello(_) => g.hello = Some(payload.slice(1..)),
        Frame::Verdict(v) => g.verdict = Some(v),
        Frame::Data { seq, body } => {
            if seq != g.expected {
                return Err(Error::protocol(format!(
                    "nats: message {} lost (the next one to arrive was {seq}): the server dropped it (a slow consumer?)",
                    g.expected
                )));
            }
            if body.len() > g.max {
                return Err(Error::protocol(format!(
                    "nats: a message of {} bytes exceeds the agreed max_message_size {}",
                    body.len(),
                    g.max
                )));
            }
            if seq > g.allowed_msgs {
                return Err(Error::protocol(format!(
                    "nats: the peer sent message {seq} beyond the {} it was allowed",
                    g.allowed_msgs
                )));
            }
            g.expected += 1;
            g.inbox.push_back(payload.slice(wire::DATA_HEADER..));
        }
        Frame::Credit { msgs, bytes } => {
            g.granted_msgs = g.granted_msgs.max(msgs);
            g.granted_bytes = g.granted_bytes.max(bytes);
            return Ok((false, true));
        }
        Frame::Blocked => {
            if g.consumed_msgs > g.conveyed_msgs {
                let (m, b) = (g.consumed_msgs, g.consumed_bytes);
                // A grant that cannot go out means the writer is gone,
                // which the end of the connection reports.
                let _ = grant(shared, g, m, b);
            } else {
                g.peer_blocked = true;
            }
            return Ok((false, false));
        }
        Frame::Close { last } => {
            g.end = Some(if last + 1 == g.expected {
                End::Closed
            } else {
                End::Broken(format!(
                    "nats: the peer closed after message {last}, but only {} arrived: the server dropped the rest",
                    g.expected - 1
                ))
            });
            // The end: a sender waiting for credit learns it too.
            return Ok((true, true));
        }
    }
    Ok((true, false))
}

/// Grants the peer credit up to `msgs`/`bytes` consumed plus the window.
fn grant(shared: &Shared, g: &mut State, msgs: u64, bytes: u64) -> Result<()> {
    g.conveyed_msgs = msgs;
    g.conveyed_bytes = bytes;
    g.allowed_msgs = msgs + GRANT_MSGS;
    g.peer_blocked = false;
    shared.publish(wire::credit(msgs + GRANT_MSGS, bytes + WINDOW_BYTES))
}

async fn beat(
    shared: Weak<Shared>,
    out: mpsc::UnboundedSender<Out>,
    every: Duration,
    mut alive: watch::Receiver<()>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = alive.changed() => return,
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let silent = shared.lock().heard.elapsed();
        if silent > every * SILENT_INTERVALS {
            end(&shared, End::Silent(silent));
            return;
        }
        if out
            .send(Out::Frame(Bytes::from_static(&[wire::HEARTBEAT])))
            .is_err()
        {
            return;
        }
    }
}

/// The sending half of a `nats://` connection.
#[derive(Debug)]
pub struct NatsSender {
    shared: Arc<Shared>,
    link: Link,
    max: usize,
    /// Totals sent.
    msgs: u64,
    bytes: u64,
    /// The grant this half last asked more of (`BLOCKED` once per grant).
    asked: Option<(u64, u64)>,
    /// Messages are published from the calling thread (blocking API);
    /// through the writer task once driven by the async layer.
    direct: bool,
}

/// The receiving half of a `nats://` connection.
#[derive(Debug)]
pub struct NatsReceiver {
    shared: Arc<Shared>,
    link: Link,
}

/// Both halves of a new connection (before the handshake: limited to
/// hellos until [`set_max`]).
pub(crate) fn halves(shared: &Arc<Shared>) -> (NatsSender, NatsReceiver) {
    shared.halves.fetch_add(2, Ordering::AcqRel);
    let link = Link::new();
    // A local close wakes a blocked send or receive, and an async half.
    let weak = Arc::downgrade(shared);
    link.on_close(Box::new(move || {
        if let Some(shared) = weak.upgrade() {
            let _held = shared.lock();
            shared.cond.notify_all();
            shared.tx_bell.notify();
            shared.rx_bell.notify();
        }
    }));
    (
        NatsSender {
            shared: Arc::clone(shared),
            link: link.clone(),
            max: 0,
            msgs: 0,
            bytes: 0,
            asked: None,
            direct: true,
        },
        NatsReceiver {
            shared: Arc::clone(shared),
            link,
        },
    )
}

/// Sets the largest message the sender sends. (What the receiver accepts
/// is this side's own limit until the handshake agreed one: the peer may
/// send as soon as it has concluded.)
pub(crate) fn set_max(tx: &mut NatsSender, max: usize) {
    tx.max = max;
}

impl Drop for NatsSender {
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl Drop for NatsReceiver {
    fn drop(&mut self) {
        self.shared.release();
    }
}

impl Sender for NatsSender {
    fn send_until(&mut self, msg: &[u8], deadline: Deadline) -> Result<()> {
        self.link.admit(msg.len(), self.max)?;
        let len = msg.len() as u64;
        let shared = Arc::clone(&self.shared);
        let mut g = shared.lock();
        loop {
            if let Some(end) = &g.end {
                // The peer is gone or broke the protocol: nothing more goes out.
                let e = ended(end);
                drop(g);
                return self.link.observe(Err(match e {
                    Error::Protocol(_) => e,
                    _ => Error::Disconnected,
                }));
            }
            let fits_msgs = self.msgs < g.granted_msgs;
            let read_all = self.bytes + WINDOW_BYTES <= g.granted_bytes;
            let fits_bytes = self.bytes + len <= g.granted_bytes || read_all;
            if fits_msgs && fits_bytes {
                break;
            }
            let grant = (g.granted_msgs, g.granted_bytes);
            if self.asked != Some(grant) {
                self.asked = Some(grant);
                shared.publish(vec![wire::BLOCKED])?;
            }
            let (g2, more) = shared.wait(g, deadline);
            g = g2;
            self.link.check()?;
            if !more {
                return Err(waited(deadline));
            }
        }
        drop(g);
        let frame = wire::data(self.msgs + 1, msg);
        if self.direct {
            // Straight into the NATS client's queue from this thread (no
            // hop through the writer task); nothing is sent when the
            // deadline passes first.
            let publish = shared
                .client
                .publish(shared.subject.clone(), Bytes::from(frame));
            match block_on_until(publish, deadline) {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "nats: publish failed");
                    return self.link.observe(Err(Error::Disconnected));
                }
                None => return Err(waited(deadline)),
            }
        } else {
            shared.publish(frame)?;
        }
        self.msgs += 1;
        self.bytes += len;
        self.shared.sent.store(self.msgs, Ordering::Release);
        Ok(())
    }

    fn max_message_size(&self) -> usize {
        self.max
    }
}

impl Receiver for NatsReceiver {
    fn recv_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        // The connection may be known gone (the sending half saw the end):
        // what arrived before is still read first.
        let mut gone = self.gone()?;
        let shared = Arc::clone(&self.shared);
        let mut g = shared.lock();
        loop {
            if let Some(msg) = g.inbox.pop_front() {
                g.consumed_msgs += 1;
                g.consumed_bytes += msg.len() as u64;
                let (m, b) = (g.consumed_msgs, g.consumed_bytes);
                if g.allowed_msgs.saturating_sub(m) <= GRANT_MSGS / 2
                    || b - g.conveyed_bytes >= WINDOW_BYTES / 2
                    || g.peer_blocked
                {
                    // The message is delivered either way: a grant that
                    // cannot go out means the writer is gone, which the
                    // end of the connection reports.
                    let _ = grant(&shared, &mut g, m, b);
                }
                drop(g);
                buf.clear();
                buf.extend_from_slice(&msg);
                return Ok(());
            }
            if let Some(end) = &g.end {
                let e = ended(end);
                drop(g);
                return self.link.observe(Err(e));
            }
            if gone {
                return Err(Error::Disconnected);
            }
            let (g2, more) = shared.wait(g, deadline);
            g = g2;
            gone = self.gone()?;
            if !more && !gone {
                return Err(waited(deadline));
            }
        }
    }
}

impl NatsReceiver {
    /// Whether the connection is known gone; `Err(Closed)` once closed here.
    fn gone(&self) -> Result<bool> {
        match self.link.check() {
            Ok(()) => Ok(false),
            Err(Error::Disconnected) => Ok(true),
            Err(e) => Err(e),
        }
    }
}

impl Pollable for NatsSender {
    fn source(&self) -> Option<Source<'_>> {
        Some(Source {
            fd: self.shared.tx_bell.as_fd(),
            interest: Interest::Read,
            doorbell: true,
            death: None,
        })
    }

    fn arm(&self) {
        self.shared.tx_armed.store(true, Ordering::SeqCst);
    }

    fn enter_async(&mut self) {
        // Never waits inside an operation: messages go through the writer.
        self.direct = false;
    }

    fn disarm(&self) {
        self.shared.tx_armed.store(false, Ordering::SeqCst);
    }

    fn link(&self) -> &Link {
        &self.link
    }

    fn drop_may_wait(&self) -> bool {
        // The last half's drop waits for the close to reach the server.
        true
    }
}

impl Pollable for NatsReceiver {
    fn source(&self) -> Option<Source<'_>> {
        Some(Source {
            fd: self.shared.rx_bell.as_fd(),
            interest: Interest::Read,
            doorbell: true,
            death: None,
        })
    }

    fn arm(&self) {
        self.shared.rx_armed.store(true, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.shared.rx_armed.store(false, Ordering::SeqCst);
    }

    fn link(&self) -> &Link {
        &self.link
    }

    fn drop_may_wait(&self) -> bool {
        true
    }
}

/// The handshake's [`Wire`]: hello and verdict as frames of their own.
pub(crate) struct HandshakeWire<'a>(pub(crate) &'a Shared);

impl HandshakeWire<'_> {
    fn take<T>(
        &self,
        deadline: Deadline,
        mut pick: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T> {
        let mut g = self.0.lock();
        loop {
            if let Some(t) = pick(&mut g) {
                return Ok(t);
            }
            if let Some(end) = &g.end {
                return Err(ended(end));
            }
            let (g2, more) = self.0.wait(g, deadline);
            g = g2;
            if !more {
                return Err(Error::Timeout);
            }
        }
    }
}

impl Wire for HandshakeWire<'_> {
    fn send_hello(&mut self, hello: &[u8], _: Deadline) -> Result<()> {
        self.0.publish(wire::with_body(wire::HELLO, hello))
    }

    fn recv_hello(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let hello = self.take(deadline, |s| s.hello.take())?;
        if hello.len() > ipc_core::handshake::MAX_HELLO_LEN {
            return Err(Error::protocol("nats: the peer's hello is too long"));
        }
        buf.clear();
        buf.extend_from_slice(&hello);
        Ok(())
    }

    fn send_verdict(&mut self, verdict: u8, _: Deadline) -> Result<()> {
        self.0.publish(vec![wire::VERDICT, verdict])
    }

    fn recv_verdict(&mut self, deadline: Deadline) -> Result<u8> {
        self.take(deadline, |s| s.verdict.take())
    }
}

/// The channel of a `nats://` connection.
pub type NatsChannel = ipc_core::Duplex<NatsSender, NatsReceiver>;

/// Assembles the channel once the handshake agreed `peer`.
pub(crate) fn channel(mut tx: NatsSender, rx: NatsReceiver, peer: PeerInfo) -> NatsChannel {
    set_max(&mut tx, peer.max_message_size);
    tx.shared.lock().max = peer.max_message_size;
    ipc_core::Duplex {
        sender: tx,
        receiver: rx,
        peer,
    }
}

/// How long after its death a peer is reported gone: three heartbeat
/// intervals of silence, plus up to one interval before the check runs.
pub fn death_bound(heartbeat: Duration) -> Duration {
    heartbeat * (SILENT_INTERVALS + 1)
}

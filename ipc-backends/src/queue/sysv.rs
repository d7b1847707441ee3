//! `sysv-mq:PATH` on System V message queues ([sysvipc(7)]).
//!
//! - The rendezvous is the queue under key `ftok(PATH, 'x')` (the listener
//!   creates an empty file at `PATH` if none is there, and removes it when
//!   it closes).
//! - A client creates two private queues (`IPC_PRIVATE`, `mode=` bits),
//!   `up` and `down`; the request's two numbers are their ids.
//! - System V queues outlive their processes: each is recorded in the
//!   registry under the side that reads it, which removes it on close, so
//!   `ipcx clean` and the next listener on the endpoint remove those of
//!   dead owners ([`remove_orphans`]).
//! - These queues cannot be polled. Blocking waits sit in `msgrcv` and
//!   `msgsnd`, and what must wake them removes the queue (`EIDRM`): the
//!   process's death watcher (`conn::watch`, one thread for every
//!   connection), on the peer's death, flags the connection, removes the
//!   queue this side sends on, and removes the one it reads if it is
//!   empty; otherwise the reader drains it, and having seen the flag
//!   never blocks on it again. Closing the listener removes the rendezvous
//!   queue under its accepting thread.
//!
//! [sysvipc(7)]: https://man7.org/linux/man-pages/man7/sysvipc.7.html

use std::fmt::Display;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ipc_core::{Deadline, Duplex, Endpoint, Error, Result, Schema, Transport};

use super::{Kernel, Opened, Pair, REQUEST_BUF, Rendezvous, Sizing, sizing};
use crate::conn::accept::{Acceptor, Closer};
use crate::conn::fail;
use crate::conn::request::{self, Request};
use crate::conn::watch::{self, Wake, Watch};
use crate::fragment::{FragmentReceiver, FragmentSender, Taken, UnitSink, UnitSource};
use crate::registry::{self, Kind, Record};
use crate::sys::Context;
use crate::sys::backoff::Backoff;
use crate::sys::process;
use crate::sys::sysv_msg::{self, MsgBuf, MsgQueue, Op};

/// `ftok` project id of rendezvous keys.
const PROJECT: u8 = b'x';
/// How often a timed wait re-checks a queue that cannot be polled, at
/// most: the pause starts at [`FIRST_PAUSE`] and doubles up to this, so
/// an answer that comes quickly (a handshake's) is seen quickly, and a
/// long wait costs one wake-up per slice.
const SLICE: Duration = Duration::from_micros(500);
/// The first pause of a timed wait.
const FIRST_PAUSE: Duration = Duration::from_micros(10);

/// The System V message queue transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysvMq;

/// A connection over two System V queues.
pub type SysvMqChannel = Duplex<SysvMqSender, SysvMqReceiver>;
/// Sending half.
pub type SysvMqSender = FragmentSender<SysvOut>;
/// Receiving half; removes its queue when dropped.
pub type SysvMqReceiver = FragmentReceiver<SysvIn>;
/// Accepts connections on a rendezvous queue.
pub type SysvMqListener = Acceptor<SysvMqChannel>;

impl Transport for SysvMq {
    type Listener = SysvMqListener;
    type Channel = SysvMqChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<SysvMqListener> {
        super::listen::<SysvMq>(endpoint, schema)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<SysvMqChannel> {
        super::connect::<SysvMq>(endpoint, schema)
    }
}

/// Removes the queues of dead owners (all, or those of one endpoint).
/// Returns how many were removed.
pub fn remove_orphans(endpoint: Option<&str>) -> usize {
    let mut n = 0;
    for r in registry::orphans() {
        if r.kind != Kind::SysvQueue || endpoint.is_some_and(|e| e != r.endpoint) {
            continue;
        }
        if r.remove().is_ok() {
            n += 1;
            tracing::warn!(
                endpoint = %r.endpoint,
                object = %r.id,
                owner.pid = r.pid,
                "removed the queue of a dead process"
            );
        }
    }
    n
}

/// A queue of this transport, recorded in the registry while it exists
/// and owned (removed on drop) by the side that created it until it is
/// handed to its reader.
#[derive(Debug)]
pub(crate) struct Queue {
    q: MsgQueue,
    endpoint: String,
}

impl Queue {
    /// A new private queue, owned and recorded.
    fn create(endpoint: &Endpoint) -> Result<Queue> {
        let q = MsgQueue::create(None, endpoint.options().mode)
            .context(|| format!("{endpoint}: msgget(IPC_PRIVATE)"))?;
        let q = Queue {
            q,
            endpoint: endpoint.to_string(),
        };
        q.record();
        Ok(q)
    }

    fn record(&self) {
        let r = Record::mine(
            Kind::SysvQueue,
            self.q.id().to_string(),
            self.endpoint.clone(),
        );
        let _ = registry::register(&r);
    }

    /// Removes the queue now (waking blocked callers) and its record. The
    /// record goes on every call: the thread that removed the queue first
    /// (a watcher) may be cut short by the exit of the process it woke.
    fn remove(&self) {
        let _ = self.q.remove();
        registry::unregister(Kind::SysvQueue, &self.q.id().to_string());
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.q.is_owned() && !self.q.is_removed() {
            self.remove();
        }
    }
}

/// What the death watcher does when a connection's peer exits: removes
/// the queue this side sends on (waking a blocked `msgsnd` with `EIDRM`),
/// and the queue it reads if nothing is left in it (waking a blocked
/// `msgrcv`). A queue still holding messages stays for the reader, which
/// drains it without blocking once the flag is set (it reads the flag
/// before each blocking `msgrcv`; the flag is set before the queue is
/// looked at).
#[derive(Debug)]
struct Queues {
    send: Arc<Queue>,
    recv: Arc<Queue>,
}

impl Wake for Queues {
    fn on_peer_exit(&self) {
        self.send.remove();
        if self.recv.q.status().is_ok_and(|s| s.messages == 0) {
            self.recv.remove();
        }
    }
}

/// A connection's registration with the death watcher, shared by its
/// halves.
#[derive(Debug)]
struct Watched {
    watch: Watch,
    _queues: Arc<Queues>,
}

/// Whether the watcher saw the peer exit.
fn gone(w: &Option<Arc<Watched>>) -> bool {
    w.as_ref().is_some_and(|w| w.watch.gone())
}

/// The queue a [`SysvMqSender`] writes.
#[derive(Debug)]
pub struct SysvOut {
    q: Arc<Queue>,
    buf: MsgBuf,
    watch: Option<Arc<Watched>>,
}

impl SysvOut {
    fn new(q: Arc<Queue>, unit: usize) -> SysvOut {
        SysvOut {
            q,
            buf: MsgBuf::with_text_capacity(unit),
            watch: None,
        }
    }
}

/// The growing pause of one timed wait on a queue: from [`FIRST_PAUSE`],
/// doubling up to [`SLICE`].
fn pause() -> Backoff {
    Backoff::new(FIRST_PAUSE, SLICE)
}

impl UnitSink for SysvOut {
    fn put(&mut self, head: &[u8], data: &[u8], deadline: Deadline) -> Result<()> {
        let mut backoff = pause();
        loop {
            // Blocking in msgsnd is safe only with a watcher that removes
            // the queue when the peer dies (EIDRM then wakes the call).
            let nowait = deadline != Deadline::Never || self.watch.is_none();
            match self
                .q
                .q
                .send(&mut self.buf, &[head, data], nowait)
                .context(|| "msgsnd".into())?
            {
                Op::Done(_) => return Ok(()),
                Op::Removed => return Err(Error::Disconnected),
                Op::WouldBlock => {
                    if gone(&self.watch) {
                        return Err(Error::Disconnected);
                    }
                    if !backoff.pause(deadline) {
                        return Err(deadline.elapsed_error());
                    }
                }
            }
        }
    }
}

impl Drop for SysvOut {
    fn drop(&mut self) {
        // The queue we write is the peer's to remove. A peer that died
        // cannot (the watcher removed it, but do it here too: the record
        // goes on this thread). Nobody will read it: remove it.
        if gone(&self.watch) {
            self.q.remove();
        }
        if let Some(w) = &self.watch {
            w.watch.settle();
        }
    }
}

/// The queue a [`SysvMqReceiver`] reads; removed when dropped.
#[derive(Debug)]
pub struct SysvIn {
    q: Arc<Queue>,
    /// The pause of the current timed wait (reset by each unit taken).
    backoff: Backoff,
    /// The largest unit accepted.
    max: usize,
    buf: MsgBuf,
    watch: Option<Arc<Watched>>,
}

impl SysvIn {
    fn new(q: Arc<Queue>, unit: usize) -> SysvIn {
        // Receive whatever unit the peer chose, up to the kernel's msgmax.
        let max = sizing::sysv_receive_max(unit);
        SysvIn {
            q,
            backoff: pause(),
            max,
            buf: MsgBuf::with_text_capacity(max),
            watch: None,
        }
    }
}

impl UnitSource for SysvIn {
    fn take(&mut self, block: bool) -> Result<Taken> {
        // Blocking in msgrcv is safe only with a watcher that removes the
        // queue when the peer dies (EIDRM then wakes the call), and only
        // before it flagged the peer gone: it then leaves a queue that
        // still holds messages for us to drain.
        let nowait = !block || self.watch.is_none() || gone(&self.watch);
        let got = self.q.q.receive(&mut self.buf, self.max, nowait);
        Ok(match got.context(|| "msgrcv".into())? {
            Op::Done(n) => {
                self.backoff = pause();
                Taken::Unit(n)
            }
            Op::Removed => Taken::Removed,
            Op::WouldBlock => Taken::Empty,
        })
    }

    fn unit(&mut self, len: usize) -> &[u8] {
        &self.buf.text_mut()[..len]
    }

    fn peer_exited(&self) -> Result<bool> {
        Ok(gone(&self.watch))
    }

    fn wait(&mut self, deadline: Deadline) -> Result<()> {
        match self.backoff.pause(deadline) {
            true => Ok(()),
            false => Err(deadline.elapsed_error()),
        }
    }

    fn unblocker(&self) -> Option<crate::aio::Unblock> {
        // Removing the queue wakes `msgrcv` with EIDRM; it is removed on
        // drop anyway.
        let q = Arc::clone(&self.q);
        Some(Box::new(move || q.remove()))
    }
}

impl Drop for SysvIn {
    fn drop(&mut self) {
        // The reader removes a queue.
        self.q.remove();
        if let Some(w) = &self.watch {
            w.watch.settle();
        }
    }
}

/// The listener's rendezvous queue. Its closer removes it, which wakes the
/// accepting thread's `msgrcv` with `EIDRM`; the queue and (if ours) the
/// key file are removed when it is dropped.
pub(crate) struct RendezvousQueue {
    q: Arc<Queue>,
    buf: MsgBuf,
    /// The key file.
    path: String,
    /// We created the key file.
    created_file: bool,
}

impl Rendezvous for RendezvousQueue {
    fn next(&mut self, buf: &mut [u8; REQUEST_BUF]) -> Result<Option<usize>> {
        loop {
            let got = self
                .q
                .q
                .receive_cut(&mut self.buf, REQUEST_BUF)
                .context(|| format!("{}: msgrcv", self.q.endpoint))?;
            match got {
                Op::Done(n) => {
                    buf[..n].copy_from_slice(&self.buf.text_mut()[..n]);
                    return Ok(Some(n));
                }
                Op::Removed if self.q.q.is_removed() => return Ok(None),
                Op::Removed => {
                    return Err(Error::io(
                        format!("{}: msgrcv", self.q.endpoint),
                        std::io::Error::other(
                            "the rendezvous queue was removed by another process (ipcrm?); listen again",
                        ),
                    ));
                }
                Op::WouldBlock => {}
            }
        }
    }

    fn closer(&self) -> Closer {
        let q = self.q.clone();
        Box::new(move || q.remove())
    }

    fn id(&self) -> String {
        self.q.q.id().to_string()
    }
}

impl Drop for RendezvousQueue {
    fn drop(&mut self) {
        self.q.remove();
        // The ftok key file: ours if we created it, or if it is the empty
        // file a killed listener on this endpoint created.
        let path = &self.path;
        let empty_ours = std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.is_file() && m.len() == 0 && m.uid() == process::uid()
        });
        if self.created_file || empty_ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn key(endpoint: &Endpoint) -> Result<libc::key_t> {
    sysv_msg::key_of(endpoint.address(), PROJECT)
        .map_err(|e| fail::rendezvous(endpoint, &format!("ftok {}", endpoint.address()), e))
}

/// Creates the empty key file at the endpoint's path if none is there;
/// `true` if it did.
fn key_file(endpoint: &Endpoint) -> Result<bool> {
    let path = endpoint.address();
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(format!("{endpoint}: create {path}"), e)),
    }
}

fn queue_error(endpoint: &impl Display, what: &str, q: &MsgQueue, e: std::io::Error) -> Error {
    Error::io(format!("{endpoint}: {what} of queue {}", q.id()), e)
}

impl Kernel for SysvMq {
    const KIND: Kind = Kind::SysvQueue;
    const MAGIC: [u8; 4] = *b"IPCS";
    type Rendezvous = RendezvousQueue;
    type Door = MsgQueue;
    type Out = SysvOut;
    type In = SysvIn;
    type Names = ();
    /// The client's `up` queue, whose last sender is the hello's.
    type Claim = Arc<Queue>;

    fn sizing(endpoint: &Endpoint) -> Result<Sizing> {
        sizing::sysv(endpoint)
    }

    fn create(endpoint: &Endpoint) -> Result<std::result::Result<RendezvousQueue, String>> {
        let created_file = key_file(endpoint)?;
        remove_orphans(Some(&endpoint.to_string()));
        let k = key(endpoint)?;
        match MsgQueue::create(Some(k), endpoint.options().mode) {
            Ok(q) => Ok(Ok(RendezvousQueue {
                q: Arc::new(Queue {
                    q,
                    endpoint: endpoint.to_string(),
                }),
                buf: MsgBuf::with_text_capacity(REQUEST_BUF),
                path: endpoint.address().to_string(),
                created_file,
            })),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let old = MsgQueue::open(k).context(|| format!("{endpoint}: msgget"))?;
                Ok(Err(old.id().to_string()))
            }
            Err(e) => Err(Error::io(format!("{endpoint}: msgget"), e)),
        }
    }

    fn reclaim(endpoint: &Endpoint, id: &str, recorded: bool) -> Result<()> {
        if !recorded {
            return Err(fail::addr_in_use(
                endpoint,
                None,
                &format!(
                    "a queue ipcx did not record has this key (id {id}); remove it with `ipcrm -q {id}` if it is stale, or pick another path"
                ),
            ));
        }
        let Ok(id) = id.parse() else {
            return Err(fail::addr_in_use(endpoint, None, "a queue has this key"));
        };
        let q = MsgQueue::from_id(id);
        q.remove()
            .map_err(|e| queue_error(endpoint, "msgctl(IPC_RMID)", &q, e))
    }

    fn door(endpoint: &Endpoint) -> Result<(MsgQueue, String)> {
        let q =
            MsgQueue::open(key(endpoint)?).map_err(|e| fail::rendezvous(endpoint, "msgget", e))?;
        let id = q.id().to_string();
        Ok((q, id))
    }

    fn create_pair(endpoint: &Endpoint, sizing: &Sizing, _: u32) -> Result<Pair<SysvMq>> {
        let make = || -> Result<Queue> {
            let q = Queue::create(endpoint)?;
            if let Some(c) = sizing.capacity {
                q.q.set_capacity(c * sizing.unit)
                    .map_err(|e| queue_error(endpoint, "msgctl(IPC_SET)", &q.q, e))?;
            }
            Ok(q)
        };
        let up = make()?;
        let down = make()?;
        let request = Request {
            pid: up.q.id() as u32,
            n: down.q.id() as u32,
        };
        // The server reads `up` and removes it; should the request not go
        // out, connect abandons it.
        up.q.set_owned(false);
        Ok(Pair {
            request,
            tx: SysvOut::new(Arc::new(up), sizing.unit),
            rx: SysvIn::new(Arc::new(down), sizing.unit),
            names: (),
        })
    }

    fn knock(
        door: &MsgQueue,
        endpoint: &Endpoint,
        request: &[u8; request::LEN],
        deadline: Deadline,
    ) -> Result<()> {
        let mut buf = MsgBuf::with_text_capacity(request::LEN);
        let mut backoff = pause();
        loop {
            let sent = door
                .send(&mut buf, &[request], true)
                .context(|| format!("{endpoint}: msgsnd"))?;
            match sent {
                Op::Done(_) => return Ok(()),
                Op::Removed => {
                    return Err(fail::no_listener(endpoint, "the listener closed"));
                }
                Op::WouldBlock => {
                    if !backoff.pause(deadline) {
                        return Err(fail::connect_timeout(
                            endpoint,
                            "sending the connect request",
                        ));
                    }
                }
            }
        }
    }

    fn open_pair(endpoint: &Endpoint, req: Request, sizing: &Sizing) -> Result<Opened<SysvMq>> {
        // Per the wire format, the request's two numbers are the queue ids.
        let queue = |id: u32| Queue {
            q: MsgQueue::from_id(id as i32),
            endpoint: endpoint.to_string(),
        };
        let (up, down) = (Arc::new(queue(req.pid)), queue(req.n));
        let status = |q: &Queue| {
            q.q.status()
                .map_err(|e| queue_error(endpoint, "msgctl(IPC_STAT)", &q.q, e))
        };
        let (up_status, down_status) = (status(&up)?, status(&down)?);
        if up_status.creator_uid != down_status.creator_uid {
            return Err(Error::protocol(format!(
                "{endpoint}: the client's two queues were made by different users"
            )));
        }
        if down_status.capacity < sizing.unit {
            return Err(Error::protocol(format!(
                "{endpoint}: the client's queue holds {} bytes, less than one {}-byte message",
                down_status.capacity, sizing.unit
            )));
        }
        Ok(Opened {
            tx: SysvOut::new(Arc::new(down), sizing.unit),
            rx: SysvIn::new(up.clone(), sizing.unit),
            unit: sizing.unit,
            creator: up_status.creator_uid,
            claim: up,
        })
    }

    fn claimant(up: &Arc<Queue>) -> Result<u32> {
        let status =
            up.q.status()
                .map_err(|e| queue_error(&up.endpoint, "msgctl(IPC_STAT)", &up.q, e))?;
        Ok(status.last_sender)
    }

    fn watch(tx: &mut SysvOut, rx: &mut SysvIn, pid: u32) -> Result<bool> {
        if !rx.q.q.is_owned() {
            // The server takes the client's `up`: the reader removes it.
            rx.q.q.set_owned(true);
            rx.q.record();
        }
        let queues = Arc::new(Queues {
            send: tx.q.clone(),
            recv: rx.q.clone(),
        });
        let me: Weak<dyn Wake> = Arc::downgrade(&queues) as Weak<dyn Wake>;
        let watch = watch::watch(pid, process::start_time(pid), me)
            .context(|| format!("sysv-mq: watching the peer (pid {pid})"))?;
        if watch.gone() {
            // Nobody will read what we send.
            tx.q.remove();
            return Ok(false);
        }
        let w = Arc::new(Watched {
            watch,
            _queues: queues,
        });
        tx.watch = Some(w.clone());
        rx.watch = Some(w);
        Ok(true)
    }

    fn abandon(tx: &SysvOut) {
        tx.q.remove();
    }
}

//! `mq:/NAME` — POSIX message queues.
//!
//! The listener owns the rendezvous queue `/ipcx.NAME`, which carries
//! fixed 16-byte connection requests. A client creates two private queues,
//! `/ipcx.NAME.PID.N.up` (client to server) and `.down`, sends a request
//! naming them, and both sides run the handshake over them. The server
//! unlinks both names once it has them open (the client opened them before
//! asking), so a crash leaves nothing behind. Messages larger than a queue
//! message are fragmented ([`crate::fragment`]).
//!
//! Queues have no end of file: a closing sender queues a CLOSE marker, and a
//! waiting side polls the peer's pidfd beside the queue descriptor, so a
//! killed peer is noticed at once.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipc_core::handshake::Hello;
use ipc_core::{Deadline, Duplex, Endpoint, Error, Listener, PeerInfo, Result, Schema, Transport};

use crate::fragment::{self, FragmentReceiver, FragmentSender, Taken, UnitSink, UnitSource};
use crate::handshake;
use crate::registry::{self, Record};
use crate::sys::Context;
use crate::sys::fd::{self, Interest, Ready};
use crate::sys::mqueue::{self, Access, Mq as Queue, Op};
use crate::sys::process::{self, PidFd};

/// Registry kind of a rendezvous queue.
const KIND: &str = "mq";
/// Size of a connection request.
const REQUEST_LEN: usize = 16;
/// Magic of a connection request.
const REQUEST_MAGIC: [u8; 4] = *b"IPCQ";
/// Default queue capacity in kernel messages.
const DEFAULT_CAPACITY: usize = 10;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The POSIX message queue transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mq;

/// A connection over two POSIX queues.
pub type MqChannel = Duplex<MqSender, MqReceiver>;

/// The name of the rendezvous queue of `endpoint` (`mq:/orders` → `/ipcx.orders`).
pub fn rendezvous_name(endpoint: &Endpoint) -> String {
    format!("/ipcx.{}", endpoint.address().trim_start_matches('/'))
}

fn connection_names(rendezvous: &str, pid: u32, n: u32) -> (String, String) {
    (
        format!("{rendezvous}.{pid}.{n}.up"),
        format!("{rendezvous}.{pid}.{n}.down"),
    )
}

struct Sizing {
    capacity: usize,
    unit: usize,
}

fn sizing(endpoint: &Endpoint) -> Result<Sizing> {
    let msg_max = mqueue::proc_limit(mqueue::MSG_MAX_PATH).unwrap_or(10);
    let size_max = mqueue::proc_limit(mqueue::MSGSIZE_MAX_PATH).unwrap_or(8192);
    let capacity = match endpoint.options().capacity {
        Some(c) if c as u64 > msg_max => {
            return Err(Error::Limit {
                endpoint: endpoint.to_string(),
                option: "capacity",
                value: c as u64,
                limit: msg_max,
                source_of_limit: mqueue::MSG_MAX_PATH.to_string(),
                fix: format!(
                    "lower capacity to at most {msg_max} or raise {} (as root)",
                    mqueue::MSG_MAX_PATH
                ),
            });
        }
        Some(c) => c.max(1),
        None => DEFAULT_CAPACITY.min(msg_max as usize).max(1),
    };
    let want = (endpoint.options().max_message_size + fragment::FIRST_HEADER).clamp(
        ipc_core::handshake::MAX_HELLO_LEN + fragment::FIRST_HEADER,
        fragment::DEFAULT_UNIT,
    );
    let unit = want.min(size_max as usize);
    if unit < fragment::MIN_UNIT {
        return Err(Error::Limit {
            endpoint: endpoint.to_string(),
            option: "max_message_size",
            value: unit as u64,
            limit: size_max,
            source_of_limit: mqueue::MSGSIZE_MAX_PATH.to_string(),
            fix: format!("raise {} to at least 1024", mqueue::MSGSIZE_MAX_PATH),
        });
    }
    Ok(Sizing { capacity, unit })
}

fn open_error(endpoint: &Endpoint, call: &str, name: &str, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::EMFILE) => Error::Limit {
            endpoint: endpoint.to_string(),
            option: "capacity",
            value: 0,
            limit: mqueue::rlimit_msgqueue().unwrap_or(0),
            source_of_limit: "RLIMIT_MSGQUEUE (ulimit -q), bytes of queue memory per user".into(),
            fix: "close other connections, lower capacity or max_message_size, or raise ulimit -q"
                .into(),
        },
        Some(libc::ENOSPC) => Error::Limit {
            endpoint: endpoint.to_string(),
            option: "capacity",
            value: 0,
            limit: mqueue::proc_limit("/proc/sys/fs/mqueue/queues_max").unwrap_or(0),
            source_of_limit: "/proc/sys/fs/mqueue/queues_max".into(),
            fix: "close other connections or raise /proc/sys/fs/mqueue/queues_max".into(),
        },
        _ => Error::io(format!("{endpoint}: {call} {name}"), e),
    }
}

/// How long a blocking receive waits in `mq_timedreceive` before it looks
/// at the peer (whose death it then sees within this time).
const RECEIVE_SLICE: Duration = Duration::from_millis(20);

/// Sending half: one queue, written in fragments.
pub type MqSender = FragmentSender<MqOut>;
/// Receiving half: one queue, reassembled.
pub type MqReceiver = FragmentReceiver<MqIn>;

/// The queue an [`MqSender`] writes.
#[derive(Debug)]
pub struct MqOut {
    q: Queue,
    peer: Option<PidFd>,
    scratch: Vec<u8>,
    dead: bool,
}

impl UnitSink for MqOut {
    fn put(&mut self, head: &[u8], data: &[u8], deadline: Deadline) -> Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        self.scratch.extend_from_slice(data);
        loop {
            match self.q.send(&self.scratch).context(|| "mq_send".into())? {
                Op::Done(_) => return Ok(()),
                Op::WouldBlock if self.dead => return Err(Error::Disconnected),
                Op::WouldBlock => wait(&self.q, Interest::Write, self.peer.as_ref(), deadline)?,
            }
        }
    }
}

/// The queue an [`MqReceiver`] reads.
#[derive(Debug)]
pub struct MqIn {
    q: Queue,
    peer: Option<PidFd>,
    unit: Vec<u8>,
}

impl UnitSource for MqIn {
    fn take(&mut self, block: bool) -> Result<Taken> {
        // A blocking receive first waits in the kernel for one slice, so a
        // message that arrives meanwhile costs one call; after that `wait`
        // polls the queue beside the peer's pidfd.
        let got = if block {
            self.q.receive_within(&mut self.unit, RECEIVE_SLICE)
        } else {
            self.q.receive(&mut self.unit)
        };
        Ok(match got.context(|| "mq_timedreceive".into())? {
            Op::Done(n) => Taken::Unit(n),
            Op::WouldBlock => Taken::Empty,
        })
    }

    fn unit(&mut self, len: usize) -> &[u8] {
        &self.unit[..len]
    }

    fn peer_exited(&self) -> Result<bool> {
        self.peer.as_ref().map_or(Ok(false), PidFd::exited)
    }

    fn wait(&mut self, deadline: Deadline) -> Result<()> {
        wait(&self.q, Interest::Read, self.peer.as_ref(), deadline)
    }
}

/// Waits for `q` or the peer's exit; `Disconnected` when the peer exited.
fn wait(q: &Queue, interest: Interest, peer: Option<&PidFd>, deadline: Deadline) -> Result<()> {
    use std::os::fd::AsFd;
    let ready = match peer {
        Some(p) => fd::wait_any(
            &[(q.as_fd(), interest), (p.as_fd(), Interest::Read)],
            deadline,
        )?,
        None => fd::wait_any(&[(q.as_fd(), interest)], deadline)?,
    };
    match ready {
        Ready::TimedOut => Err(deadline.elapsed_error()),
        Ready::Index(1) if interest == Interest::Write => Err(Error::Disconnected),
        Ready::Index(_) => Ok(()),
    }
}

fn halves(up: Queue, down: Queue, unit: usize) -> (MqSender, MqReceiver) {
    (
        FragmentSender::new(
            MqOut {
                q: up,
                peer: None,
                scratch: Vec::with_capacity(unit),
                dead: false,
            },
            unit,
        ),
        FragmentReceiver::new(MqIn {
            q: down,
            peer: None,
            unit: vec![0; unit],
        }),
    )
}

fn finish(mut tx: MqSender, mut rx: MqReceiver, peer: PeerInfo) -> Result<MqChannel> {
    // A peer that already exited still gets a channel: it reports
    // Disconnected once what the peer sent is read.
    match (PidFd::open(peer.pid), PidFd::open(peer.pid)) {
        (Ok(a), Ok(b)) => {
            tx.q.peer = Some(a);
            rx.q.peer = Some(b);
        }
        (Err(Error::Disconnected), _) | (_, Err(Error::Disconnected)) => {
            tx.q.dead = true;
            rx.dead = true;
        }
        (Err(e), _) | (_, Err(e)) => return Err(e),
    }
    Ok(Duplex {
        sender: tx,
        receiver: rx,
        peer,
    })
}

/// Accepts connections on a rendezvous queue.
#[derive(Debug)]
pub struct MqListener {
    endpoint: Endpoint,
    name: String,
    rendezvous: Queue,
    schema: Schema,
}

impl Transport for Mq {
    type Listener = MqListener;
    type Channel = MqChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<MqListener> {
        sizing(endpoint)?;
        let name = rendezvous_name(endpoint);
        let capacity =
            DEFAULT_CAPACITY.min(mqueue::proc_limit(mqueue::MSG_MAX_PATH).unwrap_or(10) as usize);
        let create = || {
            Queue::create(
                &name,
                Access::Read,
                endpoint.options().mode,
                capacity,
                REQUEST_LEN,
            )
        };
        let rendezvous = match create() {
            Ok(q) => q,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                if let Some(owner) = registry::list()
                    .into_iter()
                    .find(|r| r.kind == KIND && r.id == name && r.owner_alive())
                {
                    return Err(Error::io(
                        format!("{endpoint}: mq_open {name}"),
                        std::io::Error::new(
                            std::io::ErrorKind::AddrInUse,
                            format!(
                                "already in use: process {} listens on it; stop it or pick another name",
                                owner.pid
                            ),
                        ),
                    ));
                }
                // Left by a listener that died: reclaim it.
                let _ = mqueue::unlink(&name);
                create().map_err(|e| open_error(endpoint, "mq_open", &name, e))?
            }
            Err(e) => return Err(open_error(endpoint, "mq_open", &name, e)),
        };
        let _ = registry::register(&Record::mine(KIND, name.clone(), endpoint.to_string()));
        Ok(MqListener {
            endpoint: endpoint.clone(),
            name,
            rendezvous,
            schema: schema.clone(),
        })
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<MqChannel> {
        let deadline = Deadline::after(endpoint.options().connect_timeout);
        let Sizing { capacity, unit } = sizing(endpoint)?;
        let name = rendezvous_name(endpoint);
        let rendezvous = Queue::open(&name, Access::Write).map_err(|e| {
            Error::io(
                format!("{endpoint}: mq_open {name} (is a listener running?)"),
                e,
            )
        })?;
        let me = process::pid();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (up_name, down_name) = connection_names(&name, me, n);
        let mode = endpoint.options().mode;
        let create = |q: &str, access| {
            // A name left by an earlier process with our pid is stale.
            let _ = mqueue::unlink(q);
            Queue::create(q, access, mode, capacity, unit)
                .map_err(|e| open_error(endpoint, "mq_open", q, e))
        };
        let cleanup = || {
            let _ = mqueue::unlink(&up_name);
            let _ = mqueue::unlink(&down_name);
        };
        let result = (|| {
            let up = create(&up_name, Access::Write)?;
            let down = create(&down_name, Access::Read)?;
            let mut req = [0u8; REQUEST_LEN];
            req[..4].copy_from_slice(&REQUEST_MAGIC);
            req[4..6].copy_from_slice(&1u16.to_le_bytes());
            req[8..12].copy_from_slice(&me.to_le_bytes());
            req[12..16].copy_from_slice(&n.to_le_bytes());
            loop {
                match rendezvous
                    .send(&req)
                    .context(|| format!("{endpoint}: mq_send {name}"))?
                {
                    Op::Done(_) => break,
                    Op::WouldBlock => wait(&rendezvous, Interest::Write, None, deadline)
                        .map_err(|_| handshake::timed_out(&endpoint.to_string(), "connect"))?,
                }
            }
            let (mut tx, mut rx) = halves(up, down, unit);
            let hello = Hello::new(
                schema,
                me,
                process::uid(),
                endpoint.options().max_message_size,
            );
            let peer = handshake::run(&mut tx, &mut rx, &hello, deadline, |_| Ok(())).map_err(
                |e| match e {
                    Error::Timeout => handshake::timed_out(&endpoint.to_string(), "handshake"),
                    e => e,
                },
            )?;
            finish(tx, rx, peer)
        })();
        cleanup();
        result
    }
}

impl Listener for MqListener {
    type Channel = MqChannel;

    fn accept_until(&mut self, deadline: Deadline) -> Result<MqChannel> {
        let mut req = [0u8; 64];
        let n = loop {
            match self
                .rendezvous
                .receive(&mut req)
                .context(|| format!("{}: mq_receive {}", self.endpoint, self.name))?
            {
                Op::Done(n) => break n,
                Op::WouldBlock => wait(&self.rendezvous, Interest::Read, None, deadline)?,
            }
        };
        if n != REQUEST_LEN || req[..4] != REQUEST_MAGIC {
            return Err(Error::protocol(format!(
                "{}: malformed connection request on {}",
                self.endpoint, self.name
            )));
        }
        if u16::from_le_bytes([req[4], req[5]]) != 1 {
            return Err(Error::protocol(format!(
                "{}: connection request of unknown version",
                self.endpoint
            )));
        }
        let pid = u32::from_le_bytes([req[8], req[9], req[10], req[11]]);
        let k = u32::from_le_bytes([req[12], req[13], req[14], req[15]]);
        let (up_name, down_name) = connection_names(&self.name, pid, k);
        let up = Queue::open(&up_name, Access::Read)
            .map_err(|e| open_error(&self.endpoint, "mq_open", &up_name, e))?;
        let down = Queue::open(&down_name, Access::Write)
            .map_err(|e| open_error(&self.endpoint, "mq_open", &down_name, e))?;
        // Both sides hold both queues now: no name needs to stay.
        let _ = mqueue::unlink(&up_name);
        let _ = mqueue::unlink(&down_name);
        let (_, unit, _) = up.attr().context(|| "mq_getattr".into())?;
        let (_, down_unit, _) = down.attr().context(|| "mq_getattr".into())?;
        if unit < fragment::MIN_UNIT || down_unit != unit {
            return Err(Error::protocol(format!(
                "{}: the client's queues have unusable message sizes",
                self.endpoint
            )));
        }
        let creator = fd::owner(std::os::fd::AsFd::as_fd(&up)).context(|| "fstat".into())?;
        let (mut tx, mut rx) = halves(down, up, unit);
        let hello = Hello::new(
            &self.schema,
            process::pid(),
            process::uid(),
            self.endpoint.options().max_message_size,
        );
        let hs_deadline = Deadline::after(self.endpoint.options().connect_timeout);
        let endpoint = &self.endpoint;
        let peer = handshake::run(&mut tx, &mut rx, &hello, hs_deadline, |remote| {
            if remote.pid != pid {
                return Err(Error::protocol(
                    "the hello's pid differs from the request's",
                ));
            }
            if !endpoint.allows_uid(creator) || remote.uid != creator {
                return Err(Error::PermissionDenied(format!(
                    "{endpoint}: uid {creator} is not in allow_uid"
                )));
            }
            Ok(())
        })?;
        finish(tx, rx, peer)
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for MqListener {
    fn drop(&mut self) {
        let _ = mqueue::unlink(&self.name);
        registry::unregister(KIND, &self.name);
    }
}

//! `mq:/NAME` on POSIX message queues ([mq_overview(7)]).
//!
//! - The rendezvous is the queue `/ipcx.NAME` (16-byte messages), recorded
//!   in the registry under the listener.
//! - A client's queues are `/ipcx.NAME.PID.N.up` and `.down`, created
//!   exclusively with `mode=` and equal message sizes; the request carries
//!   `PID` and `N`. The server unlinks both names once it has them open
//!   (the client opened them before asking), and the client does when its
//!   attempt ends, so a crash leaves nothing behind.
//! - Descriptors are pollable: the listener waits on the rendezvous beside
//!   its stop event, and a waiting side polls its queue beside the peer's
//!   pidfd, so a killed peer is noticed at once.
//!
//! [mq_overview(7)]: https://man7.org/linux/man-pages/man7/mq_overview.7.html

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use ipc_core::{Deadline, Duplex, Endpoint, Error, Result, Schema, Transport};

use super::sizing::Charge;
use super::{Kernel, Opened, Pair, REQUEST_BUF, Rendezvous, Sizing, sizing};
use crate::conn::accept::{Acceptor, Closer, Stop};
use crate::conn::fail;
use crate::conn::link::Link;
use crate::conn::request::{self, Request};
use crate::fragment::{FragmentReceiver, FragmentSender, MIN_UNIT, Taken, UnitSink, UnitSource};
use crate::registry::Kind;
use crate::sys::Context;
use crate::sys::fd::{self, Interest, Ready};
use crate::sys::mqueue::{self, Access, Mq as Queue, Op};
use crate::sys::process::{self, PidFd};

/// How long a blocking receive waits in `mq_timedreceive`, or a blocking
/// send in `mq_timedsend`, before it looks at the peer (whose death it
/// then sees within this time).
const RECEIVE_SLICE: Duration = Duration::from_millis(20);

/// The POSIX message queue transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mq;

/// A connection over two POSIX queues.
pub type MqChannel = Duplex<MqSender, MqReceiver>;
/// Sending half: one queue, written in fragments.
pub type MqSender = FragmentSender<MqOut>;
/// Receiving half: one queue, reassembled.
pub type MqReceiver = FragmentReceiver<MqIn>;
/// Accepts connections on a rendezvous queue.
pub type MqListener = Acceptor<MqChannel>;

/// The name of the rendezvous queue of `endpoint` (`mq:/orders` → `/ipcx.orders`).
pub fn rendezvous_name(endpoint: &Endpoint) -> String {
    format!("/ipcx.{}", endpoint.address().trim_start_matches('/'))
}

fn connection_names(endpoint: &Endpoint, pid: u32, n: u32) -> (String, String) {
    let rendezvous = rendezvous_name(endpoint);
    (
        format!("{rendezvous}.{pid}.{n}.up"),
        format!("{rendezvous}.{pid}.{n}.down"),
    )
}

impl Transport for Mq {
    type Listener = MqListener;
    type Channel = MqChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<MqListener> {
        super::listen::<Mq>(endpoint, schema)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<MqChannel> {
        super::connect::<Mq>(endpoint, schema)
    }
}

/// The queue an [`MqSender`] writes.
#[derive(Debug)]
pub struct MqOut {
    q: Queue,
    peer: Option<Arc<PidFd>>,
    scratch: Vec<u8>,
    /// The peer was gone when the connection was made.
    dead: bool,
    /// The connection's link: its stop is polled beside the queue.
    link: Option<Link>,
}

impl MqOut {
    fn new(q: Queue, unit: usize) -> MqOut {
        MqOut {
            q,
            peer: None,
            scratch: Vec::with_capacity(unit),
            dead: false,
            link: None,
        }
    }
}

impl UnitSink for MqOut {
    fn put(&mut self, head: &[u8], data: &[u8], deadline: Deadline) -> Result<()> {
        self.scratch.clear();
        self.scratch.extend_from_slice(head);
        self.scratch.extend_from_slice(data);
        // A blocking send first waits in the kernel for one slice, as a
        // blocking receive does: a full queue that drains meanwhile costs
        // one call, not a send that fails, a poll and a send again (on one
        // core the queue is full before one send in ten or so). After that
        // `wait` polls the queue beside the peer's pidfd.
        let mut first = deadline == Deadline::Never && !self.dead;
        loop {
            let sent = if std::mem::take(&mut first) {
                self.q.send_within(&self.scratch, RECEIVE_SLICE)
            } else {
                self.q.send(&self.scratch)
            };
            match sent.context(|| "mq_send".into())? {
                Op::Done(_) => return Ok(()),
                Op::WouldBlock if self.dead => return Err(Error::Disconnected),
                Op::WouldBlock => wait(
                    &self.q,
                    Interest::Write,
                    self.peer.as_deref(),
                    self.link.as_ref(),
                    deadline,
                )?,
            }
        }
    }

    fn attach(&mut self, link: &Link) {
        self.link = Some(link.clone());
    }

    fn source(&self) -> Option<crate::aio::Source<'_>> {
        Some(crate::aio::Source {
            fd: self.q.as_fd(),
            interest: Interest::Write,
            doorbell: false,
            death: self.peer.as_ref().map(AsFd::as_fd),
        })
    }
}

/// The queue an [`MqReceiver`] reads.
#[derive(Debug)]
pub struct MqIn {
    q: Queue,
    peer: Option<Arc<PidFd>>,
    unit: Vec<u8>,
    /// On the client, which created (and is charged for) both queues.
    _charge: Option<Charge>,
    /// The connection's link: its stop is polled beside the queue.
    link: Option<Link>,
}

impl MqIn {
    fn new(q: Queue, unit: usize) -> MqIn {
        MqIn {
            q,
            peer: None,
            unit: vec![0; unit],
            _charge: None,
            link: None,
        }
    }
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
        self.peer
            .as_deref()
            .map_or(Ok(false), PidFd::exited)
            .context(|| "poll(pidfd)".into())
    }

    fn wait(&mut self, deadline: Deadline) -> Result<()> {
        wait(
            &self.q,
            Interest::Read,
            self.peer.as_deref(),
            self.link.as_ref(),
            deadline,
        )
    }

    fn attach(&mut self, link: &Link) {
        self.link = Some(link.clone());
    }

    fn source(&self) -> Option<crate::aio::Source<'_>> {
        Some(crate::aio::Source {
            fd: self.q.as_fd(),
            interest: Interest::Read,
            doorbell: false,
            death: self.peer.as_ref().map(AsFd::as_fd),
        })
    }
}

/// Waits for `q`, the peer's exit, or a local close (the link's stop,
/// once a closer exists); `Disconnected` when a sender's peer exited (a
/// receiver then drains what is left), `Closed` on a local close.
fn wait(
    q: &Queue,
    interest: Interest,
    peer: Option<&PidFd>,
    link: Option<&Link>,
    deadline: Deadline,
) -> Result<()> {
    let mut fds = vec![(q.as_fd(), interest)];
    let peer_at = peer.map(|p| {
        fds.push((p.as_fd(), Interest::Read));
        fds.len() - 1
    });
    if let Some(stop) = link.and_then(Link::stop_fd) {
        fds.push((stop, Interest::Read));
    }
    let ready = fd::wait_any(&fds, deadline).context(|| "poll".into())?;
    match ready {
        Ready::TimedOut => Err(deadline.elapsed_error()),
        Ready::Index(0) => Ok(()),
        Ready::Index(i) if Some(i) == peer_at => {
            if interest == Interest::Write {
                Err(Error::Disconnected)
            } else {
                Ok(())
            }
        }
        Ready::Index(_) => Err(Error::Closed),
    }
}

/// The listener's rendezvous queue; unlinked when dropped.
pub(crate) struct RendezvousQueue {
    q: Queue,
    name: String,
    endpoint: String,
    stop: Stop,
}

impl Rendezvous for RendezvousQueue {
    fn next(&mut self, buf: &mut [u8; REQUEST_BUF]) -> Result<Option<usize>> {
        loop {
            let got = self
                .q
                .receive(buf)
                .context(|| format!("{}: mq_receive {}", self.endpoint, self.name))?;
            match got {
                Op::Done(n) => return Ok(Some(n)),
                Op::WouldBlock => {
                    if !self.stop.wait(self.q.as_fd(), Interest::Read)? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn closer(&self) -> Closer {
        self.stop.closer()
    }

    fn id(&self) -> String {
        self.name.clone()
    }
}

impl Drop for RendezvousQueue {
    fn drop(&mut self) {
        let _ = mqueue::unlink(&self.name);
    }
}

/// A client's queue names, unlinked when its connect attempt ends.
pub(crate) struct Names(String, String);

impl Drop for Names {
    fn drop(&mut self) {
        let _ = mqueue::unlink(&self.0);
        let _ = mqueue::unlink(&self.1);
    }
}

impl Kernel for Mq {
    const KIND: Kind = Kind::MqRendezvous;
    const MAGIC: [u8; 4] = *b"IPCQ";
    type Rendezvous = RendezvousQueue;
    type Door = Queue;
    type Out = MqOut;
    type In = MqIn;
    type Names = Names;
    /// The pid in the request: the client's queue names carry it, and
    /// only that process (or one of the same uid) could create them.
    type Claim = u32;

    fn sizing(endpoint: &Endpoint) -> Result<Sizing> {
        sizing::posix(endpoint)
    }

    fn create(endpoint: &Endpoint) -> Result<std::result::Result<RendezvousQueue, String>> {
        let name = rendezvous_name(endpoint);
        let stop = Stop::new(endpoint)?;
        let mode = endpoint.options().mode;
        let capacity = sizing::posix_default_capacity();
        match Queue::create(&name, Access::Read, mode, capacity, request::LEN) {
            Ok(q) => Ok(Ok(RendezvousQueue {
                q,
                name,
                endpoint: endpoint.to_string(),
                stop,
            })),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(Err(name)),
            Err(e) => {
                let sizing = Sizing {
                    unit: request::LEN,
                    capacity: Some(capacity),
                };
                Err(sizing::posix_create_error(endpoint, &name, &sizing, e))
            }
        }
    }

    fn reclaim(endpoint: &Endpoint, id: &str, _recorded: bool) -> Result<()> {
        // Names under /ipcx. are ours: one nobody recorded is stale too.
        match mqueue::unlink(id) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                Err(Error::io(format!("{endpoint}: mq_unlink {id}"), e))
            }
            _ => Ok(()),
        }
    }

    fn door(endpoint: &Endpoint) -> Result<(Queue, String)> {
        let name = rendezvous_name(endpoint);
        let q = Queue::open(&name, Access::Write)
            .map_err(|e| fail::rendezvous(endpoint, &format!("mq_open {name}"), e))?;
        Ok((q, name))
    }

    fn create_pair(endpoint: &Endpoint, sizing: &Sizing, n: u32) -> Result<Pair<Mq>> {
        let pid = process::pid();
        let (up, down) = connection_names(endpoint, pid, n);
        let names = Names(up, down);
        let mode = endpoint.options().mode;
        let capacity = sizing
            .capacity
            .unwrap_or_else(sizing::posix_default_capacity);
        let create = |name: &str, access| {
            // A name left by an earlier process with our pid is stale.
            let _ = mqueue::unlink(name);
            Queue::create(name, access, mode, capacity, sizing.unit)
                .map_err(|e| sizing::posix_create_error(endpoint, name, sizing, e))
        };
        let tx = MqOut::new(create(&names.0, Access::Write)?, sizing.unit);
        let mut rx = MqIn::new(create(&names.1, Access::Read)?, sizing.unit);
        rx._charge = Some(Charge::new());
        Ok(Pair {
            request: Request { pid, n },
            tx,
            rx,
            names,
        })
    }

    fn knock(
        door: &Queue,
        endpoint: &Endpoint,
        request: &[u8; request::LEN],
        deadline: Deadline,
    ) -> Result<()> {
        loop {
            let sent = door
                .send(request)
                .context(|| format!("{endpoint}: mq_send {}", rendezvous_name(endpoint)))?;
            match sent {
                Op::Done(_) => return Ok(()),
                Op::WouldBlock => {
                    if !fd::wait(door.as_fd(), Interest::Write, deadline)
                        .context(|| "poll".into())?
                    {
                        return Err(fail::connect_timeout(
                            endpoint,
                            "sending the connect request",
                        ));
                    }
                }
            }
        }
    }

    fn open_pair(endpoint: &Endpoint, req: Request, _: &Sizing) -> Result<Opened<Mq>> {
        let (up_name, down_name) = connection_names(endpoint, req.pid, req.n);
        let up = Queue::open(&up_name, Access::Read);
        let down = Queue::open(&down_name, Access::Write);
        // Both sides hold both queues now: no name needs to stay.
        let _ = mqueue::unlink(&up_name);
        let _ = mqueue::unlink(&down_name);
        let up = up.context(|| format!("{endpoint}: mq_open {up_name}"))?;
        let down = down.context(|| format!("{endpoint}: mq_open {down_name}"))?;
        let unit = up.attr().context(|| format!("{endpoint}: mq_getattr"))?;
        let down_unit = down.attr().context(|| format!("{endpoint}: mq_getattr"))?;
        if unit.message_size < MIN_UNIT || down_unit.message_size != unit.message_size {
            return Err(Error::protocol(format!(
                "{endpoint}: the client's queues have unusable message sizes ({} and {} bytes)",
                unit.message_size, down_unit.message_size
            )));
        }
        let creator = fd::owner(up.as_fd()).context(|| format!("{endpoint}: fstat {up_name}"))?;
        let unit = unit.message_size;
        Ok(Opened {
            tx: MqOut::new(down, unit),
            rx: MqIn::new(up, unit),
            unit,
            creator,
            claim: req.pid,
        })
    }

    fn claimant(pid: &u32) -> Result<u32> {
        Ok(*pid)
    }

    fn watch(tx: &mut MqOut, rx: &mut MqIn, pid: u32) -> Result<bool> {
        // One pidfd per connection, polled beside the queue by both halves.
        match PidFd::open(pid).context(|| format!("pidfd_open({pid})"))? {
            Some(p) => {
                let p = Arc::new(p);
                tx.peer = Some(p.clone());
                rx.peer = Some(p);
                Ok(true)
            }
            None => {
                tx.dead = true;
                Ok(false)
            }
        }
    }

    fn abandon(_: &MqOut) {
        // The queue goes with its last descriptor; its name is unlinked.
    }
}

//! The kernel-queue transport, once for both kernels: `mq:` (POSIX, in
//! [`posix`]) and `sysv-mq:` (System V, in [`sysv`]).
//!
//! A listener owns a rendezvous queue that carries 16-byte
//! [connect requests](crate::conn::request). A client creates two private
//! queues, `up` (client to server) and `down`, and sends a request naming
//! them. Both sides then run the [handshake](crate::conn::handshake) over
//! the pair, with messages cut into kernel-sized units by
//! [`crate::fragment`]; the listener does its part on a handshake thread
//! ([`Acceptor`]), so `accept` returns established connections only.
//!
//! The same everywhere:
//! - **Rendezvous.** A name held by a live listener (its registry record)
//!   is [`Error::AddrInUse`]; one left by a dead listener is reclaimed.
//!   A client finds no rendezvous, or one whose recorded listener is dead:
//!   [`Error::NoListener`], at once.
//! - **Vetting.** The server checks that the client's hello comes from the
//!   process the kernel names (the request's pid on POSIX, the last sender
//!   on the `up` queue on System V) and applies the one uid policy
//!   ([`authorize`]) to the kernel-recorded owner of the client's queues.
//! - **Lifetime.** The reader of a queue removes it; a side that gives up
//!   before its verdict went out removes the queue it writes too, since the
//!   peer will read nothing more from it.
//! - **Peer death.** Queues have no end of file: a closing sender queues
//!   CLOSE, and each side watches the peer's pid (a pidfd), in the kernel's
//!   own way ([`Kernel::watch`]).
//!
//! What differs between the kernels is [`Kernel`].

pub(crate) mod sizing;

pub mod posix;
pub mod sysv;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use ipc_core::handshake::Hello;
use ipc_core::{Deadline, Duplex, Endpoint, Error, Result, Schema};

use crate::conn::accept::{Acceptor, Closer, Incoming, Next, Raw};
use crate::conn::authorize::{Object, authorize};
use crate::conn::handshake::{self, Framed, Wire};
use crate::conn::request::{self, Request};
use crate::conn::{dial::dial, fail};
use crate::fragment::{self, FragmentReceiver, FragmentSender, UnitSink, UnitSource};
use crate::registry::{self, Kind, Record};

pub(crate) use sizing::Sizing;

/// Numbers this process's connections, naming their queues.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A connection over two kernel queues.
pub(crate) type Channel<K> =
    Duplex<FragmentSender<<K as Kernel>::Out>, FragmentReceiver<<K as Kernel>::In>>;

/// What differs between the POSIX and System V kernels: how queues are
/// named, created, opened and removed, how a unit moves ([`UnitSink`],
/// [`UnitSource`], each with its deadline), how the peer's death is
/// watched, and the kernel's sizing limits.
pub(crate) trait Kernel: Sized + 'static {
    /// Registry kind of the rendezvous queue's record.
    const KIND: Kind;
    /// Magic of this kernel's connect requests.
    const MAGIC: [u8; 4];
    /// The listener's rendezvous queue; dropping it removes it.
    type Rendezvous: Rendezvous;
    /// A client's handle on the rendezvous, to send its request.
    type Door;
    /// The queue a sending half writes.
    type Out: UnitSink + 'static;
    /// The queue a receiving half reads: its reader removes it (or lets go
    /// of the last reference to it) when dropped.
    type In: UnitSource + 'static;
    /// What a client holds until its connect attempt ends (names to remove).
    type Names;
    /// What tells the server which process sent on the client's queue.
    type Claim: Send;

    /// The unit and queue length `endpoint` asks for, checked against the
    /// kernel's limits.
    fn sizing(endpoint: &Endpoint) -> Result<Sizing>;

    /// Creates the rendezvous exclusively: `Ok(Err(id))` when a queue of
    /// registry id `id` is already there.
    fn create(endpoint: &Endpoint) -> Result<std::result::Result<Self::Rendezvous, String>>;
    /// Removes the rendezvous `id` that is in the way: one whose recorded
    /// listener is dead, or (`recorded` false) one nobody recorded, which
    /// a kernel may refuse to touch.
    fn reclaim(endpoint: &Endpoint, id: &str, recorded: bool) -> Result<()>;

    /// Opens the rendezvous to send a request: the door and its registry id.
    fn door(endpoint: &Endpoint) -> Result<(Self::Door, String)>;
    /// Creates a connection's queues: the request naming them, the queue
    /// this side writes (`up`) and the one it reads (`down`).
    fn create_pair(endpoint: &Endpoint, sizing: &Sizing, n: u32) -> Result<Pair<Self>>;
    /// Sends `request` through `door` by `deadline`.
    fn knock(
        door: &Self::Door,
        endpoint: &Endpoint,
        request: &[u8; request::LEN],
        deadline: Deadline,
    ) -> Result<()>;

    /// Opens the queues `req` names and checks their sizes.
    fn open_pair(endpoint: &Endpoint, req: Request, sizing: &Sizing) -> Result<Opened<Self>>;
    /// The pid of the process that sent the client's hello.
    fn claimant(claim: &Self::Claim) -> Result<u32>;

    /// The handshake succeeded with peer `pid`: watch it, so its death ends
    /// a blocked call. `Ok(false)` when it is gone already.
    fn watch(tx: &mut Self::Out, rx: &mut Self::In, pid: u32) -> Result<bool>;
    /// The peer will read nothing more from `tx`: remove it if the kernel
    /// does not by itself.
    fn abandon(tx: &Self::Out);
}

/// A listener's rendezvous queue, read by the accepting thread.
pub(crate) trait Rendezvous: Send + 'static {
    /// Waits for the next message, copies it into `buf` (cut to its size)
    /// and returns its length; `None` once the closer ran.
    ///
    /// # Errors
    /// A failure of the rendezvous itself, which ends the listener.
    fn next(&mut self, buf: &mut [u8; REQUEST_BUF]) -> Result<Option<usize>>;
    /// What wakes a blocked `next`.
    fn closer(&self) -> Closer;
    /// The registry id of the queue.
    fn id(&self) -> String;
}

/// Room for a request and then some: a longer message is malformed.
pub(crate) const REQUEST_BUF: usize = 64;

/// A client's new queues, as [`Kernel::create_pair`] made them.
pub(crate) struct Pair<K: Kernel> {
    pub request: Request,
    pub tx: K::Out,
    pub rx: K::In,
    pub names: K::Names,
}

/// A client's queues, as the server opened them.
pub(crate) struct Opened<K: Kernel> {
    pub tx: K::Out,
    pub rx: K::In,
    /// The unit this side sends in.
    pub unit: usize,
    /// The uid the kernel recorded as the queues' owner.
    pub creator: u32,
    pub claim: K::Claim,
}

/// Listens on `endpoint`.
pub(crate) fn listen<K: Kernel>(
    endpoint: &Endpoint,
    schema: &Schema,
) -> Result<Acceptor<Channel<K>>> {
    let sizing = K::sizing(endpoint)?;
    let rendezvous = claim::<K>(endpoint)?;
    let id = rendezvous.id();
    let _ = registry::register(&Record::mine(K::KIND, id.clone(), endpoint.to_string()));
    tracing::debug!(%endpoint, rendezvous = %id, unit = sizing.unit, "rendezvous queue created");
    let listening = Listening::<K> {
        rendezvous: Some(rendezvous),
        id,
        ctx: Arc::new(Ctx {
            endpoint: endpoint.clone(),
            schema: schema.clone(),
            sizing,
        }),
    };
    Acceptor::start(endpoint.clone(), listening)
}

/// Creates the rendezvous; one in the way is [`Error::AddrInUse`] while
/// its recorded listener lives, and reclaimed once it is dead.
fn claim<K: Kernel>(endpoint: &Endpoint) -> Result<K::Rendezvous> {
    let existing = match K::create(endpoint)? {
        Ok(r) => return Ok(r),
        Err(id) => id,
    };
    let record = registry::read(K::KIND, &existing);
    if let Some(r) = record.as_ref().filter(|r| r.owner_alive()) {
        return Err(fail::addr_in_use(endpoint, Some(r.pid), ""));
    }
    K::reclaim(endpoint, &existing, record.is_some())?;
    registry::unregister(K::KIND, &existing);
    tracing::warn!(
        %endpoint,
        object = %existing,
        owner.pid = record.map(|r| r.pid),
        "reclaimed the rendezvous queue of a dead listener"
    );
    K::create(endpoint)?
        .map_err(|_| fail::addr_in_use(endpoint, None, "another listener took the name meanwhile"))
}

struct Ctx {
    endpoint: Endpoint,
    schema: Schema,
    sizing: Sizing,
}

/// The rendezvous, owned by the accepting thread.
struct Listening<K: Kernel> {
    /// Taken on drop, so the queue is removed before its record.
    rendezvous: Option<K::Rendezvous>,
    id: String,
    ctx: Arc<Ctx>,
}

impl<K: Kernel> Incoming for Listening<K> {
    type Channel = Channel<K>;

    fn next(&mut self) -> Result<Next<Channel<K>>> {
        let Some(r) = self.rendezvous.as_mut() else {
            return Ok(Next::Closed);
        };
        let mut buf = [0u8; REQUEST_BUF];
        let raw = match r.next(&mut buf)? {
            None => Raw::Closed,
            Some(n) => match Request::decode(&buf[..n], K::MAGIC) {
                Ok(req) => Raw::Conn(req),
                Err(e) => Raw::Refused(e),
            },
        };
        let ctx = self.ctx.clone();
        Ok(Next::of(raw, |req| Box::new(move || serve::<K>(req, &ctx))))
    }

    fn closer(&self) -> Closer {
        match &self.rendezvous {
            Some(r) => r.closer(),
            None => Box::new(|| {}),
        }
    }
}

impl<K: Kernel> Drop for Listening<K> {
    fn drop(&mut self) {
        drop(self.rendezvous.take());
        registry::unregister(K::KIND, &self.id);
    }
}

/// Completes the connection a client requested, on a handshake thread.
fn serve<K: Kernel>(req: Request, ctx: &Ctx) -> Result<Channel<K>> {
    let endpoint = &ctx.endpoint;
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    let Opened {
        tx,
        rx,
        unit,
        creator,
        claim,
    } = K::open_pair(endpoint, req, &ctx.sizing)?;
    let halves = fragment::halves(tx, rx, unit);
    establish::<K>(halves, endpoint, &ctx.schema, deadline, |hello| {
        let pid = K::claimant(&claim)?;
        if hello.pid != pid {
            return Err(Error::protocol(format!(
                "the hello's pid {} is not that of the process that sent it ({pid})",
                hello.pid
            )));
        }
        authorize(endpoint, Object::Permissions, pid, creator)
    })
}

/// Connects to `endpoint`, waiting for a listener as the endpoint asks.
pub(crate) fn connect<K: Kernel>(endpoint: &Endpoint, schema: &Schema) -> Result<Channel<K>> {
    dial(endpoint, || connect_once::<K>(endpoint, schema))
}

fn connect_once<K: Kernel>(endpoint: &Endpoint, schema: &Schema) -> Result<Channel<K>> {
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    let sizing = K::sizing(endpoint)?;
    let (door, id) = K::door(endpoint)?;
    if let Some(r) = registry::read(K::KIND, &id).filter(|r| !r.owner_alive()) {
        return Err(fail::no_listener(
            endpoint,
            format!(
                "the rendezvous queue is left from a listener that died (pid {})",
                r.pid
            ),
        ));
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let Pair {
        request,
        tx,
        rx,
        names: _names,
    } = K::create_pair(endpoint, &sizing, n)?;
    let (tx, rx) = fragment::halves(tx, rx, sizing.unit);
    if let Err(e) = K::knock(&door, endpoint, &request.encode(K::MAGIC), deadline) {
        K::abandon(&tx.q);
        return Err(e);
    }
    establish::<K>((tx, rx), endpoint, schema, deadline, |_| Ok(()))
}

/// Runs the handshake over a connection's halves, then watches the peer.
fn establish<K: Kernel>(
    (mut tx, mut rx): (FragmentSender<K::Out>, FragmentReceiver<K::In>),
    endpoint: &Endpoint,
    schema: &Schema,
    deadline: Deadline,
    vet: impl FnOnce(&Hello) -> Result<()>,
) -> Result<Channel<K>> {
    let local = handshake::local_hello(endpoint, schema);
    let mut wire = Noted {
        wire: Framed::new(&mut tx, &mut rx),
        verdict_sent: false,
    };
    let result = handshake::drive(&mut wire, endpoint, &local, deadline, vet);
    let Noted { wire, verdict_sent } = wire;
    let peer = match result {
        Ok(peer) => {
            wire.agree(&peer);
            peer
        }
        Err(e) => {
            // Without our verdict the peer's handshake fails too, and it
            // reads nothing more from our side's queue.
            if !verdict_sent {
                K::abandon(&tx.q);
            }
            return Err(e);
        }
    };
    if !K::watch(&mut tx.q, &mut rx.q, peer.pid)? {
        // Gone already: what it sent is still read, then Disconnected.
        rx.dead = true;
    }
    tracing::debug!(%endpoint, peer.pid, peer.uid, "queue connection established");
    Ok(Duplex {
        sender: tx,
        receiver: rx,
        peer,
    })
}

/// A handshake wire that notes whether this side's verdict went out.
struct Noted<W> {
    wire: W,
    verdict_sent: bool,
}

impl<W: Wire> Wire for Noted<W> {
    fn send_hello(&mut self, hello: &[u8], deadline: Deadline) -> Result<()> {
        self.wire.send_hello(hello, deadline)
    }

    fn recv_hello(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.wire.recv_hello(buf, deadline)
    }

    fn send_verdict(&mut self, verdict: u8, deadline: Deadline) -> Result<()> {
        self.wire.send_verdict(verdict, deadline)?;
        self.verdict_sent = true;
        Ok(())
    }

    fn recv_verdict(&mut self, deadline: Deadline) -> Result<u8> {
        self.wire.recv_verdict(deadline)
    }
}

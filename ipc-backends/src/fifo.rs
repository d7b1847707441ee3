//! `fifo:PATH` — named FIFOs.
//!
//! The listener owns the rendezvous FIFO at `PATH`, which carries
//! connect requests (`conn::request`: 16 bytes, under `PIPE_BUF`, so
//! concurrent clients' writes never interleave). A client creates
//! `PATH.PID.N.up` (client to server) and `PATH.PID.N.down` next to it,
//! opens `down` for reading, sends a request, then opens `up` for writing
//! once the server has opened it. Both FIFOs are unlinked as soon as both
//! sides hold them open. The data then flows as length-prefixed frames
//! ([`crate::stream`]), and end of file or `EPIPE` tells either side that
//! the other is gone.
//!
//! A rendezvous FIFO left by a killed listener is recognised because no
//! process has it open for reading (opening it for writing fails with
//! `ENXIO`): a client gets [`Error::NoListener`] at once, and the next
//! listener replaces it.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipc_core::{Deadline, Endpoint, Error, Result, Schema, Transport};

use crate::conn::accept::{Acceptor, Closer, Incoming, Next, Raw, Stop};
use crate::conn::authorize::{Object, authorize};
use crate::conn::request::{self, Request};
use crate::conn::{dial::dial, fail};
use crate::registry::{self, Kind, Record};
use crate::stream::{self, StreamChannel};
use crate::sys::Context;
use crate::sys::backoff::Backoff;
use crate::sys::fd::{self, Interest};
use crate::sys::pipe::{self, FifoEnd, Io};
use crate::sys::process;
use crate::sys::socket::FileId;

/// Magic of a FIFO connect request.
const MAGIC: [u8; 4] = *b"IPCF";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The named FIFO transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fifo;

/// A connection over two FIFOs.
pub type FifoChannel = StreamChannel;

/// Accepts connections on a rendezvous FIFO.
pub type FifoListener = Acceptor<FifoChannel>;

fn connection_paths(path: &str, pid: u32, n: u32) -> (String, String) {
    (
        format!("{path}.{pid}.{n}.up"),
        format!("{path}.{pid}.{n}.down"),
    )
}

fn io_error(endpoint: &Endpoint, call: &str, path: &str, e: std::io::Error) -> Error {
    Error::io(format!("{endpoint}: {call} {path}"), e)
}

/// The rendezvous FIFO, owned by the accepting thread.
struct Listening {
    rendezvous: OwnedFd,
    id: Option<FileId>,
    stop: Stop,
    ctx: Arc<(Endpoint, Schema)>,
}

impl Transport for Fifo {
    type Listener = FifoListener;
    type Channel = FifoChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<FifoListener> {
        let path = endpoint.address();
        let mode = endpoint.options().mode;
        if let Err(e) = pipe::mkfifo(path, mode) {
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(io_error(endpoint, "mkfifo", path, e));
            }
            match pipe::fifo_at(path) {
                Some((true, uid)) if uid == process::uid() => {}
                _ => {
                    return Err(fail::addr_in_use(
                        endpoint,
                        None,
                        "a file that is not our FIFO is in the way; remove it",
                    ));
                }
            }
            match pipe::open_fifo(path, FifoEnd::Write) {
                Ok(_) => {
                    return Err(fail::addr_in_use(
                        endpoint,
                        None,
                        "a live listener has the FIFO open",
                    ));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    // No reader: left by a listener that died. Replace it.
                    tracing::info!(%endpoint, "reclaimed the FIFO of a dead listener");
                    let _ = std::fs::remove_file(path);
                    pipe::mkfifo(path, mode).map_err(|e| io_error(endpoint, "mkfifo", path, e))?;
                }
                Err(e) => return Err(io_error(endpoint, "open", path, e)),
            }
        }
        let id = crate::sys::socket::file_id(path);
        let _ = registry::register(&Record::mine(
            Kind::FifoRendezvous,
            path,
            endpoint.to_string(),
        ));
        // Read and write: the listener never sees end of file between clients.
        let rendezvous = pipe::open_fifo(path, FifoEnd::Both).map_err(|e| {
            let _ = std::fs::remove_file(path);
            registry::unregister(Kind::FifoRendezvous, path);
            io_error(endpoint, "open", path, e)
        })?;
        let listening = Listening {
            rendezvous,
            id,
            stop: Stop::new(endpoint)?,
            ctx: Arc::new((endpoint.clone(), schema.clone())),
        };
        Acceptor::start(endpoint.clone(), listening)
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<FifoChannel> {
        dial(endpoint, || connect_once(endpoint, schema))
    }
}

fn connect_once(endpoint: &Endpoint, schema: &Schema) -> Result<FifoChannel> {
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    let path = endpoint.address();
    let rendezvous = pipe::open_fifo(path, FifoEnd::Write)
        .map_err(|e| fail::rendezvous(endpoint, &format!("open {path}"), e))?;
    let me = process::pid();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (up, down) = connection_paths(path, me, n);
    let mode = endpoint.options().mode;
    let result = (|| {
        for p in [&up, &down] {
            // A path left by an earlier process with our pid is stale.
            let _ = std::fs::remove_file(p);
            pipe::mkfifo(p, mode).map_err(|e| io_error(endpoint, "mkfifo", p, e))?;
        }
        let down_fd = pipe::open_fifo(&down, FifoEnd::Read)
            .map_err(|e| io_error(endpoint, "open", &down, e))?;
        let req = Request { pid: me, n }.encode(MAGIC);
        loop {
            match pipe::write_two(rendezvous.as_fd(), &req, &[])
                .map_err(|e| io_error(endpoint, "write", path, e))?
            {
                Io::Done(_) => break,
                Io::Closed => {
                    return Err(fail::no_listener(endpoint, "the listener closed the FIFO"));
                }
                Io::WouldBlock => {
                    if !fd::wait(rendezvous.as_fd(), Interest::Write, deadline)
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
        // The server opens `up` for reading when it takes the request.
        let up_fd = loop {
            match pipe::open_fifo(&up, FifoEnd::Write) {
                Ok(fd) => break fd,
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    if deadline.expired() {
                        return Err(fail::connect_timeout(
                            endpoint,
                            "waiting for the listener to take the request",
                        ));
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => return Err(io_error(endpoint, "open", &up, e)),
            }
        };
        let halves = stream::pipe_halves(down_fd, up_fd, 0);
        stream::establish_halves(halves, endpoint, schema, deadline, |_| Ok(()))
    })();
    let _ = std::fs::remove_file(&up);
    let _ = std::fs::remove_file(&down);
    result
}

impl Listening {
    /// Reads the next request from the rendezvous FIFO.
    fn read_request(&mut self) -> Result<Raw<Request>> {
        let endpoint = &self.ctx.0;
        let path = endpoint.address();
        let mut req = [0u8; request::LEN];
        loop {
            match pipe::read_uninit(self.rendezvous.as_fd(), as_uninit(&mut req))
                .map_err(|e| io_error(endpoint, "read", path, e))?
            {
                Io::Done(request::LEN) => break,
                Io::Done(_) | Io::Closed => {
                    self.drain();
                    return Ok(Raw::Refused(Error::protocol(format!(
                        "{endpoint}: a connect request of the wrong length"
                    ))));
                }
                Io::WouldBlock => {
                    if !self.stop.wait(self.rendezvous.as_fd(), Interest::Read)? {
                        return Ok(Raw::Closed);
                    }
                }
            }
        }
        Ok(match Request::decode(&req, MAGIC) {
            Ok(r) => Raw::Conn(r),
            Err(e) => {
                self.resync(&req);
                Raw::Refused(e)
            }
        })
    }

    /// After 16 bytes that are not a request: writes of requests are
    /// atomic, so a stray write of another length has shifted the requests
    /// behind it. If a request's magic starts inside these bytes, the rest
    /// of that (shifted) request is read and dropped now, so the next read
    /// is aligned again and only that one client has to retry; otherwise
    /// these 16 bytes were a stray write of their own and nothing else is
    /// lost.
    fn resync(&self, seen: &[u8; request::LEN]) {
        let Some(at) =
            (1..request::LEN).find(|&i| seen[i..].starts_with(&MAGIC[..(request::LEN - i).min(4)]))
        else {
            return;
        };
        let mut rest = [0u8; request::LEN];
        let _ = pipe::read_uninit(self.rendezvous.as_fd(), as_uninit(&mut rest[..at]));
    }

    /// Drops whatever is queued after bytes that are not a request: 16-byte
    /// writes are atomic, so a stray write would otherwise misalign every
    /// request after it. Clients whose requests are dropped with it time
    /// out and may connect again.
    fn drain(&self) {
        let mut junk = [0u8; 4096];
        while let Ok(Io::Done(n)) = pipe::read_uninit(self.rendezvous.as_fd(), as_uninit(&mut junk))
        {
            if n == 0 {
                break;
            }
        }
    }
}

impl Incoming for Listening {
    type Channel = FifoChannel;

    fn next(&mut self) -> Result<Next<FifoChannel>> {
        let raw = self.read_request()?;
        let ctx = self.ctx.clone();
        Ok(Next::of(raw, |req| {
            Box::new(move || serve(req, &ctx.0, &ctx.1))
        }))
    }

    fn closer(&self) -> Closer {
        self.stop.closer()
    }
}

/// Completes the connection a client requested: opens its FIFOs and runs
/// the handshake.
fn serve(req: Request, endpoint: &Endpoint, schema: &Schema) -> Result<FifoChannel> {
    let (up, down) = connection_paths(endpoint.address(), req.pid, req.n);
    let started = process::start_time(req.pid);
    let result = (|| {
        let deadline = Deadline::after(endpoint.options().connect_timeout);
        // `down` first: the client holds its read end already, and its open
        // of `up` succeeds only after ours, so it never reads `down` before
        // it has a writer (which would look like end of file).
        let down_fd = pipe::open_fifo(&down, FifoEnd::Write)
            .map_err(|e| io_error(endpoint, "open", &down, e))?;
        let up_fd =
            pipe::open_fifo(&up, FifoEnd::Read).map_err(|e| io_error(endpoint, "open", &up, e))?;
        // Likewise wait for the client's hello before the first read of `up`.
        if !wait_for_hello(up_fd.as_fd(), req.pid, started, deadline)
            .map_err(|e| io_error(endpoint, "ioctl FIONREAD", &up, e))?
        {
            return Err(fail::connect_timeout(
                endpoint,
                "waiting for the client's hello",
            ));
        }
        let creator = fd::owner(up_fd.as_fd()).map_err(|e| io_error(endpoint, "fstat", &up, e))?;
        let halves = stream::pipe_halves(up_fd, down_fd, 0);
        stream::establish_halves(halves, endpoint, schema, deadline, |hello| {
            if hello.pid != req.pid || hello.uid != creator {
                return Err(Error::protocol(format!(
                    "the hello (pid {}, uid {}) differs from the connect request (pid {}) and the owner of its FIFOs (uid {creator})",
                    hello.pid, hello.uid, req.pid
                )));
            }
            authorize(endpoint, Object::Permissions, req.pid, creator)
        })
    })();
    // The hello came through `up`, so the client holds both: unlink.
    let _ = std::fs::remove_file(&up);
    let _ = std::fs::remove_file(&down);
    result
}

/// How long a requester must look gone before its handshake stops
/// waiting for its hello: a client in another pid namespace (its pid
/// names nothing here) opens `up` within moments of our open, and is
/// then read as usual.
const GONE_GRACE: Duration = Duration::from_millis(50);
/// How often the requester's life is looked at (a `kill` and reads of
/// `/proc`), whatever the naps.
const LIFE_CHECK: Duration = Duration::from_millis(10);
/// How long a hello may take before the naps grow from 1 ms to 10 ms: a
/// client that stays silent longer is not kept waiting for its answer
/// by much, and many such clients cost the listener little.
const PROMPT_HELLO: Duration = Duration::from_millis(100);

/// Waits until the client's hello is in `up` (`true`), the deadline
/// passes (`false`) or the client is gone (`true`: the handshake's first
/// read then meets the end of file and reports it), looking with
/// `FIONREAD` and napping (20 µs, doubling up to 1 ms, after
/// [`PROMPT_HELLO`] up to 10 ms) rather than polling: a FIFO once polled
/// wakes its wait queue at every later write for as long as it is open
/// (see `StreamReceiver::wait_readable`). Before the client opens `up` a
/// read would see end of file, so its life is checked by pid and start
/// time (against a reused pid) every [`LIFE_CHECK`], and it counts as
/// gone after looking gone for [`GONE_GRACE`].
fn wait_for_hello(
    up: BorrowedFd<'_>,
    pid: u32,
    started: Option<u64>,
    deadline: Deadline,
) -> std::io::Result<bool> {
    let begun = Instant::now();
    let mut naps = Backoff::new(Duration::from_micros(20), Duration::from_millis(1));
    let mut checked: Option<Instant> = None;
    let mut gone_since: Option<Instant> = None;
    loop {
        if pipe::waiting_bytes(up)? > 0 {
            return Ok(true);
        }
        let now = Instant::now();
        if checked.is_none_or(|at| now - at >= LIFE_CHECK) {
            checked = Some(now);
            if process::alive(pid, started) {
                gone_since = None;
            } else if now - *gone_since.get_or_insert(now) >= GONE_GRACE {
                return Ok(true);
            }
        }
        if now - begun >= PROMPT_HELLO {
            naps.set_most(Duration::from_millis(10));
        }
        if !naps.pause(deadline) {
            return Ok(false);
        }
    }
}

fn as_uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has the layout of u8, and initialised bytes
    // are valid MaybeUninit values; read(2) only writes bytes.
    unsafe { &mut *(buf as *mut [u8] as *mut [MaybeUninit<u8>]) }
}

impl Drop for Listening {
    fn drop(&mut self) {
        // Remove the FIFO only if it is still the one we created.
        let path = self.ctx.0.address();
        if self.id.is_some() && crate::sys::socket::file_id(path) == self.id {
            let _ = std::fs::remove_file(path);
        }
        registry::unregister(Kind::FifoRendezvous, path);
    }
}

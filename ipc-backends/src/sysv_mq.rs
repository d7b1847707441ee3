//! `sysv-mq:PATH` — System V message queues.
//!
//! The listener owns the rendezvous queue under key `ftok(PATH, 'x')`
//! (creating an empty file at `PATH` if none is there), which carries fixed
//! 16-byte connection requests. A client creates two private queues
//! (`IPC_PRIVATE`, mode 0600): `up` (client to server) and `down`, sends a
//! request holding their ids, and both sides run the handshake over them.
//! Messages larger than a queue message are fragmented
//! ([`crate::fragment`]).
//!
//! System V queues outlive their processes, so each is recorded in the
//! [`registry`] under the side that reads it, which removes it on close.
//! These queues are not pollable: a watcher thread per connection waits on
//! the peer's pidfd and, when the peer dies, removes the queue we send on
//! at once and the queue we read from once it is drained, which wakes a
//! blocked `msgsnd`/`msgrcv` with `EIDRM` → [`Error::Disconnected`].

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use ipc_core::handshake::Hello;
use ipc_core::{Deadline, Duplex, Endpoint, Error, Listener, PeerInfo, Result, Schema, Transport};

use crate::fragment::{self, FragmentReceiver, FragmentSender, Taken, UnitSink, UnitSource};
use crate::handshake;
use crate::registry::{self, Record};
use crate::sys::Context;
use crate::sys::fd::{self, Interest, Ready};
use crate::sys::pipe;
use crate::sys::process::{self, PidFd};
use crate::sys::sysv_msg::{self, MsgBuf, Op};

/// Registry kind of every queue this transport creates.
pub const KIND: &str = "sysv-msq";
/// `ftok` project id of rendezvous keys.
const PROJECT: u8 = b'x';
/// Size of a connection request.
const REQUEST_LEN: usize = 16;
/// Magic of a connection request.
const REQUEST_MAGIC: [u8; 4] = *b"IPCS";
/// How often a timed wait re-checks a queue that cannot be polled.
const SLICE: Duration = Duration::from_micros(500);

/// The System V message queue transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct SysvMq;

/// A connection over two System V queues.
pub type SysvMqChannel = Duplex<SysvMqSender, SysvMqReceiver>;

fn limit(path: &str, default: u64) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// `(unit, queue bytes)` for an endpoint, or the limit it exceeds.
fn sizing(endpoint: &Endpoint) -> Result<(usize, Option<usize>)> {
    let msgmax = limit(sysv_msg::MSGMAX_PATH, 8192) as usize;
    let msgmnb = limit(sysv_msg::MSGMNB_PATH, 16384) as usize;
    let unit = (endpoint.options().max_message_size + fragment::FIRST_HEADER)
        .clamp(
            ipc_core::handshake::MAX_HELLO_LEN + fragment::FIRST_HEADER,
            fragment::DEFAULT_UNIT,
        )
        .min(msgmax)
        .min(msgmnb);
    let bytes = match endpoint.options().capacity {
        None => None,
        Some(c) => {
            let want = c.max(1).saturating_mul(unit);
            if want > msgmnb {
                return Err(Error::Limit {
                    endpoint: endpoint.to_string(),
                    option: "capacity",
                    value: c as u64,
                    limit: (msgmnb / unit) as u64,
                    source_of_limit: format!(
                        "{} = {msgmnb} bytes per queue, {unit}-byte messages",
                        sysv_msg::MSGMNB_PATH
                    ),
                    fix: format!(
                        "lower capacity to at most {} or raise {} (as root)",
                        msgmnb / unit,
                        sysv_msg::MSGMNB_PATH
                    ),
                });
            }
            Some(want)
        }
    };
    Ok((unit, bytes))
}

/// Removes the queues of dead owners (all, or those of one endpoint).
/// Returns how many were removed.
pub fn remove_orphans(endpoint: Option<&str>) -> usize {
    let mut n = 0;
    for r in registry::orphans() {
        if r.kind != KIND || endpoint.is_some_and(|e| e != r.endpoint) {
            continue;
        }
        if let Ok(id) = r.id.parse::<i32>() {
            if sysv_msg::remove(id).is_ok() {
                n += 1;
            }
        }
        registry::unregister(KIND, &r.id);
    }
    n
}

fn register(id: i32, endpoint: &Endpoint) {
    let _ = registry::register(&Record::mine(KIND, id.to_string(), endpoint.to_string()));
}

fn remove(id: i32) {
    let _ = sysv_msg::remove(id);
    registry::unregister(KIND, &id.to_string());
}

/// Watches the peer: on its death removes `send_q` at once and `recv_q`
/// once drained, waking blocked calls. Stops when the connection's last
/// half is dropped (the write end of `stop` closes).
#[derive(Debug)]
struct Watch {
    _stop: OwnedFd,
}

fn watch(peer: PidFd, send_q: i32, recv_q: i32) -> Result<Arc<Watch>> {
    let (stop_r, stop_w) = pipe::pipe().map_err(|e| Error::io("sysv-mq: pipe2", e))?;
    std::thread::Builder::new()
        .name("ipcx-sysv-watch".into())
        .spawn(move || {
            let r = fd::wait_any(
                &[
                    (peer.as_fd(), Interest::Read),
                    (stop_r.as_fd(), Interest::Read),
                ],
                Deadline::Never,
            );
            if !matches!(r, Ok(Ready::Index(0))) {
                return;
            }
            remove(send_q);
            loop {
                match sysv_msg::status(recv_q) {
                    Ok(s) if s.messages > 0 => {}
                    _ => break,
                }
                if fd::wait(
                    stop_r.as_fd(),
                    Interest::Read,
                    Deadline::after(Duration::from_millis(2)),
                )
                .unwrap_or(true)
                {
                    return;
                }
            }
            remove(recv_q);
        })
        .map_err(|e| Error::io("sysv-mq: spawn watcher thread", e))?;
    Ok(Arc::new(Watch { _stop: stop_w }))
}

/// Sending half.
pub type SysvMqSender = FragmentSender<SysvOut>;
/// Receiving half; removes its queue when dropped.
pub type SysvMqReceiver = FragmentReceiver<SysvIn>;

/// The queue a [`SysvMqSender`] writes.
#[derive(Debug)]
pub struct SysvOut {
    q: i32,
    peer: Option<PidFd>,
    buf: MsgBuf,
    _watch: Option<Arc<Watch>>,
}

impl UnitSink for SysvOut {
    fn put(&mut self, head: &[u8], data: &[u8], deadline: Deadline) -> Result<()> {
        loop {
            let nowait = deadline != Deadline::Never || self.peer.is_none();
            match sysv_msg::send(self.q, &mut self.buf, &[head, data], nowait)
                .context(|| "msgsnd".into())?
            {
                Op::Done(_) => return Ok(()),
                Op::Removed => return Err(Error::Disconnected),
                Op::WouldBlock => {
                    if let Some(p) = &self.peer {
                        if p.exited()? {
                            return Err(Error::Disconnected);
                        }
                    }
                    sleep_slice(deadline)?;
                }
            }
        }
    }
}

impl Drop for SysvOut {
    fn drop(&mut self) {
        // The queue we write is the peer's to remove. A peer that died
        // cannot; its watcher here may have stopped before acting (the
        // connection can be dropped first). Nobody will read it: remove it.
        if self
            .peer
            .as_ref()
            .is_some_and(|p| p.exited().unwrap_or(false))
        {
            remove(self.q);
        }
    }
}

/// The queue a [`SysvMqReceiver`] reads; removed when dropped.
#[derive(Debug)]
pub struct SysvIn {
    q: i32,
    peer: Option<PidFd>,
    unit: usize,
    buf: MsgBuf,
    _watch: Option<Arc<Watch>>,
}

impl UnitSource for SysvIn {
    fn take(&mut self, block: bool) -> Result<Taken> {
        // Blocking in msgrcv is safe only with a watcher that removes the
        // queue when the peer dies (EIDRM then wakes the call).
        let nowait = !block || self.peer.is_none();
        Ok(
            match sysv_msg::receive(self.q, &mut self.buf, self.unit, nowait)
                .context(|| "msgrcv".into())?
            {
                Op::Done(n) => Taken::Unit(n),
                Op::Removed => Taken::Removed,
                Op::WouldBlock => Taken::Empty,
            },
        )
    }

    fn unit(&mut self, len: usize) -> &[u8] {
        &self.buf.text_mut()[..len]
    }

    fn peer_exited(&self) -> Result<bool> {
        self.peer.as_ref().map_or(Ok(false), PidFd::exited)
    }

    fn wait(&mut self, deadline: Deadline) -> Result<()> {
        sleep_slice(deadline)
    }
}

impl Drop for SysvIn {
    fn drop(&mut self) {
        remove(self.q);
    }
}

fn sleep_slice(deadline: Deadline) -> Result<()> {
    match deadline.remaining() {
        Some(d) if d.is_zero() => Err(deadline.elapsed_error()),
        Some(d) => {
            std::thread::sleep(d.min(SLICE));
            Ok(())
        }
        None => {
            std::thread::sleep(SLICE);
            Ok(())
        }
    }
}

fn halves(send_q: i32, recv_q: i32, unit: usize) -> (SysvMqSender, SysvMqReceiver) {
    let recv_unit = (limit(sysv_msg::MSGMAX_PATH, 8192) as usize).max(unit);
    (
        FragmentSender::new(
            SysvOut {
                q: send_q,
                peer: None,
                buf: MsgBuf::with_text_capacity(unit),
                _watch: None,
            },
            unit,
        ),
        // Receive whatever unit the peer chose, up to the kernel's msgmax.
        FragmentReceiver::new(SysvIn {
            q: recv_q,
            peer: None,
            unit: recv_unit,
            buf: MsgBuf::with_text_capacity(recv_unit),
            _watch: None,
        }),
    )
}

fn finish(mut tx: SysvMqSender, mut rx: SysvMqReceiver, peer: PeerInfo) -> Result<SysvMqChannel> {
    let pidfd = match PidFd::open(peer.pid) {
        Ok(p) => p,
        Err(Error::Disconnected) => {
            // Gone already: nobody will read what we send; what it sent is
            // still read, then Disconnected.
            remove(tx.q.q);
            rx.dead = true;
            return Ok(Duplex {
                sender: tx,
                receiver: rx,
                peer,
            });
        }
        Err(e) => return Err(e),
    };
    let w = watch(pidfd, tx.q.q, rx.q.q)?;
    // Should the peer exit meanwhile, the watcher removes our queues.
    tx.q.peer = PidFd::open(peer.pid).ok();
    rx.q.peer = PidFd::open(peer.pid).ok();
    rx.dead = rx.q.peer.is_none();
    tx.q._watch = Some(w.clone());
    rx.q._watch = Some(w);
    Ok(Duplex {
        sender: tx,
        receiver: rx,
        peer,
    })
}

/// Accepts connections on a rendezvous queue.
#[derive(Debug)]
pub struct SysvMqListener {
    endpoint: Endpoint,
    id: i32,
    created_file: bool,
    schema: Schema,
    buf: MsgBuf,
}

fn key(endpoint: &Endpoint) -> Result<libc::key_t> {
    sysv_msg::key_of(endpoint.address(), PROJECT)
        .map_err(|e| Error::io(format!("{endpoint}: ftok {}", endpoint.address()), e))
}

impl Transport for SysvMq {
    type Listener = SysvMqListener;
    type Channel = SysvMqChannel;

    fn listen(endpoint: &Endpoint, schema: &Schema) -> Result<SysvMqListener> {
        sizing(endpoint)?;
        let path = endpoint.address();
        let created_file = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(Error::io(format!("{endpoint}: create {path}"), e)),
        };
        let ep = endpoint.to_string();
        remove_orphans(Some(&ep));
        let k = key(endpoint)?;
        let mode = endpoint.options().mode;
        let id = match sysv_msg::create(Some(k), mode) {
            Ok(id) => id,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let old = sysv_msg::lookup(k).context(|| format!("{endpoint}: msgget"))?;
                let owner = registry::list()
                    .into_iter()
                    .find(|r| r.kind == KIND && r.id == old.to_string());
                match owner {
                    Some(r) if r.owner_alive() => {
                        return Err(Error::io(
                            format!("{endpoint}: msgget key {k:#x}"),
                            std::io::Error::new(
                                std::io::ErrorKind::AddrInUse,
                                format!(
                                    "already in use: process {} listens on it; stop it or pick another path",
                                    r.pid
                                ),
                            ),
                        ));
                    }
                    Some(_) => remove(old),
                    None => {
                        return Err(Error::io(
                            format!("{endpoint}: msgget key {k:#x}"),
                            std::io::Error::new(
                                std::io::ErrorKind::AddrInUse,
                                format!(
                                    "a queue not recorded by ipcx has this key (id {old}); remove it with `ipcrm -q {old}` if it is stale, or pick another path"
                                ),
                            ),
                        ));
                    }
                }
                sysv_msg::create(Some(k), mode).context(|| format!("{endpoint}: msgget"))?
            }
            Err(e) => return Err(Error::io(format!("{endpoint}: msgget"), e)),
        };
        register(id, endpoint);
        Ok(SysvMqListener {
            endpoint: endpoint.clone(),
            id,
            created_file,
            schema: schema.clone(),
            buf: MsgBuf::with_text_capacity(64),
        })
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<SysvMqChannel> {
        let deadline = Deadline::after(endpoint.options().connect_timeout);
        let (unit, bytes) = sizing(endpoint)?;
        let rendezvous = sysv_msg::lookup(key(endpoint)?)
            .map_err(|e| Error::io(format!("{endpoint}: msgget (is a listener running?)"), e))?;
        let mode = endpoint.options().mode;
        let make = || -> Result<i32> {
            let id = sysv_msg::create(None, mode).context(|| format!("{endpoint}: msgget"))?;
            register(id, endpoint);
            if let Some(b) = bytes {
                if let Err(e) = sysv_msg::set_capacity(id, b) {
                    remove(id);
                    return Err(Error::io(format!("{endpoint}: msgctl IPC_SET"), e));
                }
            }
            Ok(id)
        };
        let up = make()?;
        let down = match make() {
            Ok(d) => d,
            Err(e) => {
                remove(up);
                return Err(e);
            }
        };
        let result = (|| {
            let mut req = [0u8; REQUEST_LEN];
            req[..4].copy_from_slice(&REQUEST_MAGIC);
            req[4..6].copy_from_slice(&1u16.to_le_bytes());
            req[8..12].copy_from_slice(&up.to_le_bytes());
            req[12..16].copy_from_slice(&down.to_le_bytes());
            let mut buf = MsgBuf::with_text_capacity(REQUEST_LEN);
            loop {
                match sysv_msg::send(rendezvous, &mut buf, &[&req], true)
                    .context(|| format!("{endpoint}: msgsnd"))?
                {
                    Op::Done(_) => break,
                    Op::Removed => {
                        return Err(Error::io(
                            format!("{endpoint}: msgsnd"),
                            std::io::ErrorKind::ConnectionRefused.into(),
                        ));
                    }
                    Op::WouldBlock => sleep_slice(deadline)
                        .map_err(|_| handshake::timed_out(&endpoint.to_string(), "connect"))?,
                }
            }
            let (mut tx, mut rx) = halves(up, down, unit);
            let hello = Hello::new(
                schema,
                process::pid(),
                process::uid(),
                endpoint.options().max_message_size,
            );
            let peer = handshake::run(&mut tx, &mut rx, &hello, deadline, |_| Ok(())).map_err(
                |e| match e {
                    Error::Timeout => handshake::timed_out(&endpoint.to_string(), "handshake"),
                    e => e,
                },
            );
            match peer {
                Ok(peer) => finish(tx, rx, peer),
                Err(e) => {
                    drop(rx); // removes `down`, which we have read to the end
                    std::mem::forget(tx);
                    Err(e)
                }
            }
        })();
        match &result {
            // Refused after a full exchange: the server reads `up` to the
            // end (our verdict) and removes it.
            Err(
                Error::SchemaMismatch { .. }
                | Error::VersionMismatch { .. }
                | Error::PermissionDenied(_),
            ) => remove(down),
            Err(_) => {
                remove(up);
                remove(down);
            }
            Ok(_) => {}
        }
        result
    }
}

impl Listener for SysvMqListener {
    type Channel = SysvMqChannel;

    fn accept_until(&mut self, deadline: Deadline) -> Result<SysvMqChannel> {
        let endpoint = &self.endpoint;
        let n = loop {
            let nowait = deadline != Deadline::Never;
            match sysv_msg::receive(self.id, &mut self.buf, 64, nowait)
                .context(|| format!("{endpoint}: msgrcv"))?
            {
                Op::Done(n) => break n,
                Op::Removed => {
                    return Err(Error::io(
                        format!("{endpoint}: msgrcv"),
                        std::io::Error::other("the rendezvous queue was removed (ipcrm?)"),
                    ));
                }
                Op::WouldBlock => sleep_slice(deadline)?,
            }
        };
        let req = &self.buf.text_mut()[..n];
        if n != REQUEST_LEN || req[..4] != REQUEST_MAGIC || req[4..6] != 1u16.to_le_bytes() {
            return Err(Error::protocol(format!(
                "{endpoint}: malformed connection request"
            )));
        }
        let up = i32::from_le_bytes([req[8], req[9], req[10], req[11]]);
        let down = i32::from_le_bytes([req[12], req[13], req[14], req[15]]);
        let st = sysv_msg::status(up).context(|| format!("{endpoint}: msgctl IPC_STAT {up}"))?;
        let (unit, _) = sizing(endpoint)?;
        let (mut tx, mut rx) = halves(down, up, unit);
        let creator = st.creator_uid;
        let hello = Hello::new(
            &self.schema,
            process::pid(),
            process::uid(),
            endpoint.options().max_message_size,
        );
        let hs_deadline = Deadline::after(endpoint.options().connect_timeout);
        let peer = handshake::run(&mut tx, &mut rx, &hello, hs_deadline, |remote| {
            if !endpoint.allows_uid(creator) || remote.uid != creator {
                return Err(Error::PermissionDenied(format!(
                    "{endpoint}: uid {creator} is not in allow_uid"
                )));
            }
            Ok(())
        });
        match peer {
            Ok(peer) => {
                // We read `up` now: it is ours to remove.
                register(up, endpoint);
                finish(tx, rx, peer)
            }
            Err(e) => {
                // We have read `up` to the end: remove it (drop does). The
                // client removes `down`.
                drop(rx);
                std::mem::forget(tx);
                Err(e)
            }
        }
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Drop for SysvMqListener {
    fn drop(&mut self) {
        remove(self.id);
        // The ftok key file: ours if we created it, or if it is the empty
        // file a killed listener on this endpoint created.
        let path = self.endpoint.address();
        let empty_ours = std::fs::symlink_metadata(path).is_ok_and(|m| {
            use std::os::unix::fs::MetadataExt;
            m.is_file() && m.len() == 0 && m.uid() == process::uid()
        });
        if self.created_file || empty_ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

//! The calling side: [`Client`] and [`Call`].

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use ipc_core::{
    Channel, Deadline, Endpoint, Error, IpcMessage, PeerInfo, Receiver, Result, Sender,
};

use super::{
    REPLY_HEADER, STATUS_BAD_REQUEST, STATUS_HANDLER_ERROR, STATUS_OK, client_schema, lock,
};
use crate::AnySender;

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
    /// Connects to a [`Server`](super::Server) at `endpoint`.
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
    /// A client over a channel already connected to a [`Server`](super::Server), of any
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
        encode_request(buf, id, deadline, req)?;
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
        let id = match reply_id(&buf) {
            Ok(id) => id,
            Err(e) => break e,
        };
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
        decode_reply(&reply)
    }
}

/// The response in `reply` (everything after the id: status, payload).
pub(crate) fn decode_reply<Resp: IpcMessage>(reply: &[u8]) -> Result<Resp> {
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

/// Writes a request's envelope and body into `buf`.
pub(crate) fn encode_request<Req: IpcMessage>(
    buf: &mut Vec<u8>,
    id: u64,
    deadline: Deadline,
    req: &Req,
) -> Result<()> {
    buf.clear();
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&budget_ms(deadline).to_le_bytes());
    match req.wire_bytes() {
        Some(bytes) => buf.extend_from_slice(bytes),
        None => req.encode(buf)?,
    }
    Ok(())
}

/// The id of a reply, once its length is checked.
pub(crate) fn reply_id(reply: &[u8]) -> Result<u64> {
    if reply.len() < REPLY_HEADER {
        return Err(Error::protocol(format!(
            "the server sent a {}-byte reply, shorter than its {REPLY_HEADER}-byte header",
            reply.len()
        )));
    }
    Ok(u64::from_le_bytes(
        reply[..8].try_into().unwrap_or_default(),
    ))
}

impl<Resp> Drop for Call<'_, Resp> {
    fn drop(&mut self) {
        lock(&self.shared.pending).calls.remove(&self.id);
    }
}

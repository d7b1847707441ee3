//! The one handshake driver. Each side sends its hello, checks the peer's
//! (versions, both directions' types, then the transport's own checks),
//! sends a one-byte verdict, and concludes from both verdicts, so a refusal
//! fails both sides. A side that refused and finds the peer gone before its
//! verdict arrived keeps its own reason.
//!
//! How hellos and verdicts move is the transport's [`Wire`]: a framed
//! message on streams and queues (any [`Sender`]/[`Receiver`] pair, through
//! [`Framed`]), a `u16`-prefixed hello and a bare verdict byte on the
//! shared-memory rendezvous socket.

use ipc_core::handshake::{Hello, MAX_HELLO_LEN, check, conclude, verdict_of};
use ipc_core::{Deadline, Endpoint, Error, PeerInfo, Receiver, Result, Schema, Sender};

use crate::sys::process;

/// How a transport moves the two handshake messages.
pub(crate) trait Wire {
    /// Sends this side's encoded hello.
    fn send_hello(&mut self, hello: &[u8], deadline: Deadline) -> Result<()>;
    /// Receives the peer's hello (at most [`MAX_HELLO_LEN`] bytes) into `buf`.
    fn recv_hello(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()>;
    /// Sends this side's verdict byte.
    fn send_verdict(&mut self, verdict: u8, deadline: Deadline) -> Result<()>;
    /// Receives the peer's verdict byte.
    fn recv_verdict(&mut self, deadline: Deadline) -> Result<u8>;
}

/// A half whose largest message is set once the handshake agreed one.
pub(crate) trait Limit {
    /// Sets the largest message this half sends or accepts.
    fn set_max(&mut self, max: usize);
}

/// The [`Wire`] of a connected sender/receiver pair: each handshake message
/// is one message of the channel, limited to [`MAX_HELLO_LEN`] until the
/// handshake agrees the connection's limit.
pub(crate) struct Framed<'a, S, R> {
    tx: &'a mut S,
    rx: &'a mut R,
}

impl<'a, S: Sender + Limit, R: Receiver + Limit> Framed<'a, S, R> {
    /// Frames the handshake over `tx` and `rx`.
    pub(crate) fn new(tx: &'a mut S, rx: &'a mut R) -> Self {
        tx.set_max(MAX_HELLO_LEN);
        rx.set_max(MAX_HELLO_LEN);
        Framed { tx, rx }
    }

    /// Gives both halves the agreed limit.
    pub(crate) fn agree(self, peer: &PeerInfo) {
        self.tx.set_max(peer.max_message_size);
        self.rx.set_max(peer.max_message_size);
    }
}

impl<S: Sender, R: Receiver> Wire for Framed<'_, S, R> {
    fn send_hello(&mut self, hello: &[u8], deadline: Deadline) -> Result<()> {
        self.tx.send_until(hello, deadline)
    }

    fn recv_hello(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        self.rx.recv_until(buf, deadline)
    }

    fn send_verdict(&mut self, verdict: u8, deadline: Deadline) -> Result<()> {
        self.tx.send_until(&[verdict], deadline)
    }

    fn recv_verdict(&mut self, deadline: Deadline) -> Result<u8> {
        let mut buf = Vec::with_capacity(1);
        self.rx.recv_until(&mut buf, deadline)?;
        match buf.as_slice() {
            [v] => Ok(*v),
            _ => Err(Error::protocol("the peer's verdict is not one byte")),
        }
    }
}

/// This process's hello for `endpoint` carrying `schema`.
pub(crate) fn local_hello(endpoint: &Endpoint, schema: &Schema) -> Hello {
    Hello::new(
        schema,
        process::pid(),
        process::uid(),
        endpoint.options().max_message_size,
    )
}

/// Runs the handshake over `wire` within `deadline`. `vet` adds the
/// transport's checks of the peer's hello (credentials, the pid of its
/// request); its refusal is sent as this side's verdict. A deadline that
/// passes becomes [`Error::ConnectTimeout`].
///
/// # Errors
/// This side's refusal, the peer's refusal, [`Error::ConnectTimeout`],
/// [`Error::Disconnected`], [`Error::Protocol`].
pub(crate) fn drive(
    wire: &mut impl Wire,
    endpoint: &Endpoint,
    local: &Hello,
    deadline: Deadline,
    vet: impl FnOnce(&Hello) -> Result<()>,
) -> Result<PeerInfo> {
    let result = run(wire, local, deadline, vet);
    match &result {
        Ok(peer) => tracing::debug!(
            %endpoint,
            peer.pid,
            peer.uid,
            sends = %peer.send.name,
            "handshake agreed"
        ),
        Err(e) => tracing::info!(%endpoint, error = %e, "handshake failed"),
    }
    result.map_err(|e| super::fail::in_step(endpoint, "the handshake", e))
}

fn run(
    wire: &mut impl Wire,
    local: &Hello,
    deadline: Deadline,
    vet: impl FnOnce(&Hello) -> Result<()>,
) -> Result<PeerInfo> {
    wire.send_hello(&local.encode(), deadline)?;
    let mut buf = Vec::new();
    wire.recv_hello(&mut buf, deadline)?;
    let decision = Hello::decode(&buf).and_then(|remote| {
        let verdict = check(local, &remote).and_then(|info| vet(&remote).map(|()| info));
        if let Err(e) = &verdict {
            tracing::info!(peer.pid = remote.pid, peer.uid = remote.uid, reason = %e, "refusing the peer");
        }
        verdict
    });
    // We refused and the peer left without waiting: our reason stands.
    let stands = |e: Error, decision: Result<PeerInfo>| match (e, decision) {
        (Error::Disconnected, Err(reason)) => Err(reason),
        (e, _) => Err(e),
    };
    if let Err(e) = wire.send_verdict(verdict_of(&decision), deadline) {
        return stands(e, decision);
    }
    match wire.recv_verdict(deadline) {
        Ok(verdict) => conclude(decision, verdict),
        Err(e) => stands(e, decision),
    }
}

//! Steps 1 and 2 of the rendezvous (`docs/wire-format.md`): the handshake
//! over the accepted socket, as a [`Wire`] for the one driver. A hello is a
//! `u16` little-endian length and the hello's bytes; a verdict is one bare
//! byte.

use std::os::fd::{AsFd, BorrowedFd};

use ipc_core::handshake::MAX_HELLO_LEN;
use ipc_core::{Deadline, Endpoint, Error, PeerInfo, Result, Schema};

use super::rendezvous::{read_exact, write_all};
use crate::conn::authorize::{Object, authorize};
use crate::conn::handshake::{Wire, drive, local_hello};
use crate::sys::socket;

/// The handshake's bytes on a rendezvous socket.
struct Rendezvous<'a> {
    sock: BorrowedFd<'a>,
    /// `endpoint` as text, for errors.
    what: String,
}

impl Wire for Rendezvous<'_> {
    fn send_hello(&mut self, hello: &[u8], deadline: Deadline) -> Result<()> {
        let len = u16::try_from(hello.len()).map_err(|_| {
            Error::protocol(format!("{}: a hello of {} bytes", self.what, hello.len()))
        })?;
        let mut framed = Vec::with_capacity(2 + hello.len());
        framed.extend_from_slice(&len.to_le_bytes());
        framed.extend_from_slice(hello);
        write_all(self.sock, &framed, deadline, &self.what)
    }

    fn recv_hello(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<()> {
        let mut len = [0u8; 2];
        read_exact(self.sock, &mut len, deadline, &self.what)?;
        let len = usize::from(u16::from_le_bytes(len));
        if len > MAX_HELLO_LEN {
            return Err(Error::protocol(format!(
                "{}: the peer announced a {len}-byte hello, above {MAX_HELLO_LEN}",
                self.what
            )));
        }
        buf.clear();
        buf.resize(len, 0);
        read_exact(self.sock, buf, deadline, &self.what)
    }

    fn send_verdict(&mut self, verdict: u8, deadline: Deadline) -> Result<()> {
        write_all(self.sock, &[verdict], deadline, &self.what)
    }

    fn recv_verdict(&mut self, deadline: Deadline) -> Result<u8> {
        let mut verdict = [0u8; 1];
        read_exact(self.sock, &mut verdict, deadline, &self.what)?;
        Ok(verdict[0])
    }
}

/// The kernel's word on who is at the other end of `sock`: (pid, uid).
///
/// # Errors
/// [`Error::Io`] from `getsockopt(SO_PEERCRED)`.
pub(super) fn peer_credentials(endpoint: &Endpoint, sock: BorrowedFd<'_>) -> Result<(u32, u32)> {
    socket::peer_credentials(sock)
        .map_err(|e| Error::io(format!("{endpoint}: getsockopt(SO_PEERCRED)"), e))
}

/// Runs the handshake with the peer `(pid, uid)` on `sock`, both as the
/// kernel reports them, within `deadline`. The peer's uid is checked by
/// [`authorize`] (the segment is created with `mode=`, so its bits count);
/// a refusal is sent as this side's verdict. The peer info carries the
/// kernel's pid and uid, not the hello's.
///
/// # Errors
/// As [`drive`]: refusals, [`Error::ConnectTimeout`],
/// [`Error::Disconnected`], [`Error::Protocol`].
pub(super) fn handshake(
    endpoint: &Endpoint,
    schema: &Schema,
    sock: &impl AsFd,
    (pid, uid): (u32, u32),
    deadline: Deadline,
) -> Result<PeerInfo> {
    let mut wire = Rendezvous {
        sock: sock.as_fd(),
        what: endpoint.to_string(),
    };
    let local = local_hello(endpoint, schema);
    let peer = drive(&mut wire, endpoint, &local, deadline, |_| {
        authorize(endpoint, Object::Permissions, pid, uid)
    })?;
    Ok(PeerInfo { pid, uid, ..peer })
}

//! `fifo:PATH` — named FIFOs.
//!
//! The listener owns the rendezvous FIFO at `PATH`, which carries fixed
//! 16-byte connection requests (under `PIPE_BUF`, so concurrent clients'
//! writes never interleave). A client creates `PATH.PID.N.up` (client to
//! server) and `PATH.PID.N.down` next to it, opens `down` for reading,
//! sends a request, then opens `up` for writing once the server has opened
//! it. Both FIFOs are unlinked as soon as both sides hold them open. The
//! data then flows as length-prefixed frames ([`crate::stream`]), and end
//! of file or `EPIPE` tells either side that the other is gone.
//!
//! A rendezvous FIFO left by a killed listener is recognised because no
//! process has it open for reading (opening it for writing fails with
//! `ENXIO`), and is replaced.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipc_core::handshake::Hello;
use ipc_core::{Deadline, Endpoint, Error, Listener, Result, Schema, Transport};

use crate::stream::{self, StreamChannel};
use crate::sys::fd::{self, Interest};
use crate::sys::pipe::{self, FifoEnd, Io};
use crate::sys::process;

/// Size of a connection request.
const REQUEST_LEN: usize = 16;
/// Magic of a connection request.
const REQUEST_MAGIC: [u8; 4] = *b"IPCF";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The named FIFO transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fifo;

/// A connection over two FIFOs.
pub type FifoChannel = StreamChannel;

fn connection_paths(path: &str, pid: u32, n: u32) -> (String, String) {
    (
        format!("{path}.{pid}.{n}.up"),
        format!("{path}.{pid}.{n}.down"),
    )
}

fn io_error(endpoint: &Endpoint, call: &str, path: &str, e: std::io::Error) -> Error {
    Error::io(format!("{endpoint}: {call} {path}"), e)
}

/// Accepts connections on a rendezvous FIFO.
#[derive(Debug)]
pub struct FifoListener {
    endpoint: Endpoint,
    rendezvous: OwnedFd,
    id: Option<crate::sys::socket::FileId>,
    schema: Schema,
}

fn in_use(endpoint: &Endpoint, why: &str) -> Error {
    Error::io(
        format!("{endpoint}: mkfifo {}", endpoint.address()),
        std::io::Error::new(std::io::ErrorKind::AddrInUse, why.to_string()),
    )
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
                    return Err(in_use(
                        endpoint,
                        "a file that is not our FIFO is in the way; remove it or pick another path",
                    ));
                }
            }
            match pipe::open_fifo(path, FifoEnd::Write) {
                Ok(_) => {
                    return Err(in_use(
                        endpoint,
                        "already in use: a live listener has it open; stop it or pick another path",
                    ));
                }
                Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                    // No reader: left by a listener that died. Replace it.
                    let _ = std::fs::remove_file(path);
                    pipe::mkfifo(path, mode).map_err(|e| io_error(endpoint, "mkfifo", path, e))?;
                }
                Err(e) => return Err(io_error(endpoint, "open", path, e)),
            }
        }
        let id = crate::sys::socket::file_id(path);
        // Read and write: the listener never sees end of file between clients.
        let rendezvous = pipe::open_fifo(path, FifoEnd::Both).map_err(|e| {
            let _ = std::fs::remove_file(path);
            io_error(endpoint, "open", path, e)
        })?;
        Ok(FifoListener {
            endpoint: endpoint.clone(),
            rendezvous,
            id,
            schema: schema.clone(),
        })
    }

    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<FifoChannel> {
        let deadline = Deadline::after(endpoint.options().connect_timeout);
        let path = endpoint.address();
        let rendezvous = pipe::open_fifo(path, FifoEnd::Write).map_err(|e| {
            let hint = if e.raw_os_error() == Some(libc::ENXIO) {
                " (no listener has it open)"
            } else {
                " (is a listener running?)"
            };
            io_error(endpoint, "open", &format!("{path}{hint}"), e)
        })?;
        let me = process::pid();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (up, down) = connection_paths(path, me, n);
        let mode = endpoint.options().mode;
        let result =
            (|| {
                for p in [&up, &down] {
                    // A path left by an earlier process with our pid is stale.
                    let _ = std::fs::remove_file(p);
                    pipe::mkfifo(p, mode).map_err(|e| io_error(endpoint, "mkfifo", p, e))?;
                }
                let down_fd = pipe::open_fifo(&down, FifoEnd::Read)
                    .map_err(|e| io_error(endpoint, "open", &down, e))?;
                let mut req = [0u8; REQUEST_LEN];
                req[..4].copy_from_slice(&REQUEST_MAGIC);
                req[4..6].copy_from_slice(&1u16.to_le_bytes());
                req[8..12].copy_from_slice(&me.to_le_bytes());
                req[12..16].copy_from_slice(&n.to_le_bytes());
                loop {
                    match pipe::write_two(rendezvous.as_fd(), &req, &[])
                        .map_err(|e| io_error(endpoint, "write", path, e))?
                    {
                        Io::Done(_) => break,
                        Io::Closed => return Err(Error::Disconnected),
                        Io::WouldBlock => {
                            if !fd::wait(rendezvous.as_fd(), Interest::Write, deadline)? {
                                return Err(crate::handshake::timed_out(
                                    &endpoint.to_string(),
                                    "connect",
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
                                return Err(crate::handshake::timed_out(
                                    &endpoint.to_string(),
                                    "connect (waiting for the listener to accept)",
                                ));
                            }
                            std::thread::sleep(Duration::from_micros(200));
                        }
                        Err(e) => return Err(io_error(endpoint, "open", &up, e)),
                    }
                };
                let local = Hello::new(
                    schema,
                    me,
                    process::uid(),
                    endpoint.options().max_message_size,
                );
                let (mut tx, mut rx) = stream::pipe_halves(down_fd, up_fd, 0);
                let peer = stream::handshake(&mut tx, &mut rx, &local, deadline, |_| Ok(()))
                    .map_err(|e| match e {
                        Error::Timeout => {
                            crate::handshake::timed_out(&endpoint.to_string(), "handshake")
                        }
                        e => e,
                    })?;
                Ok(ipc_core::Duplex {
                    sender: tx,
                    receiver: rx,
                    peer,
                })
            })();
        let _ = std::fs::remove_file(&up);
        let _ = std::fs::remove_file(&down);
        result
    }
}

impl Listener for FifoListener {
    type Channel = FifoChannel;

    fn accept_until(&mut self, deadline: Deadline) -> Result<FifoChannel> {
        let endpoint = &self.endpoint;
        let path = endpoint.address();
        let mut req = [0u8; REQUEST_LEN];
        loop {
            match pipe::read_uninit(self.rendezvous.as_fd(), as_uninit(&mut req))
                .map_err(|e| io_error(endpoint, "read", path, e))?
            {
                Io::Done(REQUEST_LEN) => break,
                Io::Done(_) | Io::Closed => {
                    // Not one of ours (writes of 16 bytes are atomic): drop
                    // whatever is queued so the next request starts aligned.
                    let mut junk = [0u8; 4096];
                    while let Ok(Io::Done(n)) =
                        pipe::read_uninit(self.rendezvous.as_fd(), as_uninit(&mut junk))
                    {
                        if n == 0 {
                            break;
                        }
                    }
                    return Err(Error::protocol(format!(
                        "{endpoint}: malformed connection request"
                    )));
                }
                Io::WouldBlock => {
                    if !fd::wait(self.rendezvous.as_fd(), Interest::Read, deadline)? {
                        return Err(deadline.elapsed_error());
                    }
                }
            }
        }
        if req[..4] != REQUEST_MAGIC || u16::from_le_bytes([req[4], req[5]]) != 1 {
            return Err(Error::protocol(format!(
                "{endpoint}: malformed connection request"
            )));
        }
        let pid = u32::from_le_bytes([req[8], req[9], req[10], req[11]]);
        let n = u32::from_le_bytes([req[12], req[13], req[14], req[15]]);
        let (up, down) = connection_paths(path, pid, n);
        // `down` first: the client holds its read end already, and its open
        // of `up` succeeds only after ours, so it never reads `down` before
        // it has a writer (which would look like end of file).
        let down_fd = pipe::open_fifo(&down, FifoEnd::Write)
            .map_err(|e| io_error(endpoint, "open", &down, e))?;
        let up_fd =
            pipe::open_fifo(&up, FifoEnd::Read).map_err(|e| io_error(endpoint, "open", &up, e))?;
        let hs_deadline = Deadline::after(endpoint.options().connect_timeout);
        // Likewise wait for the client's hello before the first read of `up`.
        if !fd::wait(up_fd.as_fd(), Interest::Read, hs_deadline)? {
            let _ = std::fs::remove_file(&up);
            let _ = std::fs::remove_file(&down);
            return Err(crate::handshake::timed_out(
                &endpoint.to_string(),
                "handshake",
            ));
        }
        let creator = fd::owner(up_fd.as_fd()).map_err(|e| io_error(endpoint, "fstat", &up, e))?;
        let local = Hello::new(
            &self.schema,
            process::pid(),
            process::uid(),
            endpoint.options().max_message_size,
        );
        let (mut tx, mut rx) = stream::pipe_halves(up_fd, down_fd, 0);
        let peer = stream::handshake(&mut tx, &mut rx, &local, hs_deadline, |info| {
            if info.pid != pid {
                return Err(Error::protocol(
                    "the hello's pid differs from the request's",
                ));
            }
            if !endpoint.allows_uid(creator) {
                return Err(Error::PermissionDenied(format!(
                    "{endpoint}: uid {creator} is not in allow_uid"
                )));
            }
            Ok(())
        });
        // The hello came through `up`, so the client holds both: unlink.
        let _ = std::fs::remove_file(&up);
        let _ = std::fs::remove_file(&down);
        Ok(ipc_core::Duplex {
            sender: tx,
            receiver: rx,
            peer: peer?,
        })
    }

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

fn as_uninit(buf: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    // SAFETY: MaybeUninit<u8> has the layout of u8, and initialised bytes
    // are valid MaybeUninit values; read(2) only writes bytes.
    unsafe { &mut *(buf as *mut [u8] as *mut [std::mem::MaybeUninit<u8>]) }
}

impl Drop for FifoListener {
    fn drop(&mut self) {
        // Remove the FIFO only if it is still the one we created.
        let path = self.endpoint.address();
        if self.id.is_some() && crate::sys::socket::file_id(path) == self.id {
            let _ = std::fs::remove_file(path);
        }
    }
}

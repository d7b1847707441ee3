//! `pipe:` — an anonymous pipe pair between a parent and the child it
//! spawned.
//!
//! The parent creates two pipes ([`Pair::new`]), lets the child inherit one
//! end of each (named in the environment variable [`FDS_VAR`] as
//! `READ,WRITE`, every other descriptor staying close-on-exec), and keeps
//! the other ends ([`Pair::into_parent`]). The child picks its ends up with
//! [`Pipe::connect`]. The data flows as length-prefixed frames
//! ([`crate::stream`]) after the usual handshake; end of file and `EPIPE`
//! tell either side that the other is gone. `pipe:` has no listener: it is
//! one parent-child pair by nature.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Command;

use ipc_core::{Deadline, Endpoint, Error, Listener, Result, Schema, Scheme, Transport};

use crate::stream::{self, StreamChannel};
use crate::sys::pipe;

/// The environment variable naming the child's inherited descriptors.
pub const FDS_VAR: &str = "IPCX_PIPE_FDS";

/// The anonymous pipe transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pipe;

/// A connection over two pipes.
pub type PipeChannel = StreamChannel;

/// `pipe:` cannot listen; this type has no values.
#[derive(Debug)]
pub enum PipeListener {}

fn no_listener() -> Error {
    Error::Unsupported {
        scheme: Scheme::Pipe,
        reason: "pipe: connects a parent to the child it spawns and has no listener; use ipcx::spawn, or fifo:, mq:, unix: for many clients".into(),
    }
}

/// The two pipes of a parent-child connection, before the child starts.
#[derive(Debug)]
pub struct Pair {
    parent_read: OwnedFd,
    parent_write: OwnedFd,
    child_read: OwnedFd,
    child_write: OwnedFd,
}

impl Pair {
    /// Creates both pipes, every end close-on-exec.
    ///
    /// # Errors
    /// [`Error::Io`] from `pipe2(2)`.
    pub fn new() -> Result<Pair> {
        let ctx = |e| Error::io("pipe: pipe2", e);
        let (child_read, parent_write) = pipe::pipe().map_err(ctx)?;
        let (parent_read, child_write) = pipe::pipe().map_err(ctx)?;
        Ok(Pair {
            parent_read,
            parent_write,
            child_read,
            child_write,
        })
    }

    /// Makes the child `cmd` will start inherit its two ends (and only
    /// those), named in [`FDS_VAR`].
    pub fn prepare(&self, cmd: &mut Command) {
        let (r, w) = (self.child_read.as_raw_fd(), self.child_write.as_raw_fd());
        cmd.env(FDS_VAR, format!("{r},{w}"));
        pipe::inherit_in_child(cmd, [r, w]);
    }

    /// After the child started: closes its ends here and runs the handshake
    /// on ours, bounded by the endpoint's `connect_timeout`.
    ///
    /// # Errors
    /// Handshake errors; [`Error::Disconnected`] if the child exits first.
    pub fn into_parent(self, endpoint: &Endpoint, schema: &Schema) -> Result<PipeChannel> {
        drop(self.child_read);
        drop(self.child_write);
        establish(self.parent_read, self.parent_write, endpoint, schema)
    }
}

fn establish(
    read: OwnedFd,
    write: OwnedFd,
    endpoint: &Endpoint,
    schema: &Schema,
) -> Result<PipeChannel> {
    let deadline = Deadline::after(endpoint.options().connect_timeout);
    let halves = stream::pipe_halves(read, write, 0);
    stream::establish_halves(halves, endpoint, schema, deadline, |_| Ok(()))
}

impl Transport for Pipe {
    type Listener = PipeListener;
    type Channel = PipeChannel;

    fn listen(_: &Endpoint, _: &Schema) -> Result<PipeListener> {
        Err(no_listener())
    }

    /// In a child started with `pipe:`: takes the inherited descriptors
    /// named in [`FDS_VAR`] (once; the variable is removed) and runs the
    /// handshake with the parent.
    fn connect(endpoint: &Endpoint, schema: &Schema) -> Result<PipeChannel> {
        let bad = |why: String| {
            Error::io(
                format!("{endpoint}: {FDS_VAR}"),
                std::io::Error::new(std::io::ErrorKind::NotFound, why),
            )
        };
        let value = std::env::var(FDS_VAR).map_err(|_| {
            bad(format!(
                "{FDS_VAR} is not set: this process was not started by ipcx::spawn with pipe:"
            ))
        })?;
        let (r, w) = value
            .split_once(',')
            .and_then(|(r, w)| Some((r.parse().ok()?, w.parse().ok()?)))
            .ok_or_else(|| bad(format!("{FDS_VAR}={value:?} is not READ,WRITE")))?;
        // The variable is removed so nothing adopts the descriptors twice.
        // SAFETY: remove_var races only with other threads reading the
        // environment; connecting to the parent happens before the caller
        // starts such threads (documented on connect_parent).
        unsafe { std::env::remove_var(FDS_VAR) };
        let read =
            pipe::adopt_inherited(r).map_err(|e| Error::io(format!("{endpoint}: fd {r}"), e))?;
        let write =
            pipe::adopt_inherited(w).map_err(|e| Error::io(format!("{endpoint}: fd {w}"), e))?;
        for fd in [&read, &write] {
            pipe::set_cloexec(fd.as_fd()).map_err(|e| Error::io("pipe: fcntl", e))?;
            pipe::set_nonblocking(fd.as_fd(), true).map_err(|e| Error::io("pipe: fcntl", e))?;
        }
        establish(read, write, endpoint, schema)
    }
}

impl Listener for PipeListener {
    type Channel = PipeChannel;

    fn accept_until(&mut self, _: Deadline) -> Result<PipeChannel> {
        match *self {}
    }

    fn endpoint(&self) -> &Endpoint {
        match *self {}
    }
}

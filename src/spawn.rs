//! Starting a child process already connected: `pipe:` hands it a pipe
//! pair; any other endpoint is listened on and passed in `IPCX_ENDPOINT`.

use std::process::{Child, Command};

use ipc_backends::pipe::Pair;
use ipc_core::{Endpoint, Error, Listener, Result, Schema, Scheme};

use crate::AnyChannel;

/// The environment variable that names the endpoint a spawned child
/// connects to (for endpoints other than `pipe:`).
pub const ENDPOINT_VAR: &str = "IPCX_ENDPOINT";

/// Starts `command` as a child connected to this process through
/// `endpoint`, and returns it with the connected channel.
///
/// # Errors
/// Spawn failures ([`Error::Io`]), and the transport's listen, accept and
/// handshake errors (bounded by `connect_timeout`).
///
/// # Examples
///
/// The parent starts a worker over a pipe pair; the worker (the same or
/// another program) calls [`connect_parent`]:
///
/// ```no_run
/// use ipcx::{Receiver, Sender};
/// # fn main() -> ipcx::Result<()> {
/// if std::env::var_os(ipcx::ENDPOINT_VAR).is_some() {
///     // In the child.
///     let mut parent = ipcx::connect_parent()?;
///     let job = parent.recv()?;
///     parent.send(&job)?;
///     return Ok(());
/// }
/// let me = std::env::current_exe().expect("this program");
/// let (mut child, mut ch) = ipcx::spawn(std::process::Command::new(me), &"pipe:".parse()?)?;
/// ch.send(b"job 1")?;
/// assert_eq!(ch.recv()?, b"job 1");
/// drop(ch);
/// child.wait().expect("the child exits");
/// # Ok(()) }
/// ```
pub fn spawn(command: Command, endpoint: &Endpoint) -> Result<(Child, AnyChannel)> {
    spawn_with(command, endpoint, &Schema::bytes())
}

/// As [`spawn`], announcing `schema` in the handshake.
///
/// # Errors
/// As [`spawn`]; [`Error::SchemaMismatch`] when the child disagrees.
pub fn spawn_with(
    mut command: Command,
    endpoint: &Endpoint,
    schema: &Schema,
) -> Result<(Child, AnyChannel)> {
    let schema = schema.clone();
    if endpoint.scheme() == Scheme::Pipe {
        let pair = Pair::new()?;
        pair.prepare(&mut command);
        command.env(ENDPOINT_VAR, endpoint.to_string());
        let child = command
            .spawn()
            .map_err(|e| Error::io(format!("{endpoint}: spawn"), e))?;
        return match pair.into_parent(endpoint, &schema) {
            Ok(ch) => Ok((child, AnyChannel::from_pipe(ch))),
            Err(e) => Err(reap(child, endpoint, e)),
        };
    }
    let mut listener = ipc_backends::listen(endpoint, &schema)?;
    command.env(ENDPOINT_VAR, listener.endpoint().to_string());
    let child = command
        .spawn()
        .map_err(|e| Error::io(format!("{endpoint}: spawn"), e))?;
    match listener.accept_timeout(endpoint.options().connect_timeout) {
        Ok(ch) => Ok((child, ch)),
        Err(e) => Err(reap(child, endpoint, e)),
    }
}

/// After a failed connect: gives the child `connect_timeout` to exit by
/// itself (it got the same refusal), then kills it, so no process is left
/// behind. Returns the error.
fn reap(mut child: Child, endpoint: &Endpoint, error: Error) -> Error {
    let deadline = std::time::Instant::now() + endpoint.options().connect_timeout;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return error;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
    error
}

/// In a child started by [`spawn`]: connects to the parent through the
/// endpoint it was given. Call it before starting threads that read the
/// environment.
///
/// # Errors
/// As [`crate::connect`]; an error when the process was not started by
/// [`spawn`].
pub fn connect_parent() -> Result<AnyChannel> {
    connect_parent_with(&Schema::bytes())
}

/// As [`connect_parent`], announcing `schema` in the handshake (the parent
/// used [`spawn_with`]).
///
/// # Errors
/// As [`connect_parent`]; [`Error::SchemaMismatch`] when the parent
/// disagrees.
pub fn connect_parent_with(schema: &Schema) -> Result<AnyChannel> {
    let endpoint = Endpoint::from_env(ENDPOINT_VAR)?.unwrap_or_else(|| {
        "pipe:"
            .parse()
            .unwrap_or_else(|_| unreachable!("pipe: parses"))
    });
    crate::connect_with(&endpoint, schema)
}

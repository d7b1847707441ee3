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
pub fn spawn(mut command: Command, endpoint: &Endpoint) -> Result<(Child, AnyChannel)> {
    let schema = Schema::bytes();
    if endpoint.scheme() == Scheme::Pipe {
        let pair = Pair::new()?;
        pair.prepare(&mut command);
        command.env(ENDPOINT_VAR, endpoint.to_string());
        let child = command
            .spawn()
            .map_err(|e| Error::io(format!("{endpoint}: spawn"), e))?;
        let ch = pair.into_parent(endpoint, &schema)?;
        return Ok((child, AnyChannel::Pipe(ch)));
    }
    let mut listener = ipc_backends::listen(endpoint, &schema)?;
    command.env(ENDPOINT_VAR, listener.endpoint().to_string());
    let child = command
        .spawn()
        .map_err(|e| Error::io(format!("{endpoint}: spawn"), e))?;
    let ch = listener.accept_timeout(endpoint.options().connect_timeout)?;
    Ok((child, ch))
}

/// In a child started by [`spawn`]: connects to the parent through the
/// endpoint it was given. Call it before starting threads that read the
/// environment.
///
/// # Errors
/// As [`crate::connect`]; an error when the process was not started by
/// [`spawn`].
pub fn connect_parent() -> Result<AnyChannel> {
    let endpoint = Endpoint::from_env(ENDPOINT_VAR)?.unwrap_or_else(|| {
        "pipe:"
            .parse()
            .unwrap_or_else(|_| unreachable!("pipe: parses"))
    });
    crate::connect(&endpoint)
}

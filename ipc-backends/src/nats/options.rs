//! How a `nats://` endpoint becomes a NATS client: its servers (one, or
//! several of a cluster: `nats://h1:4222,h2:4222/NAME`), its credentials
//! and its TLS options. Channels, rpc and queues all connect here.
//!
//! - **Several servers.** The client connects to the first of them that
//!   answers, in the order written, and, when that server goes away,
//!   reconnects to another of the list (or one the cluster announced)
//!   without limit; subscriptions are renewed on the
//!   new server. What was in flight on the lost connection may be lost:
//!   a channel reports that as a gap or a silent peer, a JetStream queue
//!   resends until the stream acknowledged.
//! - **`user=` with `password_file=`.** The password is read from the
//!   file's first line when the client connects, never written in the
//!   endpoint.
//! - **`tls=required`**, optionally with **`tls_ca=FILE`**: the client
//!   speaks TLS to the server (rustls, with ring) and refuses one that does
//!   not; it trusts the CA certificates in `FILE` (PEM), or without
//!   `tls_ca=` the system's. A certificate it does not trust fails the
//!   connect with an error saying so.
//! - **`creds=FILE`**: decentralized (operator mode) authentication with
//!   a `.creds` file, a user JWT and the nkey seed that signs the server's
//!   nonce. **`nkey=FILE`**: a user's nkey seed alone, for servers that
//!   list users by public key. Either file is read when the client
//!   connects and, as ssh does with its keys, refused when its permission
//!   bits let group or others in (`chmod 600 FILE`): it holds a private
//!   key (`docs/nats.md`, "Credentials and TLS").

use async_nats::{Client, ConnectOptions, ServerAddr};
use ipc_core::{Endpoint, Error, Result};

use super::runtime;
use crate::conn::fail;

/// The `HOST:PORT` list and the name of a `nats://` endpoint.
pub(crate) fn parts(endpoint: &Endpoint) -> (&str, &str) {
    endpoint
        .address()
        .split_once('/')
        .unwrap_or((endpoint.address(), ""))
}

/// The server URLs of `endpoint`, in the order written.
///
/// # Errors
/// [`Error::Endpoint`]-like [`Error::Io`] for an address the client
/// cannot parse (the grammar has checked the form already).
fn servers(endpoint: &Endpoint) -> Result<Vec<ServerAddr>> {
    let (servers, _) = parts(endpoint);
    servers
        .split(',')
        .map(|s| {
            format!("nats://{s}")
                .parse::<ServerAddr>()
                .map_err(|e| Error::io(format!("{endpoint}: the server address {s}"), e))
        })
        .collect()
}

/// The text of a file that holds a private key (`option=path`): it must
/// be open to its owner only, as ssh demands of its keys.
///
/// # Errors
/// [`Error::Io`] naming the option and the file when it cannot be read;
/// [`Error::PermissionDenied`] when group or others have any permission
/// on it.
fn read_secret(endpoint: &Endpoint, option: &str, path: &str, what: &str) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    /// Far more than a credentials file or a seed holds.
    const MAX_LEN: u64 = 64 * 1024;
    let context = || format!("{endpoint}: reading {option}={path} ({what})");
    // The bits are those of the file opened, not of a path that could be
    // replaced between a look and the read. Opened without blocking: a
    // FIFO with no writer would otherwise hang the open (it is refused
    // below as not a regular file); reads of a regular file ignore it.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::io(context(), e))?;
    let meta = file.metadata().map_err(|e| Error::io(context(), e))?;
    if !meta.is_file() {
        return Err(Error::io(
            context(),
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    if meta.len() > MAX_LEN {
        return Err(Error::io(
            context(),
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} bytes, more than a key file holds", meta.len()),
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::PermissionDenied(format!(
            "{endpoint}: {option}={path} holds a private key but its mode {mode:04o} lets group or others in: \
             run `chmod 600 {path}` (ipcx, like ssh, uses no key file that others can read)"
        )));
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| Error::io(context(), e))?;
    Ok(text)
}

/// An [`Error::Io`] for a credentials file whose content is not what
/// `option=` takes.
fn malformed(endpoint: &Endpoint, option: &str, path: &str, why: String) -> Error {
    Error::io(
        format!(
            "{endpoint}: {option}={path} is not {}",
            match option {
                "creds" =>
                    "a NATS credentials file (a user JWT between -----BEGIN NATS USER JWT----- lines, then the user's nkey seed between -----BEGIN USER NKEY SEED----- lines; `nsc generate creds` writes one)",
                _ => "a user's nkey seed (one line starting SU, as `nk -gen user` prints)",
            }
        ),
        std::io::Error::new(std::io::ErrorKind::InvalidData, why),
    )
}

/// The client options of `endpoint`: name, timeouts, credentials, TLS.
fn connect_options(endpoint: &Endpoint) -> Result<ConnectOptions> {
    let o = endpoint.options();
    // Servers are tried in the order written (a config spreads clients
    // over a cluster by listing its servers in different orders).
    let mut opts = ConnectOptions::new()
        .connection_timeout(o.connect_timeout)
        .retain_servers_order()
        .name(format!("ipcx {}", std::process::id()));
    if o.tls {
        opts = opts.require_tls(true);
    }
    if let Some(ca) = &o.tls_ca {
        // Read here, so a missing file is an error naming it rather than
        // a TLS failure.
        if let Err(e) = std::fs::metadata(ca) {
            return Err(Error::io(
                format!(
                    "{endpoint}: tls_ca={ca} (the PEM file of the CA that signed the server's certificate)"
                ),
                e,
            ));
        }
        opts = opts.add_root_certificates(ca.into());
    }
    if let (Some(user), Some(file)) = (&o.user, &o.password_file) {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Error::io(
                format!("{endpoint}: reading password_file={file} (the password of user={user}, on its first line)"),
                e,
            )
        })?;
        let password = text.lines().next().unwrap_or("").to_string();
        if password.is_empty() {
            return Err(Error::PermissionDenied(format!(
                "{endpoint}: password_file={file} is empty: put the password of user={user} on its first line"
            )));
        }
        opts = opts.user_and_password(user.clone(), password);
    }
    if let Some(file) = &o.creds {
        let text = read_secret(
            endpoint,
            "creds",
            file,
            "a NATS credentials file: a user JWT and its nkey seed",
        )?;
        opts = opts
            .credentials(&text)
            .map_err(|e| malformed(endpoint, "creds", file, e.to_string()))?;
    }
    if let Some(file) = &o.nkey {
        let text = read_secret(endpoint, "nkey", file, "a user's nkey seed")?;
        let seed = text.lines().map(str::trim).find(|l| !l.is_empty());
        let seed = seed.ok_or_else(|| malformed(endpoint, "nkey", file, "it is empty".into()))?;
        let key = nkeys::KeyPair::from_seed(seed)
            .map_err(|e| malformed(endpoint, "nkey", file, e.to_string()))?;
        if key.key_pair_type() != nkeys::KeyPairType::User {
            return Err(malformed(
                endpoint,
                "nkey",
                file,
                format!(
                    "it is the seed of a key of type {:?}, not of a user",
                    key.key_pair_type()
                ),
            ));
        }
        opts = opts.nkey(seed.to_string());
    }
    Ok(opts)
}

/// Why connecting to the server failed, as far as the error it returned
/// can be told apart.
enum Failed {
    Auth,
    Tls,
    Other,
}

/// Whether an I/O error of kind `InvalidData` is among `e`'s sources.
fn invalid_data(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Connects a NATS client to one of the endpoint's servers, within
/// `connect_timeout`.
///
/// # Errors
/// [`Error::NoListener`] when no server answers, [`Error::ConnectTimeout`]
/// past the timeout, [`Error::PermissionDenied`] when the server refuses
/// the credentials, [`Error::Io`] when TLS fails (an untrusted
/// certificate, a server without TLS) or a credentials file that cannot be
/// used (missing, malformed), [`Error::PermissionDenied`] as well for a
/// `creds=`/`nkey=` file that group or others may read.
pub(crate) fn connect(endpoint: &Endpoint) -> Result<Client> {
    let opts = connect_options(endpoint)?;
    let addrs = servers(endpoint)?;
    let (list, _) = parts(endpoint);
    let timeout = endpoint.options().connect_timeout;
    let o = endpoint.options();
    let check = match (&o.creds, &o.nkey) {
        (Some(f), _) => format!(
            "check creds={f}: its user must belong to an account the server knows, and its seed must be the one of its JWT"
        ),
        (_, Some(f)) => format!("check nkey={f}: is its public key among the server's users?"),
        _ if o.user.is_some() => "check user= and password_file=".to_string(),
        _ => "the server demands credentials: give creds=, nkey= or user= with password_file="
            .to_string(),
    };
    let outcome = runtime::run(async move {
        // The client tries each server of the list once.
        let attempt = async move {
            opts.connect(addrs).await.map_err(|e| {
                let kind = match e.kind() {
                    async_nats::ConnectErrorKind::AuthorizationViolation
                    | async_nats::ConnectErrorKind::Authentication => Failed::Auth,
                    async_nats::ConnectErrorKind::Tls => Failed::Tls,
                    // The TLS handshake's own failures (an untrusted
                    // certificate) come as I/O errors of kind InvalidData.
                    async_nats::ConnectErrorKind::Io if invalid_data(&e) => Failed::Tls,
                    _ => Failed::Other,
                };
                (e.to_string(), kind)
            })
        };
        tokio::time::timeout(timeout, attempt).await.map_err(|_| ())
    })?;
    match outcome {
        Err(()) => Err(fail::connect_timeout(
            endpoint,
            "connecting to the NATS server",
        )),
        Ok(Ok(client)) => Ok(client),
        Ok(Err((why, Failed::Auth))) => Err(Error::PermissionDenied(format!(
            "{endpoint}: the NATS server at {list} refused authorization ({why}); {check}"
        ))),
        Ok(Err((why, Failed::Tls))) => Err(Error::io(
            format!(
                "{endpoint}: TLS to the NATS server at {list} failed \
                 (a certificate not trusted: name the CA that signed it with tls_ca=FILE, PEM; \
                 a server without TLS: enable it there, or drop tls=required)"
            ),
            std::io::Error::new(std::io::ErrorKind::InvalidData, why),
        )),
        Ok(Err((why, Failed::Other))) => Err(fail::no_listener(
            endpoint,
            format!("no NATS server reachable at {list}: {why}"),
        )),
    }
}

/// Connects to a server of `endpoint` with the endpoint's credentials
/// (`creds=`, `nkey=`, `user=` with `password_file=`) and TLS options, as a
/// channel or a queue would, then closes the connection: whether the server
/// admits this client. `ipcx doctor --nats` checks an endpoint with it.
///
/// # Examples
///
/// ```no_run
/// let ep: ipc_core::Endpoint = "nats://127.0.0.1:4222/x?creds=/etc/ipcx/svc.creds".parse()?;
/// ipc_backends::nats::check_server(&ep)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// As connecting a channel's client: [`Error::PermissionDenied`] when the
/// server refuses the credentials or a key file is open to others,
/// [`Error::Io`] for a credentials file that cannot be used or failed TLS,
/// [`Error::NoListener`] when no server answers.
pub fn check_server(endpoint: &Endpoint) -> Result<()> {
    let client = connect(endpoint)?;
    runtime::run(async move {
        let _ = client.drain().await;
    })
}

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
//! - **`creds=`** is accepted by the grammar but refused at connect
//!   ([`Error::Unsupported`]): `.creds` files need the nkeys signature code,
//!   which ipcx does not build into async-nats (`docs/nats.md`,
//!   "Credentials and TLS").

use async_nats::{Client, ConnectOptions, ServerAddr};
use ipc_core::{Endpoint, Error, Result, Scheme};

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

fn not_built(endpoint: &Endpoint, what: &str, instead: &str) -> Error {
    Error::Unsupported {
        scheme: Scheme::Nats,
        reason: format!(
            "{endpoint}: {what} is not built into this ipcx; {instead} (docs/nats.md, \"Credentials and TLS\")"
        ),
    }
}

/// The client options of `endpoint`: name, timeouts, credentials, TLS.
fn connect_options(endpoint: &Endpoint) -> Result<ConnectOptions> {
    let o = endpoint.options();
    if o.creds.is_some() {
        return Err(not_built(
            endpoint,
            "creds= (a NATS .creds file: a JWT signed with an nkey)",
            "authenticate with user=NAME&password_file=FILE instead",
        ));
    }
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
/// certificate, a server without TLS), [`Error::Unsupported`] for `creds=`.
pub(crate) fn connect(endpoint: &Endpoint) -> Result<Client> {
    let opts = connect_options(endpoint)?;
    let addrs = servers(endpoint)?;
    let (list, _) = parts(endpoint);
    let timeout = endpoint.options().connect_timeout;
    let outcome = runtime::run(async move {
        // The client tries each server of the list once.
        let attempt = async move {
            opts.connect(addrs).await.map_err(|e| {
                let kind = match e.kind() {
                    async_nats::ConnectErrorKind::AuthorizationViolation => Failed::Auth,
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
            "{endpoint}: the NATS server at {list} refused the credentials: {why}; check user= and password_file="
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

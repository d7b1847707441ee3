//! ipcx: one typed API for inter-process communication on Linux, whatever
//! the mechanism underneath. The transport is named by an [`Endpoint`] in
//! configuration, never in code:
//!
//! ```no_run
//! use ipcx::{Endpoint, Receiver, Sender};
//! # fn main() -> ipcx::Result<()> {
//! let endpoint: Endpoint = "unix:/tmp/orders.sock".parse()?;
//! let mut listener = ipcx::listen(&endpoint)?;
//! // elsewhere, in another process: ipcx::connect(&endpoint)?
//! let mut conn = ipcx::Listener::accept(&mut listener)?;
//! let request = conn.recv()?;
//! conn.send(&request)?;
//! # Ok(()) }
//! ```

//!
//! Typed channels ([`typed`]: `connect_typed::<Out, In>`,
//! `listen_typed::<Out, In>`) send `#[derive(IpcMessage)]` types and refuse
//! peers with other types at connect; [`rpc`] builds request–reply on top.
//!
//! Beside channels: [`sync`] (named semaphores on `sem:`/`sysv-sem:`,
//! robust cross-process mutexes) and [`shared`] (`Region<T>`: a zero-copy
//! value in a named segment, written under a lock, read by seqlock).
//! [`queue`] is the other pattern: standalone queues that outlive their
//! producers and consumers (`mq:/jobs?pattern=queue`).

#![deny(unsafe_op_in_unsafe_fn)]

// Lets `#[derive(IpcMessage)]` name this crate `::ipcx` from inside it too.
extern crate self as ipcx;

pub mod queue;
pub mod rpc;
pub mod shutdown;
mod spawn;
pub mod typed;
pub use spawn::{ENDPOINT_VAR, connect_parent, connect_parent_with, spawn, spawn_with};
pub use typed::{
    TypedChannel, TypedListener, TypedReceiver, TypedSender, connect as connect_typed,
    listen as listen_typed,
};

pub use ipc_backends::{
    self as backends, AnyChannel, AnyInPlace, AnyListener, AnyLoan, AnyReceiver, AnySender,
};
pub use ipc_backends::{shared, sync};
pub use ipc_core::{self as core, *};

/// Listens on `endpoint` for raw byte channels.
///
/// # Errors
/// [`Error::Unsupported`] for a scheme this build lacks; the transport's
/// errors (name in use, permissions, kernel limits).
///
/// # Examples
///
/// An echo server and a client (here a thread; usually another process):
///
/// ```
/// use ipcx::{Endpoint, Listener, Receiver, Sender};
/// # fn main() -> ipcx::Result<()> {
/// let endpoint: Endpoint = format!("unix:@ipcx-doc-echo-{}", std::process::id()).parse()?;
/// let mut listener = ipcx::listen(&endpoint)?;
/// let client = std::thread::spawn(move || -> ipcx::Result<Vec<u8>> {
///     let mut ch = ipcx::connect(&endpoint)?;
///     ch.send(b"ping")?;
///     ch.recv()
/// });
/// // Established clients only: one that fails its handshake never shows here.
/// let mut conn = listener.accept()?;
/// let msg = conn.recv()?;
/// conn.send(&msg)?;
/// assert_eq!(client.join().unwrap()?, b"ping");
/// # Ok(()) }
/// ```
pub fn listen(endpoint: &Endpoint) -> Result<AnyListener> {
    ipc_backends::listen(endpoint, &Schema::bytes())
}

/// Connects to `endpoint` for a raw byte channel.
///
/// # Errors
/// [`Error::Unsupported`] for a scheme this build lacks; the transport's
/// errors (nothing listening, handshake refused).
///
/// # Examples
///
/// Where nothing listens the error says so at once, on every transport;
/// `wait_for_listener` waits for a listener that is still starting:
///
/// ```
/// use ipcx::{Endpoint, Error};
/// # fn main() -> ipcx::Result<()> {
/// let nobody: Endpoint = format!("unix:@ipcx-doc-nobody-{}", std::process::id()).parse()?;
/// assert!(matches!(ipcx::connect(&nobody), Err(Error::NoListener { .. })));
///
/// let patient: Endpoint = format!("{nobody}?wait_for_listener=20ms").parse()?;
/// assert!(matches!(ipcx::connect(&patient), Err(Error::NoListener { .. })));
/// # Ok(()) }
/// ```
pub fn connect(endpoint: &Endpoint) -> Result<AnyChannel> {
    ipc_backends::connect(endpoint, &Schema::bytes())
}

/// Listens on `endpoint`, announcing `schema` in every handshake.
///
/// # Errors
/// As [`listen`].
pub fn listen_with(endpoint: &Endpoint, schema: &Schema) -> Result<AnyListener> {
    ipc_backends::listen(endpoint, schema)
}

/// Connects to `endpoint`, announcing `schema` in the handshake.
///
/// # Errors
/// As [`connect`]; [`Error::SchemaMismatch`] or [`Error::VersionMismatch`]
/// when the peer disagrees.
pub fn connect_with(endpoint: &Endpoint, schema: &Schema) -> Result<AnyChannel> {
    ipc_backends::connect(endpoint, schema)
}

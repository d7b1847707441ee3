//! ipcx: one typed API for inter-process communication on Linux, whatever
//! the mechanism underneath. The transport is named by an [`Endpoint`] in
//! configuration, never in code:
//!
//! | endpoint | mechanism |
//! |---|---|
//! | `pipe:` | two anonymous pipes to a child started by [`spawn`] |
//! | `fifo:/tmp/orders` | named FIFOs |
//! | `mq:/orders` | POSIX message queues |
//! | `sysv-mq:/var/run/orders` | System V message queues |
//! | `shm:/orders` | POSIX shared memory: rings, futex wake-ups, zero-copy loans |
//! | `sysv-shm:/var/run/orders` | System V shared memory: the same rings and wake-ups |
//! | `unix:/run/orders.sock`, `unix:@orders` | Unix stream sockets |
//! | `tcp://10.0.0.7:7000` | TCP |
//!
//! Options ride as query parameters (`shm:/orders?capacity=1048576&wait=spin`);
//! see [`endpoint`].
//!
//! Messages derive [`IpcMessage`]; a typed channel refuses, at connect, a
//! peer whose types differ:
//!
//! ```
//! use ipcx::{Endpoint, IpcMessage};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
//! struct Order { id: u64, item: String, qty: u32 }
//!
//! #[derive(IpcMessage, Serialize, Deserialize, Debug, PartialEq)]
//! struct Ack { id: u64, accepted: bool }
//!
//! # fn main() -> ipcx::Result<()> {
//! // Usually from a config file or IPCX_ENDPOINT; any scheme works unchanged.
//! let endpoint: Endpoint = format!("unix:@ipcx-doc-orders-{}", std::process::id()).parse()?;
//! let mut listener = ipcx::listen_typed::<Ack, Order>(&endpoint)?;
//! let client = std::thread::spawn(move || -> ipcx::Result<Ack> {
//!     // Usually another process.
//!     let mut ch = ipcx::connect_typed::<Order, Ack>(&endpoint)?;
//!     ch.send(&Order { id: 1, item: "tea".into(), qty: 3 })?;
//!     ch.recv()
//! });
//! let mut conn = listener.accept()?;
//! let order = conn.recv()?;
//! conn.send(&Ack { id: order.id, accepted: order.qty <= 1000 })?;
//! assert_eq!(client.join().unwrap()?, Ack { id: 1, accepted: true });
//! # Ok(()) }
//! ```
//!
//! Raw byte channels ([`listen`], [`connect`]) take any peer. [`rpc`] builds
//! request–reply on top, [`queue`] standalone queues, [`sync`] semaphores
//! and robust mutexes, [`shared`] shared state; [`shutdown`] removes what
//! would outlive a process stopped by a signal.
//!
#![deny(unsafe_op_in_unsafe_fn)]

// Lets `#[derive(IpcMessage)]` name this crate `::ipcx` from inside it too.
extern crate self as ipcx;

pub mod queue;
pub mod rpc;
pub mod shutdown;
mod spawn;
#[cfg(feature = "tokio")]
pub mod tokio;
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

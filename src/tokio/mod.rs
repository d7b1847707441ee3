//! The async API, under tokio (feature `tokio`): the blocking API's mirror
//! on every transport, typed channels ([`typed`]) and request–reply
//! ([`rpc`]) included.
//!
//! ```no_run
//! # async fn f() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "unix:/tmp/echo.sock".parse()?;
//! let mut listener = ipcx::tokio::listen(&endpoint)?;
//! tokio::spawn(async move {
//!     while let Ok(mut conn) = listener.accept().await {
//!         tokio::spawn(async move {
//!             while let Ok(msg) = conn.recv().await {
//!                 if conn.send(&msg).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         });
//!     }
//! });
//! let mut conn = ipcx::tokio::connect(&endpoint).await?;
//! conn.send(b"ping").await?;
//! assert_eq!(conn.recv().await?, b"ping");
//! # Ok(()) }
//! ```
//!
//! # How each transport waits
//!
//! No operation takes a thread of its own. Sockets, pipes, FIFOs and POSIX
//! message queues are registered with tokio's reactor; a POSIX queue's
//! peer is watched through its pidfd beside it. Shared memory (`shm:`,
//! `sysv-shm:`) is driven by the reactor too: a waiting task announces
//! itself in the ring, and the peer rings an eventfd passed at connect
//! (once per wake-up, not per message); the rendezvous socket tells when
//! the peer is gone (`docs/shm-architecture.md`). System V queues, which
//! nothing can poll, and shared memory with `wait=spin` are served by one
//! thread per connection half that makes the blocking calls and wakes the
//! task through an eventfd.
//!
//! # Cancel safety
//!
//! | method | dropped before it completes |
//! |---|---|
//! | `recv`, `recv_into` | nothing is lost: a message partly read stays in the channel |
//! | `send` | the message was not sent, or it is committed whole: the rest goes out before the next message (next `send`, `flush`, or drop) |
//! | `Sender::loan` | nothing is reserved; dropping the loan sends nothing |
//! | `Receiver::recv_in_place` | nothing is lost |
//! | `accept` | the connection stays queued for the next `accept` |
//! | `connect` | the half-made connection is closed and its objects removed |
//! | `rpc::Client::call` | the request may have been sent; its reply is dropped when it comes |
//!
//! # Shutdown
//!
//! [`Listener::closer`] and [`Channel::closer`] give handles that close a
//! listener or a channel from any task or thread; whoever waits on it
//! wakes with [`Error::Closed`](crate::Error::Closed). The blocking API
//! has the same for listeners ([`crate::AnyListener::closer`]).
//!
//! # Mixed peers
//!
//! The wire is the blocking API's: a blocking client talks to an async
//! server and the reverse.

use ipc_core::{Endpoint, Result, Schema};

pub mod queue;
pub mod rpc;
pub mod typed;

pub use ipc_backends::ListenerCloser;
pub use ipc_backends::aio::{
    AsyncChannel as Channel, AsyncInPlace as InPlace, AsyncListener as Listener, AsyncLoan as Loan,
    AsyncReceiver as Receiver, AsyncSender as Sender, ChannelCloser,
};

/// Listens on `endpoint` for raw byte channels. Must be called inside a
/// tokio runtime with I/O enabled.
///
/// # Errors
/// As [`crate::listen`]; no runtime.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> ipcx::Result<()> {
/// let mut listener = ipcx::tokio::listen(&"mq:/jobs".parse()?)?;
/// let mut conn = listener.accept().await?;
/// let job = conn.recv().await?;
/// # Ok(()) }
/// ```
pub fn listen(endpoint: &Endpoint) -> Result<Listener> {
    listen_with(endpoint, &Schema::bytes())
}

/// Listens on `endpoint`, announcing `schema` in the handshake.
///
/// # Errors
/// As [`listen`].
pub fn listen_with(endpoint: &Endpoint, schema: &Schema) -> Result<Listener> {
    ipc_backends::aio::listen(endpoint, schema)
}

/// Connects to `endpoint` for a raw byte channel.
///
/// # Errors
/// As [`crate::connect`]; no runtime.
///
/// # Examples
///
/// ```no_run
/// # async fn f() -> ipcx::Result<()> {
/// let mut conn = ipcx::tokio::connect(&"shm:/ticks".parse()?).await?;
/// conn.send(&[1, 2, 3]).await?;
/// # Ok(()) }
/// ```
pub async fn connect(endpoint: &Endpoint) -> Result<Channel> {
    connect_with(endpoint, &Schema::bytes()).await
}

/// Connects to `endpoint`, announcing `schema` in the handshake.
///
/// # Errors
/// As [`connect`].
pub async fn connect_with(endpoint: &Endpoint, schema: &Schema) -> Result<Channel> {
    ipc_backends::aio::connect(endpoint, schema).await
}

/// The async mirror of [`crate::connect_parent`]: in a child started by
/// [`crate::spawn`], the channel to the parent.
///
/// # Errors
/// As [`crate::connect_parent`]; no runtime.
pub async fn connect_parent() -> Result<Channel> {
    Channel::new(blocking(crate::connect_parent).await?)
}

/// Runs a blocking step (a connect's handshake) on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    ::tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::Error::io("a blocking connect step", std::io::Error::other(e)))?
}

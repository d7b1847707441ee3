//! Request–reply over any transport: a [`Client`] calls, a [`Server`]
//! answers many clients at once.
//!
//! ```no_run
//! use ipcx::IpcMessage;
//! use ipcx::rpc::{Client, Server};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(IpcMessage, Serialize, Deserialize)]
//! struct Add { a: i64, b: i64 }
//!
//! #[derive(IpcMessage, Serialize, Deserialize)]
//! struct Sum(i64);
//!
//! # fn main() -> ipcx::Result<()> {
//! let endpoint: ipcx::Endpoint = "unix:/tmp/adder.sock".parse()?;
//! let server = Server::serve(&endpoint, |req: Add| {
//!     req.a.checked_add(req.b).map(Sum).ok_or("overflow")
//! })?;
//! // In another process (or thread):
//! let client = Client::<Add, Sum>::connect(&endpoint)?;
//! assert_eq!(client.call(&Add { a: 2, b: 3 })?.0, 5);
//! server.shutdown();
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - Every request carries a correlation id (wire layout in
//!   `docs/wire-format.md`, "Request–reply"), so a client may have any
//!   number of calls in flight, from several threads ([`Client`] is `Sync`)
//!   or from one ([`Client::start`]). A reply that arrives after its call
//!   timed out is dropped.
//! - The server reads each connection on a thread of its own and handles
//!   requests concurrently on a pool of handler threads — those of one
//!   connection too — bounded by [`ServerOptions`] (64 at once overall, 16
//!   per connection, by default); each reply goes back as soon as its
//!   handler returns, so a slow request holds up no other. A caller's
//!   deadline travels with its request: a request still waiting for a
//!   handler when its caller has given up is dropped ([`Server::expired`]).
//!   A handler error, a handler panic, or a request that does not decode
//!   is returned to that caller as [`Error::Remote`](crate::Error::Remote); the connection and
//!   the server carry on.
//! - A client that disappears ends only its connection; a client that fails
//!   its handshake (other types, other protocol version) is refused and
//!   counted ([`Server::refused`]); neither stops the server.
//! - [`Server::shutdown`] stops accepting, closes every connection (their
//!   clients get [`Error::Disconnected`](crate::Error::Disconnected)) and waits for the threads.
//! - The handshake announces `rpc.request<Req>` / `rpc.reply<Resp>` type
//!   tags, distinct from the plain types, so a typed channel of the same
//!   types (which does not speak the envelope) is refused at connect.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use ipc_core::message::Fnv64;
use ipc_core::{IpcMessage, Schema, TypeTag};

mod client;
mod pool;
mod server;

pub use client::{Call, Client};
#[cfg(feature = "tokio")]
pub(crate) use client::{decode_reply, encode_request, reply_id};
pub use server::{Server, ServerOptions};
#[cfg(feature = "tokio")]
pub(crate) use server::{decode_request, encode_reply, panic_message, too_large};

/// Length of a request's envelope: the `u64` correlation id and the `u32`
/// milliseconds the caller still waits (0: no deadline).
pub const REQUEST_HEADER: usize = 12;
/// Length of a reply's envelope: the `u64` id and a status byte.
pub const REPLY_HEADER: usize = 9;
/// Reply status: the payload is the encoded response.
pub const STATUS_OK: u8 = 0;
/// Reply status: the handler failed; the payload is its UTF-8 message.
pub const STATUS_HANDLER_ERROR: u8 = 1;
/// Reply status: the server could not decode the request; the payload is
/// the UTF-8 reason.
pub const STATUS_BAD_REQUEST: u8 = 2;

/// How often blocked server threads look at the shutdown flag.
const POLL: Duration = Duration::from_millis(50);

fn envelope_tag(kind: &str, inner: TypeTag) -> TypeTag {
    TypeTag::new(
        format!("{kind}<{}>", inner.name),
        Fnv64::new()
            .str("ipcx.rpc.v2")
            .str(kind)
            .u64(inner.fingerprint)
            .finish(),
    )
}

/// The schema a client of `Req`/`Resp` announces (a server announces the
/// mirror image, [`server_schema`]).
pub fn client_schema<Req: IpcMessage, Resp: IpcMessage>() -> Schema {
    Schema::new(
        envelope_tag("rpc.request", Req::type_tag()),
        envelope_tag("rpc.reply", Resp::type_tag()),
    )
}

/// The schema a server of `Req`/`Resp` announces: the mirror image of
/// [`client_schema`]. A listener given to [`Server::from_listener`]
/// announces it.
pub fn server_schema<Req: IpcMessage, Resp: IpcMessage>() -> Schema {
    let client = client_schema::<Req, Resp>();
    Schema::new(client.recv, client.send)
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves plain data behind; carry on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

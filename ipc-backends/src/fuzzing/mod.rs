//! Fuzz target bodies: one function per decoder of peer input. Each takes
//! arbitrary bytes and panics only when the decoder breaks its contract
//! (a panic, an allocation past the agreed limit, a value out of bounds,
//! a round trip that does not hold).
//!
//! The `cargo fuzz` binaries in `fuzz/fuzz_targets/` call these, and
//! `ipc-backends/tests/fuzz_corpus.rs` replays the committed corpus
//! `fuzz/corpus/<target>/` through the same functions on stable, so every
//! seed and every input the fuzzer once found runs in the normal test
//! suite. Not part of the API.

mod endpoint;
mod fragment;
mod hello;
mod message;
#[cfg(feature = "nats")]
mod nats;
mod seeds;
mod shm;
mod stream;

pub use endpoint::endpoint;
pub use fragment::fragment;
pub use hello::hello;
pub use message::message;
#[cfg(feature = "nats")]
pub use nats::nats_frame;
pub use seeds::seeds;
pub use shm::{shm_consumer, shm_header, shm_ring};
pub use stream::stream;

/// The connection layer's handshake over a framed pair, as a transport
/// runs it.
fn handshake<S, R>(
    tx: &mut S,
    rx: &mut R,
    local: &ipc_core::handshake::Hello,
    deadline: ipc_core::Deadline,
    vet: impl FnOnce(&ipc_core::handshake::Hello) -> ipc_core::Result<()>,
) -> ipc_core::Result<ipc_core::PeerInfo>
where
    S: ipc_core::Sender + crate::conn::handshake::Limit,
    R: ipc_core::Receiver + crate::conn::handshake::Limit,
{
    use crate::conn::handshake::{Framed, drive};
    let endpoint: ipc_core::Endpoint = "unix:/fuzz".parse().expect("a valid endpoint");
    let mut wire = Framed::new(tx, rx);
    let peer = drive(&mut wire, &endpoint, local, deadline, vet)?;
    wire.agree(&peer);
    Ok(peer)
}

/// A target's body: runs one input, panicking on a broken contract.
pub type Target = fn(&[u8]);

/// Every target: its name (the `cargo fuzz` target and the corpus
/// directory) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("hello", hello),
    ("stream", stream),
    ("fragment", fragment),
    ("shm_ring", shm_ring),
    ("shm_consumer", shm_consumer),
    ("shm_header", shm_header),
    ("endpoint", endpoint),
    ("message", message),
    #[cfg(feature = "nats")]
    ("nats_frame", nats_frame),
];

/// Fixed-size fields read off the front of a fuzz input. Past the end
/// every read is zero, so any input maps to some case.
struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { bytes }
    }

    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.bytes.split_first()?;
        self.bytes = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        let head = self.take(N);
        a[..head.len()].copy_from_slice(head);
        a
    }

    fn u8(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }

    fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

/// The most a received message's buffer may have reserved for a message
/// limit of `max`: `Vec`'s growth at most doubles what was needed. After
/// a handshake, the buffers that held the hello are reused, so the bound
/// is that of a hello if larger.
fn capacity_bound(max: usize, handshake: bool) -> usize {
    let need = if handshake {
        max.max(ipc_core::handshake::MAX_HELLO_LEN)
    } else {
        max
    };
    2 * need.max(8)
}

//! `nats_frame`: the frames of a `nats://` connection (`nats/wire.rs`),
//! one NATS message's payload as the peer published it.

use crate::nats::wire::{self, Frame};

/// Decodes `data` as one frame: never a panic; a frame that decodes
/// encodes back to exactly `data`; a malformed one is `Protocol`.
pub fn nats_frame(data: &[u8]) {
    let frame = match wire::decode(data) {
        Ok(frame) => frame,
        Err(ipc_core::Error::Protocol(_)) => return,
        Err(e) => panic!("a malformed frame must be Protocol, not {e:?}"),
    };
    let again = match frame {
        Frame::Hello(body) => wire::with_body(wire::HELLO, body),
        Frame::Verdict(v) => vec![wire::VERDICT, v],
        Frame::Data { seq, body } => wire::data(seq, body),
        Frame::Credit { msgs, bytes } => wire::credit(msgs, bytes),
        Frame::Blocked => vec![wire::BLOCKED],
        Frame::Heartbeat => vec![wire::HEARTBEAT],
        Frame::Close { last } => wire::close(last),
    };
    assert_eq!(again, data, "a decoded frame encodes back to its bytes");
}

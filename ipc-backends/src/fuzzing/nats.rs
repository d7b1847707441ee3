//! `nats_frame`: the frames of a `nats://` connection (`nats/wire.rs`),
//! one NATS message's payload as the peer published it; and the same
//! bytes as a connect request.

use crate::nats::wire::{self, Frame};

/// Decodes `data` as one frame: never a panic; a frame that decodes
/// encodes back to exactly `data`; a malformed one is `Protocol`.
///
/// As a connect request: never a panic; one that decodes encodes back to
/// exactly `data`; a refusal is text naming what is wrong.
pub fn nats_frame(data: &[u8]) {
    match wire::decode_connect(data) {
        Ok(id) => assert_eq!(
            wire::connect_request(id),
            data,
            "a connect request encodes back"
        ),
        Err(why) => assert!(
            why.starts_with("ipcx nats"),
            "a refusal says what it is: {why}"
        ),
    }
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

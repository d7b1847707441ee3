//! The connection handshake run over any connected sender/receiver pair
//! (queues, pipes): each side sends its hello, checks the peer's, and both
//! exchange one verdict byte, so a refusal fails both sides.

use ipc_core::handshake::{Hello, MAX_HELLO_LEN, check, conclude, verdict_of};
use ipc_core::{Deadline, Error, PeerInfo, Receiver, Result, Sender};

pub(crate) use crate::conn::handshake::Limit;

/// Runs the handshake within `deadline`; `vet` adds transport checks on
/// the peer's hello (e.g. `allow_uid`) whose refusal is sent as the verdict.
///
/// # Errors
/// This side's refusal, the peer's refusal, a timeout, or a disconnect.
pub(crate) fn run<S, R>(
    tx: &mut S,
    rx: &mut R,
    local: &Hello,
    deadline: Deadline,
    vet: impl FnOnce(&Hello) -> Result<()>,
) -> Result<PeerInfo>
where
    S: Sender + Limit,
    R: Receiver + Limit,
{
    tx.set_max(MAX_HELLO_LEN);
    rx.set_max(MAX_HELLO_LEN);
    tx.send_until(&local.encode(), deadline)?;
    let mut buf = Vec::new();
    rx.recv_until(&mut buf, deadline)?;
    let decision = Hello::decode(&buf).and_then(|remote| {
        let info = check(local, &remote)?;
        vet(&remote)?;
        Ok(info)
    });
    tx.send_until(&[verdict_of(&decision)], deadline)?;
    match rx.recv_until(&mut buf, deadline) {
        Ok(()) => {}
        // We refused and the peer left without answering: our reason stands.
        Err(Error::Disconnected) if decision.is_err() => return decision,
        Err(e) => return Err(e),
    }
    let verdict = match buf.as_slice() {
        [v] => *v,
        _ => return Err(Error::protocol("the peer's verdict is not one byte")),
    };
    let info = conclude(decision, verdict)?;
    tx.set_max(info.max_message_size);
    rx.set_max(info.max_message_size);
    Ok(info)
}

/// Maps a timeout or would-block during connect to a clear error.
pub(crate) fn timed_out(endpoint: &str, what: &str) -> Error {
    Error::io(
        format!("{endpoint}: {what}"),
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer within connect_timeout; is a listener running and accepting? raise connect_timeout if it is slow",
        ),
    )
}

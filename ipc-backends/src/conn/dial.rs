//! Connecting, with the wait for a listener that `wait_for_listener` asks
//! for: while nothing listens, the attempt is repeated (1 ms, doubling to
//! 50 ms between tries) until that much time has passed; then the last
//! [`Error::NoListener`] stands. Every other error ends the wait at once.

use std::time::{Duration, Instant};

use ipc_core::{Endpoint, Error, Result};

/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Runs `attempt` until it connects, fails for a reason other than
/// [`Error::NoListener`], or `wait_for_listener` has passed.
///
/// # Errors
/// The last attempt's error.
pub(crate) fn dial<C>(endpoint: &Endpoint, mut attempt: impl FnMut() -> Result<C>) -> Result<C> {
    let until = Instant::now().checked_add(endpoint.wait_for_listener());
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt() {
            Err(e @ Error::NoListener { .. }) => {
                let left = until.map_or(Duration::MAX, |t| {
                    t.saturating_duration_since(Instant::now())
                });
                if left.is_zero() {
                    tracing::debug!(%endpoint, error = %e, "connect refused");
                    return Err(e);
                }
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(e) => {
                tracing::debug!(%endpoint, error = %e, "connect failed");
                return Err(e);
            }
            Ok(c) => {
                tracing::debug!(%endpoint, "connected");
                return Ok(c);
            }
        }
    }
}

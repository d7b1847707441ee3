//! The tokio runtime ipcx owns for `nats://`: started lazily, once per
//! process, on the first `nats://` listen or connect (blocking or async),
//! with two worker threads named `ipcx-nats`. It runs the NATS clients and
//! each connection's reader, writer and heartbeat tasks; callers never
//! block on it from inside it (they wait on a channel or condition
//! variable), so both the blocking API and any tokio runtime of the
//! application can use it.

use std::future::Future;
use std::sync::OnceLock;

use ipc_core::{Error, Result};
use tokio::runtime::{Builder, Handle, Runtime};

/// The name of the runtime's threads.
pub(crate) const THREAD_NAME: &str = "ipcx-nats";

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

/// The runtime's handle, starting it on first use.
///
/// # Errors
/// [`Error::Io`] when its threads cannot be started.
pub fn handle() -> Result<Handle> {
    let rt = RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    });
    match rt {
        Ok(rt) => Ok(rt.handle().clone()),
        Err(e) => Err(Error::io(
            "nats: starting the runtime",
            std::io::Error::other(e.clone()),
        )),
    }
}

/// Runs `fut` on the runtime and waits for its output on this thread
/// (which may be any thread but one of the runtime's own).
///
/// # Errors
/// As [`handle`]; [`Error::Io`] if the task panicked.
pub(crate) fn run<T: Send + 'static>(fut: impl Future<Output = T> + Send + 'static) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| Error::io("nats: a runtime task", std::io::Error::other("it panicked")))
}

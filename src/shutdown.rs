//! A clean stop on SIGTERM, SIGINT and SIGHUP: how systemd, Docker,
//! Kubernetes and a terminal stop a service.
//!
//! The kernel removes most of what ipcx creates when its creator dies
//! (POSIX segments and per-connection queues are unlinked as soon as both
//! sides hold them; sockets and descriptors close). What it cannot remove
//! — a listener's socket file, rendezvous FIFO and `mq:` rendezvous queue,
//! System V queues and segments — every transport records in the
//! [registry](crate::backends::registry), and a listener removes on drop. A
//! signal ends the process without running those drops; [`on_signals`]
//! makes it remove them first.
//!
//! Named objects a process creates on purpose to outlive it (semaphores
//! and regions of [`sync`](crate::sync) and [`shared`](crate::shared)) are
//! not touched.

use std::thread::JoinHandle;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use crate::{Error, Result};

/// How long a stop on a signal waits for the listeners to close.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// What [`on_signals`] installed; dropping it (or [`close`](Self::close))
/// stops reacting to the signals.
#[derive(Debug)]
pub struct OnSignals {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

/// On the first SIGTERM, SIGINT or SIGHUP, closes every listener of this
/// process (each removes its names) and removes every other kernel object
/// this process recorded (System V queues and segments of its
/// connections), then ends the process as the signal would have (its exit status
/// says which signal). Opt-in: a library never installs it by itself.
///
/// Call it once, early in `main`, and keep the returned value alive.
///
/// # Errors
/// [`Error::Io`] when the handlers cannot be installed or the thread that
/// serves them cannot start.
///
/// # Examples
///
/// ```no_run
/// use ipcx::{Listener, Receiver};
/// # fn main() -> ipcx::Result<()> {
/// let _clean_stop = ipcx::shutdown::on_signals()?;
/// let mut listener = ipcx::listen(&"fifo:/tmp/orders".parse()?)?;
/// loop {
///     let mut conn = listener.accept()?;
///     std::thread::spawn(move || while conn.recv().is_ok() {});
/// }
/// # }
/// ```
pub fn on_signals() -> Result<OnSignals> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| Error::io("installing the SIGTERM/SIGINT/SIGHUP handlers", e))?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("ipcx-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                // Listeners first: each removes its own names (socket
                // files, rendezvous FIFOs and queues, key files).
                let closed = ipc_backends::conn::close_all_listeners(CLOSE_WAIT);
                let removed = ipc_backends::registry::remove_mine();
                tracing::info!(signal, closed, "closed the listeners");
                tracing::info!(
                    signal,
                    removed,
                    "stopping on a signal: removed what would outlive this process"
                );
                // Ends the process as the signal's default action would.
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })
        .map_err(|e| Error::io("starting the signal thread", e))?;
    Ok(OnSignals {
        handle,
        thread: Some(thread),
    })
}

impl OnSignals {
    /// Stops handling the signals.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for OnSignals {
    fn drop(&mut self) {
        self.stop();
    }
}

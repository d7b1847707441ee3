//! `ipcx recv ENDPOINT [--count N]`: listens and prints what arrives.

use ipcx::{Error, Listener, Receiver};

/// Options of `ipcx recv`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx recv unix:/tmp/orders.sock\n  ipcx recv mq:/orders --count 1\n  ipcx recv sysv-mq:/tmp/orders --hex"
)]
pub struct Args {
    /// Where to listen.
    pub endpoint: String,
    /// Exit after this many messages (default: run until interrupted).
    #[arg(long)]
    pub count: Option<u64>,
    /// Print messages as hex instead of text.
    #[arg(long)]
    pub hex: bool,
}

/// Runs `ipcx recv`: accepts clients one after another and prints each
/// message on its own line; says on standard error where it listens.
///
/// # Errors
/// Bad endpoint, listen and accept failures.
pub fn main(args: Args) -> Result<(), String> {
    let ep = super::endpoint(&args.endpoint)?;
    // SIGTERM, SIGINT, SIGHUP: the listener's names (a socket file, a FIFO,
    // a rendezvous queue, System V objects) are removed before the end.
    let _clean_stop = ipcx::shutdown::on_signals().map_err(|e| e.to_string())?;
    let mut listener = ipcx::listen(&ep).map_err(|e| format!("listen {ep}: {e}"))?;
    eprintln!("ipcx recv: listening on {}", listener.endpoint());
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    if args.count == Some(0) {
        return Ok(());
    }
    loop {
        let mut ch = match listener.accept() {
            Ok(ch) => ch,
            Err(e) if e.is_fatal() => return Err(format!("accept on {ep}: {e}")),
            Err(e) => {
                eprintln!("ipcx recv: {ep}: {e}");
                continue;
            }
        };
        loop {
            match ch.recv() {
                Ok(msg) => {
                    super::print_message(&mut out, &msg, args.hex)?;
                    n += 1;
                    if args.count.is_some_and(|c| n >= c) {
                        return Ok(());
                    }
                }
                Err(Error::Disconnected) => break,
                Err(e) => {
                    eprintln!("ipcx recv: {ep}: {e}");
                    break;
                }
            }
        }
    }
}

//! `ipcx serve ENDPOINT --echo`: a server for many clients at once.

use ipcx::{AnyChannel, Error, Listener, Receiver, Sender};

/// Options of `ipcx serve`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx serve unix:/tmp/echo.sock --echo\n  ipcx serve mq:/echo --echo &\n  ipcx send mq:/echo hello --wait-reply"
)]
pub struct Args {
    /// Where to listen.
    pub endpoint: String,
    /// Send every message back to its sender.
    #[arg(long)]
    pub echo: bool,
    /// Also print every message (as hex with --hex).
    #[arg(long)]
    pub print: bool,
    /// Print messages as hex.
    #[arg(long)]
    pub hex: bool,
}

/// Runs `ipcx serve`: one thread per client, until interrupted.
///
/// # Errors
/// Bad endpoint, listen and accept failures.
pub fn main(args: Args) -> Result<(), String> {
    if !args.echo && !args.print {
        return Err("serve needs --echo or --print (what to do with messages)".into());
    }
    let ep = super::endpoint(&args.endpoint)?;
    // SIGTERM, SIGINT, SIGHUP: the listener's names (a socket file, a FIFO,
    // a rendezvous queue, System V objects) are removed before the end.
    let _clean_stop = ipcx::shutdown::on_signals().map_err(|e| e.to_string())?;
    let mut listener = ipcx::listen(&ep).map_err(|e| format!("listen {ep}: {e}"))?;
    eprintln!("ipcx serve: listening on {}", listener.endpoint());
    loop {
        // accept returns established clients only; a client that fails its
        // handshake is logged (ipcx -v) and never ends the server.
        let ch = match listener.accept() {
            Ok(ch) => ch,
            Err(e) if e.is_fatal() => return Err(format!("accept on {ep}: {e}")),
            Err(e) => {
                eprintln!("ipcx serve: {ep}: {e}");
                continue;
            }
        };
        let args = args.clone();
        std::thread::Builder::new()
            .name("ipcx-serve-client".into())
            .spawn(move || {
                if let Err(e) = client(ch, &args) {
                    eprintln!("ipcx serve: {}: {e}", args.endpoint);
                }
            })
            .map_err(|e| format!("starting a client thread: {e}"))?;
    }
}

fn client(mut ch: AnyChannel, args: &Args) -> Result<(), String> {
    let mut buf = Vec::new();
    loop {
        match ch.recv_into(&mut buf) {
            Ok(()) => {}
            Err(Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        if args.print {
            super::print_message(&mut std::io::stdout().lock(), &buf, args.hex)?;
        }
        if args.echo {
            match ch.send(&buf) {
                Ok(()) => {}
                Err(Error::Disconnected) => return Ok(()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

//! `ipcx send ENDPOINT [MSG|-]`: connects, sends, prints replies.

use std::io::BufRead;
use std::time::Duration;

use ipcx::{Receiver, Sender};

/// Options of `ipcx send`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx send unix:/tmp/orders.sock 'hello'\n  printf 'a\\nb\\n' | ipcx send mq:/orders -\n  ipcx send fifo:/tmp/orders 68656c6c6f --hex --wait-reply"
)]
pub struct Args {
    /// Where to connect (`unix:/run/x.sock`, `mq:/x`, `fifo:/tmp/x`, …).
    pub endpoint: String,
    /// The message; `-` or absent: one message per line of standard input.
    pub message: Option<String>,
    /// Messages are given (and replies printed) as hex.
    #[arg(long)]
    pub hex: bool,
    /// After each message, wait for one reply and print it.
    #[arg(long)]
    pub wait_reply: bool,
    /// How long to wait for each reply, in seconds.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
}

/// Runs `ipcx send`.
///
/// # Errors
/// Bad endpoint or hex, connection and transfer failures, a reply timeout.
pub fn main(args: Args) -> Result<(), String> {
    let ep = super::endpoint(&args.endpoint)?;
    let mut ch = ipcx::connect(&ep).map_err(|e| format!("connect {ep}: {e}"))?;
    let timeout = Duration::from_secs_f64(args.timeout.max(0.0));
    let mut out = std::io::stdout().lock();
    let mut one = |text: &str| -> Result<(), String> {
        let msg = if args.hex {
            super::hex::decode(text)?
        } else {
            text.as_bytes().to_vec()
        };
        ch.send(&msg).map_err(|e| format!("send to {ep}: {e}"))?;
        if args.wait_reply {
            let reply = ch
                .recv_timeout(timeout)
                .map_err(|e| format!("waiting for a reply from {ep}: {e}"))?;
            super::print_message(&mut out, &reply, args.hex)?;
        }
        Ok(())
    };
    match args.message.as_deref() {
        Some(m) if m != "-" => one(m),
        _ => {
            for line in std::io::stdin().lock().lines() {
                one(&line.map_err(|e| format!("reading standard input: {e}"))?)?;
            }
            Ok(())
        }
    }
}

//! Round trips over any transport, chosen only by the endpoint.
//!
//! ```text
//! cargo run --release --example ping_pong -- unix:/tmp/ping.sock [ROUNDS] [SIZE]
//! cargo run --release --example ping_pong -- tcp://127.0.0.1:0
//! IPCX_ENDPOINT=mq:/ping cargo run --release --example ping_pong
//! ```
//!
//! The program spawns itself as the peer (`ipcx::spawn`), so `pipe:` works
//! too, then times ROUNDS round trips of SIZE-byte messages and prints the
//! median and the 99th percentile.

use std::process::Command;
use std::time::Instant;

use ipcx::{Endpoint, Receiver, Sender};

const PONG: &str = "--pong";

fn main() {
    if let Err(e) = run() {
        eprintln!("ping_pong: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(PONG) {
        return pong();
    }
    let endpoint: Endpoint = match args.first() {
        Some(s) => s.parse()?,
        None => Endpoint::from_env("IPCX_ENDPOINT")?
            .unwrap_or(format!("unix:/tmp/ipcx-ping-{}.sock", std::process::id()).parse()?),
    };
    let rounds: usize = args.get(1).map_or(Ok(10_000), |s| s.parse())?;
    let size: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;

    let mut peer = Command::new(std::env::current_exe()?);
    peer.arg(PONG);
    let (mut child, mut ch) = ipcx::spawn(peer, &endpoint)?;

    let msg = vec![7u8; size];
    let mut reply = Vec::with_capacity(size);
    for _ in 0..rounds.min(1000) {
        ch.send(&msg)?;
        ch.recv_into(&mut reply)?;
    }
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        ch.send(&msg)?;
        ch.recv_into(&mut reply)?;
        times.push(t.elapsed());
        if reply != msg {
            return Err("the peer sent back something else".into());
        }
    }
    drop(ch);
    child.wait()?;
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "{endpoint}: {rounds} round trips of {size} B: median {:?}, p99 {:?}",
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}

/// The spawned peer: echoes until the parent hangs up.
fn pong() -> Result<(), Box<dyn std::error::Error>> {
    let mut ch = ipcx::connect_parent()?;
    let mut buf = Vec::new();
    loop {
        match ch.recv_into(&mut buf) {
            Ok(()) => ch.send(&buf)?,
            Err(ipcx::Error::Disconnected) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

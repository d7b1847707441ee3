//! Consumer throughput of a JetStream queue: one pull per message against
//! batch pulls, interleaved in the same run, against a server you start:
//!
//! ```text
//! nats-server -a 127.0.0.1 -p 4333 -js -sd /tmp/ipcx-js-bench &
//! cargo run --release --features nats --example jetstream_consume -- \
//!     nats://127.0.0.1:4333/ipcx-consume-bench 2000 5
//! ```
//!
//! Arguments: the server's endpoint (`?pattern=queue` is added), messages
//! per round (default 2,000, 64 bytes each), rounds (default 5), and
//! optionally the modes to run (comma-separated, default all; `fill`
//! alone only fills and purges, the baseline for `strace -f -c`). Each
//! round fills the queue (not timed), then one consumer drains it in
//! each mode, in turn:
//!
//! - `one`: `recv_acked` and a confirmed `ack()` per message (a pull
//!   request and an acknowledgement round trip each);
//! - `batch64`: `recv_batch(64)`, then a confirmed `ack()` per message;
//! - `batch64+ack_all`: `recv_batch(64)`, then `ack_all` for the batch.
//!
//! Prints messages per second per round and the median ratio of each mode
//! to `one` with its spread. The queue is removed at the end.

use std::time::Instant;

use ipcx::queue::{Ack, ByteConsumer, ByteProducer};
use ipcx::{Deadline, Endpoint};

const MODES: [&str; 3] = ["one", "batch64", "batch64+ack_all"];

fn main() -> ipcx::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222/ipcx-consume-bench".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let only: Option<String> = args.next();
    let modes: Vec<&str> = MODES
        .iter()
        .copied()
        .filter(|m| {
            only.as_deref()
                .is_none_or(|o| o.split(',').any(|x| x == *m))
        })
        .collect();
    if only.as_deref() == Some("fill") {
        let endpoint: Endpoint = format!("{base}?pattern=queue").parse()?;
        let mut producer = ByteProducer::open(&endpoint)?;
        for _ in 0..n * rounds {
            producer.send(&[7u8; 64])?;
        }
        println!("purged {}", ipcx::queue::purge(&endpoint)?);
        ipcx::queue::remove(&endpoint)?;
        return Ok(());
    }
    if modes.is_empty() {
        eprintln!(
            "no such mode in {only:?}; the modes are {}",
            MODES.join(", ")
        );
        std::process::exit(2);
    }
    let endpoint: Endpoint = format!("{base}?pattern=queue").parse()?;
    let _ = ipcx::queue::remove(&endpoint);
    let mut producer = ByteProducer::open(&endpoint)?;
    let mut consumer = ByteConsumer::open(&endpoint)?;
    let payload = [7u8; 64];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    for round in 0..rounds {
        for (i, mode) in modes.iter().enumerate() {
            for _ in 0..n {
                producer.send(&payload)?;
            }
            let start = Instant::now();
            let mut got = 0;
            while got < n {
                match *mode {
                    "one" => {
                        let (d, ack) = consumer.recv_acked_until(Deadline::Never)?;
                        assert_eq!(d.payload.len(), 64);
                        ack.ack()?;
                        got += 1;
                    }
                    _ => {
                        let batch = consumer.recv_batch_acked_until(64, Deadline::Never)?;
                        let mut acks = Vec::with_capacity(batch.len());
                        for m in batch {
                            let (bytes, _, ack) = m?;
                            assert_eq!(bytes.len(), 64);
                            acks.push(ack);
                        }
                        got += acks.len();
                        if *mode == "batch64" {
                            for ack in acks {
                                ack.ack()?;
                            }
                        } else {
                            Ack::ack_all(acks)?;
                        }
                    }
                }
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            println!("round {round} {mode:<16} {rate:>9.0} msg/s");
            rates[i].push(rate);
        }
    }
    println!(
        "\nmode             median msg/s   ratio to {}: median (min–max over rounds)",
        modes[0]
    );
    for (i, mode) in modes.iter().enumerate() {
        let mut ratios: Vec<f64> = rates[i]
            .iter()
            .zip(&rates[0])
            .map(|(r, one)| r / one)
            .collect();
        ratios.sort_by(f64::total_cmp);
        let mut r = rates[i].clone();
        r.sort_by(f64::total_cmp);
        println!(
            "{mode:<16} {:>12.0}   {:.2}× ({:.2}–{:.2})",
            r[r.len() / 2],
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    ipcx::queue::remove(&endpoint)?;
    Ok(())
}

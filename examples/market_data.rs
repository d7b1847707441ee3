//! A market-data publisher and consumer exchanging a zero-copy `#[repr(C)]`
//! quote, over the endpoint given (default `unix:`).
//!
//! ```text
//! cargo run --release --example market_data -- shm:/quotes [COUNT]
//! cargo run --release --example market_data -- unix:/tmp/quotes.sock
//! cargo run --release --example market_data -- pipe:
//! ```
//!
//! The publisher spawns the consumer as a child of itself
//! (`ipcx::typed::spawn`), sends COUNT quotes and reads back the consumer's
//! summary. `Quote` is plain data: never serialized. The publisher fills
//! each quote in a loan (`tx.loan()`) and the consumer reads it as a
//! sample (`rx.recv_sample()`), validated (the `side` enum). Over `shm:` or
//! `sysv-shm:` the loan is the ring slot and the sample points into the
//! same shared memory: no copy at all. Over every other transport the same
//! code moves the quote's bytes with one copy.

use std::process::Command;

use ipcx::{Endpoint, Error, IpcMessage};
use serde::{Deserialize, Serialize};

const CONSUMER: &str = "--consumer";

/// `Quote::side` of a bid.
const BID: u8 = 1;
/// `Quote::side` of an ask.
const ASK: u8 = 2;

/// One quote: 40 bytes, no padding (the derive refuses padding). Every
/// field accepts any bytes (the side is a `u8`, not an enum), so a consumer
/// on shared memory reads it in place; a `bool` or enum field would make
/// `recv_sample` copy it out first, because the publisher could still write.
#[derive(IpcMessage, Clone, Copy, Debug, PartialEq)]
#[ipc(zero_copy, name = "md.Quote")]
#[repr(C)]
struct Quote {
    seq: u64,
    price: f64,
    size: u32,
    symbol: [u8; 6],
    side: u8,
    _reserved: [u8; 5],
    timestamp_ns: u64,
}

/// What the consumer reports when the stream ends (serde-encoded).
#[derive(IpcMessage, Serialize, Deserialize, Debug)]
#[ipc(name = "md.Summary")]
struct Summary {
    quotes: u64,
    in_place: u64,
    gaps: u64,
    bid_vwap: f64,
    ask_vwap: f64,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("market_data: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CONSUMER) {
        return consume();
    }
    let endpoint: Endpoint = match args.first() {
        Some(s) => s.parse()?,
        None => format!("unix:/tmp/ipcx-quotes-{}.sock", std::process::id()).parse()?,
    };
    let count: u64 = args.get(1).map_or(Ok(100_000), |s| s.parse())?;
    println!(
        "publisher: {count} quotes of {} bytes over {endpoint} ({} transport, no serialization)",
        size_of::<Quote>(),
        endpoint.scheme()
    );

    let mut consumer = Command::new(std::env::current_exe()?);
    consumer.arg(CONSUMER);
    let (mut child, ch) = ipcx::typed::spawn::<Quote, Summary>(consumer, &endpoint)?;
    let (mut tx, mut rx) = ch.split();
    let started = std::time::Instant::now();
    let mut in_place = false;
    for seq in 0..count {
        let side = if seq % 2 == 0 { BID } else { ASK };
        let mut loan = tx.loan()?;
        in_place = loan.is_in_place();
        loan.write(Quote {
            seq,
            price: 100.0 + (seq % 50) as f64 * 0.01,
            size: 100 + (seq % 7) as u32 * 10,
            symbol: *b"ACME\0\0",
            side,
            _reserved: [0; 5],
            timestamp_ns: started.elapsed().as_nanos() as u64,
        });
        loan.send()?;
    }
    drop(tx); // the end of the stream
    let summary = rx.recv()?;
    let elapsed = started.elapsed();
    println!(
        "consumer: {} quotes ({} read in place), {} gaps, bid VWAP {:.4}, ask VWAP {:.4}",
        summary.quotes, summary.in_place, summary.gaps, summary.bid_vwap, summary.ask_vwap
    );
    println!(
        "publisher: quotes written {}",
        if in_place {
            "in place in shared memory"
        } else {
            "into a buffer, sent with one copy"
        }
    );
    println!(
        "publisher: {:.0} quotes/s",
        count as f64 / elapsed.as_secs_f64()
    );
    if !child.wait()?.success() {
        return Err("the consumer failed".into());
    }
    Ok(())
}

fn consume() -> Result<(), Box<dyn std::error::Error>> {
    let (mut tx, mut rx) = ipcx::typed::connect_parent::<Summary, Quote>()?.split();
    let mut next = 0u64;
    let mut gaps = 0u64;
    let mut in_place = 0u64;
    let (mut bid, mut ask) = ((0.0, 0.0), (0.0, 0.0));
    loop {
        // `q` derefs to the quote where it lies (in the segment over shm);
        // its ring space is released when it drops, at the end of the loop.
        let q = match rx.recv_sample() {
            Ok(q) => q,
            Err(Error::Disconnected) => break,
            Err(e) => return Err(e.into()),
        };
        in_place += u64::from(q.is_in_place());
        if q.seq != next {
            gaps += 1;
        }
        next = q.seq + 1;
        let book = match q.side {
            BID => &mut bid,
            ASK => &mut ask,
            other => {
                return Err(
                    format!("quote {} has side {other}, neither bid nor ask", q.seq).into(),
                );
            }
        };
        book.0 += q.price * f64::from(q.size);
        book.1 += f64::from(q.size);
    }
    tx.send(&Summary {
        quotes: next,
        in_place,
        gaps,
        bid_vwap: bid.0 / bid.1.max(1.0),
        ask_vwap: ask.0 / ask.1.max(1.0),
    })?;
    Ok(())
}

//! One process writes a struct in a shared region under its robust lock;
//! another reads it without locking (seqlock) and never sees a torn value.
//! Both roles are in this file, chosen by the first argument.
//!
//! ```text
//! cargo run --example shared_writer_reader                  # both: writer, then a reader child
//! cargo run --example shared_writer_reader -- writer shm:/prices &
//! cargo run --example shared_writer_reader -- reader shm:/prices
//! ```
//!
//! The writer creates the region (`shm:/ipcx-example-prices` by default,
//! or the endpoint given, `sysv-shm:PATH` too), updates it
//! [`UPDATES`] times and removes it; the reader opens it (waiting for it
//! to appear) and prints what it sees until the writer says it is done.

use std::process::Command;
use std::time::{Duration, Instant};

use ipcx::shared::Region;
use ipcx::{Endpoint, IpcMessage};

/// How many updates the writer makes.
const UPDATES: u64 = 200_000;

/// The shared value: a zero-copy type (checked layout, no padding). Its
/// invariant (`ask == bid + spread`, `check == seq ^ MIX`) lets the
/// reader prove that no read was torn.
#[derive(IpcMessage, Clone, Copy, Debug, Default)]
#[ipc(zero_copy, name = "example.Quote")]
#[repr(C)]
struct Quote {
    seq: u64,
    bid: u64,
    ask: u64,
    spread: u64,
    check: u64,
    /// 1 once the writer is done.
    done: u64,
}

const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

fn main() -> ipcx::Result<()> {
    let mut args = std::env::args().skip(1);
    let role = args.next();
    let endpoint: Endpoint = args
        .next()
        .as_deref()
        .unwrap_or("shm:/ipcx-example-prices")
        .parse()?;
    match role.as_deref() {
        Some("writer") => writer(&endpoint, false),
        Some("reader") => reader(&endpoint),
        None | Some("both") => writer(&endpoint, true),
        Some(other) => {
            eprintln!(
                "usage: shared_writer_reader [writer|reader|both] [ENDPOINT] (not {other:?})"
            );
            std::process::exit(2);
        }
    }
}

fn writer(endpoint: &Endpoint, spawn_reader: bool) -> ipcx::Result<()> {
    let region = Region::create(endpoint, Quote::default())?;
    let child = if spawn_reader {
        Some(
            Command::new(std::env::current_exe()?)
                .args(["reader", &endpoint.to_string()])
                .spawn()?,
        )
    } else {
        None
    };
    let result = (|| -> ipcx::Result<()> {
        for i in 1..=UPDATES {
            // Under the lock: readers see the old value or the new one,
            // never a mix. A writer killed here leaves the lock to the
            // next one, which is told (`OwnerDied`).
            let mut q = region.lock()?.unwrap_or_else(|died| died.into_inner());
            q.seq = i;
            q.bid = 100 + i % 50;
            q.spread = 1 + i % 3;
            q.ask = q.bid + q.spread;
            q.check = i ^ MIX;
        }
        region.lock()?.unwrap_or_else(|died| died.into_inner()).done = 1;
        println!("writer: {UPDATES} updates written");
        Ok(())
    })();
    if let Some(mut c) = child {
        c.wait()?;
    } else {
        // Give a separate reader time to see `done` before the name goes.
        std::thread::sleep(Duration::from_millis(200));
    }
    region.remove()?;
    result
}

fn reader(endpoint: &Endpoint) -> ipcx::Result<()> {
    let start = Instant::now();
    let region = loop {
        match Region::<Quote>::open(endpoint) {
            Ok(r) => break r,
            Err(_) if start.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    };
    let (mut reads, mut last) = (0u64, 0u64);
    loop {
        // No lock: a consistent copy, retried while a write is under way.
        let q = region.read()?;
        reads += 1;
        assert_eq!(q.ask, q.bid + q.spread, "torn read: {q:?}");
        assert!(q.seq == 0 || q.check == q.seq ^ MIX, "torn read: {q:?}");
        assert!(q.seq >= last, "went backwards: {q:?}");
        if q.seq / 50_000 != last / 50_000 {
            println!("reader: seq {} bid {} ask {}", q.seq, q.bid, q.ask);
        }
        last = q.seq;
        if q.done == 1 {
            break;
        }
    }
    println!("reader: {reads} reads, none torn, last seq {last}");
    Ok(())
}

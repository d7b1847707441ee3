//! Several processes increment one counter in shared memory, under its
//! robust lock, while the parent reads it without locking (seqlock).
//!
//! ```text
//! cargo run --example shared_counter              # shm:/ipcx-example-counter
//! cargo run --example shared_counter -- sysv-shm:/tmp/counter
//! ```
//!
//! The parent creates the region and re-executes itself as the workers.

use std::process::Command;
use std::time::Duration;

use ipcx::shared::Region;
use ipcx::{Endpoint, IpcMessage};

const WORKERS: u64 = 4;
const EACH: u64 = 50_000;

/// The shared value: a zero-copy type (checked layout, no padding).
#[derive(IpcMessage, Clone, Copy, Debug, Default)]
#[ipc(zero_copy, name = "example.Counter")]
#[repr(C)]
struct Counter {
    value: u64,
    /// The pid of the process that wrote last.
    last_writer: u32,
    _pad: u32,
}

fn main() -> ipcx::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("worker") {
        let endpoint: Endpoint = args.next().expect("endpoint").parse()?;
        return worker(&endpoint);
    }
    let endpoint: Endpoint = first
        .as_deref()
        .unwrap_or("shm:/ipcx-example-counter")
        .parse()?;
    let region = Region::create(&endpoint, Counter::default())?;
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for _ in 0..WORKERS {
        children.push(
            Command::new(&exe)
                .args(["worker", &endpoint.to_string()])
                .spawn()?,
        );
    }
    // Reading never blocks the workers, and never sees a torn value.
    for _ in 0..5 {
        let now = region.read()?;
        println!("so far: {} (last by pid {})", now.value, now.last_writer);
        std::thread::sleep(Duration::from_millis(20));
    }
    for mut c in children {
        c.wait()?;
    }
    let total = region.read()?.value;
    println!("total: {total} (expected {})", WORKERS * EACH);
    region.remove()?;
    assert_eq!(total, WORKERS * EACH);
    Ok(())
}

fn worker(endpoint: &Endpoint) -> ipcx::Result<()> {
    let region = Region::<Counter>::open(endpoint)?;
    for _ in 0..EACH {
        // A worker killed inside this block leaves the lock to the next
        // one, which is told (`OwnerDied`) and carries on from the value.
        let mut guard = region.lock()?.unwrap_or_else(|died| {
            eprintln!("a worker died holding the lock; going on from its value");
            died.into_inner()
        });
        guard.value += 1;
        guard.last_writer = std::process::id();
    }
    Ok(())
}

//! `ipcx rm ENDPOINT`: removes a region, mutex or semaphore by its
//! endpoint ([`registry::state::remove`](ipcx::backends::registry::state::remove)).
//!
//! - `sem:/NAME`, `sysv-sem:PATH`: the semaphore;
//! - `shm:/NAME`: the mutex and/or the region of that name;
//! - `sysv-shm:PATH`: the mutex and/or the region keyed by `PATH`.
//!
//! These objects persist by design (`ipcx clean` keeps them unless given
//! `--include-state`); this is how an operator removes one on purpose.

use ipcx::backends::registry::state;

/// Options of `ipcx rm`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx rm sem:/ready\n  ipcx rm shm:/prices          # the region and/or mutex of that name\n  ipcx rm sysv-sem:/tmp/printer\n  ipcx rm sysv-shm:/tmp/table  # as `ipcx ls` lists it"
)]
pub struct Args {
    /// The endpoint of the semaphore, mutex or region to remove.
    pub endpoint: String,
}

/// Runs `ipcx rm`.
///
/// # Errors
/// When the endpoint names nothing removable, or the removal failed.
pub fn main(args: Args) -> Result<(), String> {
    let ep = super::endpoint(&args.endpoint)?;
    let s = ep.to_string();
    let removed = state::remove(&ep).map_err(|e| format!("{s}: {e}"))?;
    if removed.is_empty() {
        return Err(format!(
            "{s}: no region, mutex or semaphore of that name (see ipcx ls)"
        ));
    }
    let kinds: Vec<&str> = removed.iter().map(|k| k.as_str()).collect();
    println!("removed {} {s}", kinds.join(" and "));
    Ok(())
}

//! `ipcx clean [--dry-run] [--include-state]`: removes the objects whose
//! owners are dead, and only those, with the backends' own removal
//! functions. Regions, mutexes and semaphores persist by design and are
//! left alone unless `--include-state` is given; then those whose creator
//! is known to be dead go too (a POSIX semaphore records no creator, so it
//! stays: `ipcx rm` removes it).

use ipcx::backends::registry::state::StateObject;

use super::objects::{self, Object};

/// Options of `ipcx clean`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx clean --dry-run   # list what would go\n  ipcx clean\n  ipcx clean --include-state   # also regions, mutexes and semaphores whose creator is dead"
)]
pub struct Args {
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove regions, mutexes and semaphores whose creator is dead
    /// (they are kept by default: they persist by design).
    #[arg(long)]
    pub include_state: bool,
}

/// Runs `ipcx clean`: one line per object removed (or that would be).
///
/// # Errors
/// When an orphan could not be removed (the others still are).
pub fn main(args: Args) -> Result<(), String> {
    let orphans: Vec<Object> = objects::all()
        .into_iter()
        .filter(Object::orphaned)
        .collect();
    let state: Vec<StateObject> = if args.include_state {
        super::sync_objects::all()
            .into_iter()
            .filter(|o| o.owner_alive == Some(false))
            .collect()
    } else {
        Vec::new()
    };
    let mut failed = Vec::new();
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for o in &orphans {
        if !args.dry_run {
            if let Err(e) = o.remove() {
                failed.push(e);
                continue;
            }
        }
        println!(
            "{verb} {} {} (owner pid {} is dead){}",
            o.transport,
            o.name,
            o.pid.map_or("?".into(), |p| p.to_string()),
            o.endpoint
                .as_deref()
                .map(|e| format!(" of {e}"))
                .unwrap_or_default()
        );
    }
    for o in &state {
        if !args.dry_run {
            if let Err(e) = o.remove() {
                failed.push(format!("removing {} {}: {e}", o.kind, o.endpoint));
                continue;
            }
        }
        println!(
            "{verb} {} {} ({}, creator pid {} is dead)",
            o.kind,
            o.endpoint,
            o.object,
            o.owner.map_or("?".into(), |p| p.to_string()),
        );
    }
    if orphans.is_empty() && state.is_empty() {
        eprintln!("ipcx clean: nothing to remove");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

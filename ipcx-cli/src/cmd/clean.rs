//! `ipcx clean [--dry-run]`: removes the objects whose owners are dead,
//! and only those, with the backends' own removal functions.

use super::objects::{self, Object};

/// Options of `ipcx clean`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  ipcx clean --dry-run   # list what would go\n  ipcx clean")]
pub struct Args {
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `ipcx clean`: one line per object removed (or that would be).
///
/// # Errors
/// When an orphan could not be removed (the others still are).
pub fn main(args: Args) -> Result<(), String> {
    let orphans: Vec<Object> = objects::all()
        .into_iter()
        .filter(Object::orphaned)
        .filter(|o| !super::sync_objects::is_sync_name(&o.name))
        .collect();
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
    if orphans.is_empty() {
        eprintln!("ipcx clean: nothing to remove");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("; "))
    }
}

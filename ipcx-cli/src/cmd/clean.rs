//! `ipcx clean [--dry-run]`: removes the objects whose owners are dead,
//! and only those, with the backends' own removal functions.

use ipcx::backends::registry;
use ipcx::backends::sys::mqueue;

use super::objects::{self, Object, Source};

/// Options of `ipcx clean`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  ipcx clean --dry-run   # list what would go\n  ipcx clean")]
pub struct Args {
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Removes one orphaned object.
fn remove(o: &Object) -> Result<(), String> {
    match &o.source {
        Source::Registry(r) => {
            match r.kind.as_str() {
                ipcx::backends::sysv_mq::KIND => {
                    // Removes the dead owners' queues of that endpoint (this
                    // one among them) and their records.
                    ipcx::backends::sysv_mq::remove_orphans(Some(&r.endpoint));
                }
                ipcx::backends::shm::sysv::KIND_SEGMENT
                | ipcx::backends::shm::sysv::KIND_SEMAPHORES => {
                    ipcx::backends::shm::sysv::remove_recorded(&r.kind, &r.id);
                }
                "socket" => ipcx::backends::unix::remove_orphan(&o.name)
                    .map_err(|e| format!("removing {}: {e}", o.name))?,
                "mq" => match mqueue::unlink(&o.name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("mq_unlink {}: {e}", o.name)),
                },
                other => {
                    return Err(format!(
                        "no removal for {other} objects in this build; record kept"
                    ));
                }
            }
            registry::unregister(&r.kind, &o.name);
            Ok(())
        }
        Source::MqName => mqueue::unlink(&o.name).map_err(|e| format!("mq_unlink {}: {e}", o.name)),
        Source::ShmName => std::fs::remove_file(format!("/dev/shm{}", o.name))
            .map_err(|e| format!("removing /dev/shm{}: {e}", o.name)),
    }
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
    let mut failed = Vec::new();
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for o in &orphans {
        if !args.dry_run {
            if let Err(e) = remove(o) {
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

//! `ipcx ls`: every kernel object ipcx created on this machine.

use super::objects::{self, Object};

/// Options of `ipcx ls`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  ipcx ls\n  ipcx ls --dead   # what `ipcx clean` would remove")]
pub struct Args {
    /// Only objects whose owner is dead.
    #[arg(long)]
    pub dead: bool,
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// The objects as a table.
pub fn table(objs: &[Object]) -> String {
    let mut out = format!(
        "{:<9} {:<44} {:<8} {:<5} {:<22} {:>5}  {}\n",
        "TRANSPORT", "OBJECT", "OWNER", "ALIVE", "SIZE", "AGE", "ENDPOINT"
    );
    for o in objs {
        out.push_str(&format!(
            "{:<9} {:<44} {:<8} {:<5} {:<22} {:>5}  {}\n",
            o.transport,
            o.name,
            o.pid.map_or("?".into(), |p| p.to_string()),
            yes_no(o.alive),
            o.size,
            objects::human_age(o.age),
            o.endpoint.as_deref().unwrap_or("-"),
        ));
    }
    out
}

/// Runs `ipcx ls`.
///
/// # Errors
/// None today; the signature matches the other subcommands.
pub fn main(args: Args) -> Result<(), String> {
    let objs: Vec<Object> = objects::all()
        .into_iter()
        .filter(|o| !args.dead || o.orphaned())
        .collect();
    // Standalone queues, regions, mutexes and semaphores live until
    // removed: listed apart, never "dead".
    let (queues, sync) = if args.dead {
        (Vec::new(), Vec::new())
    } else {
        (super::queue::list(), super::sync_objects::all())
    };
    if objs.is_empty() && queues.is_empty() && sync.is_empty() {
        eprintln!("ipcx ls: no ipcx objects on this machine");
        return Ok(());
    }
    if !objs.is_empty() {
        print!("{}", table(&objs));
    }
    if !queues.is_empty() {
        println!("\nstandalone queues (kept until `ipcx queue rm`; `ipcx clean` leaves them):");
        print!("{}", super::queue::table(&queues));
    }
    if !sync.is_empty() {
        println!(
            "\nregions, mutexes and semaphores (kept until `ipcx rm`; `ipcx clean` leaves them unless --include-state):"
        );
        print!("{}", super::sync_objects::table(&sync));
    }
    Ok(())
}

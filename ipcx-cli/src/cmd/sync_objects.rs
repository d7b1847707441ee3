//! The regions, mutexes and semaphores on this machine, as `ipcx ls` shows
//! them: POSIX ones (`shm:`, `sem:`) found under `/dev/shm`, System V ones
//! (`sysv-shm:`, `sysv-sem:`) through the records their creators leave
//! (the kernel keeps only a key, which does not name the path). A region's
//! type name and size come from its segment header
//! ([`registry::state`](ipcx::backends::registry::state)).
//!
//! These objects persist by design until removed (`ipcx rm ENDPOINT`);
//! `ipcx clean` leaves them alone unless given `--include-state`.

use std::time::SystemTime;

use ipcx::backends::registry::state::{self, StateObject};

/// Every region, mutex and semaphore, by endpoint.
pub fn all() -> Vec<StateObject> {
    state::all()
}

/// The objects as a table.
pub fn table(objs: &[StateObject]) -> String {
    let row = |kind: &str,
               endpoint: &str,
               ty: &str,
               size: &str,
               value: &str,
               owner: &str,
               age: &str,
               object: &str| {
        format!(
            "{kind:<9} {endpoint:<40} {ty:<32} {size:>8} {value:>6} {owner:>8} {age:>5}  {object}\n"
        )
    };
    let mut out = row(
        "KIND", "ENDPOINT", "TYPE", "SIZE", "VALUE", "OWNER", "AGE", "OBJECT",
    );
    for o in objs {
        let age = o
            .modified
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        out.push_str(&row(
            o.kind.as_str(),
            &o.endpoint,
            o.type_name.as_deref().unwrap_or("-"),
            &o.size.map_or("-".into(), |s| format!("{s} B")),
            &o.value.map_or("-".into(), |v| v.to_string()),
            &o.owner.map_or("-".into(), |p| p.to_string()),
            &super::objects::human_age(age),
            &o.object,
        ));
    }
    out
}

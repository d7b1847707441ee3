//! The kernel objects ipcx created on this machine, as `ls` shows them and
//! `clean` removes them: the registry's records, plus every `ipcx.*` name
//! under `/dev/mqueue` and `/dev/shm`.
//!
//! An owner is known for registry records (pid and start time) and for
//! per-connection queue names, which carry the creating pid
//! (`ipcx.NAME.PID.N.up`); there pid reuse can only make a dead owner look
//! alive, never the reverse, so `clean` errs on the side of keeping.

use std::path::Path;
use std::time::{Duration, SystemTime};

use ipcx::backends::registry::{self, Description, PosixObject, Record};

/// Where an object was found, which decides how it is removed.
#[derive(Debug, Clone)]
pub enum Source {
    /// A registry record: its kind removes it.
    Registry(Record),
    /// A POSIX name no record names.
    Unrecorded(PosixObject),
}

/// One object.
#[derive(Debug, Clone)]
pub struct Object {
    /// The transport's scheme (`mq`, `sysv-mq`, `unix`, …).
    pub transport: String,
    /// The object: a path, a POSIX name, or a System V id.
    pub name: String,
    /// The endpoint it serves, when known.
    pub endpoint: Option<String>,
    /// The creating process, when known.
    pub pid: Option<u32>,
    /// Whether that process still runs, when known.
    pub alive: Option<bool>,
    /// Its size or contents, human-readable.
    pub size: String,
    /// Time since it (or its record) was created or last changed.
    pub age: Option<Duration>,
    /// Where it was found.
    pub source: Source,
}

impl Object {
    /// Whether its owner is known to be dead.
    pub fn orphaned(&self) -> bool {
        self.alive == Some(false)
    }

    /// Removes it (and its record): for orphans only.
    ///
    /// # Errors
    /// What went wrong, naming the object.
    pub fn remove(&self) -> Result<(), String> {
        match &self.source {
            Source::Registry(r) => r.remove(),
            Source::Unrecorded(p) => p.remove(),
        }
        .map_err(|e| format!("removing {} {}: {e}", self.transport, self.name))
    }
}

fn since(t: SystemTime) -> Option<Duration> {
    SystemTime::now().duration_since(t).ok()
}

fn age_of(path: &Path) -> Option<Duration> {
    since(std::fs::metadata(path).ok()?.modified().ok()?)
}

/// What `ls` shows as the size of a recorded object.
fn size_of(d: &Description) -> String {
    if !d.exists {
        return "gone".into();
    }
    match (d.queued_messages, d.queued_bytes, d.size) {
        (Some(m), Some(b), _) => format!("{m} msgs, {b} B queued"),
        (None, Some(b), _) => format!("{b} B queued"),
        (_, None, Some(s)) => format!("{s} B"),
        _ => "-".into(),
    }
}

fn from_record(r: Record) -> Object {
    let d = r.describe();
    Object {
        transport: d.transport.clone(),
        age: age_of(&r.path()),
        endpoint: Some(r.endpoint.clone()),
        pid: Some(r.pid),
        alive: Some(d.alive),
        size: size_of(&d),
        name: d.object,
        source: Source::Registry(r),
    }
}

fn from_name(p: PosixObject) -> Object {
    let size = match (p.namespace, p.bytes) {
        (_, None) => "-".into(),
        (registry::Namespace::Mqueue, Some(b)) => format!("{b} B queued"),
        (_, Some(b)) => format!("{b} B"),
    };
    Object {
        transport: p.namespace.transport().into(),
        name: p.name.clone(),
        endpoint: None,
        pid: p.pid,
        alive: p.alive(),
        size,
        age: p.modified.and_then(since),
        source: Source::Unrecorded(p),
    }
}

/// Every object found, registry records first.
pub fn all() -> Vec<Object> {
    let mut out: Vec<Object> = registry::list().into_iter().map(from_record).collect();
    out.extend(registry::unrecorded().into_iter().map(from_name));
    out
}

/// `3s`, `5m`, `2h`, `4d`.
pub fn human_age(d: Option<Duration>) -> String {
    let Some(d) = d else { return "-".into() };
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

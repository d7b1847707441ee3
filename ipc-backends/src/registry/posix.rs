//! POSIX objects named `ipcx.*` that no record names: per-connection
//! queues under `/dev/mqueue` (their names carry the creating pid:
//! `ipcx.NAME.PID.N.up`) and anything under `/dev/shm` but regions and
//! mutexes, which persist by design ([`state`](super::state)) (`shm:`
//! unlinks its connection segments at once, so one there was left by
//! something that crashed between two calls, or by an older ipcx).
//!
//! A pid read from a name has no start time to go with it: pid reuse can
//! only make a dead owner look alive, never the reverse, so `ipcx clean`
//! errs on the side of keeping.

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use super::{Kind, list};
use crate::sys::{mqueue, process, shm};

/// Where a POSIX object lives.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// A message queue, under `/dev/mqueue`.
    Mqueue,
    /// A shared memory object, under `/dev/shm`.
    Shm,
}

impl Namespace {
    /// The directory the kernel shows these objects in.
    pub const fn dir(self) -> &'static str {
        match self {
            Namespace::Mqueue => "/dev/mqueue",
            Namespace::Shm => "/dev/shm",
        }
    }

    /// The transport whose objects these are (`mq`, `shm`).
    pub const fn transport(self) -> &'static str {
        match self {
            Namespace::Mqueue => "mq",
            Namespace::Shm => "shm",
        }
    }
}

/// An `ipcx.*` POSIX object that no record names.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosixObject {
    /// Where it lives.
    pub namespace: Namespace,
    /// Its POSIX name (`/ipcx.orders.123.0.up`).
    pub name: String,
    /// The creating process, when its name says.
    pub pid: Option<u32>,
    /// Bytes queued (a queue) or its size (a shared memory object).
    pub bytes: Option<u64>,
    /// When it was last changed.
    pub modified: Option<SystemTime>,
}

impl PosixObject {
    /// Whether its creating process still runs, when known (see the
    /// module doc on pid reuse).
    pub fn alive(&self) -> Option<bool> {
        self.pid.map(|p| process::alive(p, None))
    }

    /// Where the kernel shows it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.namespace.dir()).join(self.name.trim_start_matches('/'))
    }

    /// Removes it ([mq_unlink(3)], [shm_unlink(3)]).
    ///
    /// # Errors
    /// The OS error of the unlink.
    ///
    /// [mq_unlink(3)]: https://man7.org/linux/man-pages/man3/mq_unlink.3.html
    /// [shm_unlink(3)]: https://man7.org/linux/man-pages/man3/shm_unlink.3.html
    pub fn remove(&self) -> io::Result<()> {
        match self.namespace {
            Namespace::Mqueue => mqueue::unlink(&self.name),
            Namespace::Shm => shm::unlink(&self.name),
        }
    }
}

/// Every `ipcx.*` object under `/dev/mqueue` and `/dev/shm` that no record
/// names, queues first, each namespace sorted by name. Empty where the
/// filesystem is not mounted.
pub fn unrecorded() -> Vec<PosixObject> {
    let recorded: Vec<String> = list()
        .into_iter()
        .filter(|r| r.kind == Kind::MqRendezvous)
        .map(|r| r.object())
        .collect();
    let mut out = names_in(Namespace::Mqueue, &recorded);
    out.extend(names_in(Namespace::Shm, &recorded));
    out
}

fn names_in(ns: Namespace, recorded: &[String]) -> Vec<PosixObject> {
    let Ok(entries) = std::fs::read_dir(ns.dir()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if !file.starts_with("ipcx.") || is_state(ns, &file) {
            continue;
        }
        let name = format!("/{file}");
        if recorded.contains(&name) {
            continue;
        }
        let meta = e.metadata().ok();
        let bytes = match ns {
            Namespace::Mqueue => mqueue::queued_bytes(&name),
            Namespace::Shm => meta.as_ref().map(std::fs::Metadata::len),
        };
        out.push(PosixObject {
            namespace: ns,
            pid: pid_in_name(&file),
            bytes,
            modified: meta.and_then(|m| m.modified().ok()),
            name,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether `file` is a region or mutex segment: state that persists by
/// design ([`state`](super::state)), not a leftover.
fn is_state(ns: Namespace, file: &str) -> bool {
    ns == Namespace::Shm && (file.starts_with("ipcx.region.") || file.starts_with("ipcx.mutex."))
}

/// The pid in a per-connection name `ipcx.NAME.PID.N.up|down`.
fn pid_in_name(name: &str) -> Option<u32> {
    let parts: Vec<&str> = name.rsplitn(4, '.').collect();
    match parts[..] {
        [dir, n, pid, _] if (dir == "up" || dir == "down") && n.parse::<u32>().is_ok() => {
            pid.parse().ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pid_in_connection_names() {
        assert_eq!(super::pid_in_name("ipcx.orders.123.4.up"), Some(123));
        assert_eq!(super::pid_in_name("ipcx.a.b.77.0.down"), Some(77));
        assert_eq!(super::pid_in_name("ipcx.orders"), None);
    }
}

//! A record of the kernel objects ipcx created that the kernel cannot
//! remove by itself when their owner dies (System V queues and segments,
//! and the per-connection semaphore sets of older `sysv-shm:` connections;
//! socket files; FIFOs of a crashed listener).
//!
//! Each object is one small file in the registry directory
//! (`$IPCX_REGISTRY_DIR`, default `/dev/shm/ipcx-registry-UID`, mode 0700;
//! the `$TMPDIR/ipcx-registry-UID` of earlier versions is still read),
//! named `KIND-ID`, holding one line: `PID START_TIME ENDPOINT`. The owner
//! writes it right after creating the object and removes it right after
//! removing the object. Whoever finds a record whose owner is dead (pid gone,
//! or reused with another start time) may remove the object and the record:
//! the next listener on the same endpoint does so, and so does `ipcx clean`.
//!
//! [`Kind`] is the closed list of what can be recorded; each kind
//! [describes](Kind::describe) and [removes](Kind::remove) its objects, so
//! `ipcx ls` and `ipcx clean` need nothing else. [`unrecorded`] finds the
//! POSIX objects under `/dev/mqueue` and `/dev/shm` that no record names.
//!
//! A file whose name starts with no known kind (one written by a newer
//! ipcx) is skipped by [`list`]: [`Record::kind`] is always a [`Kind`].

mod kind;
mod posix;
pub mod state;

pub use kind::{Description, Kind, UnknownKind};
pub use posix::{Namespace, PosixObject, unrecorded};

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::sys::process;

/// One recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The object's kind.
    pub kind: Kind,
    /// The kernel's id or the path of the object, as the record's file
    /// name holds it: in a [`list`]ed record the characters of a path or
    /// POSIX name other than ASCII letters, digits, `.` and `-` are `_`
    /// ([`Record::object`] gives the name itself).
    pub id: String,
    /// The endpoint it serves.
    pub endpoint: String,
    /// The creating process.
    pub pid: u32,
    /// The creating process's start time, in clock ticks since boot (field
    /// 22 of `/proc/PID/stat`): a pid whose start time differs is another
    /// process.
    pub start_time: u64,
}

impl Record {
    /// A record of an object created now by this process.
    pub fn mine(kind: Kind, id: impl Into<String>, endpoint: impl Into<String>) -> Record {
        let pid = process::pid();
        Record {
            kind,
            id: id.into(),
            endpoint: endpoint.into(),
            pid,
            start_time: process::start_time(pid).unwrap_or(0),
        }
    }

    /// Whether the creating process still runs.
    pub fn owner_alive(&self) -> bool {
        process::alive(self.pid, Some(self.start_time))
    }

    fn file_name(&self) -> String {
        file_name(self.kind, &self.id)
    }

    /// The object itself: the socket file's or FIFO's path, the queue's POSIX name
    /// (both read back from the endpoint), or the System V id.
    pub fn object(&self) -> String {
        let endpoint = self.endpoint.parse::<ipc_core::Endpoint>().ok();
        match (self.kind, endpoint) {
            (Kind::SocketFile | Kind::FifoRendezvous, Some(ep)) => ep.address().to_string(),
            (Kind::MqRendezvous, Some(ep)) => crate::mq::rendezvous_name(&ep),
            _ => self.id.clone(),
        }
    }

    /// What `ipcx ls` shows of the object ([`Kind::describe`]).
    pub fn describe(&self) -> Description {
        self.kind.describe(self)
    }

    /// Removes the object and this record ([`Kind::remove`]).
    ///
    /// # Errors
    /// As [`Kind::remove`].
    pub fn remove(&self) -> std::io::Result<()> {
        self.kind.remove(self)
    }

    /// The file that holds this record.
    pub fn path(&self) -> PathBuf {
        existing(&self.file_name())
    }
}

fn file_name(kind: Kind, id: &str) -> String {
    let id: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{kind}-{id}")
}

/// The registry directory: `$IPCX_REGISTRY_DIR` if set, else
/// `/dev/shm/ipcx-registry-UID` (a tmpfs; where `/dev/shm` is missing,
/// `$TMPDIR/ipcx-registry-UID`).
///
/// In memory rather than on `/tmp`'s file system: a listener writes a
/// record per System V object, and on ext4 each record is an inode
/// allocation whose search grows with the inodes recently deleted (1,000
/// `sysv-shm:` connections took 2.4 s with the registry under `/tmp`,
/// 0.5 s under `/dev/shm`, `docs/benchmarks.md`).
pub fn dir() -> PathBuf {
    match std::env::var_os("IPCX_REGISTRY_DIR") {
        Some(d) => PathBuf::from(d),
        None => default_dir().clone(),
    }
}

fn dir_name() -> String {
    format!("ipcx-registry-{}", process::uid())
}

fn default_dir() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        if shm.is_dir() {
            shm.join(dir_name())
        } else {
            std::env::temp_dir().join(dir_name())
        }
    })
}

/// Where earlier versions kept records, `$TMPDIR/ipcx-registry-UID`,
/// when that is not [`dir`]: still read, and cleaned, never written.
pub(crate) fn legacy_dir() -> Option<PathBuf> {
    if std::env::var_os("IPCX_REGISTRY_DIR").is_some() {
        return None;
    }
    let old = std::env::temp_dir().join(dir_name());
    (old != *default_dir()).then_some(old)
}

/// The file of the record `name` that exists: in [`dir`], else in the
/// [`legacy_dir`]; the former when neither does.
fn existing(name: &str) -> PathBuf {
    let path = dir().join(name);
    if !path.exists()
        && let Some(old) = legacy_dir().map(|d| d.join(name))
        && old.exists()
    {
        return old;
    }
    path
}

/// Records an object. Failure to record is not fatal to the caller's
/// connection, so it is returned for the caller to log or ignore.
///
/// # Errors
/// The I/O error of creating the directory or the file.
pub fn register(record: &Record) -> std::io::Result<()> {
    let d = dir();
    let tmp = d.join(format!(".{}.tmp", record.file_name()));
    let open = || {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
    };
    // The directory is made only when missing: a listener records objects
    // per connection, and each record costs file system calls.
    let mut f = match open() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&d)?;
            open()?
        }
        other => other?,
    };
    // One write rather than one per field.
    let line = format!("{} {} {}\n", record.pid, record.start_time, record.endpoint);
    f.write_all(line.as_bytes())?;
    fs::rename(&tmp, d.join(record.file_name()))
}

/// Forgets an object (after removing it). A missing record is fine.
pub fn unregister(kind: Kind, id: &str) {
    let name = file_name(kind, id);
    if let Err(e) = fs::remove_file(dir().join(&name))
        && e.kind() == std::io::ErrorKind::NotFound
        && let Some(old) = legacy_dir()
    {
        let _ = fs::remove_file(old.join(&name));
    }
}

/// Every record of a transport's object, unreadable ones skipped. Records
/// of objects that [persist](Kind::persists) are not among them: see
/// [`state::all`].
pub fn list() -> Vec<Record> {
    let mut all = records();
    all.retain(|r| !r.kind.persists());
    all
}

/// Records an object that persists (`sysv-sem:` semaphores, `sysv-shm:`
/// regions and mutexes) so that `ipcx ls` can name its endpoint: the
/// kernel keeps only a key, which no one can turn back into the path.
/// Failure to record is only logged: the object works without it.
pub(crate) fn register_state(kind: Kind, id: i32, endpoint: &ipc_core::Endpoint) {
    if let Err(e) = register(&Record::mine(kind, id.to_string(), endpoint.to_string())) {
        tracing::debug!(%endpoint, error = %e, "cannot record the object for ipcx ls");
    }
}

/// Every record, of every kind, unreadable ones skipped.
pub(crate) fn records() -> Vec<Record> {
    let mut out = Vec::new();
    for d in std::iter::once(dir()).chain(legacy_dir()) {
        read_dir_into(&d, &mut out);
    }
    out.sort_by(|a, b| (a.kind.as_str(), &a.id).cmp(&(b.kind.as_str(), &b.id)));
    // A record in both directories is one object.
    out.dedup_by(|a, b| a.kind == b.kind && a.id == b.id);
    out
}

/// The records in directory `d`, appended to `out`.
fn read_dir_into(d: &std::path::Path, out: &mut Vec<Record>) {
    let Ok(entries) = fs::read_dir(d) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let Ok(text) = fs::read_to_string(e.path()) else {
            continue;
        };
        let mut parts = text.trim_end().splitn(3, ' ');
        let (Some(pid), Some(start), Some(endpoint)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        // Kinds may hold a '-' themselves (sysv-msq): match whole names.
        let Some((kind, id)) = Kind::ALL.into_iter().find_map(|k| {
            let id = name.strip_prefix(k.as_str())?.strip_prefix('-')?;
            Some((k, id.to_string()))
        }) else {
            continue;
        };
        let (Ok(pid), Ok(start_time)) = (pid.parse(), start.parse()) else {
            continue;
        };
        out.push(Record {
            kind,
            id,
            endpoint: endpoint.to_string(),
            pid,
            start_time,
        });
    }
}

/// The pid of the live owner of the object `kind`/`id`, if one is recorded.
pub fn live_owner(kind: Kind, id: &str) -> Option<u32> {
    read(kind, id).filter(Record::owner_alive).map(|r| r.pid)
}

/// The record of the object `kind`/`id`, if there is one.
pub fn read(kind: Kind, id: &str) -> Option<Record> {
    let text = fs::read_to_string(existing(&file_name(kind, id))).ok()?;
    let mut parts = text.trim_end().splitn(3, ' ');
    let (pid, start, endpoint) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Record {
        kind,
        id: id.to_string(),
        endpoint: endpoint.to_string(),
        pid: pid.parse().ok()?,
        start_time: start.parse().ok()?,
    })
}

/// Removes every object this process recorded, and its record: what a
/// process about to end on a signal does, so that nothing it created
/// outlives it (see `ipcx::shutdown`). Returns how many were removed.
/// Connections and listeners of this process that use them stop working.
pub fn remove_mine() -> usize {
    let me = crate::sys::process::pid();
    let mut n = 0;
    for r in list().into_iter().filter(|r| r.pid == me) {
        match r.remove() {
            Ok(()) => n += 1,
            Err(e) => {
                tracing::warn!(kind = %r.kind, object = %r.object(), error = %e, "cannot remove")
            }
        }
    }
    n
}

/// The records of objects whose owner is dead.
pub fn orphans() -> Vec<Record> {
    list().into_iter().filter(|r| !r.owner_alive()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_list_unregister() {
        let id = format!("test{}x{}", process::pid(), line!());
        let r = Record::mine(Kind::SysvQueue, id.clone(), "sysv-mq:/tmp/x");
        register(&r).unwrap();
        assert!(list().contains(&r));
        assert!(r.owner_alive());
        assert!(!orphans().contains(&r));
        let dead = Record {
            start_time: r.start_time + 1,
            id: format!("{id}dead"),
            ..r.clone()
        };
        register(&dead).unwrap();
        assert!(orphans().contains(&dead));
        unregister(Kind::SysvQueue, &id);
        unregister(Kind::SysvQueue, &dead.id);
        assert!(!list().contains(&r));
        assert!(!list().contains(&dead));
    }

    /// A record an earlier version left in `$TMPDIR` is listed, read and
    /// removed like one in the registry.
    #[test]
    fn records_in_the_legacy_directory_are_read_and_removed() {
        let Some(old) = legacy_dir() else {
            // IPCX_REGISTRY_DIR is set, or /dev/shm is missing: one
            // directory only.
            assert!(
                std::env::var_os("IPCX_REGISTRY_DIR").is_some()
                    || *default_dir() == std::env::temp_dir().join(dir_name())
            );
            return;
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&old)
            .unwrap();
        let id = format!("legacy{}x{}", process::pid(), line!());
        let r = Record {
            start_time: 1,
            ..Record::mine(Kind::SysvQueue, id.clone(), "sysv-mq:/tmp/legacy")
        };
        let name = file_name(Kind::SysvQueue, &id);
        fs::write(
            old.join(&name),
            format!("{} 1 sysv-mq:/tmp/legacy\n", r.pid),
        )
        .unwrap();
        assert!(list().contains(&r), "listed");
        assert_eq!(read(Kind::SysvQueue, &id), Some(r.clone()));
        assert!(orphans().contains(&r), "its start time is not its owner's");
        assert_eq!(r.path(), old.join(&name));
        unregister(Kind::SysvQueue, &id);
        assert!(!old.join(&name).exists(), "removed");
        assert!(!list().contains(&r));
    }

    #[test]
    fn every_kind_reads_back_from_its_file() {
        for kind in Kind::ALL {
            let id = format!("rt{}x{}", process::pid(), kind.as_str());
            let r = Record::mine(kind, id.clone(), "unix:/tmp/x");
            register(&r).unwrap();
            let found = records().into_iter().find(|x| x.id == id);
            unregister(kind, &id);
            assert_eq!(found.map(|x| x.kind), Some(kind), "{kind}");
        }
    }

    #[test]
    fn a_dead_owners_queue_is_described_and_removed() {
        let q = crate::sys::sysv_msg::MsgQueue::create(None, 0o600).unwrap();
        let id = q.id().to_string();
        let mut r = Record::mine(Kind::SysvQueue, id.clone(), "sysv-mq:/tmp/kind-test");
        r.start_time += 1;
        register(&r).unwrap();
        let d = r.describe();
        assert!(d.exists && !d.alive);
        assert_eq!(
            (d.transport.as_str(), d.queued_messages),
            ("sysv-mq", Some(0))
        );
        r.remove().unwrap();
        assert!(!r.describe().exists);
        assert!(read(Kind::SysvQueue, &id).is_none());
        drop(q);
    }
}

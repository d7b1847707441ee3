//! A record of the kernel objects ipcx created that the kernel cannot
//! remove by itself when their owner dies (System V queues, segments and
//! semaphore sets; socket files; FIFOs of a crashed listener).
//!
//! Each object is one small file in the registry directory
//! (`$IPCX_REGISTRY_DIR`, default `$TMPDIR/ipcx-registry-UID`, mode 0700),
//! named `KIND-ID`, holding one line: `PID START_TIME ENDPOINT`. The owner
//! writes it right after creating the object and removes it right after
//! removing the object. Whoever finds a record whose owner is dead (pid gone,
//! or reused with another start time) may remove the object and the record:
//! the next listener on the same endpoint does so, and so does `ipcx clean`.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::sys::process;

/// One recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The object's kind, e.g. `sysv-msq`, `sysv-shm`, `sysv-sem`, `socket`, `fifo`.
    pub kind: String,
    /// The kernel's id or the path of the object.
    pub id: String,
    /// The endpoint it serves.
    pub endpoint: String,
    /// The creating process.
    pub pid: u32,
    /// The creating process's start time (see [`process::start_time`]).
    pub start_time: u64,
}

impl Record {
    /// A record of an object created now by this process.
    pub fn mine(kind: &str, id: impl Into<String>, endpoint: impl Into<String>) -> Record {
        let pid = process::pid();
        Record {
            kind: kind.to_string(),
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
        file_name(&self.kind, &self.id)
    }

    /// The file that holds this record.
    pub fn path(&self) -> PathBuf {
        dir().join(self.file_name())
    }
}

fn file_name(kind: &str, id: &str) -> String {
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

/// The registry directory.
pub fn dir() -> PathBuf {
    match std::env::var_os("IPCX_REGISTRY_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("ipcx-registry-{}", process::uid())),
    }
}

/// Records an object. Failure to record is not fatal to the caller's
/// connection, so it is returned for the caller to log or ignore.
///
/// # Errors
/// The I/O error of creating the directory or the file.
pub fn register(record: &Record) -> std::io::Result<()> {
    let d = dir();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&d)?;
    let tmp = d.join(format!(".{}.tmp", record.file_name()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    writeln!(
        f,
        "{} {} {}",
        record.pid, record.start_time, record.endpoint
    )?;
    fs::rename(&tmp, d.join(record.file_name()))
}

/// Forgets an object (after removing it). A missing record is fine.
pub fn unregister(kind: &str, id: &str) {
    let _ = fs::remove_file(dir().join(file_name(kind, id)));
}

/// Every record, unreadable ones skipped.
pub fn list() -> Vec<Record> {
    let Ok(entries) = fs::read_dir(dir()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
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
        let Some((kind, id)) = name.split_once('-').and_then(|(k, rest)| {
            // Kinds may hold one '-' themselves (sysv-msq): split after it.
            if k == "sysv" {
                rest.split_once('-')
                    .map(|(k2, id)| (format!("sysv-{k2}"), id.to_string()))
            } else {
                Some((k.to_string(), rest.to_string()))
            }
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
    out.sort_by(|a, b| (&a.kind, &a.id).cmp(&(&b.kind, &b.id)));
    out
}

/// The pid of the live owner of the object `kind`/`id`, if one is recorded.
pub fn live_owner(kind: &str, id: &str) -> Option<u32> {
    read(kind, id).filter(Record::owner_alive).map(|r| r.pid)
}

/// The record of the object `kind`/`id`, if there is one.
pub fn read(kind: &str, id: &str) -> Option<Record> {
    let text = fs::read_to_string(dir().join(file_name(kind, id))).ok()?;
    let mut parts = text.trim_end().splitn(3, ' ');
    let (pid, start, endpoint) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Record {
        kind: kind.to_string(),
        id: id.to_string(),
        endpoint: endpoint.to_string(),
        pid: pid.parse().ok()?,
        start_time: start.parse().ok()?,
    })
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
        let r = Record::mine("sysv-msq", id.clone(), "sysv-mq:/tmp/x");
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
        unregister("sysv-msq", &id);
        unregister("sysv-msq", &dead.id);
        assert!(!list().contains(&r));
        assert!(!list().contains(&dead));
    }
}

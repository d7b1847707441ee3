//! The record of a standalone queue's message type, written by its
//! creator, read by every opener: the kernel keeps no metadata beside a
//! queue, so the record lives in a file, `/dev/shm/ipcx-queue.KIND.ID`
//! (tmpfs, so it lasts as long as the queue can: until removed or
//! reboot). It names the kernel object it describes; a record of an
//! object that is gone (a queue removed with `mq_unlink` or `ipcrm` and
//! made again by someone else) is ignored.
//!
//! The name does not start with `ipcx.`, so `ipcx clean`, which removes
//! dead processes' `ipcx.*` objects, never touches it.
//!
//! Beside the record, a directory `/dev/shm/ipcx-queue-open.KIND.ID` holds
//! one empty file per producer or consumer handle open now
//! (`p.PID.START.N`, `c.PID.START.N`: role, process id, its start time,
//! a per-process number), made at open and removed at drop ([`Presence`]).
//! The kernel counts neither (a POSIX queue's openers are descriptors of
//! any mode, a System V queue has none), so this is how [`openers`] knows
//! how many producers and consumers a queue has: a file of a process that
//! is gone (killed) is not counted, and is removed when seen.

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use ipc_core::TypeTag;

use crate::sys::process;

/// Where records live (a tmpfs).
const DIR: &str = "/dev/shm";

/// What a record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The queue's message type (fingerprint 0: raw bytes, any type).
    pub tag: TypeTag,
    /// The kernel object it describes (`dev:ino` of a POSIX queue, the
    /// msqid of a System V queue).
    pub object: String,
    /// The endpoint that opens it, as its creator gave it (for a System V
    /// queue the only place its key file's path is kept).
    pub endpoint: Option<String>,
}

/// The record file of the queue `id` of `kind` (`mq`, `sysv-mq`).
pub fn path(kind: &str, id: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("ipcx-queue.{kind}.{id}"))
}

/// Writes the record of a queue just created, with its `mode`, replacing
/// any stale one (the queue was created exclusively, so the name is ours).
/// Best effort: without `/dev/shm` there is no record, and openers check
/// types per message only.
pub fn write(kind: &str, id: &str, record: &Record, mode: u32) {
    let path = path(kind, id);
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut text = format!(
        "ipcx-queue 1\ntype {}\nfingerprint {:#018x}\nobject {}\n",
        record.tag.name, record.tag.fingerprint, record.object
    );
    if let Some(ep) = record.endpoint.as_deref().filter(|e| !e.contains('\n')) {
        text.push_str(&format!("endpoint {ep}\n"));
    }
    let written = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        // Readable by whoever the queue's mode lets in, writable by none.
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o444))?;
        std::fs::rename(&tmp, &path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(path = %path.display(), error = %e, "queue type record not written");
    }
}

/// The record of queue `id`, if there is one for `object`.
pub fn read(kind: &str, id: &str, object: &str) -> Option<Record> {
    let text = std::fs::read_to_string(path(kind, id)).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "ipcx-queue 1" {
        return None;
    }
    let mut name = None;
    let mut fingerprint = None;
    let mut obj = None;
    let mut endpoint = None;
    for line in lines {
        let (k, v) = line.split_once(' ')?;
        match k {
            "type" => name = Some(v.to_string()),
            "fingerprint" => {
                fingerprint = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
            }
            "object" => obj = Some(v.to_string()),
            "endpoint" => endpoint = Some(v.to_string()),
            _ => {}
        }
    }
    let record = Record {
        tag: TypeTag::new(Cow::Owned(name?), fingerprint?),
        object: obj?,
        endpoint,
    };
    (record.object == object).then_some(record)
}

/// Removes the record of queue `id` and its presence directory.
pub fn remove(kind: &str, id: &str) {
    let _ = std::fs::remove_file(path(kind, id));
    let _ = std::fs::remove_dir_all(presence_dir(kind, id));
}

/// The directory of the presence files of queue `id` of `kind`.
pub fn presence_dir(kind: &str, id: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("ipcx-queue-open.{kind}.{id}"))
}

/// Numbers this process's presence files.
static PRESENCE: AtomicU32 = AtomicU32::new(0);

/// One producer's or consumer's presence file, removed on drop (by the
/// process that made it only: a forked child's copy leaves it alone).
#[derive(Debug)]
pub struct Presence {
    path: PathBuf,
    pid: u32,
}

impl Presence {
    /// Records a handle of `role` (`b'p'` producer, `b'c'` consumer) on
    /// queue `id`; the directory is made with the queue's `mode` (plus
    /// search permission where it grants reading). Best effort: `None`
    /// when `/dev/shm` does not let us, and the count misses this handle.
    pub fn enter(kind: &str, id: &str, role: u8, mode: u32) -> Option<Presence> {
        let dir = presence_dir(kind, id);
        let dir_mode = (mode & 0o777) | ((mode & 0o444) >> 2) | 0o700;
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(dir_mode));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "queue presence not recorded");
                return None;
            }
        }
        let pid = process::pid();
        let start = process::start_time(pid).unwrap_or(0);
        let n = PRESENCE.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}.{pid}.{start}.{n}", char::from(role)));
        match std::fs::File::create(&path) {
            Ok(_) => Some(Presence { path, pid }),
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "queue presence not recorded");
                None
            }
        }
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        if process::pid() == self.pid {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How many producer and consumer handles of live processes have a queue
/// open, by their presence files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Openers {
    /// Producer handles.
    pub producers: usize,
    /// Consumer handles.
    pub consumers: usize,
}

/// The openers of queue `id`: presence files of live processes (a file of
/// a dead one is removed, best effort). No directory: none. `None` when
/// the directory cannot be read.
pub fn openers(kind: &str, id: &str) -> Option<Openers> {
    let dir = presence_dir(kind, id);
    let entries = match std::fs::read_dir(&dir) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Openers::default()),
        Err(_) => return None,
    };
    let mut o = Openers::default();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let mut f = name.split('.');
        let (Some(role), Some(pid), Some(start)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else {
            continue;
        };
        let started = (start != 0).then_some(start);
        if !process::alive(pid, started) {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        match role {
            "p" => o.producers += 1,
            "c" => o.consumers += 1,
            _ => {}
        }
    }
    Some(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_remove() {
        let id = format!("test{}", std::process::id());
        let r = Record {
            tag: TypeTag::new("shop.Order", 0xabc),
            object: "7:42".into(),
            endpoint: Some("mq:/shop?pattern=queue".into()),
        };
        write("mq", &id, &r, 0o600);
        assert_eq!(read("mq", &id, "7:42"), Some(r));
        assert_eq!(read("mq", &id, "7:43"), None, "another object's record");
        remove("mq", &id);
        assert_eq!(read("mq", &id, "7:42"), None);
    }
}

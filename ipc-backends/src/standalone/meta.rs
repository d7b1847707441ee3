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

use std::borrow::Cow;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use ipc_core::TypeTag;

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
    let text = format!(
        "ipcx-queue 1\ntype {}\nfingerprint {:#018x}\nobject {}\n",
        record.tag.name, record.tag.fingerprint, record.object
    );
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
    for line in lines {
        let (k, v) = line.split_once(' ')?;
        match k {
            "type" => name = Some(v.to_string()),
            "fingerprint" => {
                fingerprint = u64::from_str_radix(v.trim_start_matches("0x"), 16).ok();
            }
            "object" => obj = Some(v.to_string()),
            _ => {}
        }
    }
    let record = Record {
        tag: TypeTag::new(Cow::Owned(name?), fingerprint?),
        object: obj?,
    };
    (record.object == object).then_some(record)
}

/// Removes the record of queue `id`.
pub fn remove(kind: &str, id: &str) {
    let _ = std::fs::remove_file(path(kind, id));
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
        };
        write("mq", &id, &r, 0o600);
        assert_eq!(read("mq", &id, "7:42"), Some(r));
        assert_eq!(read("mq", &id, "7:43"), None, "another object's record");
        remove("mq", &id);
        assert_eq!(read("mq", &id, "7:42"), None);
    }
}

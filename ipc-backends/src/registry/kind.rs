//! What kind of kernel object a record names, how to describe it and how
//! to remove it: the one place that knows, per kind, what `ipcx ls` shows
//! and what `ipcx clean` does.

use std::fmt;
use std::io;
use std::str::FromStr;

use super::{Record, unregister};
use crate::sys::{mqueue, named_shm, sysv_msg, sysv_shm};

/// The kind of a recorded object. Its [`as_str`](Kind::as_str) is the
/// prefix of the record's file name in the registry directory, so the
/// names never change: a registry written by an older ipcx still reads.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A `unix:` listener's socket file (`socket`); the id is its path.
    SocketFile,
    /// An `mq:` listener's rendezvous queue (`mq`); the id is its POSIX
    /// name (`/ipcx.NAME`).
    MqRendezvous,
    /// A `sysv-mq:` queue, rendezvous or per connection (`sysv-msq`); the
    /// id is the kernel's msqid.
    SysvQueue,
    /// A `sysv-shm:` segment until both sides attached (`sysv-shm`); the id
    /// is the kernel's shmid.
    SysvSegment,
    /// A `sysv-shm:` connection's semaphore set (`sysv-sem`); the id is the
    /// kernel's semid. No longer made (`sysv-shm:` wakes through futex
    /// words in its segment): kept so that the sets an older ipcx left
    /// behind are still listed and removed.
    SysvSemaphores,
    /// A `fifo:` listener's rendezvous FIFO (`fifo`); the id is its path.
    FifoRendezvous,
    /// A `sysv-sem:` semaphore of `ipcx::sync` (`state-sem`); the id is
    /// the kernel's semid. It [persists](Kind::persists).
    StateSemaphore,
    /// A `sysv-shm:` region of `ipcx::shared` or mutex of `ipcx::sync`
    /// (`state-shm`); the id is the kernel's shmid. It
    /// [persists](Kind::persists).
    StateSegment,
}

impl Kind {
    /// Every kind, in the order of their names.
    pub const ALL: [Kind; 8] = [
        Kind::FifoRendezvous,
        Kind::MqRendezvous,
        Kind::SocketFile,
        Kind::StateSemaphore,
        Kind::StateSegment,
        Kind::SysvQueue,
        Kind::SysvSemaphores,
        Kind::SysvSegment,
    ];

    /// The name of the kind in the registry directory.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::SocketFile => "socket",
            Kind::MqRendezvous => "mq",
            Kind::SysvQueue => "sysv-msq",
            Kind::SysvSegment => "sysv-shm",
            Kind::SysvSemaphores => "sysv-sem",
            Kind::FifoRendezvous => "fifo",
            Kind::StateSemaphore => "state-sem",
            Kind::StateSegment => "state-shm",
        }
    }

    /// Whether objects of this kind persist by design until removed on
    /// purpose (semaphores, regions and mutexes): their records only name
    /// them for `ipcx ls`/`ipcx rm`. They are never orphans: a creator's
    /// exit is not the end of their life, so [`list`](super::list),
    /// [`orphans`](super::orphans) and [`remove_mine`](super::remove_mine)
    /// leave them out; [`state::all`](super::state::all) lists them.
    pub const fn persists(self) -> bool {
        matches!(self, Kind::StateSemaphore | Kind::StateSegment)
    }

    /// What `ipcx ls` shows of the object `record` names: the transport,
    /// whether the object is still there, how much it holds, whether its
    /// owner lives.
    pub fn describe(self, record: &Record) -> Description {
        let mut d = Description {
            transport: record
                .endpoint
                .split_once(':')
                .map_or(self.as_str(), |(scheme, _)| scheme)
                .to_string(),
            object: record.object(),
            exists: false,
            size: None,
            queued_bytes: None,
            queued_messages: None,
            alive: record.owner_alive(),
        };
        match self {
            Kind::SocketFile | Kind::FifoRendezvous => {
                d.exists = std::fs::symlink_metadata(&d.object).is_ok();
            }
            Kind::MqRendezvous => {
                d.queued_bytes = mqueue::queued_bytes(&d.object);
                d.exists = d.queued_bytes.is_some();
            }
            Kind::SysvQueue => {
                if let Some(s) =
                    kernel_id(record).and_then(|id| sysv_msg::MsgQueue::from_id(id).status().ok())
                {
                    d.exists = true;
                    d.queued_bytes = Some(s.bytes as u64);
                    d.queued_messages = Some(s.messages as u64);
                }
            }
            Kind::SysvSegment => {
                if let Some((_, size)) =
                    kernel_id(record).and_then(|id| sysv_shm::segment_owner_and_size(id).ok())
                {
                    d.exists = true;
                    d.size = Some(size);
                }
            }
            Kind::SysvSemaphores | Kind::StateSemaphore => {
                d.exists = kernel_id(record).is_some_and(|id| sysv_shm::sem_owner(id).is_ok());
            }
            Kind::StateSegment => {
                if let Some(s) = kernel_id(record).and_then(|id| named_shm::stat_sysv(id).ok()) {
                    d.exists = true;
                    d.size = Some(s.size);
                }
            }
        }
        d
    }

    /// Removes the object `record` names, then the record: what `ipcx
    /// clean` does for an object whose owner is dead. An object already
    /// gone is not an error (its record still goes). Removing the object
    /// of a live owner breaks its connections: check
    /// [`Record::owner_alive`] first.
    ///
    /// # Errors
    /// The OS error of the removal (`EPERM`, …); the record is kept.
    pub fn remove(self, record: &Record) -> io::Result<()> {
        let gone = |e: &io::Error| {
            e.kind() == io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM))
        };
        let r = match self {
            Kind::SocketFile => crate::unix::remove_orphan(&record.object()),
            Kind::FifoRendezvous => remove_fifo(&record.object()),
            Kind::MqRendezvous => mqueue::unlink(&record.object()),
            Kind::SysvQueue => {
                kernel_id(record).map_or(Ok(()), |id| sysv_msg::MsgQueue::from_id(id).remove())
            }
            Kind::SysvSegment | Kind::StateSegment => {
                kernel_id(record).map_or(Ok(()), sysv_shm::segment_remove)
            }
            Kind::SysvSemaphores | Kind::StateSemaphore => {
                kernel_id(record).map_or(Ok(()), sysv_shm::sem_remove)
            }
        };
        match r {
            Err(e) if !gone(&e) => Err(e),
            _ => {
                unregister(self, &record.id);
                Ok(())
            }
        }
    }
}

/// Removes the FIFO at `path`, and nothing else that may be there now.
fn remove_fifo(path: &str) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => std::fs::remove_file(path),
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The System V id in a record (`None` for a malformed one).
fn kernel_id(record: &Record) -> Option<i32> {
    record.id.parse().ok()
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of the registry's kinds (a record written by a
/// newer ipcx, or a stray file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownKind(pub String);

impl fmt::Display for UnknownKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown registry kind {:?}; known: ", self.0)?;
        for (i, k) in Kind::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{k}")?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownKind {}

impl FromStr for Kind {
    type Err = UnknownKind;

    fn from_str(s: &str) -> Result<Kind, UnknownKind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// What [`Kind::describe`] found out about a recorded object.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// The transport it serves (the endpoint's scheme: `unix`, `mq`, …).
    pub transport: String,
    /// The object: a path, a POSIX name, or a System V id.
    pub object: String,
    /// Whether the object is still there.
    pub exists: bool,
    /// Its size in bytes, for a segment.
    pub size: Option<u64>,
    /// Bytes waiting in it, for a queue.
    pub queued_bytes: Option<u64>,
    /// Messages waiting in it, for a queue whose kernel says.
    pub queued_messages: Option<u64>,
    /// Whether the process that created it still runs.
    pub alive: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
            assert_eq!(k.to_string(), k.as_str());
        }
        // The names on disk, as ipcx has always written them.
        let names = [
            "fifo",
            "mq",
            "socket",
            "state-sem",
            "state-shm",
            "sysv-msq",
            "sysv-sem",
            "sysv-shm",
        ];
        assert_eq!(Kind::ALL.map(Kind::as_str), names);
        assert!("fifos".parse::<Kind>().is_err());
        assert!("sysv".parse::<Kind>().is_err());
        let persisting: Vec<Kind> = Kind::ALL.into_iter().filter(|k| k.persists()).collect();
        assert_eq!(persisting, [Kind::StateSemaphore, Kind::StateSegment]);
    }
}

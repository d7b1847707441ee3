//! The objects of `ipcx::sync` and `ipcx::shared` on this machine:
//! regions, mutexes and semaphores, POSIX and System V. They persist by
//! design until removed on purpose, so they have no orphans: `ipcx ls`
//! lists them apart, `ipcx rm ENDPOINT` removes one, and `ipcx clean`
//! leaves them alone unless asked (`--include-state`).
//!
//! - POSIX ones are found by name: `/dev/shm/ipcx.region.NAME`,
//!   `/dev/shm/ipcx.mutex.NAME` (`shm:/NAME`) and `/dev/shm/sem.ipcx.NAME`
//!   (`sem:/NAME`).
//! - System V ones are keyed by `ftok(PATH, …)`, which cannot be turned
//!   back into the path, so their creator records them
//!   ([`Kind::StateSemaphore`], [`Kind::StateSegment`]: the id and the
//!   endpoint). A record is trusted only while the kernel object with its
//!   id still has the key of its endpoint.
//!
//! A region's or mutex's type name, size and creator come from its segment
//! header.

use std::fmt;
use std::io;
use std::time::SystemTime;

use ipc_core::{Endpoint, Scheme};

use super::{Kind, Record, records, unregister};
use crate::shared::segment::{self, Identity};
use crate::sync::{mutex, semaphore};
use crate::sys::{named_shm, process, sem, sysv_sem};

/// What a state object is.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKind {
    /// An `ipcx::shared::Region`.
    Region,
    /// An `ipcx::sync::Mutex`.
    Mutex,
    /// An `ipcx::sync::Semaphore`.
    Semaphore,
}

impl StateKind {
    /// `region`, `mutex`, `semaphore`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StateKind::Region => "region",
            StateKind::Mutex => "mutex",
            StateKind::Semaphore => "semaphore",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A region or mutex segment under `/dev/shm` (its POSIX name).
    PosixSegment(String),
    /// A named semaphore (its POSIX name).
    PosixSemaphore(String),
    /// A recorded System V object.
    Recorded(Record),
}

/// One region, mutex or semaphore.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateObject {
    /// What it is.
    pub kind: StateKind,
    /// The endpoint that opens it.
    pub endpoint: String,
    /// The kernel object: a file under `/dev/shm`, or `shmid N`/`semid N`.
    pub object: String,
    /// The type a region holds (from its header).
    pub type_name: Option<String>,
    /// The size in bytes of a region's value (from its header).
    pub size: Option<u64>,
    /// The value of a semaphore, when readable.
    pub value: Option<u32>,
    /// The process that created it (a segment's header, a System V
    /// record).
    pub owner: Option<u32>,
    /// Whether that process still runs, when known (a pid from a header
    /// has no start time: pid reuse can only make a dead creator look
    /// alive, never the reverse).
    pub owner_alive: Option<bool>,
    /// When it (POSIX) or its record (System V) last changed.
    pub modified: Option<SystemTime>,
    source: Source,
}

impl StateObject {
    /// Removes it: the name of a POSIX object (processes that have it open
    /// keep using it), a System V object at once; and its record.
    ///
    /// # Errors
    /// The OS error of the removal (`EPERM` for another user's, …); an
    /// object already gone is not an error.
    pub fn remove(&self) -> io::Result<()> {
        let gone = |e: &io::Error| {
            e.kind() == io::ErrorKind::NotFound
                || matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIDRM))
        };
        let r = match &self.source {
            Source::PosixSegment(n) => named_shm::unlink_posix(n).map_err(io::Error::from),
            Source::PosixSemaphore(n) => sem::unlink(n).map_err(io::Error::from),
            Source::Recorded(r) => return r.remove(),
        };
        match r {
            Err(e) if !gone(&e) => Err(e),
            _ => Ok(()),
        }
    }
}

/// Every region, mutex and semaphore found: POSIX ones by name, System V
/// ones by record; sorted by endpoint, then kind.
pub fn all() -> Vec<StateObject> {
    let mut out = posix();
    out.extend(records().into_iter().filter_map(recorded));
    out.sort_by(|a, b| (&a.endpoint, a.kind).cmp(&(&b.endpoint, b.kind)));
    out
}

fn segment_kind(id: &Identity) -> StateKind {
    if id.type_name == mutex::TYPE_NAME {
        StateKind::Mutex
    } else {
        StateKind::Region
    }
}

fn posix() -> Vec<StateObject> {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let modified = e.metadata().ok().and_then(|m| m.modified().ok());
        let object = format!("/dev/shm/{file}");
        if let Some(name) = file.strip_prefix("sem.ipcx.") {
            let value = sem::NamedSem::open(&semaphore::posix_name_of(name))
                .and_then(|s| s.value())
                .ok();
            out.push(StateObject {
                kind: StateKind::Semaphore,
                endpoint: format!("sem:/{name}"),
                object,
                type_name: None,
                size: None,
                value,
                owner: None,
                owner_alive: None,
                modified,
                source: Source::PosixSemaphore(semaphore::posix_name_of(name)),
            });
            continue;
        }
        let (kind, name) = if let Some(n) = file.strip_prefix("ipcx.region.") {
            (StateKind::Region, n)
        } else if let Some(n) = file.strip_prefix("ipcx.mutex.") {
            (StateKind::Mutex, n)
        } else {
            continue;
        };
        let posix_name = format!("/{file}");
        let identity = named_shm::open_posix(&posix_name, 1)
            .ok()
            .flatten()
            .and_then(|m| segment::identity(&m));
        out.push(StateObject {
            kind,
            endpoint: format!("shm:/{name}"),
            object,
            type_name: identity
                .as_ref()
                .filter(|_| kind == StateKind::Region)
                .map(|i| i.type_name.clone()),
            size: identity
                .as_ref()
                .filter(|_| kind == StateKind::Region)
                .map(|i| i.size),
            value: None,
            owner: identity.as_ref().map(|i| i.creator),
            owner_alive: identity.as_ref().map(|i| process::alive(i.creator, None)),
            modified,
            source: Source::PosixSegment(posix_name),
        });
    }
    out
}

/// The key `record`'s endpoint gives with `proj`, if its key file exists.
fn key_of(record: &Record, proj: u8) -> Option<libc::key_t> {
    let ep: Endpoint = record.endpoint.parse().ok()?;
    sysv_sem::key(ep.address(), proj).ok()
}

/// Whether `e`, from `IPC_STAT` on a recorded id, says the object is gone
/// (removed, by `ipcx rm` of another registry or by `ipcrm`).
fn gone(e: nix::errno::Errno) -> bool {
    matches!(e, nix::errno::Errno::EINVAL | nix::errno::Errno::EIDRM)
}

/// Drops the record of an object that no longer exists: it would never be
/// listed again, only pile up.
fn forget(r: &Record) -> Option<StateObject> {
    unregister(r.kind, &r.id);
    None
}

/// The object a System V state record names, if it is still the one
/// recorded (same id, and the key of its endpoint). A record whose object
/// is gone is removed.
fn recorded(r: Record) -> Option<StateObject> {
    let id: i32 = r.id.parse().ok()?;
    let modified = std::fs::metadata(r.path())
        .ok()
        .and_then(|m| m.modified().ok());
    match r.kind {
        Kind::StateSemaphore => {
            let st = match sysv_sem::stat(id) {
                Ok(st) => st,
                Err(e) if gone(e) => return forget(&r),
                Err(_) => return None,
            };
            if key_of(&r, semaphore::PROJ).is_some_and(|k| k != st.key) {
                return None;
            }
            Some(StateObject {
                kind: StateKind::Semaphore,
                endpoint: r.endpoint.clone(),
                object: format!("semid {id}"),
                type_name: None,
                size: None,
                value: st.value,
                owner: Some(r.pid),
                owner_alive: Some(r.owner_alive()),
                modified,
                source: Source::Recorded(r),
            })
        }
        Kind::StateSegment => {
            let st = match named_shm::stat_sysv(id) {
                Ok(st) => st,
                Err(e) if gone(e) => return forget(&r),
                Err(_) => return None,
            };
            let keys = [key_of(&r, crate::shared::PROJ), key_of(&r, mutex::PROJ)];
            if keys.iter().all(Option::is_some) && !keys.contains(&Some(st.key)) {
                return None;
            }
            let identity = named_shm::attach_sysv(id)
                .ok()
                .and_then(|m| segment::identity(&m));
            let kind = identity.as_ref().map_or(StateKind::Region, segment_kind);
            Some(StateObject {
                kind,
                endpoint: r.endpoint.clone(),
                object: format!("shmid {id}"),
                type_name: identity
                    .as_ref()
                    .filter(|_| kind == StateKind::Region)
                    .map(|i| i.type_name.clone()),
                size: identity
                    .as_ref()
                    .filter(|_| kind == StateKind::Region)
                    .map(|i| i.size),
                value: None,
                owner: Some(identity.map_or(r.pid, |i| i.creator)),
                owner_alive: Some(r.owner_alive()),
                modified,
                source: Source::Recorded(r),
            })
        }
        _ => None,
    }
}

/// Removes every region, mutex and semaphore `endpoint` names (a `shm:` or
/// `sysv-shm:` endpoint may name both a region and a mutex), and their
/// records; returns what was removed, empty when nothing was there.
///
/// # Errors
/// The OS error of a removal that failed (`EPERM`, …), or `InvalidInput`
/// for an endpoint that names no state object.
pub fn remove(endpoint: &Endpoint) -> io::Result<Vec<StateKind>> {
    let mut removed = Vec::new();
    let addr = endpoint.address();
    let found = |e: &nix::errno::Errno| !matches!(e, nix::errno::Errno::ENOENT);
    match endpoint.scheme() {
        Scheme::Sem => match sem::unlink(&semaphore::posix_name_of(addr)) {
            Ok(()) => removed.push(StateKind::Semaphore),
            Err(e) if found(&e) => return Err(e.into()),
            Err(_) => {}
        },
        Scheme::Shm => {
            for (kind, name) in [(StateKind::Mutex, "mutex"), (StateKind::Region, "region")] {
                match named_shm::unlink_posix(&segment::posix_name_of(name, addr)) {
                    Ok(()) => removed.push(kind),
                    Err(e) if found(&e) => return Err(e.into()),
                    Err(_) => {}
                }
            }
        }
        Scheme::SysvSem => {
            if let Some(id) = sysv_sem::key(addr, semaphore::PROJ)
                .ok()
                .and_then(|k| sysv_sem::find(k).ok())
            {
                sysv_sem::remove_id(id)?;
                unregister(Kind::StateSemaphore, &id.to_string());
                removed.push(StateKind::Semaphore);
            }
        }
        Scheme::SysvShm => {
            for (kind, proj) in [
                (StateKind::Mutex, mutex::PROJ),
                (StateKind::Region, crate::shared::PROJ),
            ] {
                if let Some(id) = sysv_sem::key(addr, proj)
                    .ok()
                    .and_then(|k| named_shm::find_sysv(k).ok())
                {
                    crate::sys::sysv_shm::segment_remove(id)?;
                    unregister(Kind::StateSegment, &id.to_string());
                    removed.push(kind);
                }
            }
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{endpoint}: regions, mutexes and semaphores live on sem:, sysv-sem:, shm: and sysv-shm: endpoints, not {other}:"
                ),
            ));
        }
    }
    Ok(removed)
}

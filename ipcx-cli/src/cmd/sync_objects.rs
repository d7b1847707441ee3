//! The synchronisation objects and shared state ipcx can find on this
//! machine, for `ipcx ls`: regions (`/dev/shm/ipcx.region.NAME`), mutexes
//! (`/dev/shm/ipcx.mutex.NAME`) and POSIX semaphores
//! (`/dev/shm/sem.ipcx.NAME`). A region's type name and size come from its
//! segment header. System V ones (`sysv-sem:`, `sysv-shm:`) are keyed by a
//! file the kernel does not name, so they are not listed.
//!
//! These objects have no owner: they persist by design until removed
//! (`ipcx rm ENDPOINT`), and `ipcx clean` leaves them alone.

use std::io::Read;
use std::time::{Duration, SystemTime};

/// The segment header's magic (`IPCXSHRD`).
const MAGIC: &[u8; 8] = b"IPCXSHRD";
/// Offsets in the header (see `ipc-backends/src/shared/segment.rs`).
const SIZE_AT: usize = 24;
const CREATOR_AT: usize = 48;
const NAME_LEN_AT: usize = 52;
const NAME_AT: usize = 56;
const NAME_CAP: usize = 128;

/// One region, mutex or semaphore.
#[derive(Debug, Clone)]
pub struct SyncObject {
    /// `region`, `mutex` or `semaphore`.
    pub kind: &'static str,
    /// The endpoint that opens it.
    pub endpoint: String,
    /// The file under `/dev/shm`.
    pub file: String,
    /// The type held (regions), from the header.
    pub type_name: Option<String>,
    /// The value's size in bytes (regions), from the header.
    pub size: Option<u64>,
    /// The creating process, from the header.
    pub creator: Option<u32>,
    /// Time since it last changed.
    pub age: Option<Duration>,
}

/// Whether a POSIX object name (`/ipcx.region.x`, `/ipcx.mutex.x`) is a
/// region or mutex segment.
pub fn is_sync_name(name: &str) -> bool {
    let n = name.trim_start_matches('/');
    n.starts_with("ipcx.region.") || n.starts_with("ipcx.mutex.")
}

fn header(path: &std::path::Path) -> Option<(Option<String>, u64, u32)> {
    let mut buf = [0u8; NAME_AT + NAME_CAP];
    std::fs::File::open(path).ok()?.read_exact(&mut buf).ok()?;
    if &buf[..8] != MAGIC {
        return None;
    }
    let u64_at = |i: usize| u64::from_ne_bytes(buf[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u32::from_ne_bytes(buf[i..i + 4].try_into().unwrap_or_default());
    let len = (u32_at(NAME_LEN_AT) as usize).min(NAME_CAP);
    let name = String::from_utf8_lossy(&buf[NAME_AT..NAME_AT + len]).into_owned();
    Some((
        (!name.is_empty()).then_some(name),
        u64_at(SIZE_AT),
        u32_at(CREATOR_AT),
    ))
}

/// Every region, mutex and POSIX semaphore under `/dev/shm`, by name.
pub fn all() -> Vec<SyncObject> {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let (kind, name) = if let Some(n) = file.strip_prefix("ipcx.region.") {
            ("region", n)
        } else if let Some(n) = file.strip_prefix("ipcx.mutex.") {
            ("mutex", n)
        } else if let Some(n) = file.strip_prefix("sem.ipcx.") {
            ("semaphore", n)
        } else {
            continue;
        };
        let scheme = if kind == "semaphore" { "sem" } else { "shm" };
        let path = e.path();
        let hdr = if kind == "semaphore" {
            None
        } else {
            header(&path)
        };
        out.push(SyncObject {
            kind,
            endpoint: format!("{scheme}:/{name}"),
            type_name: if kind == "region" {
                hdr.as_ref().and_then(|h| h.0.clone())
            } else {
                None
            },
            size: if kind == "region" {
                hdr.as_ref().map(|h| h.1)
            } else {
                None
            },
            creator: hdr.as_ref().map(|h| h.2),
            age: e
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| SystemTime::now().duration_since(t).ok()),
            file: format!("/dev/shm/{file}"),
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// The objects as a table.
pub fn table(objs: &[SyncObject]) -> String {
    let mut out = format!(
        "{:<9} {:<40} {:<32} {:>8} {:>8} {:>5}  {}\n",
        "KIND", "ENDPOINT", "TYPE", "SIZE", "CREATOR", "AGE", "OBJECT"
    );
    for o in objs {
        out.push_str(&format!(
            "{:<9} {:<40} {:<32} {:>8} {:>8} {:>5}  {}\n",
            o.kind,
            o.endpoint,
            o.type_name.as_deref().unwrap_or("-"),
            o.size.map_or("-".into(), |s| format!("{s} B")),
            o.creator.map_or("-".into(), |p| p.to_string()),
            super::objects::human_age(o.age),
            o.file,
        ));
    }
    out
}

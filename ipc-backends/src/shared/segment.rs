//! The named segment behind a region or a mutex: a [`Header`] (identity of
//! the stored type, the robust mutex, the seqlock counter) and then the
//! data, at an offset aligned for it.
//!
//! The creator fills the header and the data, then publishes the segment
//! by storing `READY` (release); an opener waits (briefly) for `READY`
//! (acquire) before trusting anything else in it.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipc_core::handshake::TypeTag;
use ipc_core::{Direction, Endpoint, Error, Result, Scheme};
use nix::errno::Errno;

use crate::registry::{self, Kind};
use crate::sync::{limits, os_error};
use crate::sys::named_shm;
use crate::sys::process;
use crate::sys::robust_mutex::{Acquired, RobustMutex};
use crate::sys::shm::Mapping;
use crate::sys::sysv_sem;

const MAGIC: u64 = u64::from_le_bytes(*b"IPCXSHRD");
const VERSION: u32 = 1;
const READY: u32 = 0x5245_4459;
const NAME_CAP: usize = 128;
/// How long `open` waits for a creator racing it to publish the segment.
const PUBLISH_WAIT: Duration = Duration::from_secs(2);

/// The start of every region and mutex segment.
#[repr(C)]
pub(crate) struct Header {
    magic: u64,
    version: u32,
    ready: AtomicU32,
    fingerprint: u64,
    size: u64,
    align: u64,
    data_offset: u64,
    creator_pid: u32,
    name_len: u32,
    name: [u8; NAME_CAP],
    /// The pid of the last process that locked (readers check whether it
    /// lives while the sequence stays odd).
    pub(crate) writer_pid: AtomicU32,
    _pad: u32,
    /// The seqlock counter: odd while a write is in progress.
    pub(crate) seq: AtomicU64,
    pub(crate) mutex: RobustMutex,
}

/// What a segment holds: the type's name and fingerprint, its size and
/// alignment.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub tag: TypeTag,
    pub size: usize,
    pub align: usize,
}

impl Layout {
    fn data_offset(&self) -> usize {
        size_of::<Header>().next_multiple_of(self.align.max(64))
    }

    fn len(&self) -> usize {
        (self.data_offset() + self.size).max(1)
    }
}

enum Name {
    Posix(String),
    Sysv(i32),
}

/// A mapped region or mutex segment. Not `Clone`; unmapped on drop.
pub(crate) struct Segment {
    map: Mapping,
    name: Name,
    endpoint: Endpoint,
    data_offset: usize,
}

fn check_scheme(endpoint: &Endpoint, what: &str) -> Result<()> {
    match endpoint.scheme() {
        Scheme::Shm | Scheme::SysvShm => Ok(()),
        other => Err(Error::Unsupported {
            scheme: other,
            reason: format!("{endpoint}: {what} lives on shm:/NAME or sysv-shm:PATH endpoints"),
        }),
    }
}

fn posix_name(endpoint: &Endpoint, kind: &str) -> String {
    posix_name_of(kind, endpoint.address())
}

fn shm_hint(e: Errno) -> &'static str {
    match e {
        Errno::EINVAL => "the size is above kernel.shmmax (/proc/sys/kernel/shmmax)",
        Errno::ENOSPC => {
            "kernel.shmmni or kernel.shmall reached (/proc/sys/kernel); remove unused segments"
        }
        Errno::ENOENT => "nothing of that name; create it first",
        _ => "",
    }
}

impl Segment {
    /// Creates the segment of `endpoint` exclusively (mode from the
    /// endpoint), writes the header and lets `init` fill the data, then
    /// publishes it. `kind` (`region`, `mutex`) keeps the names of the two
    /// uses apart; `proj` is their `ftok` project id.
    pub(crate) fn create(
        endpoint: &Endpoint,
        kind: &str,
        proj: u8,
        layout: &Layout,
        init: impl FnOnce(*mut u8),
    ) -> Result<Segment> {
        check_scheme(endpoint, kind)?;
        let len = layout.len();
        let mode = endpoint.options().mode;
        let (map, name) = if endpoint.scheme() == Scheme::Shm {
            let n = posix_name(endpoint, kind);
            let map = named_shm::create_posix(&n, mode, len)
                .map_err(|e| os_error(endpoint, "shm_open", e, shm_hint(e)))?;
            (map, Name::Posix(n))
        } else {
            limits::sysv_segment(endpoint, len as u64, &limits::ShmUse::now())?;
            crate::sync::ensure_key_file(endpoint)?;
            let key = sysv_sem::key(endpoint.address(), proj)
                .map_err(|e| os_error(endpoint, "ftok", e, ""))?;
            let (id, map) = named_shm::create_sysv(key, mode, len)
                .map_err(|e| os_error(endpoint, "shmget", e, shm_hint(e)))?;
            registry::register_state(Kind::StateSegment, id, endpoint);
            (map, Name::Sysv(id))
        };
        let seg = Segment {
            map,
            name,
            endpoint: endpoint.clone(),
            data_offset: layout.data_offset(),
        };
        let h = seg.map.ptr().cast::<Header>();
        let tag_name = layout.tag.name.as_bytes();
        let name_len = tag_name.len().min(NAME_CAP);
        let mut name = [0u8; NAME_CAP];
        name[..name_len].copy_from_slice(&tag_name[..name_len]);
        // SAFETY: the mapping is at least `len` bytes, page-aligned (so
        // aligned for `Header`), zero-filled and not yet published: no
        // other process reads it before `ready` is stored below. The mutex
        // is initialised once, here, before anyone can use it.
        unsafe {
            h.write(Header {
                magic: MAGIC,
                version: VERSION,
                ready: AtomicU32::new(0),
                fingerprint: layout.tag.fingerprint,
                size: layout.size as u64,
                align: layout.align as u64,
                data_offset: seg.data_offset as u64,
                creator_pid: process::pid(),
                name_len: name_len as u32,
                name,
                writer_pid: AtomicU32::new(0),
                _pad: 0,
                seq: AtomicU64::new(0),
                mutex: std::mem::zeroed(),
            });
            RobustMutex::init(&raw mut (*h).mutex)
        }
        .map_err(|e| {
            seg.unlink();
            os_error(endpoint, "pthread_mutex_init", e, "")
        })?;
        init(seg.data());
        seg.header().ready.store(READY, Ordering::Release);
        tracing::debug!(%endpoint, kind, r#type = %layout.tag, "shared segment created");
        Ok(seg)
    }

    /// Opens the segment of `endpoint` and checks it holds `layout`.
    pub(crate) fn open(
        endpoint: &Endpoint,
        kind: &str,
        proj: u8,
        layout: &Layout,
    ) -> Result<Segment> {
        check_scheme(endpoint, kind)?;
        let min = size_of::<Header>();
        let give_up = Instant::now() + PUBLISH_WAIT;
        let (map, name) = loop {
            let got = if endpoint.scheme() == Scheme::Shm {
                let n = posix_name(endpoint, kind);
                named_shm::open_posix(&n, min)
                    .map_err(|e| os_error(endpoint, "shm_open", e, shm_hint(e)))?
                    .map(|m| (m, Name::Posix(n)))
            } else {
                let key = sysv_sem::key(endpoint.address(), proj).map_err(|e| {
                    os_error(endpoint, "ftok", e, "no key file: nothing was created here")
                })?;
                let (id, map) = named_shm::open_sysv(key)
                    .map_err(|e| os_error(endpoint, "shmget", e, shm_hint(e)))?;
                (map.len() >= min).then_some((map, Name::Sysv(id)))
            };
            if let Some((map, name)) = got {
                // SAFETY: at least a header's worth of bytes, page-aligned.
                let h = unsafe { &*map.ptr().cast::<Header>() };
                if h.ready.load(Ordering::Acquire) == READY {
                    break (map, name);
                }
            }
            if Instant::now() >= give_up {
                return Err(Error::protocol(format!(
                    "{endpoint}: the {kind} was never initialised (its creator died while creating it?); remove it and create it again"
                )));
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        let seg = Segment {
            map,
            name,
            endpoint: endpoint.clone(),
            data_offset: 0,
        };
        let data_offset = seg.check(kind, layout)?;
        Ok(Segment { data_offset, ..seg })
    }

    /// Checks the published header against `layout`: an ipcx segment of
    /// this version, holding the same type, within the mapping.
    fn check(&self, kind: &str, layout: &Layout) -> Result<usize> {
        let h = self.header();
        let ep = &self.endpoint;
        if h.magic != MAGIC || h.version != VERSION {
            return Err(Error::protocol(format!(
                "{ep}: not an ipcx {kind} of version {VERSION} (magic {:#x}, version {})",
                h.magic, h.version
            )));
        }
        let n = (h.name_len as usize).min(NAME_CAP);
        let stored = TypeTag {
            name: Cow::Owned(String::from_utf8_lossy(&h.name[..n]).into_owned()),
            fingerprint: h.fingerprint,
        };
        if h.fingerprint != layout.tag.fingerprint
            || h.size != layout.size as u64
            || h.align != layout.align as u64
        {
            return Err(Error::SchemaMismatch {
                direction: Direction::PeerToLocal,
                local: layout.tag.clone(),
                remote: stored,
            });
        }
        let offset = usize::try_from(h.data_offset).unwrap_or(usize::MAX);
        if offset != layout.data_offset() || offset + layout.size > self.map.len() {
            return Err(Error::protocol(format!(
                "{ep}: header says data at {offset}, the segment has {} bytes",
                self.map.len()
            )));
        }
        Ok(offset)
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: the mapping holds at least a header, page-aligned; it was
        // initialised by the creator before `ready` was published (checked
        // by `open`, or written by `create`). Fields others change are
        // atomics or the mutex (interior mutability).
        unsafe { &*self.map.ptr().cast::<Header>() }
    }

    /// The first byte of the data.
    #[inline]
    pub(crate) fn data(&self) -> *mut u8 {
        // SAFETY: `data_offset` plus the data's size is within the mapping
        // (checked in `open`, computed in `create`).
        unsafe { self.map.ptr().add(self.data_offset) }
    }

    /// Locks the segment's mutex (`None`: wait; `Some(ZERO)`: try once).
    #[inline]
    pub(crate) fn lock(&self, timeout: Option<Duration>) -> Result<Acquired> {
        match self.header().mutex.lock(timeout) {
            Ok(how) => Ok(how),
            Err(e) => Err(self.lock_failed(e)),
        }
    }

    #[cold]
    #[inline(never)]
    fn lock_failed(&self, e: Errno) -> Error {
        let hint = match e {
            Errno::ENOTRECOVERABLE => {
                "a holder died and the next one gave up on repairing the state (dropped OwnerDied); remove it and create it again"
            }
            Errno::EDEADLK => "this thread holds it already",
            _ => "",
        };
        os_error(&self.endpoint, "pthread_mutex_lock", e, hint)
    }

    /// Unlocks the segment's mutex (held by this thread).
    #[inline]
    pub(crate) fn unlock(&self) {
        if let Err(e) = self.header().mutex.unlock() {
            self.unlock_failed(e);
        }
    }

    #[cold]
    #[inline(never)]
    fn unlock_failed(&self, e: Errno) {
        tracing::warn!(endpoint = %self.endpoint, error = %e, "unlock failed");
    }

    /// Marks the mutex consistent after an owner died (held by this thread).
    pub(crate) fn mark_consistent(&self) {
        if let Err(e) = self.header().mutex.consistent() {
            tracing::warn!(endpoint = %self.endpoint, error = %e, "pthread_mutex_consistent failed");
        }
    }

    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn unlink(&self) {
        match &self.name {
            Name::Posix(n) => {
                let _ = named_shm::unlink_posix(n);
            }
            Name::Sysv(id) => remove_sysv(*id),
        }
    }

    /// Removes the name (POSIX) or marks the segment for removal (System
    /// V); mappings stay valid until dropped.
    pub(crate) fn remove(self) -> Result<()> {
        match &self.name {
            Name::Posix(n) => named_shm::unlink_posix(n)
                .map_err(|e| os_error(&self.endpoint, "shm_unlink", e, ""))?,
            Name::Sysv(id) => remove_sysv(*id),
        }
        tracing::debug!(endpoint = %self.endpoint, "shared segment removed");
        Ok(())
    }
}

/// Marks System V segment `id` for removal and forgets its record.
fn remove_sysv(id: i32) {
    named_shm::remove_sysv(id);
    registry::unregister(Kind::StateSegment, &id.to_string());
}

/// The POSIX name of the `kind` (`region`, `mutex`) segment at `address`.
pub(crate) fn posix_name_of(kind: &str, address: &str) -> String {
    format!("/ipcx.{kind}.{}", address.trim_start_matches('/'))
}

/// What a published segment says of itself.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// The stored type's name (`ipcx::sync::Mutex` for a mutex).
    pub type_name: String,
    /// The stored value's size in bytes.
    pub size: u64,
    /// The process that created it.
    pub creator: u32,
}

/// The identity in the header of `map`, if it is a published ipcx segment
/// of this version.
pub(crate) fn identity(map: &Mapping) -> Option<Identity> {
    if map.len() < size_of::<Header>() {
        return None;
    }
    // SAFETY: the mapping holds at least a header and is page-aligned;
    // only fields written before `ready` was published are read after
    // checking it (acquire), and the rest are atomics.
    let h = unsafe { &*map.ptr().cast::<Header>() };
    if h.ready.load(Ordering::Acquire) != READY || h.magic != MAGIC || h.version != VERSION {
        return None;
    }
    let n = (h.name_len as usize).min(NAME_CAP);
    Some(Identity {
        type_name: String::from_utf8_lossy(&h.name[..n]).into_owned(),
        size: h.size,
        creator: h.creator_pid,
    })
}

/// Whether process `pid` (a writer recorded in a header) is alive.
pub(crate) fn alive(pid: u32) -> bool {
    pid == 0 || process::alive(pid, None)
}

/// The pid of this process, recorded as writer.
#[inline]
pub(crate) fn me() -> u32 {
    process::pid()
}

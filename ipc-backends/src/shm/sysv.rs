//! `sysv-shm:` segments: a private System V segment (removed as soon as
//! both sides attached) and a private semaphore set of four (data and space
//! of each ring; removed on close), both recorded in the registry while
//! they exist.

use std::time::Duration;

use ipc_core::{Endpoint, Error, Result};

use super::posix::checked_size;
use crate::registry::{self, Kind, Record};
use crate::sys::shm::Mapping;
use crate::sys::sysv_shm as sys;

/// Semaphores per set: data and space for each of the two rings.
pub const SEMAPHORES: i32 = 4;

/// A segment this listener created, recorded in the registry. On drop the
/// segment is removed (it lives on while attached) and so is its record.
#[derive(Debug)]
pub struct RecordedSegment(sys::Segment);

impl Drop for RecordedSegment {
    fn drop(&mut self) {
        registry::unregister(Kind::SysvSegment, &self.0.id().to_string());
    }
}

/// A connection's semaphore set (recorded in the registry by the listener
/// that created it). On drop the set is removed with its record, unless it
/// was [left](Self::leave) to the peer.
#[derive(Debug)]
pub struct SemaphoreSet {
    set: sys::Semaphores,
    left: bool,
}

impl SemaphoreSet {
    /// The set's id, to hand to the peer.
    pub fn id(&self) -> i32 {
        self.set.id()
    }

    /// Adds one to semaphore `num` (a value already at the kernel's
    /// maximum is fine: wake-ups are pending anyway).
    ///
    /// # Errors
    /// The OS error of `semop` (`EIDRM`/`EINVAL` when the set is gone).
    pub fn post(&self, num: u16) -> std::io::Result<()> {
        self.set.post(num)
    }

    /// Takes one from semaphore `num`, sleeping at most `timeout` for it to
    /// become positive; returns on success, timeout or signal alike.
    ///
    /// # Errors
    /// The OS error of `semtimedop` (`EIDRM`/`EINVAL` when the set is gone).
    pub fn wait(&self, num: u16, timeout: Duration) -> std::io::Result<()> {
        self.set.wait(num, timeout)
    }

    /// Sets semaphore `num` to 0: the units posted for wake-ups this
    /// waiter has already had are dropped.
    ///
    /// # Errors
    /// The OS error of `semctl(SETVAL)`.
    pub fn reset(&self, num: u16) -> std::io::Result<()> {
        self.set.reset(num)
    }

    /// Lets go of the set without removing it: the peer still uses it and
    /// removes it when it closes.
    pub fn leave(mut self) {
        self.set.disown();
        self.left = true;
    }
}

impl Drop for SemaphoreSet {
    fn drop(&mut self) {
        if !self.left {
            registry::unregister(Kind::SysvSemaphores, &self.id().to_string());
        }
    }
}

/// A connection's System V objects, being handed over: dropped, both are
/// removed with their records.
#[derive(Debug)]
pub struct Created {
    segment: RecordedSegment,
    semaphores: SemaphoreSet,
}

impl Created {
    /// The ids of the segment and the semaphore set, to hand over.
    pub fn ids(&self) -> (i32, i32) {
        (self.segment.0.id(), self.semaphores.id())
    }

    /// Both sides attached: removes the segment (it now lives exactly as
    /// long as the mappings) and passes the semaphore set on to the
    /// connection.
    pub fn attached(self) -> SemaphoreSet {
        let Created {
            segment,
            semaphores,
        } = self;
        drop(segment);
        semaphores
    }
}

/// Removes recorded segments and semaphore sets whose owner died.
pub fn remove_orphans() {
    for r in registry::orphans() {
        if matches!(r.kind, Kind::SysvSegment | Kind::SysvSemaphores) && r.remove().is_ok() {
            tracing::info!(
                kind = %r.kind,
                id = %r.id,
                endpoint = %r.endpoint,
                owner = r.pid,
                "removed an object of a dead owner"
            );
        }
    }
}

/// Creates, records and attaches a segment of `size` bytes and a
/// semaphore set.
///
/// # Errors
/// [`Error::Io`] naming the call and the kernel limit that usually causes it.
pub fn create(endpoint: &Endpoint, size: usize) -> Result<(Created, Mapping)> {
    let mode = endpoint.options().mode;
    let segment = sys::Segment::create(size, mode).map_err(|e| {
        Error::io(
            format!(
                "{endpoint}: shmget({size} bytes); the limits are kernel.shmmax, kernel.shmall and kernel.shmmni: lower capacity or raise them"
            ),
            e,
        )
    })?;
    record(Kind::SysvSegment, segment.id(), endpoint);
    let segment = RecordedSegment(segment);
    let set = sys::Semaphores::create(SEMAPHORES, mode).map_err(|e| {
        Error::io(
            format!("{endpoint}: semget({SEMAPHORES}); the limit is kernel.sem (SEMMNI): raise it or run `ipcx clean`"),
            e,
        )
    })?;
    record(Kind::SysvSemaphores, set.id(), endpoint);
    let semaphores = SemaphoreSet { set, left: false };
    let shmid = segment.0.id();
    let map = segment
        .0
        .attach(size)
        .map_err(|e| Error::io(format!("{endpoint}: shmat({shmid})"), e))?;
    Ok((
        Created {
            segment,
            semaphores,
        },
        map,
    ))
}

/// Records the object `id` of `kind` as this process's, for `ipcx clean`
/// should this process die before removing it.
fn record(kind: Kind, id: i32, endpoint: &Endpoint) {
    let _ = registry::register(&Record::mine(kind, id.to_string(), endpoint.to_string()));
}

/// Attaches a segment received from the listener and takes charge of its
/// semaphore set (this side removes it if it closes last or finds the
/// listener dead), after checking owners and size.
///
/// # Errors
/// [`Error::PermissionDenied`] for a foreign owner, [`Error::Protocol`] for
/// an impossible size, [`Error::Io`] when the calls fail.
pub fn open(
    endpoint: &Endpoint,
    shmid: i32,
    semid: i32,
    listener_uid: u32,
) -> Result<(Mapping, SemaphoreSet)> {
    let (owner, size) = sys::segment_owner_and_size(shmid)
        .map_err(|e| Error::io(format!("{endpoint}: shmctl({shmid}, IPC_STAT)"), e))?;
    let sem_owner = sys::sem_owner(semid)
        .map_err(|e| Error::io(format!("{endpoint}: semctl({semid}, IPC_STAT)"), e))?;
    if owner != listener_uid || sem_owner != listener_uid {
        return Err(Error::PermissionDenied(format!(
            "{endpoint}: the segment (uid {owner}) or semaphore set (uid {sem_owner}) handed over is not owned by the listener's uid {listener_uid}"
        )));
    }
    let size = checked_size(endpoint, size)?;
    let map = sys::segment_attach(shmid, size)
        .map_err(|e| Error::io(format!("{endpoint}: shmat({shmid})"), e))?;
    let semaphores = SemaphoreSet {
        set: sys::Semaphores::adopt(semid),
        left: false,
    };
    Ok((map, semaphores))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A semaphore set recorded by an owner that is dead (its start time
    /// differs) is removed by the next `remove_orphans`, as the next
    /// listener runs it.
    #[test]
    fn orphans_of_dead_owners_are_removed() {
        let mut set = sys::Semaphores::create(SEMAPHORES, 0o600).unwrap();
        set.disown();
        let id = set.id();
        drop(set);
        let mut r = Record::mine(
            Kind::SysvSemaphores,
            id.to_string(),
            "sysv-shm:/tmp/orphan-test",
        );
        r.start_time += 1;
        registry::register(&r).unwrap();
        remove_orphans();
        let gone = sys::sem_owner(id).is_err();
        if !gone {
            let _ = sys::sem_remove(id);
            registry::unregister(Kind::SysvSemaphores, &id.to_string());
        }
        assert!(gone, "semaphore set {id} of a dead owner survived");
        assert!(
            !registry::list()
                .iter()
                .any(|x| x.id == id.to_string() && x.kind == Kind::SysvSemaphores)
        );
    }
}

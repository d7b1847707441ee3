//! `sysv-shm:` segments: a private System V segment (removed as soon as
//! both sides attached) and a private semaphore set of four (data and space
//! of each ring; removed on close), both recorded in the registry while
//! they exist.

use ipc_core::{Endpoint, Error, Result};

use super::posix::checked_size;
use crate::registry::{self, Record};
use crate::sys::shm::Mapping;
use crate::sys::sysv_shm as sys;

/// Registry kind of segments.
pub const KIND_SEGMENT: &str = "sysv-shm";
/// Registry kind of semaphore sets.
pub const KIND_SEMAPHORES: &str = "sysv-sem";
/// Semaphores per set: data and space for each of the two rings.
pub const SEMAPHORES: i32 = 4;

/// System V objects being set up; removed on drop unless kept.
#[derive(Debug)]
pub struct Created {
    /// The segment id, until removed.
    pub shmid: Option<i32>,
    /// The semaphore set id, until handed to the connection.
    pub semid: Option<i32>,
}

impl Created {
    /// Removes the segment id (it lives on while attached).
    pub fn remove_segment(&mut self) {
        if let Some(id) = self.shmid.take() {
            sys::segment_remove(id);
            registry::unregister(KIND_SEGMENT, &id.to_string());
        }
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        self.remove_segment();
        if let Some(id) = self.semid.take() {
            remove_semaphores(id);
        }
    }
}

/// Removes a semaphore set and its record.
pub fn remove_semaphores(id: i32) {
    sys::sem_remove(id);
    registry::unregister(KIND_SEMAPHORES, &id.to_string());
}

/// Removes the recorded object `kind`/`id` (a segment or semaphore set)
/// and its record; `false` for kinds this module does not own.
pub fn remove_recorded(kind: &str, id: &str) -> bool {
    let Ok(n) = id.parse::<i32>() else {
        return false;
    };
    match kind {
        KIND_SEGMENT => sys::segment_remove(n),
        KIND_SEMAPHORES => sys::sem_remove(n),
        _ => return false,
    }
    registry::unregister(kind, id);
    true
}

/// Removes recorded segments and semaphore sets whose owner died.
pub fn remove_orphans() {
    for r in registry::orphans() {
        if remove_recorded(&r.kind, &r.id) {
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
    let mut created = Created {
        shmid: None,
        semid: None,
    };
    let shmid = sys::segment_create(size, mode).map_err(|e| {
        Error::io(
            format!(
                "{endpoint}: shmget({size} bytes); the limits are kernel.shmmax, kernel.shmall and kernel.shmmni: lower capacity or raise them"
            ),
            e,
        )
    })?;
    created.shmid = Some(shmid);
    let _ = registry::register(&Record::mine(
        KIND_SEGMENT,
        shmid.to_string(),
        endpoint.to_string(),
    ));
    let semid = sys::sem_create(SEMAPHORES, mode).map_err(|e| {
        Error::io(
            format!("{endpoint}: semget({SEMAPHORES}); the limit is kernel.sem (SEMMNI): raise it or run `ipcx clean`"),
            e,
        )
    })?;
    created.semid = Some(semid);
    let _ = registry::register(&Record::mine(
        KIND_SEMAPHORES,
        semid.to_string(),
        endpoint.to_string(),
    ));
    let map = sys::segment_attach(shmid, size)
        .map_err(|e| Error::io(format!("{endpoint}: shmat({shmid})"), e))?;
    Ok((created, map))
}

/// Attaches a segment received from the listener after checking owners
/// and size.
///
/// # Errors
/// [`Error::PermissionDenied`] for a foreign owner, [`Error::Protocol`] for
/// an impossible size, [`Error::Io`] when the calls fail.
pub fn open(endpoint: &Endpoint, shmid: i32, semid: i32, listener_uid: u32) -> Result<Mapping> {
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
    sys::segment_attach(shmid, size)
        .map_err(|e| Error::io(format!("{endpoint}: shmat({shmid})"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A semaphore set recorded by an owner that is dead (its start time
    /// differs) is removed by the next `remove_orphans`, as the next
    /// listener runs it.
    #[test]
    fn orphans_of_dead_owners_are_removed() {
        let id = sys::sem_create(SEMAPHORES, 0o600).unwrap();
        let mut r = Record::mine(KIND_SEMAPHORES, id.to_string(), "sysv-shm:/tmp/orphan-test");
        r.start_time += 1;
        registry::register(&r).unwrap();
        remove_orphans();
        let gone = sys::sem_owner(id).is_err();
        if !gone {
            sys::sem_remove(id);
            registry::unregister(KIND_SEMAPHORES, &id.to_string());
        }
        assert!(gone, "semaphore set {id} of a dead owner survived");
        assert!(
            !registry::list()
                .iter()
                .any(|x| x.id == id.to_string() && x.kind == KIND_SEMAPHORES)
        );
    }
}

//! `sysv-shm:` segments: a private System V segment, recorded in the
//! registry until both sides attached and then removed (it lives on while
//! attached). The sides wake each other through futex words in the
//! segment, as on `shm:`: nothing else is created per connection.
//!
//! ipcx before `sysv-shm:` hand-over byte 3 (`docs/wire-format.md`) made a
//! semaphore set of four per connection, recorded as
//! [`Kind::SysvSemaphores`]; [`remove_orphans`] and `ipcx clean` still
//! remove the sets such a process left behind.

use ipc_core::{Endpoint, Error, Result};

use super::posix::checked_size;
use crate::registry::{self, Kind, Record};
use crate::sys::shm::Mapping;
use crate::sys::sysv_shm as sys;

/// A connection's segment until both sides attached, recorded in the
/// registry. Dropped (once both attached, or when the hand-over fails),
/// the segment is removed (it lives on while attached) and so is its
/// record.
#[derive(Debug)]
pub struct Created(sys::Segment);

impl Created {
    /// The segment's id, to hand over.
    pub fn id(&self) -> i32 {
        self.0.id()
    }

    /// Both sides attached: removes the segment, which now lives exactly
    /// as long as the mappings.
    pub fn attached(self) {
        drop(self);
    }
}

impl Drop for Created {
    fn drop(&mut self) {
        registry::unregister(Kind::SysvSegment, &self.0.id().to_string());
    }
}

/// Removes recorded segments whose owner died, and the semaphore sets an
/// older ipcx recorded for its connections.
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

/// Creates, records and attaches a segment of `size` bytes.
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
    let _ = registry::register(&Record::mine(
        Kind::SysvSegment,
        segment.id().to_string(),
        endpoint.to_string(),
    ));
    let created = Created(segment);
    let shmid = created.id();
    let map = created
        .0
        .attach(size)
        .map_err(|e| Error::io(format!("{endpoint}: shmat({shmid})"), e))?;
    Ok((created, map))
}

/// Attaches a segment received from the listener, after checking its
/// owner and size.
///
/// # Errors
/// [`Error::PermissionDenied`] for a foreign owner, [`Error::Protocol`] for
/// an impossible size, [`Error::Io`] when the calls fail.
pub fn open(endpoint: &Endpoint, shmid: i32, listener_uid: u32) -> Result<Mapping> {
    let (owner, size) = sys::segment_owner_and_size(shmid)
        .map_err(|e| Error::io(format!("{endpoint}: shmctl({shmid}, IPC_STAT)"), e))?;
    if owner != listener_uid {
        return Err(Error::PermissionDenied(format!(
            "{endpoint}: the segment handed over (uid {owner}) is not owned by the listener's uid {listener_uid}"
        )));
    }
    let size = checked_size(endpoint, size)?;
    sys::segment_attach(shmid, size)
        .map_err(|e| Error::io(format!("{endpoint}: shmat({shmid})"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's semaphore set, recorded by an older ipcx whose
    /// process is dead (its start time differs), is removed by the next
    /// `remove_orphans`, as the next listener runs it.
    #[test]
    fn orphans_of_dead_owners_are_removed() {
        // SAFETY: semget takes values only. A private set, as an older
        // ipcx made per connection, but of two, not four: the integration
        // test `sysv_shm::connection_makes_no_semaphore_set` watches the
        // machine for new sets of four.
        let id = unsafe { libc::semget(libc::IPC_PRIVATE, 2, libc::IPC_CREAT | 0o600) };
        assert!(id >= 0, "semget: {}", std::io::Error::last_os_error());
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

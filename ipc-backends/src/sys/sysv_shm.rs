//! System V shared memory ([shmget(2)], [shmat(2)]), and the two calls on
//! semaphore sets ([semctl(2)]) that the registry needs for sets found by
//! id.
//!
//! Segments are created with `IPC_PRIVATE` (always a new object, nothing
//! to squat on) and passed to the peer by id. The kernel does not free
//! one when its creator dies, which is why callers record them in the
//! [`registry`](crate::registry).
//!
//! A segment in use is a handle, not an id: [`Segment`] (removed on drop;
//! the memory lives on while attached, and is detached by dropping its
//! [`Mapping`]); it is not `Clone`. The free functions taking ids serve
//! ids read from the peer or from registry records: the semaphore sets
//! among those are `sysv-sem:` semaphores of `ipcx::sync`, and the
//! per-connection sets that `sysv-shm:` made before it woke through
//! futexes, which `ipcx clean` still removes.
//!
//! [shmget(2)]: https://man7.org/linux/man-pages/man2/shmget.2.html
//! [shmat(2)]: https://man7.org/linux/man-pages/man2/shmat.2.html
//! [semctl(2)]: https://man7.org/linux/man-pages/man2/semctl.2.html

use std::io;
use std::ptr::NonNull;

use nix::errno::Errno;

use super::shm::Mapping;

fn perm(mode: u32) -> libc::c_int {
    (mode & 0o777) as libc::c_int
}

/// A System V segment this process created, removed (`IPC_RMID`) when the
/// handle drops: it then disappears once the last process detaches.
#[derive(Debug)]
pub struct Segment {
    id: i32,
}

impl Segment {
    /// Creates a private segment of `size` bytes with `mode`.
    ///
    /// # Errors
    /// The OS error of `shmget` (`EINVAL` above `kernel.shmmax`, `ENOSPC`
    /// above `kernel.shmmni`/`shmall`).
    pub fn create(size: usize, mode: u32) -> io::Result<Segment> {
        // SAFETY: shmget takes values only and returns an id or -1.
        let id = unsafe {
            libc::shmget(
                libc::IPC_PRIVATE,
                size,
                libc::IPC_CREAT | libc::IPC_EXCL | perm(mode),
            )
        };
        Ok(Segment {
            id: Errno::result(id)?,
        })
    }

    /// The kernel's id, to hand to the peer.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Attaches the segment read-write; `len` is its size.
    ///
    /// # Errors
    /// The OS error of `shmat`.
    pub fn attach(&self, len: usize) -> io::Result<Mapping> {
        segment_attach(self.id, len)
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        // Already removed is fine; nothing else can fail for our own.
        let _ = segment_remove(self.id);
    }
}

/// Owner uid and size of segment `id` (`IPC_STAT`).
///
/// # Errors
/// The OS error of `shmctl` (`EINVAL`/`EIDRM` when gone, `EACCES`).
pub fn segment_owner_and_size(id: i32) -> io::Result<(u32, u64)> {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is writable storage for one shmid_ds, filled on success.
    Errno::result(unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zero-initialised and then filled by a successful IPC_STAT.
    let ds = unsafe { ds.assume_init() };
    Ok((ds.shm_perm.uid, ds.shm_segsz as u64))
}

/// Attaches segment `id` read-write; `len` is its validated size.
///
/// # Errors
/// The OS error of `shmat`.
pub fn segment_attach(id: i32, len: usize) -> io::Result<Mapping> {
    // SAFETY: shmat picks the address (null) and returns it or (void*)-1.
    let p = Errno::result(unsafe { libc::shmat(id, std::ptr::null(), 0) })?;
    let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
    // SAFETY: `ptr` is what shmat just returned for a segment the caller
    // checked to hold at least `len` bytes; it is attached once, here.
    Ok(unsafe { Mapping::from_shmat(ptr, len) })
}

/// Marks segment `id` for removal: it disappears once the last process
/// detaches.
///
/// # Errors
/// The OS error of `shmctl` (`EINVAL`/`EIDRM` when it is gone already,
/// `EPERM` when it is not ours).
pub fn segment_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no buffer (null is allowed).
    Errno::result(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) })?;
    Ok(())
}

/// Owner uid of semaphore set `id` (`IPC_STAT`).
///
/// # Errors
/// The OS error of `semctl`.
pub fn sem_owner(id: i32) -> io::Result<u32> {
    let mut ds = std::mem::MaybeUninit::<libc::semid_ds>::zeroed();
    // SAFETY: for IPC_STAT the variadic argument is a `struct semid_ds *`
    // to writable storage, filled on success.
    Errno::result(unsafe { libc::semctl(id, 0, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zero-initialised and then filled by a successful IPC_STAT.
    let ds = unsafe { ds.assume_init() };
    Ok(ds.sem_perm.uid)
}

/// Removes semaphore set `id` at once; waiters get `EIDRM`.
///
/// # Errors
/// The OS error of `semctl` (`EINVAL`/`EIDRM` when it is gone already,
/// `EPERM` when it is not ours).
pub fn sem_remove(id: i32) -> io::Result<()> {
    // SAFETY: IPC_RMID takes no further argument.
    Errno::result(unsafe { libc::semctl(id, 0, libc::IPC_RMID) })?;
    Ok(())
}

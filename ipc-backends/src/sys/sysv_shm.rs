//! System V shared memory ([shmget(2)], [shmat(2)]) and semaphore sets
//! ([semget(2)], [semop(2)]).
//!
//! Both are created with `IPC_PRIVATE` (always a new object, nothing to
//! squat on) and passed to the peer by id. Neither is freed by the kernel
//! when its creator dies, which is why callers record them in the
//! [`registry`](crate::registry).
//!
//! A segment or set in use is a handle, not an id: [`Segment`] (removed on
//! drop; the memory lives on while attached, and is detached by dropping
//! its [`Mapping`]) and [`Semaphores`] (removed on drop unless
//! [disowned](Semaphores::disown) because the peer still uses it). Neither is `Clone`. The free
//! functions taking ids serve ids read from the peer or from registry
//! records.
//!
//! [shmget(2)]: https://man7.org/linux/man-pages/man2/shmget.2.html
//! [shmat(2)]: https://man7.org/linux/man-pages/man2/shmat.2.html
//! [semget(2)]: https://man7.org/linux/man-pages/man2/semget.2.html
//! [semop(2)]: https://man7.org/linux/man-pages/man2/semop.2.html

use std::io;
use std::ptr::NonNull;
use std::time::Duration;

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

/// A System V semaphore set in use by this process, removed (`IPC_RMID`,
/// which wakes its waiters with `EIDRM`) when the handle drops, unless it
/// was [disowned](Self::disown) in favour of the other process using it.
#[derive(Debug)]
pub struct Semaphores {
    id: i32,
    remove: bool,
}

impl Semaphores {
    /// Creates a private set of `n` semaphores, all zero, with `mode`.
    ///
    /// # Errors
    /// The OS error of `semget` (`ENOSPC` above `kernel.sem`'s SEMMNI).
    pub fn create(n: i32, mode: u32) -> io::Result<Semaphores> {
        // SAFETY: semget takes values only. Linux initialises the values to 0.
        let id = unsafe {
            libc::semget(
                libc::IPC_PRIVATE,
                n,
                libc::IPC_CREAT | libc::IPC_EXCL | perm(mode),
            )
        };
        Ok(Semaphores {
            id: Errno::result(id)?,
            remove: true,
        })
    }

    /// Takes charge of the set `id` another process created and handed
    /// over (check its owner with [`sem_owner`] first).
    pub fn adopt(id: i32) -> Semaphores {
        Semaphores { id, remove: true }
    }

    /// The kernel's id, to hand to the peer.
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Makes the drop leave the set alone: the other process still uses
    /// it, and removes it.
    pub fn disown(&mut self) {
        self.remove = false;
    }

    /// Adds one to semaphore `num`. A value already at the kernel's
    /// maximum (`ERANGE`) means wake-ups are pending anyway: fine.
    ///
    /// # Errors
    /// The OS error of `semop` (`EIDRM`/`EINVAL` when the set is gone).
    pub fn post(&self, num: u16) -> io::Result<()> {
        sem_post(self.id, num)
    }

    /// Takes one from semaphore `num`, sleeping at most `timeout` for it
    /// to become positive. Returns on success, timeout or signal alike:
    /// the caller re-checks its condition.
    ///
    /// # Errors
    /// The OS error of `semtimedop` (`EIDRM`/`EINVAL` when the set is gone).
    pub fn wait(&self, num: u16, timeout: Duration) -> io::Result<()> {
        sem_wait(self.id, num, timeout)
    }

    /// Sets semaphore `num` to 0, discarding units posted so far.
    ///
    /// # Errors
    /// The OS error of `semctl(SETVAL)` (`EIDRM`/`EINVAL` when the set is
    /// gone).
    pub fn reset(&self, num: u16) -> io::Result<()> {
        // SAFETY: for SETVAL the variadic argument is a `union semun`
        // passed by value, whose `val` member is an int: 0.
        Errno::result(unsafe {
            libc::semctl(self.id, i32::from(num), libc::SETVAL, 0 as libc::c_int)
        })?;
        Ok(())
    }
}

impl Drop for Semaphores {
    fn drop(&mut self) {
        if self.remove {
            let _ = sem_remove(self.id);
        }
    }
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

/// See [`Semaphores::post`].
fn sem_post(id: i32, num: u16) -> io::Result<()> {
    let mut op = libc::sembuf {
        sem_num: num,
        sem_op: 1,
        sem_flg: 0,
    };
    loop {
        // SAFETY: `op` is one valid sembuf on our stack; nsops is 1.
        match Errno::result(unsafe { libc::semop(id, &mut op, 1) }) {
            Ok(_) | Err(Errno::ERANGE) => return Ok(()),
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// See [`Semaphores::wait`].
fn sem_wait(id: i32, num: u16, timeout: Duration) -> io::Result<()> {
    let mut op = libc::sembuf {
        sem_num: num,
        sem_op: -1,
        sem_flg: 0,
    };
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: semtimedop(2) (called by number: libc has no wrapper) reads
    // one sembuf from `op` and one timespec from `ts`, both valid on our
    // stack for the call; nsops is 1.
    let r = unsafe {
        libc::syscall(
            libc::SYS_semtimedop,
            id,
            &mut op as *mut libc::sembuf,
            1usize,
            &ts as *const libc::timespec,
        )
    };
    match Errno::result(r) {
        Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

//! System V semaphores found by key ([ftok(3)], [semget(2)], [semop(2)]):
//! [`KeyedSem`], one semaphore in a set of one, whose waits carry
//! `SEM_UNDO`.
//!
//! Unlike private (`IPC_PRIVATE`) sets, these are named objects: they
//! live until [removed](KeyedSem::remove), so the handle removes nothing
//! on drop (and has nothing to close).
//!
//! [ftok(3)]: https://man7.org/linux/man-pages/man3/ftok.3.html
//! [semget(2)]: https://man7.org/linux/man-pages/man2/semget.2.html
//! [semop(2)]: https://man7.org/linux/man-pages/man2/semop.2.html

use std::ffi::CString;
use std::time::{Duration, Instant};

use nix::errno::Errno;

/// The System V key of `path` and `proj` ([ftok(3)]); the file must exist.
///
/// [ftok(3)]: https://man7.org/linux/man-pages/man3/ftok.3.html
///
/// # Errors
/// `ENOENT` when the file does not exist.
pub fn key(path: &str, proj: u8) -> nix::Result<libc::key_t> {
    let c = CString::new(path).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid C string; ftok stats the file and returns a
    // key or -1.
    Errno::result(unsafe { libc::ftok(c.as_ptr(), libc::c_int::from(proj)) })
}

/// One System V semaphore, found by key. Not `Clone`. Waits carry
/// `SEM_UNDO`: when the process exits, however it exits, the kernel gives
/// back the units it took and has not posted back (posts that return a
/// held unit carry `SEM_UNDO` too, to cancel the record).
#[derive(Debug)]
pub struct KeyedSem {
    id: i32,
}

impl KeyedSem {
    /// Creates the set of `key` exclusively with `mode` and sets its value
    /// to `initial` (`SETVAL`).
    ///
    /// # Errors
    /// `EEXIST` when the key is taken, `ENOSPC` above `SEMMNI`/`SEMMNS`,
    /// `ERANGE` above `SEMVMX`.
    pub fn create(key: libc::key_t, mode: u32, initial: u32) -> nix::Result<KeyedSem> {
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int;
        // SAFETY: semget takes values only.
        let id = Errno::result(unsafe { libc::semget(key, 1, flags) })?;
        let value = libc::c_int::try_from(initial).map_err(|_| Errno::ERANGE)?;
        // SAFETY: for SETVAL the variadic argument is the `val` member of
        // `union semun`, an int, passed by value.
        if let Err(e) = Errno::result(unsafe { libc::semctl(id, 0, libc::SETVAL, value) }) {
            remove(id);
            return Err(e);
        }
        Ok(KeyedSem { id })
    }

    /// The kernel's id of the set (its semid).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// Opens the existing set of `key`.
    ///
    /// # Errors
    /// `ENOENT` when there is none, `EACCES` when its mode refuses us.
    pub fn open(key: libc::key_t) -> nix::Result<KeyedSem> {
        // SAFETY: semget takes values only.
        let id = Errno::result(unsafe { libc::semget(key, 1, 0) })?;
        Ok(KeyedSem { id })
    }

    /// Takes one unit, sleeping until there is one; `timeout` bounds the
    /// sleep (`None`: unbounded) and `Some(ZERO)` does not sleep.
    ///
    /// # Errors
    /// `EAGAIN` when the time ran out (or at once for a zero timeout),
    /// `EIDRM` when the set was removed meanwhile.
    #[inline]
    pub fn wait(&self, timeout: Option<Duration>) -> nix::Result<()> {
        match timeout {
            None => self.wait_forever(),
            Some(t) => self.wait_until(t),
        }
    }

    /// [`wait`](Self::wait) without a timeout: one `semop`.
    #[inline]
    fn wait_forever(&self) -> nix::Result<()> {
        let mut op = libc::sembuf {
            sem_num: 0,
            sem_op: -1,
            sem_flg: libc::SEM_UNDO as libc::c_short,
        };
        loop {
            // SAFETY: `op` is one valid sembuf on our stack; nsops is 1.
            match Errno::result(unsafe { libc::semop(self.id, &mut op, 1) }) {
                Err(Errno::EINTR) => continue,
                r => return r.map(drop),
            }
        }
    }

    /// [`wait`](Self::wait) with a timeout (zero: do not sleep).
    fn wait_until(&self, timeout: Duration) -> nix::Result<()> {
        let deadline = Instant::now() + timeout;
        let nowait = timeout.is_zero();
        loop {
            let flags = libc::SEM_UNDO | if nowait { libc::IPC_NOWAIT } else { 0 };
            let mut op = libc::sembuf {
                sem_num: 0,
                sem_op: -1,
                sem_flg: flags as libc::c_short,
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() && !nowait {
                return Err(Errno::EAGAIN);
            }
            let ts = libc::timespec {
                tv_sec: left.as_secs().min(i32::MAX as u64) as libc::time_t,
                tv_nsec: libc::c_long::from(left.subsec_nanos() as i32),
            };
            // SAFETY: semtimedop(2) (called by number: libc has no
            // wrapper) reads one sembuf from `op` and one timespec from
            // `ts`; both live on our stack for the call.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_semtimedop,
                    self.id,
                    &mut op as *mut libc::sembuf,
                    1usize,
                    &ts as *const libc::timespec,
                )
            };
            match Errno::result(r) {
                Err(Errno::EINTR) => continue,
                r => return r.map(drop),
            }
        }
    }

    /// One `semop` of `delta` on the semaphore, `SEM_UNDO` if `undo`,
    /// sleeping while it cannot be done; not restarted after a signal.
    /// `false` with `errno` set when it failed (`EINTR` included): a hot
    /// path without a `Result` to build, for callers that keep the error
    /// handling out of line.
    #[inline]
    pub fn op_once(&self, delta: i16, undo: bool) -> bool {
        let mut op = libc::sembuf {
            sem_num: 0,
            sem_op: delta,
            sem_flg: if undo {
                libc::SEM_UNDO as libc::c_short
            } else {
                0
            },
        };
        // SAFETY: `op` is one valid sembuf on our stack; nsops is 1.
        unsafe { libc::semop(self.id, &mut op, 1) == 0 }
    }

    /// The current value (`GETVAL`).
    ///
    /// # Errors
    /// `EIDRM`/`EINVAL` when the set is gone.
    pub fn value(&self) -> nix::Result<u32> {
        // SAFETY: GETVAL reads no variadic argument.
        let v = Errno::result(unsafe { libc::semctl(self.id, 0, libc::GETVAL) })?;
        Ok(v.max(0) as u32)
    }

    /// Removes the set (`IPC_RMID`); waiters elsewhere get `EIDRM`.
    ///
    /// # Errors
    /// `EPERM` when we are neither its owner nor its creator.
    pub fn remove(self) -> nix::Result<()> {
        // SAFETY: IPC_RMID reads no variadic argument.
        Errno::result(unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) }).map(drop)
    }
}

fn remove(id: i32) {
    // SAFETY: IPC_RMID reads no variadic argument.
    unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
}

/// What `IPC_STAT` says of a System V semaphore set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SemStat {
    /// The key it was created with.
    pub key: libc::key_t,
    /// The value of its first semaphore (`GETVAL`), when readable.
    pub value: Option<u32>,
}

/// `IPC_STAT` (and `GETVAL` of semaphore 0) of set `id`.
///
/// # Errors
/// `EINVAL`/`EIDRM` when it is gone, `EACCES` when its mode refuses us.
pub fn stat(id: i32) -> nix::Result<SemStat> {
    let mut ds = std::mem::MaybeUninit::<libc::semid_ds>::zeroed();
    // SAFETY: for IPC_STAT the variadic argument is a `struct semid_ds *`
    // to writable storage, filled on success.
    Errno::result(unsafe { libc::semctl(id, 0, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zero-initialised and then filled by a successful IPC_STAT.
    let ds = unsafe { ds.assume_init() };
    // SAFETY: GETVAL reads no variadic argument.
    let value = Errno::result(unsafe { libc::semctl(id, 0, libc::GETVAL) }).ok();
    Ok(SemStat {
        key: ds.sem_perm.__key,
        value: value.map(|v| v.max(0) as u32),
    })
}

/// The id of the set of `key`, if there is one.
///
/// # Errors
/// `ENOENT` when there is none, `EACCES` when its mode refuses us.
pub fn find(key: libc::key_t) -> nix::Result<i32> {
    // SAFETY: semget takes values only.
    Errno::result(unsafe { libc::semget(key, 0, 0) })
}

/// Removes set `id` (`IPC_RMID`).
///
/// # Errors
/// `EINVAL`/`EIDRM` when it is gone, `EPERM` when it is not ours.
pub fn remove_id(id: i32) -> nix::Result<()> {
    // SAFETY: IPC_RMID reads no variadic argument.
    Errno::result(unsafe { libc::semctl(id, 0, libc::IPC_RMID) }).map(drop)
}

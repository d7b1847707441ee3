//! Raw synchronisation baselines: hand-written libc calls, no framework.
//!
//! - [`RawMutex`]: a robust, process-shared `pthread_mutex_t` at the start
//!   of a POSIX shared memory object (`shm_open(3)`, `mmap(2)`), locked
//!   with `pthread_mutex_lock(3)` and unlocked with
//!   `pthread_mutex_unlock(3)`;
//! - [`RawPosixSem`]: a named semaphore (`sem_open(3)`), `sem_wait(3)` and
//!   `sem_post(3)`;
//! - [`RawSysvSem`]: a System V set of one semaphore (`semget(2)`),
//!   `semop(2)` of -1 and +1, both with `SEM_UNDO` as a crash-safe lock
//!   needs;
//! - [`RawSeqlock`]: a sequence counter and `N` bytes in a shared mapping,
//!   read the textbook way (even sequence, word-wise copy, acquire fence,
//!   same sequence).
//!
//! Each object's name is removed as soon as it is mapped or opened: what a
//! baseline makes never outlives the benchmark.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

fn os(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn unique(kind: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/ipcx-bench-raw-{kind}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// `len` bytes of POSIX shared memory, zeroed, mapped shared; the name is
/// unlinked at once.
pub struct RawShm {
    ptr: *mut u8,
    len: usize,
}

impl RawShm {
    /// Creates and maps a fresh object.
    ///
    /// # Errors
    /// The failing call and its errno.
    pub fn new(len: usize) -> Result<RawShm, String> {
        let name = CString::new(unique("shm")).map_err(|e| e.to_string())?;
        // SAFETY: plain libc calls on a NUL-terminated name; the fd is
        // closed on every path, the mapping checked before use.
        unsafe {
            let fd = libc::shm_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                0o600,
            );
            if fd < 0 {
                return Err(os("shm_open"));
            }
            libc::shm_unlink(name.as_ptr());
            if libc::ftruncate(fd, len as libc::off_t) != 0 {
                let e = os("ftruncate");
                libc::close(fd);
                return Err(e);
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            libc::close(fd);
            if p == libc::MAP_FAILED {
                return Err(os("mmap"));
            }
            Ok(RawShm { ptr: p.cast(), len })
        }
    }

    /// The start of the mapping.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for RawShm {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// A robust process-shared pthread mutex in shared memory.
pub struct RawMutex {
    shm: RawShm,
}

impl RawMutex {
    /// Initialises the mutex (`PTHREAD_PROCESS_SHARED`,
    /// `PTHREAD_MUTEX_ROBUST`).
    ///
    /// # Errors
    /// The failing call.
    pub fn new() -> Result<RawMutex, String> {
        let shm = RawShm::new(4096)?;
        // SAFETY: the mapping is page-aligned and large enough for a
        // pthread_mutex_t; the attribute lives on the stack for the init.
        unsafe {
            let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
            libc::pthread_mutexattr_init(&mut attr);
            libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
            libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
            let r = libc::pthread_mutex_init(shm.ptr().cast(), &attr);
            libc::pthread_mutexattr_destroy(&mut attr);
            if r != 0 {
                return Err(format!("pthread_mutex_init: errno {r}"));
            }
        }
        Ok(RawMutex { shm })
    }

    /// `pthread_mutex_lock` then `pthread_mutex_unlock`; an owner-died
    /// lock is made consistent, as a robust user must.
    pub fn lock_unlock(&self) {
        self.locked(&mut || {});
    }

    /// Runs `cs` holding the lock.
    pub fn locked(&self, cs: &mut dyn FnMut()) {
        let m: *mut libc::pthread_mutex_t = self.shm.ptr().cast();
        // SAFETY: `m` was initialised in `new` and stays mapped.
        unsafe {
            if libc::pthread_mutex_lock(m) == libc::EOWNERDEAD {
                libc::pthread_mutex_consistent(m);
            }
            cs();
            libc::pthread_mutex_unlock(m);
        }
    }
}

/// A POSIX named semaphore (the name unlinked at once).
pub struct RawPosixSem {
    sem: *mut libc::sem_t,
}

impl RawPosixSem {
    /// `sem_open(O_CREAT | O_EXCL)` with the given value.
    ///
    /// # Errors
    /// The failing call.
    pub fn new(value: u32) -> Result<RawPosixSem, String> {
        let name = CString::new(unique("sem")).map_err(|e| e.to_string())?;
        // SAFETY: variadic sem_open with mode and value as the man page says.
        let sem = unsafe {
            libc::sem_open(
                name.as_ptr(),
                libc::O_CREAT | libc::O_EXCL,
                0o600 as libc::c_uint,
                value as libc::c_uint,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(os("sem_open"));
        }
        // SAFETY: the name made above.
        unsafe { libc::sem_unlink(name.as_ptr()) };
        Ok(RawPosixSem { sem })
    }

    /// `sem_wait` then `sem_post`.
    pub fn wait_post(&self) {
        // SAFETY: `sem` is open until drop.
        unsafe {
            while libc::sem_wait(self.sem) != 0 {}
            libc::sem_post(self.sem);
        }
    }
}

impl Drop for RawPosixSem {
    fn drop(&mut self) {
        // SAFETY: opened in `new`, closed once.
        unsafe { libc::sem_close(self.sem) };
    }
}

/// A System V set of one semaphore (`IPC_PRIVATE`, removed on drop).
pub struct RawSysvSem {
    id: libc::c_int,
}

impl RawSysvSem {
    /// `semget(IPC_PRIVATE)` and `semctl(SETVAL)`.
    ///
    /// # Errors
    /// The failing call.
    pub fn new(value: u32) -> Result<RawSysvSem, String> {
        // SAFETY: plain System V calls.
        unsafe {
            let id = libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600);
            if id < 0 {
                return Err(os("semget"));
            }
            if libc::semctl(id, 0, libc::SETVAL, value as libc::c_int) != 0 {
                let e = os("semctl(SETVAL)");
                libc::semctl(id, 0, libc::IPC_RMID);
                return Err(e);
            }
            Ok(RawSysvSem { id })
        }
    }

    /// `semop(-1, SEM_UNDO)` then `semop(+1, SEM_UNDO)`.
    pub fn wait_post(&self) {
        let flg = libc::SEM_UNDO as libc::c_short;
        let mut down = libc::sembuf {
            sem_num: 0,
            sem_op: -1,
            sem_flg: flg,
        };
        let mut up = libc::sembuf {
            sem_num: 0,
            sem_op: 1,
            sem_flg: flg,
        };
        // SAFETY: one valid sembuf each, the set exists until drop.
        unsafe {
            while libc::semop(self.id, &mut down, 1) != 0 {}
            libc::semop(self.id, &mut up, 1);
        }
    }
}

impl Drop for RawSysvSem {
    fn drop(&mut self) {
        // SAFETY: the set made in `new`.
        unsafe { libc::semctl(self.id, 0, libc::IPC_RMID) };
    }
}

/// A sequence counter followed (64 bytes on) by `len` bytes of data.
pub struct RawSeqlock {
    shm: RawShm,
    len: usize,
}

impl RawSeqlock {
    /// A seqlock over `len` bytes (a multiple of 8), sequence 0.
    ///
    /// # Errors
    /// The failing call.
    pub fn new(len: usize) -> Result<RawSeqlock, String> {
        Ok(RawSeqlock {
            shm: RawShm::new(64 + len)?,
            len,
        })
    }

    fn seq(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and lives as long as `self`.
        unsafe { AtomicU64::from_ptr(self.shm.ptr().cast()) }
    }

    /// One consistent copy of the data, returned by value: the hand-written
    /// counterpart of `Region::read`, as [`read`](Self::read) is of
    /// `Region::read_into`. `W` words must be the data's length.
    #[inline]
    pub fn read_value<const W: usize>(&self) -> [u64; W] {
        debug_assert_eq!(W * 8, self.len);
        let mut out = [0u64; W];
        self.read(&mut out);
        out
    }

    /// One consistent copy of the data into `out` (`len` bytes).
    pub fn read(&self, out: &mut [u64]) {
        let data = self.shm.ptr().wrapping_add(64).cast::<u64>();
        let words = self.len / 8;
        loop {
            let s = self.seq().load(Ordering::Acquire);
            if s % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            for (i, o) in out.iter_mut().enumerate().take(words) {
                // SAFETY: word `i` of the data lies within the mapping,
                // 8-aligned; read atomically as a writer may race.
                *o = unsafe { AtomicU64::from_ptr(data.add(i)) }.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if self.seq().load(Ordering::Relaxed) == s {
                return;
            }
        }
    }
}

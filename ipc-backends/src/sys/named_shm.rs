//! Named shared segments that outlive their creator: POSIX objects kept
//! under their name in `/dev/shm` ([shm_open(3)]) and System V segments
//! found by key ([shmget(2)]). They back `ipcx::shared` regions and
//! `ipcx::sync` mutexes, which persist until removed.
//!
//! (The connection segments of [`shm`](super::shm) and
//! [`sysv_shm`](super::sysv_shm) are the opposite: unlinked or private from
//! the start.)
//!
//! [shm_open(3)]: https://man7.org/linux/man-pages/man3/shm_open.3.html
//! [shmget(2)]: https://man7.org/linux/man-pages/man2/shmget.2.html

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;

use super::shm::{self, Mapping};

fn io_errno(e: std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Creates the POSIX object `name` exclusively with exactly `mode`, sizes
/// it to `len` bytes (zero-filled) and maps it. On failure the name is
/// removed again.
///
/// # Errors
/// `EEXIST` when the name is taken; the failing call's errno otherwise.
pub fn create_posix(name: &str, mode: u32, len: usize) -> nix::Result<Mapping> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid C string; shm_open returns a new descriptor
    // or -1.
    let raw = Errno::result(unsafe {
        libc::shm_open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
            0o600 as libc::mode_t,
        )
    })?;
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let sized = || -> nix::Result<Mapping> {
        // SAFETY: `fd` is open; fchmod takes values only. After the
        // exclusive create, so the umask cannot narrow `mode`.
        Errno::result(unsafe { libc::fchmod(fd.as_raw_fd(), (mode & 0o777) as libc::mode_t) })?;
        let size = libc::off_t::try_from(len).map_err(|_| Errno::EINVAL)?;
        // SAFETY: `fd` is open for writing; ftruncate takes values only.
        Errno::result(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
        shm::map(fd.as_fd(), len).map_err(io_errno)
    };
    sized().inspect_err(|_| {
        let _ = unlink_posix(name);
    })
}

/// Opens the POSIX object `name` and maps all of it, or returns `None`
/// while it is smaller than `min_len` (its creator has not sized it yet).
///
/// # Errors
/// `ENOENT` when it does not exist, `EACCES` when its mode refuses us.
pub fn open_posix(name: &str, min_len: usize) -> nix::Result<Option<Mapping>> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid C string; shm_open returns a descriptor or -1.
    let raw =
        Errno::result(unsafe { libc::shm_open(c.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) })?;
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let (_, size) = shm::owner_and_size(fd.as_fd()).map_err(io_errno)?;
    let len = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
    if len < min_len.max(1) {
        return Ok(None);
    }
    shm::map(fd.as_fd(), len).map(Some).map_err(io_errno)
}

/// Removes the name of POSIX object `name`; mappings stay valid.
///
/// # Errors
/// `ENOENT` when it does not exist.
pub fn unlink_posix(name: &str) -> nix::Result<()> {
    let c = CString::new(name).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid C string.
    Errno::result(unsafe { libc::shm_unlink(c.as_ptr()) }).map(drop)
}

/// Creates the System V segment of `key` exclusively with `mode` and `len`
/// bytes (zero-filled), and attaches it. Returns its id and mapping; on
/// failure the segment is removed again.
///
/// # Errors
/// `EEXIST` when the key is taken, `EINVAL` above `kernel.shmmax`,
/// `ENOSPC` above `shmmni`/`shmall`.
pub fn create_sysv(key: libc::key_t, mode: u32, len: usize) -> nix::Result<(i32, Mapping)> {
    let flags = libc::IPC_CREAT | libc::IPC_EXCL | (mode & 0o777) as libc::c_int;
    // SAFETY: shmget takes values only.
    let id = Errno::result(unsafe { libc::shmget(key, len, flags) })?;
    attach(id, len)
        .map(|m| (id, m))
        .inspect_err(|_| remove_sysv(id))
}

/// Opens the System V segment of `key` and attaches all of it.
///
/// # Errors
/// `ENOENT` when there is none, `EACCES` when its mode refuses us.
pub fn open_sysv(key: libc::key_t) -> nix::Result<(i32, Mapping)> {
    // SAFETY: shmget takes values only.
    let id = Errno::result(unsafe { libc::shmget(key, 0, 0) })?;
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is writable storage for one shmid_ds, filled on success.
    Errno::result(unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zero-initialised and then filled by a successful IPC_STAT.
    let len = unsafe { ds.assume_init() }.shm_segsz;
    attach(id, len).map(|m| (id, m))
}

fn attach(id: i32, len: usize) -> nix::Result<Mapping> {
    // SAFETY: shmat picks the address (null) and returns it or (void*)-1.
    let p = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if p as isize == -1 {
        return Err(Errno::last());
    }
    let ptr = NonNull::new(p.cast::<u8>()).ok_or(Errno::EFAULT)?;
    // SAFETY: `ptr` is what shmat just returned for segment `id`, whose
    // size is `len` (given at creation or read by IPC_STAT); attached once,
    // here.
    Ok(unsafe { Mapping::from_shmat(ptr, len) })
}

/// Marks System V segment `id` for removal: it disappears once the last
/// process detaches. Errors (already removed) are ignored.
pub fn remove_sysv(id: i32) {
    // SAFETY: IPC_RMID takes no buffer (null is allowed).
    unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
}

/// What `IPC_STAT` says of a System V segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SysvStat {
    /// The key it was created with.
    pub key: libc::key_t,
    /// Its size in bytes.
    pub size: u64,
    /// The creating process.
    pub creator: u32,
}

/// `IPC_STAT` of System V segment `id`.
///
/// # Errors
/// `EINVAL`/`EIDRM` when it is gone, `EACCES` when its mode refuses us.
pub fn stat_sysv(id: i32) -> nix::Result<SysvStat> {
    let mut ds = std::mem::MaybeUninit::<libc::shmid_ds>::zeroed();
    // SAFETY: `ds` is writable storage for one shmid_ds, filled on success.
    Errno::result(unsafe { libc::shmctl(id, libc::IPC_STAT, ds.as_mut_ptr()) })?;
    // SAFETY: zero-initialised and then filled by a successful IPC_STAT.
    let ds = unsafe { ds.assume_init() };
    Ok(SysvStat {
        key: ds.shm_perm.__key,
        size: ds.shm_segsz as u64,
        creator: ds.shm_cpid as u32,
    })
}

/// The id of the System V segment of `key`, if there is one.
///
/// # Errors
/// `ENOENT` when there is none, `EACCES` when its mode refuses us.
pub fn find_sysv(key: libc::key_t) -> nix::Result<i32> {
    // SAFETY: shmget takes values only.
    Errno::result(unsafe { libc::shmget(key, 0, 0) })
}

/// Attaches all of System V segment `id` (for reading its header).
///
/// # Errors
/// The OS error of `IPC_STAT` or `shmat`.
pub fn attach_sysv(id: i32) -> nix::Result<Mapping> {
    let len = usize::try_from(stat_sysv(id)?.size).map_err(|_| Errno::EFBIG)?;
    attach(id, len)
}

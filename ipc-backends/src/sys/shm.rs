//! POSIX shared memory ([shm_open(3)], [mmap(2)]) and the mapping type
//! shared with System V segments.
//!
//! [shm_open(3)]: https://man7.org/linux/man-pages/man3/shm_open.3.html
//! [mmap(2)]: https://man7.org/linux/man-pages/man2/mmap.2.html

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::mman;
use nix::sys::stat::Mode;

/// How a [`Mapping`] is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unmap {
    Munmap,
    Shmdt,
}

/// A shared mapping, unmapped (or detached) on drop. Not `Clone`: one owner
/// unmaps once.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    unmap: Unmap,
}

// SAFETY: the mapping is plain memory shared with another process; every
// access through it goes through atomics or raw-pointer copies whose
// synchronisation the ring protocol provides, never through `&mut`
// references held across threads, so moving the owner between threads or
// sharing it is sound.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`; `Mapping` itself exposes only a raw pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// The first byte.
    #[inline]
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty (never, for mappings made here).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adopts memory attached with `shmat(2)`.
    ///
    /// # Safety
    /// - `ptr` must be the address `shmat` returned for a segment of at
    ///   least `len` bytes, attached read-write, and not detached elsewhere.
    pub(crate) unsafe fn from_shmat(ptr: NonNull<u8>, len: usize) -> Mapping {
        Mapping {
            ptr,
            len,
            unmap: Unmap::Shmdt,
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.unmap {
            // SAFETY: `ptr`/`len` are exactly what mmap returned and mapped;
            // we own the mapping and nothing uses it after drop (borrows of
            // the owner have ended).
            Unmap::Munmap => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            },
            // SAFETY: `ptr` is the address shmat returned (see
            // `from_shmat`), attached once and owned here.
            Unmap::Shmdt => unsafe {
                libc::shmdt(self.ptr.as_ptr().cast());
            },
        }
    }
}

/// Creates the POSIX object `name` exclusively with `mode`, sizes it to
/// `size` bytes and unlinks it at once: the returned descriptor is the only
/// way to it, so a crash leaves nothing in `/dev/shm`.
///
/// # Errors
/// The failing call's name and OS error.
pub fn create_unlinked(
    name: &str,
    mode: u32,
    size: usize,
) -> Result<OwnedFd, (&'static str, io::Error)> {
    let fd = mman::shm_open(
        name,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC,
        Mode::S_IRUSR | Mode::S_IWUSR,
    )
    .map_err(|e| ("shm_open", e.into()))?;
    // A name we just created exclusively: failing to unlink it only leaves
    // it for `ipcx clean`.
    let _ = unlink(name);
    // After the exclusive create, so the umask cannot narrow `mode`.
    nix::sys::stat::fchmod(&fd, Mode::from_bits_truncate(mode & 0o7777))
        .map_err(|e| ("fchmod", e.into()))?;
    let len = libc::off_t::try_from(size)
        .map_err(|_| ("ftruncate", io::Error::from(io::ErrorKind::InvalidInput)))?;
    nix::unistd::ftruncate(&fd, len).map_err(|e| ("ftruncate", e.into()))?;
    Ok(fd)
}

/// Removes the POSIX shared memory object `name` ([shm_unlink(3)]);
/// mappings of it stay valid.
///
/// # Errors
/// The OS error of the call (`ENOENT` when there is no such object).
///
/// [shm_unlink(3)]: https://man7.org/linux/man-pages/man3/shm_unlink.3.html
pub fn unlink(name: &str) -> io::Result<()> {
    mman::shm_unlink(name)?;
    Ok(())
}

/// Owner uid and size in bytes of the object behind `fd` ([fstat(2)]).
///
/// [fstat(2)]: https://man7.org/linux/man-pages/man2/fstat.2.html
///
/// # Errors
/// The OS error of `fstat`.
pub fn owner_and_size(fd: BorrowedFd<'_>) -> io::Result<(u32, u64)> {
    let st = nix::sys::stat::fstat(fd)?;
    Ok((st.st_uid, st.st_size.max(0) as u64))
}

/// Maps `len` bytes of `fd` shared, read-write.
///
/// # Errors
/// The OS error of `mmap(2)`.
pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<Mapping> {
    // SAFETY: a fresh shared mapping at an address the kernel picks; `fd` is
    // open read-write; the result is checked against MAP_FAILED.
    let p = Errno::result(unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    })?;
    let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::from(io::ErrorKind::Other))?;
    Ok(Mapping {
        ptr,
        len,
        unmap: Unmap::Munmap,
    })
}

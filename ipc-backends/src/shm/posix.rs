//! `shm:` segments: a POSIX shared memory object, created exclusively,
//! unlinked at once and handed to the client as a descriptor.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::AtomicU64;

use ipc_core::{Endpoint, Error, Result};

use super::segment::{HEADER_SIZE, MAX_RING};
use crate::sys::process;
use crate::sys::shm::{self, Mapping};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The name a segment has for the instant between `shm_open` and
/// `shm_unlink`: `/ipcx.NAME.PID.N`, so `ipcx ls` can tell ours.
pub fn object_name(endpoint: &Endpoint) -> String {
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "/ipcx.{}.{}.{n}",
        endpoint.address().trim_start_matches('/'),
        process::pid()
    )
}

/// Creates and maps a segment of `size` bytes.
///
/// # Errors
/// [`Error::Io`] naming the endpoint and the failing call.
pub fn create(endpoint: &Endpoint, size: usize) -> Result<(OwnedFd, Mapping)> {
    let name = object_name(endpoint);
    let fd = shm::create_unlinked(&name, endpoint.options().mode, size).map_err(|(call, e)| {
        let hint =
            if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::ENOMEM) {
                "; /dev/shm is full: lower capacity or enlarge the tmpfs"
            } else {
                ""
            };
        Error::io(format!("{endpoint}: {call}({name}, {size} bytes){hint}"), e)
    })?;
    let map = shm::map(fd.as_fd(), size)
        .map_err(|e| Error::io(format!("{endpoint}: mmap({size} bytes) of {name}"), e))?;
    Ok((fd, map))
}

/// Maps a segment received from the listener, after checking that the
/// listener's user owns it and that its size is plausible.
///
/// # Errors
/// [`Error::PermissionDenied`] for a foreign owner, [`Error::Protocol`] for
/// an impossible size, [`Error::Io`] when the calls fail.
pub fn open(endpoint: &Endpoint, fd: &OwnedFd, listener_uid: u32) -> Result<Mapping> {
    let (owner, size) = shm::owner_and_size(fd.as_fd())
        .map_err(|e| Error::io(format!("{endpoint}: fstat of the segment"), e))?;
    if owner != listener_uid {
        return Err(Error::PermissionDenied(format!(
            "{endpoint}: the segment handed over is owned by uid {owner}, not by the listener's uid {listener_uid}"
        )));
    }
    let size = checked_size(endpoint, size)?;
    shm::map(fd.as_fd(), size).map_err(|e| Error::io(format!("{endpoint}: mmap({size} bytes)"), e))
}

/// A segment size in the range a valid header can describe.
///
/// # Errors
/// [`Error::Protocol`].
pub fn checked_size(endpoint: &Endpoint, size: u64) -> Result<usize> {
    if size < HEADER_SIZE as u64 || size > HEADER_SIZE as u64 + 2 * MAX_RING {
        return Err(Error::protocol(format!(
            "{endpoint}: the segment is {size} bytes, outside what any ring layout uses"
        )));
    }
    Ok(size as usize)
}

//! Rendezvous: an abstract-namespace Unix socket per endpoint, used to
//! accept clients, run the handshake and hand over the segment. All data
//! then moves through shared memory; the socket stays open only so each
//! side learns at once when the other process is gone (it hangs up).

use std::os::fd::{AsFd, BorrowedFd};

use ipc_core::{Deadline, Endpoint, Error, Result};

use crate::sys::Context;
use crate::sys::fd::{self, Interest};
use crate::sys::socket::{self, Io};

/// Longest abstract name we build (sun_path holds 107 after the NUL).
const MAX_ABSTRACT: usize = 100;

/// The abstract socket name of an endpoint: `ipcx.shm.NAME` for
/// `shm:/NAME`, `ipcx.sysv-shm.ABSOLUTE_PATH` for `sysv-shm:PATH`; names
/// too long for `sun_path` are shortened to a prefix and a hash.
pub fn socket_name(endpoint: &Endpoint) -> String {
    let address = match endpoint.scheme() {
        ipc_core::Scheme::SysvShm => std::path::absolute(endpoint.address())
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| endpoint.address().to_string()),
        _ => endpoint.address().trim_start_matches('/').to_string(),
    };
    let full = format!("ipcx.{}.{}", endpoint.scheme(), address);
    if full.len() <= MAX_ABSTRACT {
        return full;
    }
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = address.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut cut = MAX_ABSTRACT - 17;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}.{hash:016x}", &full[..cut])
}

/// Whether the peer has closed the socket (or died): readable means EOF,
/// as the peer writes nothing after the handshake.
pub fn hung_up(sock: BorrowedFd<'_>) -> bool {
    fd::wait(sock, Interest::Read, Deadline::Now).unwrap_or(true)
}

/// Writes all of `bytes` by `deadline`.
///
/// # Errors
/// [`Error::Timeout`] at the deadline, [`Error::Disconnected`] when the
/// peer closed, [`Error::Io`] otherwise.
pub fn write_all(
    sock: BorrowedFd<'_>,
    mut bytes: &[u8],
    deadline: Deadline,
    what: &str,
) -> Result<()> {
    while !bytes.is_empty() {
        match socket::send_two(sock, bytes, &[], true)
            .map_err(|e| Error::io(format!("{what}: send"), e))?
        {
            Io::Done(n) => bytes = &bytes[n..],
            Io::Closed => return Err(Error::Disconnected),
            Io::WouldBlock => {
                if !fd::wait(sock.as_fd(), Interest::Write, deadline).context(|| "poll".into())? {
                    return Err(Error::Timeout);
                }
            }
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes by `deadline`.
///
/// # Errors
/// As [`write_all`].
pub fn read_exact(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    deadline: Deadline,
    what: &str,
) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: a `&mut [u8]` is valid initialised memory, which is also
        // valid as `MaybeUninit<u8>`; recv only writes bytes into it.
        let spare = unsafe {
            std::slice::from_raw_parts_mut(
                buf[done..].as_mut_ptr().cast::<std::mem::MaybeUninit<u8>>(),
                buf.len() - done,
            )
        };
        match socket::recv_uninit(sock, spare, true)
            .map_err(|e| Error::io(format!("{what}: recv"), e))?
        {
            Io::Done(0) | Io::Closed => return Err(Error::Disconnected),
            Io::Done(n) => done += n,
            Io::WouldBlock => {
                if !fd::wait(sock.as_fd(), Interest::Read, deadline).context(|| "poll".into())? {
                    return Err(Error::Timeout);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let e: Endpoint = "shm:/orders".parse().unwrap();
        assert_eq!(socket_name(&e), "ipcx.shm.orders");
        let long = format!("shm:/{}", "x".repeat(200));
        let e: Endpoint = long.parse().unwrap();
        let n = socket_name(&e);
        assert!(
            n.len() <= MAX_ABSTRACT && n.starts_with("ipcx.shm.x"),
            "{n}"
        );
        let e: Endpoint = "sysv-shm:/var/run/orders".parse().unwrap();
        assert_eq!(socket_name(&e), "ipcx.sysv-shm./var/run/orders");
    }
}

//! Raw anonymous pipes: the server makes two pipes with `pipe2(2)` and
//! starts the client itself with one end of each inherited, as any parent
//! and child would; then `write(2)` and `read(2)` of whole messages.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::unistd::pipe2;

use super::stream::Halves;
use crate::bench::measure::{self, Link, WithChild};

/// Names the client's inherited descriptors, `READ,WRITE`.
const FDS_VAR: &str = "IPCX_BENCH_RAW_PIPE_FDS";

pub fn server(
    _endpoint: &str,
    _size: usize,
    ready: &dyn Fn(&str),
) -> Result<Box<dyn Link>, String> {
    let (halves, child) = spawn_client()?;
    ready("spawned");
    Ok(Box::new(WithChild::new(halves, child)))
}

/// Makes the two pipes and starts the client with its ends inherited:
/// this side's ends and the child.
pub(super) fn spawn_client() -> Result<(Halves, std::process::Child), String> {
    let (child_read, server_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
    let (server_read, child_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe2: {e}"))?;
    // Only the child's two ends cross exec; this process is single-threaded
    // here, so no other spawn can inherit them meanwhile.
    for fd in [&child_read, &child_write] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map_err(|e| format!("fcntl: {e}"))?;
    }
    let mut cmd = measure::client_command()?;
    cmd.env(
        FDS_VAR,
        format!("{},{}", child_read.as_raw_fd(), child_write.as_raw_fd()),
    );
    let child = cmd
        .spawn()
        .map_err(|e| format!("spawning the pipe client: {e}"))?;
    drop(child_read);
    drop(child_write);
    Ok((
        Halves {
            r: server_read.into(),
            w: server_write.into(),
        },
        child,
    ))
}

pub fn client(_address: &str) -> Result<Box<dyn Link>, String> {
    Ok(Box::new(inherited()?))
}

/// In the client, the two pipe ends the server left open for it.
pub(super) fn inherited() -> Result<Halves, String> {
    let value = std::env::var(FDS_VAR).map_err(|_| format!("{FDS_VAR} is not set"))?;
    let (r, w) = value
        .split_once(',')
        .and_then(|(r, w)| Some((r.parse::<i32>().ok()?, w.parse::<i32>().ok()?)))
        .ok_or_else(|| format!("{FDS_VAR}={value:?} is not READ,WRITE"))?;
    // Both descriptors must be open in this process before adopting them.
    for fd in [r, w] {
        // SAFETY: F_GETFD only queries the descriptor table; an invalid fd
        // yields EBADF and touches nothing.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            return Err(format!("{FDS_VAR}: fd {fd} is not open"));
        }
    }
    // SAFETY: the two descriptors were inherited from the server for this
    // process alone, are open (checked above), and nothing else in this
    // process refers to them, so each gets exactly one owner.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(r), OwnedFd::from_raw_fd(w)) };
    Ok(Halves {
        r: r.into(),
        w: w.into(),
    })
}

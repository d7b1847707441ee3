//! `ipcx rm ENDPOINT`: removes a region, mutex or semaphore by its
//! endpoint, with the library's own removal functions.
//!
//! - `sem:/NAME`, `sysv-sem:PATH`: the semaphore;
//! - `shm:/NAME`: the mutex and/or the region of that name;
//! - `sysv-shm:PATH`: the mutex and/or the region keyed by `PATH`.
//!
//! These objects persist by design (`ipcx clean` never removes them); this
//! is how an operator removes one on purpose.

use ipcx::sync::{Mutex, Semaphore};

/// Options of `ipcx rm`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx rm sem:/ready\n  ipcx rm shm:/prices          # the region and/or mutex of that name\n  ipcx rm sysv-sem:/tmp/printer"
)]
pub struct Args {
    /// The endpoint of the semaphore, mutex or region to remove.
    pub endpoint: String,
}

/// Removes the System V region segment keyed `ftok(PATH, 'r')`, if any.
fn remove_sysv_region(path: &str) -> Result<bool, String> {
    let c = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: plain System V calls on a NUL-terminated path.
    unsafe {
        let key = libc::ftok(c.as_ptr(), i32::from(b'r'));
        if key == -1 {
            return Ok(false);
        }
        let id = libc::shmget(key, 0, 0);
        if id < 0 {
            return Ok(false);
        }
        if libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) != 0 {
            return Err(format!(
                "shmctl(IPC_RMID) on the region of sysv-shm:{path}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(true)
}

/// Runs `ipcx rm`.
///
/// # Errors
/// When the endpoint names nothing removable, or the removal failed.
pub fn main(args: Args) -> Result<(), String> {
    let ep = super::endpoint(&args.endpoint)?;
    let s = ep.to_string();
    let mut removed = Vec::new();
    let scheme = ep.scheme().as_str();
    match scheme {
        "sem" | "sysv-sem" => {
            Semaphore::open(&ep)
                .and_then(Semaphore::remove)
                .map_err(|e| format!("{s}: {e}"))?;
            removed.push("semaphore");
        }
        "shm" | "sysv-shm" => {
            if let Ok(m) = Mutex::open(&ep) {
                m.remove().map_err(|e| format!("{s}: {e}"))?;
                removed.push("mutex");
            }
            if scheme == "shm" {
                let name = format!("/ipcx.region.{}", ep.address().trim_start_matches('/'));
                let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
                // SAFETY: a NUL-terminated name.
                if unsafe { libc::shm_unlink(c.as_ptr()) } == 0 {
                    removed.push("region");
                }
            } else if remove_sysv_region(ep.address())? {
                removed.push("region");
            }
        }
        other => {
            return Err(format!(
                "{s}: ipcx rm removes semaphores (sem:, sysv-sem:), mutexes and regions (shm:, sysv-shm:), not {other}: endpoints"
            ));
        }
    }
    if removed.is_empty() {
        return Err(format!("{s}: no mutex or region of that name"));
    }
    println!("removed {} {s}", removed.join(" and "));
    Ok(())
}

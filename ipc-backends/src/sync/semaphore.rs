//! [`Semaphore`]: `sem:` and `sysv-sem:` behind one type.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipc_core::{Endpoint, Error, Result, Scheme};
use nix::errno::Errno;

use super::{limits, os_error};
use crate::registry::{self, Kind};
use crate::sys::sem::{self, NamedSem};
use crate::sys::sysv_sem::{self, KeyedSem};

/// The `ftok` project id of `sysv-sem:` keys.
pub(crate) const PROJ: u8 = b's';

/// A counting semaphore shared between processes, named by a `sem:/NAME`
/// or `sysv-sem:PATH` endpoint. Not `Clone`; `Send` and `Sync`.
///
/// `sem:/NAME` is the POSIX named semaphore `/ipcx.NAME` (visible as
/// `/dev/shm/sem.ipcx.NAME`). `sysv-sem:PATH` is a System V set of one
/// semaphore with key `ftok(PATH, 's')`; [`create`](Self::create) makes
/// `PATH` (empty, with the endpoint's mode) if it does not exist, and no
/// one deletes it. On `sysv-sem:` waits carry `SEM_UNDO`: units a process
/// took and did not post back through the same handle are given back when
/// it exits, however it exits. A post beyond what the handle took is a new
/// unit that outlives the process (a signal).
///
/// # Examples
///
/// ```no_run
/// use ipc_backends::sync::Semaphore;
/// # fn main() -> ipc_core::Result<()> {
/// let ep = "sem:/ready".parse()?;
/// let ready = Semaphore::create(&ep, 0)?;
/// // another process: Semaphore::open(&ep)?.post()?;
/// ready.wait_timeout(std::time::Duration::from_secs(5))?;
/// ready.remove()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Semaphore {
    endpoint: Endpoint,
    flavor: Flavor,
}

#[derive(Debug)]
enum Flavor {
    Posix {
        sem: NamedSem,
        name: String,
    },
    /// `held`: units this handle took and has not posted back, whose
    /// `SEM_UNDO` record a post cancels.
    Sysv {
        sem: KeyedSem,
        held: AtomicU32,
    },
}

fn posix_name(endpoint: &Endpoint) -> String {
    posix_name_of(endpoint.address())
}

/// The POSIX name of the `sem:` semaphore at `address` (`/ipcx.NAME`).
pub(crate) fn posix_name_of(address: &str) -> String {
    format!("/ipcx.{}", address.trim_start_matches('/'))
}

fn check_scheme(endpoint: &Endpoint) -> Result<()> {
    match endpoint.scheme() {
        Scheme::Sem | Scheme::SysvSem => Ok(()),
        other => Err(Error::Unsupported {
            scheme: other,
            reason: format!(
                "{endpoint}: ipcx::sync::Semaphore opens sem:/NAME or sysv-sem:PATH endpoints"
            ),
        }),
    }
}

fn sysv_key(endpoint: &Endpoint) -> Result<libc::key_t> {
    sysv_sem::key(endpoint.address(), PROJ).map_err(|e| {
        os_error(
            endpoint,
            "ftok",
            e,
            "the key file must exist; Semaphore::create makes it",
        )
    })
}

/// Makes the key file of a `sysv-sem:`/`sysv-shm:` object if it is absent.
pub(crate) fn ensure_key_file(endpoint: &Endpoint) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(endpoint.options().mode)
        .open(endpoint.address())
        .map(drop)
        .map_err(|e| Error::io(format!("{endpoint}: creating the ftok key file"), e))
}

impl Semaphore {
    /// Creates the semaphore exclusively with `initial` units and the
    /// endpoint's `mode` (default `0600`).
    ///
    /// # Errors
    /// [`Error::AddrInUse`] when it exists already; [`Error::Unsupported`]
    /// for an endpoint that names no semaphore; [`Error::Limit`] naming the
    /// limit, its value and how to raise it for `initial` above
    /// `SEM_VALUE_MAX` (`sem:`) or `SEMVMX` (`sysv-sem:`), or `SEMMSL`,
    /// `SEMMNS`, `SEMMNI` reached (`/proc/sys/kernel/sem`).
    pub fn create(endpoint: &Endpoint, initial: u32) -> Result<Semaphore> {
        check_scheme(endpoint)?;
        let mode = endpoint.options().mode;
        let flavor = match endpoint.scheme() {
            Scheme::Sem => {
                limits::posix_semaphore(endpoint, initial)?;
                let name = posix_name(endpoint);
                let sem = NamedSem::create(&name, mode, initial).map_err(|e| {
                    os_error(
                        endpoint,
                        "sem_open",
                        e,
                        "EINVAL: initial above SEM_VALUE_MAX (2147483647)",
                    )
                })?;
                Flavor::Posix { sem, name }
            }
            _ => {
                limits::sysv_semaphore(endpoint, initial, &limits::SemUse::now())?;
                ensure_key_file(endpoint)?;
                let key = sysv_key(endpoint)?;
                let sem = KeyedSem::create(key, mode, initial).map_err(|e| {
                    let hint = match e {
                        Errno::ENOSPC => {
                            "SEMMNI or SEMMNS reached (/proc/sys/kernel/sem; raise with sysctl -w kernel.sem=\"SEMMSL SEMMNS SEMOPM SEMMNI\"); remove unused sets (ipcx ls, ipcs -s)"
                        }
                        Errno::ERANGE => "initial above SEMVMX (32767, a kernel constant)",
                        _ => "",
                    };
                    os_error(endpoint, "semget", e, hint)
                })?;
                registry::register_state(Kind::StateSemaphore, sem.id(), endpoint);
                Flavor::Sysv {
                    sem,
                    held: AtomicU32::new(0),
                }
            }
        };
        tracing::debug!(%endpoint, initial, "semaphore created");
        Ok(Semaphore {
            endpoint: endpoint.clone(),
            flavor,
        })
    }

    /// Opens an existing semaphore.
    ///
    /// # Errors
    /// [`Error::Io`] (`ENOENT`) when there is none; [`Error::PermissionDenied`]
    /// when its mode refuses this user.
    pub fn open(endpoint: &Endpoint) -> Result<Semaphore> {
        check_scheme(endpoint)?;
        let flavor = match endpoint.scheme() {
            Scheme::Sem => {
                let name = posix_name(endpoint);
                let sem = NamedSem::open(&name).map_err(|e| {
                    os_error(
                        endpoint,
                        "sem_open",
                        e,
                        "no such semaphore; create it first",
                    )
                })?;
                Flavor::Posix { sem, name }
            }
            _ => {
                let key = sysv_key(endpoint)?;
                let sem = KeyedSem::open(key).map_err(|e| {
                    os_error(endpoint, "semget", e, "no such semaphore; create it first")
                })?;
                Flavor::Sysv {
                    sem,
                    held: AtomicU32::new(0),
                }
            }
        };
        Ok(Semaphore {
            endpoint: endpoint.clone(),
            flavor,
        })
    }

    /// The endpoint it was opened with.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    #[cold]
    #[inline(never)]
    fn fail(&self, call: &str, e: Errno) -> Error {
        let hint = match e {
            Errno::EIDRM | Errno::EINVAL => "the semaphore was removed",
            Errno::EOVERFLOW | Errno::ERANGE => "the value is at its maximum",
            _ => "",
        };
        os_error(&self.endpoint, call, e, hint)
    }

    /// Takes one unit, sleeping until there is one.
    ///
    /// # Errors
    /// [`Error::Io`] when the semaphore was removed meanwhile (`sysv-sem:`).
    #[inline]
    pub fn wait(&self) -> Result<()> {
        match &self.flavor {
            Flavor::Posix { sem, .. } => sem.wait().map_err(|e| self.fail("sem_wait", e)),
            Flavor::Sysv { sem, held } => {
                sem.wait(None).map_err(|e| self.fail("semop", e))?;
                held.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Takes one unit if there is one at once.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when the value is 0.
    #[inline]
    pub fn try_wait(&self) -> Result<()> {
        match &self.flavor {
            Flavor::Posix { sem, .. } => sem.try_wait().map_err(|e| self.fail("sem_trywait", e)),
            Flavor::Sysv { sem, held } => {
                sem.wait(Some(Duration::ZERO))
                    .map_err(|e| self.fail("semop", e))?;
                held.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Takes one unit, sleeping at most `timeout` for it.
    ///
    /// # Errors
    /// [`Error::Timeout`] when the time ran out.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return self.try_wait().map_err(|e| match e {
                Error::WouldBlock => Error::Timeout,
                e => e,
            });
        }
        match &self.flavor {
            Flavor::Posix { sem, .. } => sem
                .wait_timeout(timeout)
                .map_err(|e| self.fail("sem_timedwait", e)),
            Flavor::Sysv { sem, held } => {
                sem.wait(Some(timeout)).map_err(|e| match e {
                    Errno::EAGAIN => Error::Timeout,
                    e => self.fail("semtimedop", e),
                })?;
                held.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Adds one unit, waking one waiter.
    ///
    /// # Errors
    /// [`Error::Io`] at the maximum value, or when removed (`sysv-sem:`).
    #[inline]
    pub fn post(&self) -> Result<()> {
        match &self.flavor {
            Flavor::Posix { sem, .. } => sem.post().map_err(|e| self.fail("sem_post", e)),
            Flavor::Sysv { sem, held } => {
                let returning = held
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| h.checked_sub(1))
                    .is_ok();
                sem.post(returning).map_err(|e| {
                    if returning {
                        held.fetch_add(1, Ordering::Relaxed);
                    }
                    self.fail("semop", e)
                })
            }
        }
    }

    /// The current number of units (0 while processes wait).
    ///
    /// # Errors
    /// [`Error::Io`] when removed (`sysv-sem:`).
    pub fn value(&self) -> Result<u32> {
        match &self.flavor {
            Flavor::Posix { sem, .. } => sem.value().map_err(|e| self.fail("sem_getvalue", e)),
            Flavor::Sysv { sem, .. } => sem.value().map_err(|e| self.fail("semctl(GETVAL)", e)),
        }
    }

    /// Removes the semaphore. `sem:`: the name goes at once, processes that
    /// have it open keep using it until they close it. `sysv-sem:`: the set
    /// goes at once and its waiters fail. The key file stays.
    ///
    /// # Errors
    /// [`Error::Io`] when it was removed already; [`Error::PermissionDenied`]
    /// for a `sysv-sem:` set of another user.
    pub fn remove(self) -> Result<()> {
        let endpoint = self.endpoint;
        match self.flavor {
            Flavor::Posix { sem, name } => {
                drop(sem);
                sem::unlink(&name).map_err(|e| os_error(&endpoint, "sem_unlink", e, ""))
            }
            Flavor::Sysv { sem, .. } => {
                let id = sem.id();
                sem.remove()
                    .map_err(|e| os_error(&endpoint, "semctl(IPC_RMID)", e, ""))?;
                registry::unregister(Kind::StateSemaphore, &id.to_string());
                Ok(())
            }
        }?;
        tracing::debug!(%endpoint, "semaphore removed");
        Ok(())
    }
}

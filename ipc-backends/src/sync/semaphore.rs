//! [`Semaphore`]: `sem:` and `sysv-sem:` behind one type.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ipc_core::{Endpoint, Error, Result, Scheme};
use nix::errno::Errno;

use super::{limits, os_error};
use crate::registry::{self, Kind};
use crate::sys::sem::{self, NamedSem, RawOp};
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
    /// `wait` and `post` of this kind of semaphore, chosen at open: the
    /// hot paths call through them instead of matching on `flavor`.
    hot: Hot,
    endpoint: Endpoint,
    flavor: Flavor,
}

// SAFETY: `hot.arg` points into `flavor` (the `sem_t` its `NamedSem`
// maps, or its boxed `SysvState`), which is `Send` and `Sync` and stays at
// that address as long as the semaphore lives; the operations `hot` calls
// are thread-safe.
unsafe impl Send for Semaphore {}
// SAFETY: as for `Send`: every method takes `&self`, and what `hot`
// reaches is used only through thread-safe calls and atomics.
unsafe impl Sync for Semaphore {}

/// The hot operations and their argument: on `sem:`, glibc's `sem_wait`
/// and `sem_post` of the mapped `sem_t` (so a wait costs what a direct
/// `sem_wait` does: one call); on `sysv-sem:`, [`sysv_wait`] and
/// [`sysv_post`] of the [`SysvState`].
#[derive(Debug, Clone, Copy)]
struct Hot {
    wait: RawOp,
    post: RawOp,
    arg: NonNull<libc::sem_t>,
}

#[derive(Debug)]
enum Flavor {
    Posix { sem: NamedSem, name: String },
    Sysv(Box<SysvState>),
}

/// A `sysv-sem:` handle's state, boxed so that [`Hot::arg`] can point at
/// it. `held`: units this handle took and has not posted back, whose
/// `SEM_UNDO` record a post cancels.
#[derive(Debug)]
struct SysvState {
    sem: KeyedSem,
    held: AtomicU32,
}

/// `wait` of a `sysv-sem:` semaphore, as a [`RawOp`]: one `semop(-1,
/// SEM_UNDO)`, restarted after a signal (out of line).
///
/// # Safety
/// `arg` points to a live [`SysvState`].
unsafe extern "C" fn sysv_wait(arg: *mut libc::sem_t) -> libc::c_int {
    // SAFETY: the caller's precondition.
    let st = unsafe { &*arg.cast::<SysvState>() };
    if st.sem.op_once(-1, true) {
        st.held.fetch_add(1, Ordering::Relaxed);
        return 0;
    }
    sysv_op_failed(st, -1, false)
}

/// `post` of a `sysv-sem:` semaphore, as a [`RawOp`]: returns a unit this
/// handle holds (with `SEM_UNDO`, cancelling its wait's undo record) or
/// adds a new one that outlives the process.
///
/// # Safety
/// `arg` points to a live [`SysvState`].
unsafe extern "C" fn sysv_post(arg: *mut libc::sem_t) -> libc::c_int {
    // SAFETY: the caller's precondition.
    let st = unsafe { &*arg.cast::<SysvState>() };
    let returning = st
        .held
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| h.checked_sub(1))
        .is_ok();
    if st.sem.op_once(1, returning) {
        return 0;
    }
    sysv_op_failed(st, 1, returning)
}

/// A `semop` of `delta` on `st` failed (`errno` says why): retried while
/// the cause is a signal; otherwise a wait's unit or a post's returned
/// unit is accounted back and -1 returned, `errno` kept.
#[cold]
#[inline(never)]
fn sysv_op_failed(st: &SysvState, delta: i16, undo: bool) -> libc::c_int {
    loop {
        let e = Errno::last();
        if e != Errno::EINTR {
            if delta > 0 && undo {
                st.held.fetch_add(1, Ordering::Relaxed);
            }
            e.set();
            return -1;
        }
        if st.sem.op_once(delta, delta < 0 || undo) {
            if delta < 0 {
                st.held.fetch_add(1, Ordering::Relaxed);
            }
            return 0;
        }
    }
}

impl Flavor {
    fn hot(&self) -> Hot {
        match self {
            Flavor::Posix { sem, .. } => Hot {
                wait: sem::WAIT,
                post: sem::POST,
                arg: sem.as_ptr(),
            },
            Flavor::Sysv(st) => Hot {
                wait: sysv_wait,
                post: sysv_post,
                arg: NonNull::from(&**st).cast(),
            },
        }
    }
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
                Flavor::Sysv(Box::new(SysvState {
                    sem,
                    held: AtomicU32::new(0),
                }))
            }
        };
        tracing::debug!(%endpoint, initial, "semaphore created");
        Ok(Semaphore {
            hot: flavor.hot(),
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
                Flavor::Sysv(Box::new(SysvState {
                    sem,
                    held: AtomicU32::new(0),
                }))
            }
        };
        Ok(Semaphore {
            hot: flavor.hot(),
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
        let Hot { wait, arg, .. } = self.hot;
        loop {
            // SAFETY: `wait` and `arg` were paired by `Flavor::hot`, and
            // `arg` lives as long as `self` (see `Hot`).
            if unsafe { wait(arg.as_ptr()) } == 0 {
                return Ok(());
            }
            self.wait_failed()?;
        }
    }

    /// A failed hot wait: `Ok` to try again after a signal, else the error.
    #[cold]
    #[inline(never)]
    fn wait_failed(&self) -> Result<()> {
        match Errno::last() {
            Errno::EINTR => Ok(()),
            e => Err(self.fail(self.call("sem_wait"), e)),
        }
    }

    /// `posix` on `sem:`, `semop` on `sysv-sem:`.
    fn call<'a>(&self, posix: &'a str) -> &'a str {
        match self.flavor {
            Flavor::Posix { .. } => posix,
            Flavor::Sysv(_) => "semop",
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
            Flavor::Sysv(st) => {
                st.sem
                    .wait(Some(Duration::ZERO))
                    .map_err(|e| self.fail("semop", e))?;
                st.held.fetch_add(1, Ordering::Relaxed);
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
            Flavor::Sysv(st) => {
                st.sem.wait(Some(timeout)).map_err(|e| match e {
                    Errno::EAGAIN => Error::Timeout,
                    e => self.fail("semtimedop", e),
                })?;
                st.held.fetch_add(1, Ordering::Relaxed);
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
        let Hot { post, arg, .. } = self.hot;
        // SAFETY: `post` and `arg` were paired by `Flavor::hot`, and `arg`
        // lives as long as `self` (see `Hot`).
        if unsafe { post(arg.as_ptr()) } == 0 {
            return Ok(());
        }
        Err(self.post_failed())
    }

    #[cold]
    #[inline(never)]
    fn post_failed(&self) -> Error {
        self.fail(self.call("sem_post"), Errno::last())
    }

    /// The current number of units (0 while processes wait).
    ///
    /// # Errors
    /// [`Error::Io`] when removed (`sysv-sem:`).
    pub fn value(&self) -> Result<u32> {
        match &self.flavor {
            Flavor::Posix { sem, .. } => sem.value().map_err(|e| self.fail("sem_getvalue", e)),
            Flavor::Sysv(st) => st.sem.value().map_err(|e| self.fail("semctl(GETVAL)", e)),
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
            Flavor::Sysv(st) => {
                let id = st.sem.id();
                st.sem
                    .remove()
                    .map_err(|e| os_error(&endpoint, "semctl(IPC_RMID)", e, ""))?;
                registry::unregister(Kind::StateSemaphore, &id.to_string());
                Ok(())
            }
        }?;
        tracing::debug!(%endpoint, "semaphore removed");
        Ok(())
    }
}

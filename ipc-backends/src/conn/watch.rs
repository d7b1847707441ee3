//! Peer death without polling: one watcher per process.
//!
//! A transport whose kernel object gives no end-of-file when the peer
//! process dies (shared memory, System V queues) registers each connection
//! here with [`watch`]. The watcher is one thread, started at the first
//! registration, that sleeps in `epoll_wait` on one pidfd per peer
//! *process* (shared by all connections to it, reference-counted, closed
//! with the last). When a peer exits, the watcher sets the [`Watch`] flag
//! of each of its connections and then calls their [`Wake::on_peer_exit`],
//! which wakes whatever waits on them (a futex, a queue).
//!
//! The order gives waiters a simple rule: the flag is set before the
//! wake-up, so a waiter that reads its wake-up word, then the flag
//! (false), then sleeps on that word's value cannot miss the wake-up.
//!
//! A peer is named by pid *and* start time, so a pid reused by a new
//! process is a new peer; a pidfd opened after the process exited, or for
//! a pid now naming another process, registers as gone at once.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use crate::sys::epoll;
use crate::sys::process::{self, PidFd};

/// What the watcher calls when a connection's peer exits.
pub(crate) trait Wake: Send + Sync {
    /// The peer is gone (the [`Watch`] flag is already set): wake every
    /// waiter of the connection. Runs on the watcher thread: must not block.
    fn on_peer_exit(&self);
}

/// One connection's registration: its "peer gone" flag. Dropping it
/// deregisters the connection (and closes the pidfd with the last one).
pub(crate) struct Watch {
    gone: Arc<AtomicBool>,
    watcher: Arc<Watcher>,
    /// The peer's token and this connection's number among its watchers;
    /// `None` when the peer was gone at registration.
    key: Option<(u64, u64)>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("gone", &self.gone())
            .field("key", &self.key)
            .finish()
    }
}

impl Watch {
    /// Whether the peer process has exited.
    #[inline]
    pub(crate) fn gone(&self) -> bool {
        self.gone.load(Ordering::SeqCst)
    }

    /// Waits until the watcher holds no reference to the connection it
    /// woke. A half calls this as it drops, once it may have seen the
    /// flag: the watcher then lets go first and the half's thread runs
    /// the connection's last drop (which may remove kernel objects) rather
    /// than the watcher thread, which a process exit would cut short.
    pub(crate) fn settle(&self) {
        if self.key.is_some() {
            drop(self.watcher.round.lock().unwrap_or_else(|p| p.into_inner()));
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let Some((token, id)) = self.key else { return };
        let w = &self.watcher;
        let mut state = w.lock();
        let Some(peer) = state.peers.get_mut(&token) else {
            return;
        };
        peer.watchers.remove(&id);
        if peer.watchers.is_empty() {
            let peer = state.peers.remove(&token).expect("present");
            state.by_pid.remove(&peer.id);
            let _ = w.set.remove(&peer.pidfd);
        }
    }
}

/// A connection registered with the watcher.
struct Entry {
    gone: Arc<AtomicBool>,
    wake: Weak<dyn Wake>,
}

/// A watched peer process.
struct Peer {
    id: (u32, Option<u64>),
    pidfd: PidFd,
    watchers: HashMap<u64, Entry>,
}

#[derive(Default)]
struct State {
    /// Peers by their epoll token.
    peers: HashMap<u64, Peer>,
    /// Tokens by (pid, start time).
    by_pid: HashMap<(u32, Option<u64>), u64>,
    next: u64,
}

/// The process's watcher: the epoll set its thread waits on.
struct Watcher {
    set: epoll::Set,
    state: Mutex<State>,
    /// Held by the watcher thread for each round of flagging and waking
    /// (see [`Watch::settle`]); taken before `state`, never after.
    round: Mutex<()>,
    /// The process that started it (a forked child needs its own).
    pid: u32,
}

impl Watcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic under the lock leaves consistent maps: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The thread's loop: wait, then for each peer gone, flag and wake
    /// its connections (outside the lock: waking may drop the last
    /// reference to a connection, whose `Watch` then takes the lock).
    fn run(self: Arc<Watcher>) {
        let mut tokens = Vec::new();
        loop {
            tokens.clear();
            if let Err(e) = self.set.wait(&mut tokens) {
                // Not expected (EBADF, EINVAL); connections still notice
                // through their safety timeouts.
                tracing::error!(error = %e, "the peer watcher stopped");
                return;
            }
            let _round = self.round.lock().unwrap_or_else(|p| p.into_inner());
            let mut woken = Vec::new();
            {
                let mut state = self.lock();
                for token in &tokens {
                    let Some(peer) = state.peers.remove(token) else {
                        continue;
                    };
                    state.by_pid.remove(&peer.id);
                    let _ = self.set.remove(&peer.pidfd);
                    tracing::debug!(peer.pid = peer.id.0, "peer process exited");
                    woken.extend(peer.watchers.into_values());
                }
            }
            for entry in &woken {
                entry.gone.store(true, Ordering::SeqCst);
            }
            let live: Vec<Arc<dyn Wake>> = woken.iter().filter_map(|e| e.wake.upgrade()).collect();
            for w in &live {
                w.on_peer_exit();
            }
            // `live` drops here, perhaps the last reference to a
            // connection: its `Watch` finds its peer gone from the map.
        }
    }
}

static WATCHER: Mutex<Option<Arc<Watcher>>> = Mutex::new(None);

/// The watcher of this process, started on first use.
fn watcher() -> io::Result<Arc<Watcher>> {
    let mut slot = WATCHER.lock().unwrap_or_else(|p| p.into_inner());
    let me = process::pid();
    if let Some(w) = slot.as_ref()
        && w.pid == me
    {
        return Ok(w.clone());
    }
    let w = Arc::new(Watcher {
        set: epoll::Set::new()?,
        state: Mutex::new(State::default()),
        round: Mutex::new(()),
        pid: me,
    });
    let run = w.clone();
    std::thread::Builder::new()
        .name("ipcx-peer-watch".into())
        .spawn(move || run.run())?;
    *slot = Some(w.clone());
    Ok(w)
}

/// Registers a connection whose peer is process `pid` (started at
/// `start`, when known): when it exits, the returned [`Watch`] is flagged
/// and `wake` called (if it still lives).
///
/// # Errors
/// When the watcher cannot watch (no pidfds before Linux 5.3, out of
/// descriptors or threads): the caller then polls for the peer as before.
pub(crate) fn watch(pid: u32, start: Option<u64>, wake: Weak<dyn Wake>) -> io::Result<Watch> {
    #[cfg(test)]
    if UNAVAILABLE.get() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the peer watcher is switched off on this thread",
        ));
    }
    let gone = Arc::new(AtomicBool::new(false));
    let w = watcher()?;
    let mut state = w.lock();
    let id = (pid, start);
    let token = match state.by_pid.get(&id) {
        Some(&token) => token,
        None => {
            let Some(pidfd) = PidFd::open(pid)? else {
                gone.store(true, Ordering::SeqCst);
                drop(state);
                return Ok(Watch {
                    gone,
                    watcher: w,
                    key: None,
                });
            };
            // The pidfd names whoever has the pid now: the peer only if
            // its start time matches.
            if start.is_some() && process::start_time(pid) != start {
                gone.store(true, Ordering::SeqCst);
                drop(state);
                return Ok(Watch {
                    gone,
                    watcher: w,
                    key: None,
                });
            }
            let token = state.next;
            state.next += 1;
            w.set.add(&pidfd, token)?;
            state.by_pid.insert(id, token);
            state.peers.insert(
                token,
                Peer {
                    id,
                    pidfd,
                    watchers: HashMap::new(),
                },
            );
            token
        }
    };
    let n = state.next;
    state.next += 1;
    let peer = state.peers.get_mut(&token).expect("registered");
    peer.watchers.insert(
        n,
        Entry {
            gone: gone.clone(),
            wake,
        },
    );
    drop(state);
    Ok(Watch {
        gone,
        watcher: w,
        key: Some((token, n)),
    })
}

#[cfg(test)]
std::thread_local! {
    /// Set by [`unavailable`]: [`watch`] fails on this thread.
    static UNAVAILABLE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`watch`] failing on this thread, as it does where the
/// watcher cannot watch (no pidfds before Linux 5.3, out of descriptors
/// or threads): the connections built in `f` take their fallback.
#[cfg(test)]
pub(crate) fn unavailable<R>(f: impl FnOnce() -> R) -> R {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            UNAVAILABLE.set(false);
        }
    }
    UNAVAILABLE.set(true);
    let _restore = Restore;
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::time::{Duration, Instant};

    struct Count(AtomicU32);

    impl Wake for Count {
        fn on_peer_exit(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn child() -> std::process::Child {
        std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep")
    }

    fn until(what: &str, mut f: impl FnMut() -> bool) {
        // Watchdog: the watcher reacts within milliseconds; 10 s only
        // keeps a broken watcher from hanging the test.
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn flags_and_wakes_every_connection_of_a_dead_peer() {
        let mut c = child();
        let pid = c.id();
        let start = process::start_time(pid);
        let a: Arc<Count> = Arc::new(Count(AtomicU32::new(0)));
        let b: Arc<Count> = Arc::new(Count(AtomicU32::new(0)));
        let wa = watch(pid, start, Arc::downgrade(&a) as Weak<dyn Wake>).unwrap();
        let wb = watch(pid, start, Arc::downgrade(&b) as Weak<dyn Wake>).unwrap();
        assert_eq!(wa.key.unwrap().0, wb.key.unwrap().0, "one pidfd per peer");
        assert!(!wa.gone() && !wb.gone());
        c.kill().unwrap();
        c.wait().unwrap();
        until("the watcher flagged both", || wa.gone() && wb.gone());
        until("the watcher woke both", || {
            a.0.load(Ordering::SeqCst) == 1 && b.0.load(Ordering::SeqCst) == 1
        });
        // A dead pid registers as gone at once.
        let late = watch(pid, start, Arc::downgrade(&a) as Weak<dyn Wake>).unwrap();
        assert!(late.gone());
    }

    #[test]
    fn unavailable_fails_on_its_thread_only() {
        let a: Arc<Count> = Arc::new(Count(AtomicU32::new(0)));
        let me = process::pid();
        let weak = || Arc::downgrade(&a) as Weak<dyn Wake>;
        let err = unavailable(|| watch(me, None, weak()).unwrap_err());
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(watch(me, None, weak()).is_ok(), "restored after");
        let b = a.clone();
        let other = unavailable(|| {
            std::thread::spawn(move || {
                watch(me, None, Arc::downgrade(&b) as Weak<dyn Wake>).is_ok()
            })
            .join()
        });
        assert!(other.unwrap(), "another thread still watches");
    }

    #[test]
    fn the_last_connection_closes_the_pidfd() {
        let mut c = child();
        let pid = c.id();
        let start = process::start_time(pid);
        let a: Arc<Count> = Arc::new(Count(AtomicU32::new(0)));
        let has = |pid: u32| {
            watcher()
                .unwrap()
                .lock()
                .by_pid
                .contains_key(&(pid, process::start_time(pid)))
        };
        let w1 = watch(pid, start, Arc::downgrade(&a) as Weak<dyn Wake>).unwrap();
        let w2 = watch(pid, start, Arc::downgrade(&a) as Weak<dyn Wake>).unwrap();
        assert!(has(pid));
        drop(w1);
        assert!(has(pid));
        drop(w2);
        assert!(!has(pid));
        c.kill().unwrap();
        c.wait().unwrap();
        assert_eq!(a.0.load(Ordering::SeqCst), 0);
    }
}

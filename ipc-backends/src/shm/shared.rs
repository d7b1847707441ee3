//! What both halves of a connection share: the mapped segment, how a side
//! sleeps and wakes the other, and the wait loop that notices a dead peer.
//!
//! A side sleeps only after publishing that it may sleep (`*_sleeping`) and
//! re-checking the ring; the other side wakes it only when that flag is
//! set (`docs/shm-architecture.md` argues why no wake-up is lost; the model
//! checks in `wake_model.rs` enumerate the interleavings). Both `shm:` and
//! `sysv-shm:` sleep on futex words in the segment (the shared, not
//! private, futex operations: the kernel keys them by the backing object,
//! a tmpfs file for `shm:`, the System V segment's shmem file for
//! `sysv-shm:`).
//!
//! The peer's death is not polled for: the process's death watcher
//! (`conn::watch`) flags the connection and wakes its sleepers
//! ([`Wake`] for `Shared`), and a sleeper looks at that flag after its
//! sequence word and before it sleeps. Sleeps still end after a long
//! safety interval (60-90 s, spread over connections), a second opinion
//! on the rendezvous socket. Only a connection the watcher could not take
//! (no pidfds before Linux 5.3, out of descriptors or threads) polls,
//! every 10 ms.

use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering, fence};
use std::time::{Duration, Instant};

use ipc_core::{Deadline, Endpoint, Error, Result, Wait};

use super::rendezvous;
use super::ring::{self, RingMem, Violation};
use super::segment::{self, Layout};
use crate::conn::watch::{Wake, Watch};
use crate::sys::event::Event as EventFd;
use crate::sys::shm::Mapping;
use crate::sys::{futex, process};

/// Looks at the ring before a spinning wait first reads the clock.
const PRE_SPIN: u32 = 64;
/// How often a waiting side checks that its peer still lives when the
/// death watcher does not watch it.
pub(super) const LIVENESS_INTERVAL: Duration = Duration::from_millis(10);
/// The shortest safety interval: a waiter whose peer the death watcher
/// watches sleeps at most this plus its share of [`SAFETY_SPREAD`]. A
/// safety net only (the watcher wakes it; the conformance cases see
/// `Disconnected` within milliseconds of a SIGKILL), looking at the
/// rendezvous socket. Each timeout costs a wake-up (tens of µs on a
/// loaded machine): at 5 s, 1,000 idle connections cost 0.8-1.0 % of a
/// core; at 60-90 s, 0.06 % (`docs/benchmarks.md`).
const SAFETY_INTERVAL: Duration = Duration::from_secs(60);
/// Each connection adds up to this much to [`SAFETY_INTERVAL`], so the
/// safety wake-ups of connections made together do not come together.
const SAFETY_SPREAD: Duration = Duration::from_secs(30);
/// Spins between two looks at the clock, the deadline and the peer.
const SPINS_PER_CHECK: u32 = 128;

/// What a waiter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Event {
    Data,
    Space,
}

/// A side's wait strategy.
#[derive(Debug, Clone, Copy)]
pub(super) struct WaitCfg {
    wait: Wait,
    spin: Duration,
}

impl WaitCfg {
    pub(super) fn of(endpoint: &Endpoint) -> WaitCfg {
        WaitCfg {
            wait: endpoint.wait(),
            spin: endpoint.spin(),
        }
    }

    /// `wait=spin`: this side announced it never sleeps, so its peer
    /// never looks whether to wake it.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn spins(self) -> bool {
        self.wait == Wait::Spin
    }
}

/// The eventfds of async waits, exchanged at rendezvous (step 5): this
/// side waits on its own, and rings the peer's when the peer announced an
/// async wait ([`ring::SLEEPING_ASYNC`]).
#[derive(Debug)]
pub(super) struct Doorbells {
    /// Our receiver waits here for data.
    pub(super) data: EventFd,
    /// Our sender waits here for space.
    pub(super) space: EventFd,
    /// The peer's receiver's: rung after publishing data for it.
    pub(super) peer_data: OwnedFd,
    /// The peer's sender's: rung after releasing space for it.
    pub(super) peer_space: OwnedFd,
}

impl Doorbells {
    /// Two sides' doorbells in one process, each ringing the other's (for
    /// tests that build both ends of a segment without a rendezvous).
    #[cfg(test)]
    pub(super) fn pair() -> (Doorbells, Doorbells) {
        let event = || EventFd::new().unwrap();
        let dup = |e: &EventFd| e.as_fd().try_clone_to_owned().unwrap();
        let (a_data, a_space, b_data, b_space) = (event(), event(), event(), event());
        let a = Doorbells {
            peer_data: dup(&b_data),
            peer_space: dup(&b_space),
            data: a_data,
            space: a_space,
        };
        let b = Doorbells {
            peer_data: dup(&a.data),
            peer_space: dup(&a.space),
            data: b_data,
            space: b_space,
        };
        (a, b)
    }
}

/// What both halves of a connection share.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) map: Mapping,
    pub(super) doorbells: Doorbells,
    /// The rendezvous connection: hangs up when the peer process is gone.
    pub(super) socket: OwnedFd,
    pub(super) endpoint: String,
    pub(super) peer_pid: u32,
    pub(super) peer_start: Option<u64>,
    /// The death watcher's registration; `None` when it could not watch
    /// (the waiters then poll).
    pub(super) watch: Option<Watch>,
    /// The longest a waiter sleeps before it asks whether the peer lives:
    /// [`LIVENESS_INTERVAL`] unwatched, this connection's safety interval
    /// watched ([`safety_interval`]).
    pub(super) interval: Duration,
}

/// A connection's safety interval: [`SAFETY_INTERVAL`] plus a share of
/// [`SAFETY_SPREAD`] that differs from one connection to the next.
pub(super) fn safety_interval() -> Duration {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Successive connections step through the spread by the golden ratio
    // (in thousandths), so any run of them covers it evenly.
    let share = NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(618) % 1000;
    SAFETY_INTERVAL + SAFETY_SPREAD * share / 1000
}

/// When the waiting side next asks whether its peer lives.
struct Liveness(Instant);

impl Liveness {
    fn from(start: Instant, shared: &Shared) -> Liveness {
        Liveness(start + shared.interval())
    }

    /// Whether `shared`'s peer is gone: the watcher's flag (one load), or
    /// asking the kernel at most once an interval.
    fn gone(&mut self, shared: &Shared, now: Instant) -> bool {
        if shared.flagged() {
            return true;
        }
        if now < self.0 {
            return false;
        }
        self.0 = now + shared.interval();
        match shared.watch {
            // The watcher covers the process; the socket is the cheap
            // second opinion (it hangs up when the peer process is gone).
            Some(_) => rendezvous::hung_up(shared.socket.as_fd()),
            None => shared.peer_gone(),
        }
    }
}

/// The peer is gone: one last look, since it may have published just
/// before it went.
fn last_look(ready: &mut impl FnMut() -> Result<bool>) -> Result<()> {
    if ready()? {
        Ok(())
    } else {
        Err(Error::Disconnected)
    }
}

impl Shared {
    pub(super) fn control(&self, ring: usize) -> &ring::Control {
        // SAFETY: the mapping is live while `self` is and was validated to
        // hold at least HEADER_SIZE bytes; mmap/shmat addresses are
        // page-aligned.
        unsafe { segment::control(self.map.ptr(), ring) }
    }

    pub(super) fn ring_mem(&self, layout: &Layout, ring: usize) -> RingMem {
        RingMem {
            control: self.control(ring),
            // SAFETY: ring_offset + capacity <= segment_size <= map.len(),
            // checked by validate_header (client) or by construction
            // (listener).
            data: unsafe { self.map.ptr().add(layout.ring_offset(ring) as usize) },
            capacity: layout.ring_capacity,
        }
    }

    /// The addresses of the mapped segment.
    pub(super) fn mapped_range(&self) -> Range<usize> {
        let start = self.map.ptr() as usize;
        start..start + self.map.len()
    }

    /// Whether the peer process is gone.
    pub(super) fn peer_gone(&self) -> bool {
        self.flagged()
            || rendezvous::hung_up(self.socket.as_fd())
            || !process::alive(self.peer_pid, self.peer_start)
    }

    /// Whether the death watcher saw the peer exit.
    #[inline]
    fn flagged(&self) -> bool {
        self.watch.as_ref().is_some_and(Watch::gone)
    }

    /// A half is dropping: let the death watcher finish waking this
    /// connection first, so the last drop runs on the half's thread.
    pub(super) fn settle(&self) {
        if let Some(w) = &self.watch {
            w.settle();
        }
    }

    /// The longest a waiter sleeps before it asks whether the peer lives.
    #[inline]
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    /// The error for a ring the peer broke; logged, as the peer is faulty
    /// or hostile.
    #[cold]
    #[inline(never)]
    pub(super) fn protocol(&self, ring: usize, v: Violation) -> Error {
        tracing::warn!(
            endpoint = self.endpoint,
            ring,
            peer.pid = self.peer_pid,
            violation = %v,
            "the peer corrupted the segment"
        );
        Error::protocol(format!(
            "{}: ring {ring}: {v}; the peer corrupted the segment",
            self.endpoint
        ))
    }

    /// The `sleeping` word and the futex word of the waiter for `event`
    /// on `ring`.
    fn words(&self, ring: usize, event: Event) -> (&AtomicU32, &AtomicU32) {
        let c = self.control(ring);
        match event {
            Event::Data => (&c.data_sleeping, &c.data_seq),
            Event::Space => (&c.space_sleeping, &c.space_seq),
        }
    }

    /// Wakes the peer waiting for `event` on `ring`, after a publish found
    /// its `sleeping` word nonzero: its doorbell when the word (read again
    /// here) says it waits asynchronously, the futex otherwise. Reading
    /// again is sound: a value stored since the publish read the word was
    /// stored before that waiter's own re-check, which then sees the
    /// publication (`docs/shm-architecture.md`).
    #[cold]
    #[inline(never)]
    pub(super) fn wake(&self, ring: usize, event: Event) {
        let (sleeping, _) = self.words(ring, event);
        if sleeping.load(Ordering::Relaxed) == ring::SLEEPING_ASYNC {
            self.ring_doorbell(event);
        } else {
            self.wake_blocked(ring, event);
        }
    }

    /// Wakes the peer after this half closed `ring` (the closed flag
    /// stored, then a SeqCst fence): always the futex, and
    /// the doorbell too when the peer waits asynchronously.
    pub(super) fn wake_closed(&self, ring: usize, event: Event) {
        self.wake_blocked(ring, event);
        let (sleeping, _) = self.words(ring, event);
        if sleeping.load(Ordering::Relaxed) == ring::SLEEPING_ASYNC {
            self.ring_doorbell(event);
        }
    }

    /// Rings the peer's doorbell for `event`: data is for the peer's
    /// receiver, space for its sender.
    fn ring_doorbell(&self, event: Event) {
        let fd = match event {
            Event::Data => &self.doorbells.peer_data,
            Event::Space => &self.doorbells.peer_space,
        };
        crate::sys::event::ring(fd.as_fd());
    }

    /// This side's doorbell for its waits on `event`.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn doorbell(&self, event: Event) -> BorrowedFd<'_> {
        match event {
            Event::Data => self.doorbells.data.as_fd(),
            Event::Space => self.doorbells.space.as_fd(),
        }
    }

    /// Announces (`how` = [`ring::SLEEPING_ASYNC`]) or withdraws (0) an
    /// async wait for `event` on `ring`; an announcement is followed by a
    /// SeqCst fence, as W2–W3 of the blocking wait.
    #[cfg_attr(not(feature = "tokio"), allow(dead_code))]
    pub(super) fn announce(&self, ring: usize, event: Event, how: u32) {
        let (sleeping, _) = self.words(ring, event);
        sleeping.store(how, Ordering::Relaxed);
        if how != 0 {
            fence(Ordering::SeqCst);
        }
    }

    fn wake_blocked(&self, ring: usize, event: Event) {
        let (_, seq) = self.words(ring, event);
        seq.fetch_add(1, Ordering::Release);
        futex::wake_all(seq);
    }

    /// Sleeps until woken, the slice ends, `seq` no longer holds
    /// `expected`, or a signal.
    fn sleep(&self, seq: &AtomicU32, expected: u32, slice: Duration) -> Result<()> {
        futex::wait(seq, expected, slice)
            .map_err(|e| Error::io(format!("{}: futex(FUTEX_WAIT)", self.endpoint), e))
    }

    /// Waits until `ready` holds, honouring `deadline` and the wait
    /// strategy, and noticing a dead peer.
    ///
    /// # Errors
    /// The deadline's error, [`Error::Disconnected`] when the peer died
    /// (after a last check of `ready`), or what `ready` returns.
    #[inline]
    pub(super) fn wait_for(
        &self,
        ring: usize,
        event: Event,
        how: WaitCfg,
        deadline: Deadline,
        mut ready: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        // Inlined: a ready ring (the usual case) costs one look at it.
        if ready()? {
            return Ok(());
        }
        self.wait(ring, event, how, deadline, &mut ready)
    }

    /// [`wait_for`](Self::wait_for) once the ring was not ready at the
    /// first look.
    #[inline(never)]
    fn wait(
        &self,
        ring: usize,
        event: Event,
        how: WaitCfg,
        deadline: Deadline,
        ready: &mut impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        if deadline == Deadline::Now {
            return Err(Error::WouldBlock);
        }
        if how.wait != Wait::Block {
            // A spinning peer usually answers within a few hundred ns:
            // look a few times before paying for the clock.
            for _ in 0..PRE_SPIN {
                std::hint::spin_loop();
                if ready()? {
                    return Ok(());
                }
            }
        }
        let start = Instant::now();
        let mut liveness = Liveness::from(start, self);
        let spin_until = match how.wait {
            Wait::Spin => None,
            Wait::Adaptive => Some(start + how.spin),
            Wait::Block => Some(start),
        };
        if self.spin(spin_until, &mut liveness, deadline, ready)? {
            return Ok(());
        }
        self.block(ring, event, &mut liveness, deadline, ready)
    }

    /// Spins until `ready` (`Ok(true)`) or `until` (`Ok(false)`: go to
    /// sleep), looking at the deadline and the peer now and then.
    fn spin(
        &self,
        until: Option<Instant>,
        liveness: &mut Liveness,
        deadline: Deadline,
        ready: &mut impl FnMut() -> Result<bool>,
    ) -> Result<bool> {
        let mut spins = 0u32;
        loop {
            if until.is_some_and(|t| Instant::now() >= t) {
                return Ok(false);
            }
            std::hint::spin_loop();
            if ready()? {
                return Ok(true);
            }
            spins = spins.wrapping_add(1);
            if spins % SPINS_PER_CHECK == 0 {
                let now = Instant::now();
                if deadline.expired() {
                    return Err(deadline.elapsed_error());
                }
                if liveness.gone(self, now) {
                    return last_look(ready).map(|()| true);
                }
            }
        }
    }

    /// Sleeps in slices until `ready`, the deadline or the peer's death.
    fn block(
        &self,
        ring: usize,
        event: Event,
        liveness: &mut Liveness,
        deadline: Deadline,
        ready: &mut impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let (sleeping, seq) = self.words(ring, event);
        loop {
            let expected = seq.load(Ordering::Acquire);
            sleeping.store(ring::SLEEPING_BLOCKED, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            if ready()? {
                sleeping.store(0, Ordering::Relaxed);
                return Ok(());
            }
            // After `expected` was read: the watcher flags before it bumps
            // the word, so either the flag shows here or the sleep below
            // returns at once or is woken.
            if self.flagged() {
                sleeping.store(0, Ordering::Relaxed);
                return last_look(ready);
            }
            let slice = match deadline.remaining() {
                Some(Duration::ZERO) => {
                    sleeping.store(0, Ordering::Relaxed);
                    return Err(deadline.elapsed_error());
                }
                Some(left) => left.min(self.interval()),
                None => self.interval(),
            };
            let slept = self.sleep(seq, expected, slice);
            sleeping.store(0, Ordering::Relaxed);
            if ready()? {
                return Ok(());
            }
            if slept.is_err() || liveness.gone(self, Instant::now()) {
                return last_look(ready);
            }
        }
    }
}

impl Wake for Shared {
    /// The peer process exited: wake whatever sleeps on either ring, for
    /// data or for space. Sleepers re-check the ring, then the flag.
    fn on_peer_exit(&self) {
        for ring in 0..2 {
            for event in [Event::Data, Event::Space] {
                self.wake(ring, event);
            }
        }
    }
}

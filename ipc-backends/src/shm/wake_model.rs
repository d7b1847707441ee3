//! Model checks of the wake-up protocol (`docs/shm-architecture.md`):
//! every interleaving of a producer and a consumer, over sequentially
//! consistent memory, is enumerated and none may leave the consumer asleep
//! with data published and no wake-up pending.

use std::collections::HashSet;

/// One interleaving of the first model. Producer: P1 head=1; P2 read
/// sleeping; P3 if sleeping { seq+=1; wake }. Consumer: C1 s=seq;
/// C2 sleeping=1; C3 read head, if 1 { done }; C4 futex_wait(seq, s):
/// sleeps iff seq == s and no wake after. `order` says who moves (0
/// producer, 1 consumer); `false` when a wake-up was lost.
fn run(order: &[u8]) -> bool {
    let (mut head, mut sleeping, mut seq) = (0, 0, 0);
    let (mut saw_sleep, mut s, mut done) = (false, 0, false);
    let (mut p, mut c) = (0, 0);
    let mut woken = false;
    let mut asleep = false;
    for &who in order {
        if who == 0 {
            p += 1;
            match p {
                1 => head = 1,
                2 => saw_sleep = sleeping == 1,
                3 if saw_sleep => {
                    seq += 1;
                    woken |= asleep;
                }
                _ => {}
            }
        } else {
            c += 1;
            match c {
                1 => s = seq,
                2 => sleeping = 1,
                3 => done = head == 1,
                4 if !done => asleep = seq == s,
                _ => {}
            }
        }
    }
    // Lost: consumer asleep, never woken, data published.
    !(asleep && !woken && head == 1)
}

/// Counts in `bad` the interleavings extending `prefix` (`p` producer and
/// `c` consumer steps taken) that lose a wake-up.
fn all(prefix: &mut Vec<u8>, p: usize, c: usize, bad: &mut usize) {
    if p == 3 && c == 4 {
        if !run(prefix) {
            *bad += 1;
        }
        return;
    }
    if p < 3 {
        prefix.push(0);
        all(prefix, p + 1, c, bad);
        prefix.pop();
    }
    if c < 4 {
        prefix.push(1);
        all(prefix, p, c + 1, bad);
        prefix.pop();
    }
}

/// Every interleaving of one producer step sequence and one sleeping
/// consumer: the consumer never sleeps with data published and no wake-up
/// pending.
#[test]
fn wake_protocol_loses_no_wakeup() {
    let mut bad = 0;
    all(&mut Vec::new(), 0, 0, &mut bad);
    assert_eq!(bad, 0);
}

/// Messages the second model's producer publishes.
const MSGS: u8 = 3;

/// How the second model's consumer waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiter {
    /// `wait=spin`: only polls, never announces a wait.
    Spins,
    /// The blocking wait: W1-W5 on the futex (`sleeping` = 1).
    Blocks,
    /// The async wait (`aio::Driven` over a shm half): the operation,
    /// `arm` (`sleeping` = 2, fence), the operation again, a wait on the
    /// doorbell, readiness cleared and the eventfd drained, `disarm`.
    Async,
}

/// What the second model's producer does after publishing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waker {
    /// Skips P2-P3 (the consumer announced `consumer_spins`).
    Skips,
    /// P2-P3: reads `sleeping`; when nonzero, reads it again and rings the
    /// doorbell for 2, else bumps `seq` and wakes the futex.
    Checks,
    /// A broken waker that treats every nonzero `sleeping` as a futex
    /// sleeper (never rings the doorbell), to show the model sees it.
    FutexOnly,
}

/// A state of the second model.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
struct St {
    head: u8,
    /// 0, 1 (blocked on the futex) or 2 (async, on the doorbell).
    sleeping: u8,
    seq: u8,
    /// The consumer's doorbell (an eventfd) has a nonzero count.
    bell: bool,
    /// Producer: next step (0 P1, 1 P2, 2 P3) and message number.
    p_pc: u8,
    p_msg: u8,
    /// P2 found `sleeping` nonzero.
    p_saw: u8,
    /// Consumer: next step (0 check cache/poll, then its waiter's steps,
    /// see [`consumer_step`]), its snapshot of seq, messages consumed and
    /// its cached head.
    c_pc: u8,
    c_s: u8,
    tail: u8,
    cached: u8,
}

/// The producer's next step.
fn producer_step(st: St, waker: Waker) -> St {
    let mut n = st;
    match st.p_pc {
        0 => {
            n.head += 1;
            if waker == Waker::Skips {
                n.p_msg += 1;
            } else {
                n.p_pc = 1;
            }
        }
        1 => {
            n.p_saw = u8::from(st.sleeping != 0);
            n.p_pc = 2;
        }
        _ => {
            // The wake reads the word again to choose how to wake.
            match (st.p_saw, st.sleeping, waker) {
                (0, _, _) => {}
                (_, 2, Waker::Checks) => n.bell = true,
                // seq += 1 and futex_wake.
                _ => n.seq += 1,
            }
            n.p_pc = 0;
            n.p_msg += 1;
        }
    }
    n
}

/// The consumer's next step (the state unchanged while it sleeps).
///
/// Blocking: 1 W1 (snapshot seq), 2 W2 (sleeping = 1), 3 W4 (re-check),
/// 4 asleep in W5 until seq differs. Async: 1 arm (sleeping = 2), 2 the
/// operation again, 3 waiting until the doorbell rings, 4 readiness
/// cleared and the eventfd drained, 5 disarm (sleeping = 0).
fn consumer_step(st: St, waiter: Waiter) -> St {
    let mut n = st;
    match (st.c_pc, waiter) {
        (0, _) if st.cached > st.tail => n.tail += 1,
        (0, _) => {
            // The operation: reload the shared head.
            n.cached = st.head;
            if st.head == st.tail && waiter != Waiter::Spins {
                n.c_pc = 1;
            }
        }
        (1, Waiter::Blocks) => {
            n.c_s = st.seq;
            n.c_pc = 2;
        }
        (2, Waiter::Blocks) => {
            n.sleeping = 1;
            n.c_pc = 3;
        }
        (3, Waiter::Blocks) => {
            n.cached = st.head;
            if st.head > st.tail {
                n.sleeping = 0;
                n.c_pc = 0;
            } else {
                n.c_pc = 4;
            }
        }
        // FUTEX_WAIT returns once seq differs from the snapshot.
        (_, Waiter::Blocks) if st.seq != st.c_s => {
            n.sleeping = 0;
            n.c_pc = 0;
        }
        (1, Waiter::Async) => {
            n.sleeping = 2;
            n.c_pc = 2;
        }
        (2, Waiter::Async) => {
            n.cached = st.head;
            if st.head > st.tail {
                n.sleeping = 0;
                n.c_pc = 0;
            } else {
                n.c_pc = 3;
            }
        }
        // The reactor reports the doorbell readable once its count is
        // nonzero.
        (3, Waiter::Async) if st.bell => n.c_pc = 4,
        (4, Waiter::Async) => {
            n.bell = false;
            n.c_pc = 5;
        }
        (5, Waiter::Async) => {
            n.sleeping = 0;
            n.c_pc = 0;
        }
        _ => {}
    }
    n
}

/// The successors of `st`.
fn next(st: St, waiter: Waiter, waker: Waker) -> Vec<St> {
    let mut out = Vec::new();
    if st.p_msg < MSGS {
        out.push(producer_step(st, waker));
    }
    if st.tail < MSGS {
        let n = consumer_step(st, waiter);
        if n != st {
            out.push(n);
        }
    }
    out
}

/// Reachable states where nothing can move and a message is unread.
fn lost(waiter: Waiter, waker: Waker) -> usize {
    let start = St::default();
    let mut seen = HashSet::from([start]);
    let mut todo = vec![start];
    let mut stuck = 0;
    while let Some(st) = todo.pop() {
        let succ = next(st, waiter, waker);
        if succ.is_empty() && st.tail < MSGS {
            stuck += 1;
        }
        for n in succ {
            if seen.insert(n) {
                todo.push(n);
            }
        }
    }
    stuck
}

/// Every reachable state of a producer publishing two messages and a
/// consumer receiving them with the real wait loop (cached head first,
/// then W1-W5), with and without the consumer's connect-time announcement
/// that it never sleeps (the producer then skips P2-P3). No state leaves
/// the consumer blocked with data unread. A producer that skips the check
/// although the consumer may sleep must be caught, which shows the model
/// can see a lost wake-up.
#[test]
fn wake_protocol_with_spin_announcement_loses_no_wakeup() {
    // wait=block|adaptive: the consumer may sleep, the producer checks.
    assert_eq!(lost(Waiter::Blocks, Waker::Checks), 0);
    // wait=spin announced: the consumer never sleeps, no check.
    assert_eq!(lost(Waiter::Spins, Waker::Skips), 0);
    // Skipping the check for a consumer that may sleep loses wake-ups.
    assert!(lost(Waiter::Blocks, Waker::Skips) > 0);
}

/// The same exploration with an async consumer: it announces 2, looks
/// once more and waits on its doorbell, which the producer rings when it
/// reads 2 after publishing. No state leaves it waiting with data unread;
/// a producer that wakes only the futex, or skips the check, is caught.
/// (A close is a publication of the same shape: the closed flag, a fence,
/// a read of `sleeping`.)
#[test]
fn wake_protocol_with_async_waiter_loses_no_wakeup() {
    assert_eq!(lost(Waiter::Async, Waker::Checks), 0);
    assert!(lost(Waiter::Async, Waker::FutexOnly) > 0);
    assert!(lost(Waiter::Async, Waker::Skips) > 0);
}

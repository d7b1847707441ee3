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
const MSGS: u8 = 2;

/// A state of the second model.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
struct St {
    head: u8,
    sleeping: bool,
    seq: u8,
    /// Producer: next step (0 P1, 1 P2, 2 P3) and message number.
    p_pc: u8,
    p_msg: u8,
    p_saw: bool,
    /// Consumer: next step (0 check cache/poll, 1 W1, 2 W2, 3 W4,
    /// 4 asleep in W5), its snapshot of seq, messages consumed and
    /// its cached head.
    c_pc: u8,
    c_s: u8,
    tail: u8,
    cached: u8,
}

/// The producer's next step; `producer_checks`: it reads the sleeping flag
/// after publishing (P2-P3) rather than skipping that.
fn producer_step(st: St, producer_checks: bool) -> St {
    let mut n = st;
    match st.p_pc {
        0 => {
            n.head += 1;
            n.p_pc = if producer_checks { 1 } else { 0 };
            if !producer_checks {
                n.p_msg += 1;
            }
        }
        1 => {
            n.p_saw = st.sleeping;
            n.p_pc = 2;
        }
        _ => {
            if st.p_saw {
                n.seq += 1;
            }
            n.p_pc = 0;
            n.p_msg += 1;
        }
    }
    n
}

/// The consumer's next step (the state unchanged while it sleeps);
/// `consumer_sleeps`: it may go to sleep rather than only poll.
fn consumer_step(st: St, consumer_sleeps: bool) -> St {
    let mut n = st;
    match st.c_pc {
        0 if st.cached > st.tail => n.tail += 1,
        0 => {
            // ready(): reload the shared head.
            n.cached = st.head;
            if st.head == st.tail && consumer_sleeps {
                n.c_pc = 1;
            }
        }
        1 => {
            n.c_s = st.seq;
            n.c_pc = 2;
        }
        2 => {
            n.sleeping = true;
            n.c_pc = 3;
        }
        3 => {
            n.cached = st.head;
            if st.head > st.tail {
                n.sleeping = false;
                n.c_pc = 0;
            } else {
                n.c_pc = 4;
            }
        }
        // FUTEX_WAIT returns once seq differs from the snapshot.
        _ if st.seq != st.c_s => {
            n.sleeping = false;
            n.c_pc = 0;
        }
        _ => {}
    }
    n
}

/// The successors of `st`.
fn next(st: St, consumer_sleeps: bool, producer_checks: bool) -> Vec<St> {
    let mut out = Vec::new();
    if st.p_msg < MSGS {
        out.push(producer_step(st, producer_checks));
    }
    if st.tail < MSGS {
        let n = consumer_step(st, consumer_sleeps);
        if n != st {
            out.push(n);
        }
    }
    out
}

/// Reachable states where nothing can move and a message is unread.
fn lost(consumer_sleeps: bool, producer_checks: bool) -> usize {
    let start = St::default();
    let mut seen = HashSet::from([start]);
    let mut todo = vec![start];
    let mut stuck = 0;
    while let Some(st) = todo.pop() {
        let succ = next(st, consumer_sleeps, producer_checks);
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
    assert_eq!(lost(true, true), 0);
    // wait=spin announced: the consumer never sleeps, no check.
    assert_eq!(lost(false, false), 0);
    // Skipping the check for a consumer that may sleep loses wake-ups.
    assert!(lost(true, false) > 0);
}

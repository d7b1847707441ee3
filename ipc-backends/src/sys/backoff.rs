//! Waits that cannot poll (a System V queue) or must not (a pipe during
//! its handshake, which a poll would mark for good): pauses that double
//! up to a ceiling, each cut short by the deadline.

use std::time::Duration;

use ipc_core::Deadline;

/// The growing pause of one wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
    most: Duration,
}

impl Backoff {
    /// Pauses from `first`, doubling up to `most`.
    pub const fn new(first: Duration, most: Duration) -> Backoff {
        Backoff { next: first, most }
    }

    /// Sets the ceiling of the pauses to come.
    pub fn set_most(&mut self, most: Duration) {
        self.most = most;
    }

    /// Sleeps the next pause (at most until `deadline`) and doubles the
    /// one after, up to the ceiling; `false`, without sleeping, once the
    /// deadline has passed (at once for [`Deadline::Now`]).
    pub fn pause(&mut self, deadline: Deadline) -> bool {
        let pause = match deadline.remaining() {
            Some(left) if left.is_zero() => return false,
            Some(left) => self.next.min(left),
            None => self.next,
        };
        std::thread::sleep(pause);
        self.next = (self.next * 2).min(self.most);
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn pauses_double_to_the_ceiling_and_stop_at_the_deadline() {
        let mut b = Backoff::new(Duration::from_millis(1), Duration::from_millis(4));
        assert!(!b.pause(Deadline::Now));
        for want in [1, 2, 4, 4] {
            assert_eq!(b.next, Duration::from_millis(want));
            assert!(b.pause(Deadline::Never));
        }
        b.set_most(Duration::from_millis(6));
        assert!(b.pause(Deadline::Never));
        assert_eq!(b.next, Duration::from_millis(6));
        let started = Instant::now();
        let deadline = Deadline::after(Duration::from_millis(20));
        while b.pause(deadline) {}
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(20) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }
}

//! Deadlines for the calls that take an absolute `CLOCK_REALTIME` time
//! (`sem_timedwait`, `pthread_mutex_timedlock`).

use std::time::Duration;

use nix::time::{ClockId, clock_gettime};

/// `CLOCK_REALTIME` now plus `timeout`, saturating far in the future.
///
/// # Errors
/// The OS error of `clock_gettime` (none expected).
pub fn realtime_after(timeout: Duration) -> nix::Result<libc::timespec> {
    let now = clock_gettime(ClockId::CLOCK_REALTIME)?;
    let mut sec = now
        .tv_sec()
        .saturating_add(timeout.as_secs().min(i64::MAX as u64 / 2) as i64);
    let mut nsec = now.tv_nsec() + i64::from(timeout.subsec_nanos());
    if nsec >= 1_000_000_000 {
        sec = sec.saturating_add(1);
        nsec -= 1_000_000_000;
    }
    Ok(libc::timespec {
        tv_sec: sec as libc::time_t,
        tv_nsec: nsec as libc::c_long,
    })
}

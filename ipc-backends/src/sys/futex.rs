//! Futexes on words in shared mappings ([futex(2)]).
//!
//! The words live in memory mapped by two processes, so the shared (not
//! `FUTEX_PRIVATE_FLAG`) operations are used: the kernel keys them by the
//! backing object and offset, not by the address in one process.
//!
//! [futex(2)]: https://man7.org/linux/man-pages/man2/futex.2.html

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use std::io;

use nix::errno::Errno;

/// Sleeps while `*word == expected`, at most `timeout`. Returns on a wake,
/// a value change, a signal or the timeout alike: the caller re-checks its
/// condition in every case.
///
/// # Errors
/// OS errors other than `EAGAIN`, `EINTR`, `ETIMEDOUT`.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `word` is a live, aligned 4-byte atomic for the whole call
    // (borrowed); FUTEX_WAIT reads it and never writes; `ts` is a valid
    // timespec on our stack; the unused uaddr2/val3 arguments are null/0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    match Errno::result(r) {
        Ok(_) | Err(Errno::EAGAIN | Errno::EINTR | Errno::ETIMEDOUT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Wakes every waiter sleeping on `word`.
pub fn wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 4-byte atomic; FUTEX_WAKE only uses
    // its address as a key and touches no memory; the timeout, uaddr2 and
    // val3 arguments are ignored for this operation.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    #[test]
    fn wait_returns_on_change_and_timeout() {
        let w = AtomicU32::new(1);
        wait(&w, 0, Duration::from_secs(5)).unwrap(); // value differs: at once
        wait(&w, 1, Duration::from_millis(1)).unwrap(); // times out
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            while w2.load(Ordering::SeqCst) == 0 {
                wait(&w2, 0, Duration::from_millis(50)).unwrap();
            }
        });
        w.store(1, Ordering::SeqCst);
        wake_all(&w);
        t.join().unwrap();
    }
}

//! The hot paths of `ipcx::sync` and `ipcx::shared`, each beside the raw
//! libc calls it wraps, one at a time: a small program to count
//! instructions with, where wall-clock time is too noisy.
//!
//! ```text
//! cargo build --release --example sync_hot_paths
//! B=target/release/examples/sync_hot_paths
//! for op in mutex raw-mutex sem raw-sem sysv-sem raw-sysv-sem \
//!           read64 raw-read64 read4k read4k-into raw-read4k raw-read4k-value; do
//!   for n in 0 20000; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $op $n 2>&1 |
//!       grep -o 'refs: *[0-9,]*' | tr -d ', ' | sed "s/^/$op $n /"
//!   done
//! done
//! ```
//!
//! (instructions at `n` minus instructions at 0) / `n` is the cost of one
//! operation pair: lock+unlock, wait+post, or one read. Every object made
//! is removed before the program ends.

use std::sync::atomic::{AtomicU64, Ordering, fence};

use ipcx::shared::Region;
use ipcx::sync::{Mutex, Semaphore};
use ipcx::{Endpoint, IpcMessage};

#[derive(IpcMessage, Clone, Copy, Debug, Default)]
#[ipc(zero_copy, name = "example.Small")]
#[repr(C)]
struct Small {
    words: [u64; 8],
}

#[derive(IpcMessage, Clone, Copy, Debug)]
#[ipc(zero_copy, name = "example.Page")]
#[repr(C)]
struct Page {
    words: [u64; 512],
}

fn ep(scheme: &str) -> Endpoint {
    let pid = std::process::id();
    let s = match scheme {
        "sysv-sem" => format!(
            "sysv-sem:{}/ipcx-hot-{pid}.key",
            std::env::temp_dir().display()
        ),
        _ => format!("{scheme}:/ipcx-hot-{pid}"),
    };
    s.parse().expect("endpoint")
}

/// A private anonymous shared mapping of `len` zeroed bytes (never
/// unmapped: the program ends right after).
fn anon(len: usize) -> *mut u8 {
    // SAFETY: an anonymous mapping takes no fd; the result is checked.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED, "mmap");
    p.cast()
}

fn raw_mutex(n: u64) {
    let m = anon(4096).cast::<libc::pthread_mutex_t>();
    // SAFETY: `m` is page-aligned, zeroed, large enough for a mutex; the
    // attribute lives on the stack for the init.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        libc::pthread_mutexattr_settype(&mut attr, libc::PTHREAD_MUTEX_ERRORCHECK);
        libc::pthread_mutex_init(m, &attr);
        libc::pthread_mutexattr_destroy(&mut attr);
    }
    for _ in 0..n {
        // SAFETY: initialised above, mapped for the program's life.
        unsafe {
            if libc::pthread_mutex_lock(m) == libc::EOWNERDEAD {
                libc::pthread_mutex_consistent(m);
            }
            libc::pthread_mutex_unlock(m);
        }
    }
}

/// One consistent copy of the `out.len()` words at `data`, guarded by
/// `seq`: the hand-written seqlock read of both raw baselines.
#[inline(always)]
fn seq_read(seq: &AtomicU64, data: *mut u64, out: &mut [u64]) {
    loop {
        let s = seq.load(Ordering::Acquire);
        if s % 2 == 1 {
            continue;
        }
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: word `i` is in the mapping, 8-aligned.
            *o = unsafe { AtomicU64::from_ptr(data.add(i)) }.load(Ordering::Relaxed);
        }
        fence(Ordering::Acquire);
        if seq.load(Ordering::Relaxed) == s {
            return;
        }
    }
}

fn raw_seqlock(n: u64, words: usize) {
    let base = anon(64 + words * 8);
    // SAFETY: the mapping is page-aligned: its first word is the sequence.
    let seq = unsafe { AtomicU64::from_ptr(base.cast()) };
    let data = base.wrapping_add(64).cast::<u64>();
    let mut out = vec![0u64; words];
    for _ in 0..n {
        seq_read(seq, data, &mut out);
        std::hint::black_box(&out);
    }
}

/// The raw seqlock read returning the 4 KiB by value, as `Region::read`
/// does: the hand-written counterpart of `read`, as `raw_seqlock` is of
/// `read_into`.
fn raw_seqlock_value(n: u64) {
    let base = anon(64 + 4096);
    // SAFETY: the mapping is page-aligned: its first word is the sequence.
    let seq = unsafe { AtomicU64::from_ptr(base.cast()) };
    let data = base.wrapping_add(64).cast::<u64>();
    let read = || -> [u64; 512] {
        let mut out = [0u64; 512];
        seq_read(seq, data, &mut out);
        out
    };
    for _ in 0..n {
        let v = read();
        std::hint::black_box(&v);
    }
}

fn main() -> ipcx::Result<()> {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    match op.as_str() {
        "mutex" => {
            let m = Mutex::create(&ep("shm"))?;
            for _ in 0..n {
                drop(m.lock()?.unwrap_or_else(|died| died.into_inner()));
            }
            m.remove()?;
        }
        "raw-mutex" => raw_mutex(n),
        "sem" | "sysv-sem" => {
            let e = ep(&op);
            let s = Semaphore::create(&e, 1)?;
            for _ in 0..n {
                s.wait()?;
                s.post()?;
            }
            s.remove()?;
            if op == "sysv-sem" {
                let _ = std::fs::remove_file(e.address());
            }
        }
        "raw-sem" => {
            let name = c"/ipcx-hot-raw";
            // SAFETY: variadic sem_open with mode and value as sem_open(3)
            // says; the name is removed at once.
            let sem =
                unsafe { libc::sem_open(name.as_ptr(), libc::O_CREAT, 0o600 as libc::c_uint, 1) };
            assert_ne!(sem, libc::SEM_FAILED, "sem_open");
            // SAFETY: a NUL-terminated name.
            unsafe { libc::sem_unlink(name.as_ptr()) };
            for _ in 0..n {
                // SAFETY: `sem` is open for the program's life.
                unsafe {
                    while libc::sem_wait(sem) != 0 {}
                    libc::sem_post(sem);
                }
            }
        }
        "raw-sysv-sem" => {
            // SAFETY: plain System V calls; the set is removed at the end.
            let id = unsafe { libc::semget(libc::IPC_PRIVATE, 1, libc::IPC_CREAT | 0o600) };
            assert!(id >= 0, "semget");
            // SAFETY: SETVAL takes an int by value.
            unsafe { libc::semctl(id, 0, libc::SETVAL, 1) };
            let flg = libc::SEM_UNDO as libc::c_short;
            for _ in 0..n {
                let mut down = libc::sembuf {
                    sem_num: 0,
                    sem_op: -1,
                    sem_flg: flg,
                };
                let mut up = libc::sembuf {
                    sem_num: 0,
                    sem_op: 1,
                    sem_flg: flg,
                };
                // SAFETY: one valid sembuf each; the set exists.
                unsafe {
                    while libc::semop(id, &mut down, 1) != 0 {}
                    libc::semop(id, &mut up, 1);
                }
            }
            // SAFETY: IPC_RMID reads no variadic argument.
            unsafe { libc::semctl(id, 0, libc::IPC_RMID) };
        }
        "read64" => {
            let r = Region::create(&ep("shm"), Small::default())?;
            for _ in 0..n {
                let v = r.read();
                std::hint::black_box(&v);
                v?;
            }
            r.remove()?;
        }
        "read4k" => {
            let r = Region::create(&ep("shm"), Page { words: [0; 512] })?;
            for _ in 0..n {
                let v = r.read();
                std::hint::black_box(&v);
                v?;
            }
            r.remove()?;
        }
        "read4k-into" => {
            let r = Region::create(&ep("shm"), Page { words: [0; 512] })?;
            let mut out = Page { words: [0; 512] };
            for _ in 0..n {
                r.read_into(&mut out)?;
                std::hint::black_box(&out);
            }
            r.remove()?;
        }
        "raw-read64" => raw_seqlock(n, 8),
        "raw-read4k" => raw_seqlock(n, 512),
        "raw-read4k-value" => raw_seqlock_value(n),
        _ => {
            eprintln!(
                "usage: sync_hot_paths mutex|raw-mutex|sem|raw-sem|sysv-sem|raw-sysv-sem|read64|raw-read64|read4k|read4k-into|raw-read4k|raw-read4k-value [N]"
            );
            std::process::exit(2);
        }
    }
    Ok(())
}

//! `ipcx bench --sync`: the synchronisation primitives and shared state
//! beside hand-written libc baselines ([`raw::sync`](super::raw::sync)),
//! in the same run.
//!
//! Uncontended rows time one process doing an operation pair in a loop
//! (`Mutex` lock and unlock, `Semaphore` wait and post, `Region::read`);
//! the contended row times two processes (the parent and a forked child)
//! handing one mutex to each other: each locks, and takes its turn when a
//! counter beside the lock says so. Each figure is
//! the median of [`ROUNDS`] rounds; in each round ipcx and raw run one
//! batch each, alternating which goes first, so drift in clock speed or
//! load hits both alike. Figures are ns per operation pair (per
//! acquisition for the contended row).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcx::shared::Region;
use ipcx::sync::{Mutex, Semaphore};
use ipcx::{Endpoint, IpcMessage};
use serde_json::{Value, json};

use super::raw::sync::{RawMutex, RawPosixSem, RawSeqlock, RawShm, RawSysvSem};

/// Rounds per figure; the median is reported.
pub const ROUNDS: usize = 9;

/// One sync row: ipcx and raw, ns per operation.
#[derive(Debug, Clone)]
pub struct SyncRow {
    /// What ipcx does, e.g. `Mutex lock+unlock (shm:)`.
    pub what: String,
    /// What the baseline does, e.g. `pthread_mutex_lock+unlock`.
    pub baseline: &'static str,
    /// Median ns per operation, ipcx.
    pub ipcx_ns: f64,
    /// Median ns per operation, raw.
    pub raw_ns: f64,
    /// Operations per batch.
    pub iters: u64,
}

impl SyncRow {
    /// ipcx / raw (lower is better).
    pub fn ratio(&self) -> f64 {
        self.ipcx_ns / self.raw_ns
    }
}

#[derive(IpcMessage, Clone, Copy, Debug, Default)]
#[ipc(zero_copy, name = "ipcx.bench.Small")]
#[repr(C)]
struct Small {
    words: [u64; 8],
}

#[derive(IpcMessage, Clone, Copy, Debug)]
#[ipc(zero_copy, name = "ipcx.bench.Page")]
#[repr(C)]
struct Page {
    words: [u64; 512],
}

fn unique_ep(scheme: &str, kind: &str) -> Result<Endpoint, String> {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let s = match scheme {
        "sysv-sem" => format!(
            "sysv-sem:{}/ipcx-bench-{kind}-{}-{n}.key",
            std::env::temp_dir().display(),
            std::process::id()
        ),
        _ => format!("{scheme}:/ipcx-bench-{kind}-{}-{n}", std::process::id()),
    };
    s.parse().map_err(|e| format!("{s}: {e}"))
}

/// A batch runner: does the operation `n` times.
type Batch<'a> = dyn FnMut(u64) -> Result<(), String> + 'a;

fn time(f: &mut Batch<'_>, n: u64) -> Result<f64, String> {
    let t = Instant::now();
    f(n)?;
    Ok(t.elapsed().as_nanos() as f64 / n as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Iterations per batch so that one batch takes about `per_batch`.
fn calibrate(f: &mut Batch<'_>, per_batch: Duration) -> Result<u64, String> {
    let mut n = 64u64;
    loop {
        let t = Instant::now();
        f(n)?;
        let e = t.elapsed();
        if e >= Duration::from_millis(2) || n >= 1 << 26 {
            let per_op = e.as_nanos() as f64 / n as f64;
            return Ok(((per_batch.as_nanos() as f64 / per_op.max(1.0)) as u64).max(100));
        }
        n *= 4;
    }
}

/// Interleaved rounds of `ipcx` and `raw`; medians of ns per operation.
fn interleaved(
    budget: Duration,
    ipcx: &mut Batch<'_>,
    raw: &mut Batch<'_>,
) -> Result<(f64, f64, u64), String> {
    let per_batch = budget / (2 * ROUNDS as u32);
    let n = calibrate(ipcx, per_batch)?.min(calibrate(raw, per_batch)?);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            a.push(time(ipcx, n)?);
            b.push(time(raw, n)?);
        } else {
            b.push(time(raw, n)?);
            a.push(time(ipcx, n)?);
        }
    }
    Ok((median(a), median(b), n))
}

/// A strict hand-off between this process and a forked child (both
/// released together through a flag in shared memory): each takes the
/// lock with `locked`, and when the turn counter beside the lock says it
/// is its turn, advances it, else yields the CPU; `n` turns each. ns per
/// hand-off.
fn two_processes(n: u64, locked: &dyn Fn(&mut dyn FnMut())) -> Result<f64, String> {
    let flags = RawShm::new(4096)?;
    // SAFETY: the page-aligned mapping holds three u32 words and lives
    // until both processes are done with them.
    let word = |i: usize| unsafe { AtomicU32::from_ptr(flags.ptr().cast::<u32>().add(i)) };
    let (ready, go, turn) = (word(0), word(1), word(2));
    let play = |me: u32| {
        let mut done = 0;
        while done < n {
            let mut mine = false;
            locked(&mut || {
                let t = turn.load(Ordering::Relaxed);
                if t % 2 == me {
                    turn.store(t + 1, Ordering::Relaxed);
                    done += 1;
                    mine = true;
                }
            });
            // Not our turn: let the peer run rather than take the lock
            // again at once (on a busy machine that starves the peer, woken
            // to find the lock taken, until the time slice ends: a minute
            // a round at load 13).
            if !mine {
                std::thread::yield_now();
            }
        }
    };
    // SAFETY: the benchmark runs no other threads; the child only spins on
    // atomics, takes the lock and leaves with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        ready.store(1, Ordering::Release);
        while go.load(Ordering::Acquire) == 0 {
            std::hint::spin_loop();
        }
        play(1);
        // SAFETY: leave without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    while ready.load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let t = Instant::now();
    go.store(1, Ordering::Release);
    play(0);
    let mut status = 0;
    // SAFETY: the child forked above.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let ns = t.elapsed().as_nanos() as f64 / (2 * n) as f64;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!(
            "contended benchmark child failed (status {status})"
        ));
    }
    Ok(ns)
}

fn lock_unlock(m: &Mutex) -> Result<(), String> {
    let g = m.lock().map_err(|e| e.to_string())?;
    drop(g.unwrap_or_else(|died| died.into_inner()));
    Ok(())
}

fn row(
    what: &str,
    baseline: &'static str,
    budget: Duration,
    ipcx: &mut Batch<'_>,
    raw: &mut Batch<'_>,
) -> Result<SyncRow, String> {
    let (ipcx_ns, raw_ns, iters) = interleaved(budget, ipcx, raw)?;
    Ok(SyncRow {
        what: what.to_string(),
        baseline,
        ipcx_ns,
        raw_ns,
        iters,
    })
}

/// Measures every sync row; `progress` gets one line per row. Every object
/// made is removed before returning, whatever happens.
///
/// # Errors
/// The primitive and the step that failed.
pub fn run(budget: Duration, progress: &mut dyn FnMut(&str)) -> Result<Vec<SyncRow>, String> {
    let mut rows = Vec::new();
    let mut push = |r: SyncRow, rows: &mut Vec<SyncRow>| {
        progress(&format!(
            "[sync] {:<34} ipcx {:>9} raw {:>9} ratio {:.2}",
            r.what,
            super::human_ns(r.ipcx_ns),
            super::human_ns(r.raw_ns),
            r.ratio()
        ));
        rows.push(r);
    };
    let e = |e: ipcx::Error| e.to_string();

    // Mutex, uncontended.
    let ep = unique_ep("shm", "mutex")?;
    let m = Mutex::create(&ep).map_err(e)?;
    let raw_m = RawMutex::new()?;
    let r = row(
        "Mutex lock+unlock (shm:)",
        "pthread_mutex_lock+unlock (robust, pshared)",
        budget,
        &mut |n| (0..n).try_for_each(|_| lock_unlock(&m)),
        &mut |n| {
            (0..n).for_each(|_| raw_m.lock_unlock());
            Ok(())
        },
    );
    // Contended: two processes on one mutex.
    let contended = r.and_then(|r| {
        push(r, &mut rows);
        let per = budget / (2 * ROUNDS as u32);
        // About 2 µs a hand-off across cores; fewer when they share one.
        let n = (per.as_nanos() / 2000).clamp(500, 1 << 20) as u64;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let ipcx = |cs: &mut dyn FnMut()| {
            if let Ok(g) = m.lock() {
                let g = g.unwrap_or_else(|died| died.into_inner());
                cs();
                drop(g);
            }
        };
        let raw = |cs: &mut dyn FnMut()| raw_m.locked(cs);
        for round in 0..ROUNDS {
            if round % 2 == 0 {
                a.push(two_processes(n, &ipcx)?);
                b.push(two_processes(n, &raw)?);
            } else {
                b.push(two_processes(n, &raw)?);
                a.push(two_processes(n, &ipcx)?);
            }
        }
        Ok(SyncRow {
            what: "Mutex hand-off, 2 processes".into(),
            baseline: "pthread_mutex hand-off, 2 processes",
            ipcx_ns: median(a),
            raw_ns: median(b),
            iters: n,
        })
    });
    let _ = m.remove();
    push(contended?, &mut rows);

    // Semaphores.
    let ep = unique_ep("sem", "sem")?;
    let s = Semaphore::create(&ep, 1).map_err(e)?;
    let raw_s = RawPosixSem::new(1)?;
    let r = row(
        "Semaphore wait+post (sem:)",
        "sem_wait+sem_post",
        budget,
        &mut |n| {
            (0..n).try_for_each(|_| s.wait().and_then(|()| s.post()).map_err(|e| e.to_string()))
        },
        &mut |n| {
            (0..n).for_each(|_| raw_s.wait_post());
            Ok(())
        },
    );
    let _ = s.remove();
    push(r?, &mut rows);

    let ep = unique_ep("sysv-sem", "sem")?;
    let s = Semaphore::create(&ep, 1).map_err(e)?;
    let raw_s = RawSysvSem::new(1)?;
    let r = row(
        "Semaphore wait+post (sysv-sem:)",
        "semop(-1)+semop(+1), SEM_UNDO",
        budget,
        &mut |n| {
            (0..n).try_for_each(|_| s.wait().and_then(|()| s.post()).map_err(|e| e.to_string()))
        },
        &mut |n| {
            (0..n).for_each(|_| raw_s.wait_post());
            Ok(())
        },
    );
    let _ = s.remove();
    let _ = std::fs::remove_file(ep.address());
    push(r?, &mut rows);

    // Region reads.
    let ep = unique_ep("shm", "region")?;
    let region = Region::create(&ep, Small::default()).map_err(e)?;
    let raw_r = RawSeqlock::new(64)?;
    let mut out = [0u64; 8];
    let r = row(
        "Region::read, 64 B",
        "seqlock read, 64 B",
        budget,
        &mut |n| {
            (0..n).try_for_each(|_| {
                let v = region.read();
                std::hint::black_box(&v);
                v.map(drop).map_err(|e| e.to_string())
            })
        },
        &mut |n| {
            for _ in 0..n {
                raw_r.read(&mut out);
                std::hint::black_box(&out);
            }
            Ok(())
        },
    );
    let _ = region.remove();
    push(r?, &mut rows);

    let ep = unique_ep("shm", "region")?;
    let region = Region::create(&ep, Page { words: [0; 512] }).map_err(e)?;
    let raw_r = RawSeqlock::new(4096)?;
    let mut out = vec![0u64; 512];
    let r = row(
        "Region::read, 4 KiB",
        "seqlock read, 4 KiB",
        budget,
        &mut |n| {
            (0..n).try_for_each(|_| {
                let v = region.read();
                std::hint::black_box(&v);
                v.map(drop).map_err(|e| e.to_string())
            })
        },
        &mut |n| {
            for _ in 0..n {
                raw_r.read(&mut out);
                std::hint::black_box(&out);
            }
            Ok(())
        },
    );
    let r = r.and_then(|r| {
        push(r, &mut rows);
        let mut page = Page { words: [0; 512] };
        row(
            "Region::read_into, 4 KiB",
            "seqlock read, 4 KiB",
            budget,
            &mut |n| {
                (0..n).try_for_each(|_| {
                    region.read_into(&mut page).map_err(|e| e.to_string())?;
                    std::hint::black_box(&page);
                    Ok(())
                })
            },
            &mut |n| {
                for _ in 0..n {
                    raw_r.read(&mut out);
                    std::hint::black_box(&out);
                }
                Ok(())
            },
        )
    });
    let _ = region.remove();
    push(r?, &mut rows);
    Ok(rows)
}

/// The sync rows as a text table.
pub fn table(rows: &[SyncRow]) -> String {
    let mut out = format!(
        "{:<34} {:>10} | {:<44} {:>10} | {:>6}\n",
        "sync primitive", "ns/op", "raw baseline", "raw ns/op", "ratio"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<34} {:>10.1} | {:<44} {:>10.1} | {:>5.2}x\n",
            r.what,
            r.ipcx_ns,
            r.baseline,
            r.raw_ns,
            r.ratio()
        ));
    }
    out.push_str(&format!(
        "sync ratio = ipcx ns / raw ns per operation (lower is better); median of {ROUNDS} interleaved rounds; hand-off: two processes taking turns, ns per turn\n"
    ));
    out
}

/// The sync rows as JSON.
pub fn json(rows: &[SyncRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "primitive": r.what,
                    "baseline": r.baseline,
                    "ipcx_ns_per_op": r.ipcx_ns,
                    "raw_ns_per_op": r.raw_ns,
                    "ratio": r.ratio(),
                    "iters_per_round": r.iters,
                    "rounds": ROUNDS,
                })
            })
            .collect(),
    )
}

//! `ipcx bench --sync`: the synchronisation primitives and shared state
//! beside hand-written libc baselines ([`raw::sync`](super::raw::sync)),
//! in the same run.
//!
//! Uncontended rows time one process doing an operation pair in a loop
//! (`Mutex` lock and unlock, `Semaphore` wait and post, `Region::read`);
//! the contended row times two processes (the parent and a forked child)
//! handing one mutex to each other: each locks, and takes its turn when a
//! counter beside the lock says so. Each figure is measured in `--repeat`
//! rounds (default [`stats::REPEAT`]); in each round ipcx and raw run one
//! batch each (of about `--budget-ms`, 60 ms by default), alternating
//! which goes first ([`stats::interleave`]), so drift in clock speed or
//! load hits both alike. Figures are the medians of ns per operation pair
//! (per acquisition for the contended row); the ratio is the median of the
//! per-round ratios with its range, marked unstable as the transport
//! rows' are.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcx::shared::Region;
use ipcx::sync::{Mutex, Semaphore};
use ipcx::{Endpoint, IpcMessage};
use serde_json::{Value, json};

use super::raw::sync::{RawMutex, RawPosixSem, RawSeqlock, RawShm, RawSysvSem};
use super::stats::{self, Spread};

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
    /// Every round's ns per operation, ipcx and raw, in the order measured.
    pub rounds: Vec<(f64, f64)>,
}

impl SyncRow {
    fn new(what: &str, baseline: &'static str, iters: u64, rounds: Vec<(f64, f64)>) -> SyncRow {
        SyncRow {
            what: what.to_string(),
            baseline,
            ipcx_ns: stats::median(rounds.iter().map(|r| r.0)).unwrap_or(0.0),
            raw_ns: stats::median(rounds.iter().map(|r| r.1)).unwrap_or(0.0),
            iters,
            rounds,
        }
    }

    /// ipcx / raw per round (lower is better): median, range, whether
    /// unstable.
    pub fn spread(&self) -> Spread {
        Spread::of(self.rounds.iter().map(|(a, b)| a / b)).unwrap_or(Spread {
            median: self.ipcx_ns / self.raw_ns,
            min: self.ipcx_ns / self.raw_ns,
            max: self.ipcx_ns / self.raw_ns,
            n: 1,
        })
    }

    /// The median of the per-round ratios ipcx / raw (lower is better).
    pub fn ratio(&self) -> f64 {
        self.spread().median
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

/// `repeat` interleaved rounds of `ipcx` and `raw`, each a batch of about
/// `per_batch`: every round's ns per operation, and the batch size.
fn interleaved(
    per_batch: Duration,
    repeat: usize,
    ipcx: &mut Batch<'_>,
    raw: &mut Batch<'_>,
) -> Result<(Vec<(f64, f64)>, u64), String> {
    let n = calibrate(ipcx, per_batch)?.min(calibrate(raw, per_batch)?);
    let rounds = stats::interleave(repeat, || time(ipcx, n), || time(raw, n))?;
    Ok((rounds, n))
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

/// How long a batch runs and how many rounds a figure gets.
#[derive(Clone, Copy)]
struct Plan {
    per_batch: Duration,
    repeat: usize,
}

fn row(
    what: &str,
    baseline: &'static str,
    plan: Plan,
    ipcx: &mut Batch<'_>,
    raw: &mut Batch<'_>,
) -> Result<SyncRow, String> {
    let (rounds, iters) = interleaved(plan.per_batch, plan.repeat, ipcx, raw)?;
    Ok(SyncRow::new(what, baseline, iters, rounds))
}

/// Measures every sync row, each in `repeat` rounds of one batch of about
/// `per_batch` for ipcx and one for raw; `progress` gets one line per
/// row. Every object made is removed before returning, whatever happens.
///
/// # Errors
/// The primitive and the step that failed.
pub fn run(
    per_batch: Duration,
    repeat: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<SyncRow>, String> {
    let plan = Plan {
        per_batch,
        repeat: repeat.max(1),
    };
    let mut rows = Vec::new();
    let mut push = |r: SyncRow, rows: &mut Vec<SyncRow>| {
        progress(&format!(
            "[sync] {:<34} ipcx {:>9} raw {:>9} ratio {}",
            r.what,
            super::human_ns(r.ipcx_ns),
            super::human_ns(r.raw_ns),
            r.spread().show_ratio()
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
        plan,
        &mut |n| (0..n).try_for_each(|_| lock_unlock(&m)),
        &mut |n| {
            (0..n).for_each(|_| raw_m.lock_unlock());
            Ok(())
        },
    );
    // Contended: two processes on one mutex.
    let contended = r.and_then(|r| {
        push(r, &mut rows);
        // About 2 µs a hand-off across cores; fewer when they share one.
        let n = (plan.per_batch.as_nanos() / 2000).clamp(500, 1 << 20) as u64;
        let ipcx = |cs: &mut dyn FnMut()| {
            if let Ok(g) = m.lock() {
                let g = g.unwrap_or_else(|died| died.into_inner());
                cs();
                drop(g);
            }
        };
        let raw = |cs: &mut dyn FnMut()| raw_m.locked(cs);
        let rounds = stats::interleave(
            plan.repeat,
            || two_processes(n, &ipcx),
            || two_processes(n, &raw),
        )?;
        Ok(SyncRow::new(
            "Mutex hand-off, 2 processes",
            "pthread_mutex hand-off, 2 processes",
            n,
            rounds,
        ))
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
        plan,
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
        plan,
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
    let r = row(
        "Region::read, 64 B",
        "seqlock read by value, 64 B",
        plan,
        &mut |n| {
            (0..n).try_for_each(|_| {
                let v = region.read();
                std::hint::black_box(&v);
                v.map(drop).map_err(|e| e.to_string())
            })
        },
        &mut |n| {
            for _ in 0..n {
                let v = raw_r.read_value::<8>();
                std::hint::black_box(&v);
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
    // By value beside by value, into a buffer beside into a buffer: a
    // 4 KiB value returned is one more pass over it for either side (a
    // `memcpy` whose speed depends on where the two copies lie).
    let r = row(
        "Region::read, 4 KiB",
        "seqlock read by value, 4 KiB",
        plan,
        &mut |n| {
            (0..n).try_for_each(|_| {
                let v = region.read();
                std::hint::black_box(&v);
                v.map(drop).map_err(|e| e.to_string())
            })
        },
        &mut |n| {
            for _ in 0..n {
                let v = raw_r.read_value::<512>();
                std::hint::black_box(&v);
            }
            Ok(())
        },
    );
    let r = r.and_then(|r| {
        push(r, &mut rows);
        let mut page = Page { words: [0; 512] };
        row(
            "Region::read_into, 4 KiB",
            "seqlock read into a buffer, 4 KiB",
            plan,
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
        "{:<34} {:>10} | {:<44} {:>10} | {}\n",
        "sync primitive", "ns/op", "raw baseline", "raw ns/op", "ratio [min-max]"
    );
    for r in rows {
        let line = format!(
            "{:<34} {:>10.1} | {:<44} {:>10.1} | {}",
            r.what,
            r.ipcx_ns,
            r.baseline,
            r.raw_ns,
            r.spread().show_ratio()
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let rounds = rows.iter().map(|r| r.rounds.len()).max().unwrap_or(1);
    out.push_str(&format!(
        "sync ratio = ipcx ns / raw ns per operation (lower is better); figures: median of {rounds} interleaved rounds; ratio: median [min-max] of the per-round ratios; {} = unstable (a round more than ±{:.0} % from the median); hand-off: two processes taking turns, ns per turn\n",
        stats::MARK,
        stats::UNSTABLE * 100.0
    ));
    out
}

/// The sync rows as JSON.
pub fn json(rows: &[SyncRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                let spread = r.spread();
                json!({
                    "primitive": r.what,
                    "baseline": r.baseline,
                    "ipcx_ns_per_op": r.ipcx_ns,
                    "raw_ns_per_op": r.raw_ns,
                    "ratio": spread.median,
                    "ratio_spread": spread.json(),
                    "unstable": spread.unstable(),
                    "iters_per_round": r.iters,
                    "rounds": r.rounds.iter().map(|(a, b)| json!({
                        "ipcx_ns_per_op": a,
                        "raw_ns_per_op": b,
                        "ratio": a / b,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

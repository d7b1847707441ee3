//! `ipcx bench --queues`: standalone-queue throughput with 4 producer and
//! 4 consumer processes on one queue, `queue(mq)` and `queue(sysv-mq)`,
//! beside raw `mq_send`/`mq_receive` and `msgsnd`/`msgrcv` loops run by 4 +
//! 4 processes on one queue of the same kernel and size, in the same run.
//!
//! One round: this process makes the queue, forks the 8 processes (each
//! opens the queue — ipcx: a `ByteProducer` or `ByteConsumer` of its own —
//! and waits for the start flag), starts the clock, releases them; each
//! producer sends `n` messages and exits; when all have exited, this
//! process sends one empty message per consumer, which stops it; the
//! clock stops when the last consumer has exited. The consumers count
//! what they received in shared memory: a round that lost or duplicated a
//! message fails. ipcx and raw rounds alternate (which goes first too), and
//! each figure is the median of [`ROUNDS`]. Figures are messages per
//! second, all producers together.
//!
//! Queues: POSIX `min(10, msg_max)` messages deep (the kernel's default
//! for unprivileged users), System V the kernel's `msgmnb` bytes; the
//! message is the payload (raw) or the 16-byte ipcx header and the payload
//! (ipcx), so a System V queue holds slightly fewer ipcx messages.

use std::ffi::CString;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipcx::Endpoint;
use ipcx::queue::{self, ByteConsumer, ByteProducer, Open};
use serde_json::{Value, json};

use super::raw::sync::RawShm;

/// Producer processes per round.
pub const PRODUCERS: usize = 4;
/// Consumer processes per round.
pub const CONSUMERS: usize = 4;
/// Rounds per figure; the median is reported.
pub const ROUNDS: usize = 5;

/// One row: a queue kind and size, ipcx and raw throughput.
#[derive(Debug, Clone)]
pub struct FanRow {
    /// `queue(mq)` or `queue(sysv-mq)`.
    pub transport: &'static str,
    /// Payload bytes per message.
    pub size: usize,
    /// Median messages per second through ipcx.
    pub ipcx_mps: f64,
    /// Median messages per second, raw.
    pub raw_mps: f64,
    /// Messages per round (all producers).
    pub messages: u64,
}

impl FanRow {
    /// ipcx / raw throughput (higher is better; the goal is ≥ 0.9).
    pub fn ratio(&self) -> f64 {
        self.ipcx_mps / self.raw_mps
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Posix,
    Sysv,
}

/// What one round runs on.
enum Side {
    Ipcx(Box<Endpoint>),
    RawMq(String),
    RawSysv(i32),
}

fn os(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn limit(path: &str, default: usize) -> usize {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

fn depth() -> usize {
    limit("/proc/sys/fs/mqueue/msg_max", 10).min(10)
}

/// Makes the queue of one round; `remove` undoes it.
fn make(kernel: Kernel, ipcx: bool, size: usize) -> Result<Side, String> {
    let name = super::raw::unique("fan");
    match (kernel, ipcx) {
        (Kernel::Posix, true) => {
            let ep: Endpoint = format!(
                "mq:/{name}?pattern=queue&max_message_size={size}&capacity={}",
                depth()
            )
            .parse()
            .map_err(|e: ipcx::EndpointError| e.to_string())?;
            drop(ByteProducer::create(&ep).map_err(|e| e.to_string())?);
            Ok(Side::Ipcx(Box::new(ep)))
        }
        (Kernel::Sysv, true) => {
            let path = std::env::temp_dir().join(name);
            let ep: Endpoint = format!(
                "sysv-mq:{}?pattern=queue&max_message_size={size}",
                path.display()
            )
            .parse()
            .map_err(|e: ipcx::EndpointError| e.to_string())?;
            drop(ByteProducer::create(&ep).map_err(|e| e.to_string())?);
            Ok(Side::Ipcx(Box::new(ep)))
        }
        (Kernel::Posix, false) => {
            let c = CString::new(format!("/{name}")).map_err(|e| e.to_string())?;
            let mut attr: libc::mq_attr = unsafe_zeroed_attr();
            attr.mq_maxmsg = depth() as libc::c_long;
            attr.mq_msgsize = size.max(1) as libc::c_long;
            // SAFETY: `c` is a valid C string; for O_CREAT the variadic
            // arguments are the mode and a pointer to a live mq_attr.
            let q = unsafe {
                libc::mq_open(
                    c.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                    0o600 as libc::mode_t,
                    &attr as *const libc::mq_attr,
                )
            };
            if q < 0 {
                return Err(os("mq_open"));
            }
            // SAFETY: the descriptor just opened; children open their own.
            unsafe { libc::mq_close(q) };
            Ok(Side::RawMq(format!("/{name}")))
        }
        (Kernel::Sysv, false) => {
            // SAFETY: msgget takes values only.
            let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
            if id < 0 {
                return Err(os("msgget"));
            }
            Ok(Side::RawSysv(id))
        }
    }
}

fn unsafe_zeroed_attr() -> libc::mq_attr {
    // SAFETY: mq_attr is plain integers; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

fn remove(side: &Side) {
    match side {
        Side::Ipcx(ep) => {
            let _ = queue::remove(ep);
            if ep.scheme() == ipcx::Scheme::SysvMq {
                let _ = std::fs::remove_file(ep.address());
            }
        }
        Side::RawMq(name) => {
            if let Ok(c) = CString::new(name.as_str()) {
                // SAFETY: a valid C string.
                unsafe { libc::mq_unlink(c.as_ptr()) };
            }
        }
        Side::RawSysv(id) => {
            // SAFETY: IPC_RMID reads no variadic argument.
            unsafe { libc::msgctl(*id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
    }
}

/// One process's end of a round's queue.
enum End {
    IpcxTx(ByteProducer),
    IpcxRx(ByteConsumer),
    Mq(libc::mqd_t, Vec<u8>),
    Sysv(i32, Vec<libc::c_long>),
}

const LONG: usize = size_of::<libc::c_long>();

impl End {
    fn open(side: &Side, producer: bool, size: usize) -> Result<End, String> {
        Ok(match side {
            Side::Ipcx(ep) if producer => End::IpcxTx(
                ByteProducer::open_with(ep, Open::Existing, ipcx::TypeTag::BYTES, None)
                    .map_err(|e| e.to_string())?,
            ),
            Side::Ipcx(ep) => End::IpcxRx(
                ByteConsumer::open_with(ep, Open::Existing, ipcx::TypeTag::BYTES)
                    .map_err(|e| e.to_string())?,
            ),
            Side::RawMq(name) => {
                let c = CString::new(name.as_str()).map_err(|e| e.to_string())?;
                // SAFETY: a valid C string; no O_CREAT, no variadic
                // argument read.
                let q = unsafe { libc::mq_open(c.as_ptr(), libc::O_RDWR) };
                if q < 0 {
                    return Err(os("mq_open"));
                }
                End::Mq(q, vec![0u8; size.max(1)])
            }
            Side::RawSysv(id) => End::Sysv(*id, vec![1; 1 + size.div_ceil(LONG)]),
        })
    }

    /// Sends one message of `len` bytes (0: the stop message).
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        match self {
            End::IpcxTx(p) => p.send(msg).map_err(|e| e.to_string()),
            End::IpcxRx(_) => Err("a consumer does not send".into()),
            End::Mq(q, _) => loop {
                // SAFETY: `msg` is readable for its length; `q` is open.
                let r = unsafe { libc::mq_send(*q, msg.as_ptr().cast(), msg.len(), 0) };
                if r == 0 {
                    return Ok(());
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    return Err(os("mq_send"));
                }
            },
            End::Sysv(id, buf) => {
                buf[0] = 1;
                // SAFETY: the text follows the type word; `buf` has room
                // for `size` bytes after it, and `msg` is at most `size`.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        msg.as_ptr(),
                        buf.as_mut_ptr().add(1).cast::<u8>(),
                        msg.len(),
                    );
                }
                loop {
                    // SAFETY: `buf` is a type word and `msg.len()` bytes.
                    let r = unsafe { libc::msgsnd(*id, buf.as_ptr().cast(), msg.len(), 0) };
                    if r == 0 {
                        return Ok(());
                    }
                    if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                        return Err(os("msgsnd"));
                    }
                }
            }
        }
    }

    /// Receives one message; its length (0: stop).
    fn recv(&mut self, size: usize) -> Result<usize, String> {
        match self {
            End::IpcxRx(c) => c
                .recv_until(ipcx::Deadline::Never)
                .map(|d| d.payload.len())
                .map_err(|e| e.to_string()),
            End::IpcxTx(_) => Err("a producer does not receive".into()),
            End::Mq(q, buf) => loop {
                let mut prio = 0;
                // SAFETY: `buf` is writable for its length, the queue's
                // message size.
                let n =
                    unsafe { libc::mq_receive(*q, buf.as_mut_ptr().cast(), buf.len(), &mut prio) };
                if n >= 0 {
                    return Ok(n as usize);
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    return Err(os("mq_receive"));
                }
            },
            End::Sysv(id, buf) => loop {
                // SAFETY: `buf` has room for a type word and `size` bytes.
                let n = unsafe { libc::msgrcv(*id, buf.as_mut_ptr().cast(), size, 0, 0) };
                if n >= 0 {
                    return Ok(n as usize);
                }
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    return Err(os("msgrcv"));
                }
            },
        }
    }
}

/// The words shared with the round's processes.
struct Flags {
    shm: RawShm,
}

impl Flags {
    fn new() -> Result<Flags, String> {
        Ok(Flags {
            shm: RawShm::new(4096)?,
        })
    }
    fn word(&self, i: usize) -> &AtomicU32 {
        // SAFETY: the page-aligned mapping holds 1024 u32 words and lives
        // as long as `self`.
        unsafe { AtomicU32::from_ptr(self.shm.ptr().cast::<u32>().add(i)) }
    }
    fn received(&self) -> &AtomicU64 {
        // SAFETY: bytes 64..72 of the mapping, 8-aligned, as above.
        unsafe { AtomicU64::from_ptr(self.shm.ptr().add(64).cast::<u64>()) }
    }
    /// Processes ready.
    fn ready(&self) -> &AtomicU32 {
        self.word(0)
    }
    /// The start flag.
    fn go(&self) -> &AtomicU32 {
        self.word(1)
    }
}

/// A forked process's part; returns whether it succeeded.
fn child(side: &Side, flags: &Flags, producer: bool, size: usize, n: u64) -> bool {
    let Ok(mut end) = End::open(side, producer, size) else {
        return false;
    };
    flags.ready().fetch_add(1, Ordering::AcqRel);
    // Sleep-wait: eight spinners on a small machine would starve the
    // process that releases them.
    while flags.go().load(Ordering::Acquire) == 0 {
        std::thread::sleep(Duration::from_micros(200));
    }
    if producer {
        let msg = vec![0x5au8; size];
        (0..n).all(|_| end.send(&msg).is_ok())
    } else {
        let mut got = 0u64;
        loop {
            match end.recv(size) {
                Ok(0) => break,
                Ok(_) => got += 1,
                Err(_) => return false,
            }
        }
        flags.received().fetch_add(got, Ordering::AcqRel);
        true
    }
}

fn fork_child(f: impl FnOnce() -> bool) -> Result<libc::pid_t, String> {
    // SAFETY: the benchmark runs no other threads when it forks; the child
    // runs `f` and leaves with `_exit`, never returning into the caller.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os("fork"));
    }
    if pid == 0 {
        let ok = f();
        // SAFETY: leave without running the parent's exit handlers or
        // destructors (which would remove the parent's objects).
        unsafe { libc::_exit(if ok { 0 } else { 1 }) };
    }
    Ok(pid)
}

fn wait_all(pids: &[libc::pid_t]) -> bool {
    let mut ok = true;
    for &pid in pids {
        let mut status = 0;
        // SAFETY: a child forked by this process.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        ok &= libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    }
    ok
}

/// One round on `side`: messages per second.
fn round(side: &Side, size: usize, n: u64) -> Result<f64, String> {
    let flags = Flags::new()?;
    let mut producers = Vec::new();
    let mut consumers = Vec::new();
    let mut started = Ok(());
    for i in 0..PRODUCERS + CONSUMERS {
        let producer = i < PRODUCERS;
        match fork_child(|| child(side, &flags, producer, size, n)) {
            Ok(pid) if producer => producers.push(pid),
            Ok(pid) => consumers.push(pid),
            Err(e) => {
                started = Err(e);
                break;
            }
        }
    }
    let mut stopper = End::open(side, true, size);
    let all = (PRODUCERS + CONSUMERS) as u32;
    let give_up = Instant::now() + Duration::from_secs(30);
    while started.is_ok()
        && stopper.is_ok()
        && flags.ready().load(Ordering::Acquire) < all
        && Instant::now() < give_up
    {
        std::thread::sleep(Duration::from_micros(200));
    }
    if started.is_err() || stopper.is_err() || flags.ready().load(Ordering::Acquire) < all {
        // Nobody was released: end them all rather than leave a producer
        // blocked on a queue nobody drains.
        for &pid in producers.iter().chain(&consumers) {
            // SAFETY: a child forked above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        wait_all(&producers);
        wait_all(&consumers);
        started?;
        stopper?;
        return Err("a producer or consumer process could not open the queue".into());
    }
    let t = Instant::now();
    flags.go().store(1, Ordering::Release);
    let produced = wait_all(&producers);
    // One stop message per consumer (also after a failure: nobody hangs).
    if let Ok(s) = stopper.as_mut() {
        for _ in 0..consumers.len() {
            let _ = s.send(&[]);
        }
    } else {
        for &pid in &consumers {
            // SAFETY: a child forked above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let consumed = wait_all(&consumers);
    let elapsed = t.elapsed();
    stopper?;
    if !produced || !consumed {
        return Err("a producer or consumer process failed".into());
    }
    let want = n * PRODUCERS as u64;
    let got = flags.received().load(Ordering::Acquire);
    if got != want {
        return Err(format!("{got} messages received of {want} sent"));
    }
    Ok(want as f64 / elapsed.as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Messages per producer for `size` within about `budget` per round.
fn per_producer(budget: Duration, size: usize) -> u64 {
    // About 2 µs a small message, more for large ones, on a busy machine.
    let per_msg_ns = 2000 + size as u64;
    let n = budget.as_nanos() as u64 / per_msg_ns / PRODUCERS as u64;
    n.clamp(500, 200_000)
}

/// Measures every row for `sizes`; `progress` gets one line per row. Every
/// queue made is removed before returning, whatever happens.
///
/// # Errors
/// The step that failed.
pub fn run(
    sizes: &[usize],
    budget: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<FanRow>, String> {
    let mut rows = Vec::new();
    for (transport, kernel) in [
        ("queue(mq)", Kernel::Posix),
        ("queue(sysv-mq)", Kernel::Sysv),
    ] {
        for &size in sizes {
            if !super::raw::queue::fits(transport, size) {
                progress(&format!(
                    "skipping {transport} at {}: a queue message is one kernel message, and this one exceeds the kernel's limit",
                    super::human_size(size)
                ));
                continue;
            }
            let n = per_producer(budget, size);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for r in 0..ROUNDS {
                for ipcx in [r % 2 == 0, r % 2 != 0] {
                    let side = make(kernel, ipcx, size)?;
                    let res = round(&side, size, n);
                    remove(&side);
                    let mps = res.map_err(|e| {
                        format!(
                            "{transport} {} 4→4 ({}): {e}",
                            super::human_size(size),
                            if ipcx { "ipcx" } else { "raw" }
                        )
                    })?;
                    if ipcx { &mut a } else { &mut b }.push(mps);
                }
            }
            let row = FanRow {
                transport,
                size,
                ipcx_mps: median(a),
                raw_mps: median(b),
                messages: n * PRODUCERS as u64,
            };
            progress(&format!(
                "[queues] {:<15} {:>8} 4→4 ipcx {:>10.0} msg/s raw {:>10.0} msg/s ratio {:.2}",
                row.transport,
                super::human_size(size),
                row.ipcx_mps,
                row.raw_mps,
                row.ratio()
            ));
            rows.push(row);
        }
    }
    Ok(rows)
}

/// The rows as a text table.
pub fn table(rows: &[FanRow]) -> String {
    let mut out = format!(
        "{:<16} {:>8} {:>14} {:>14} {:>7}\n",
        "queue, 4 → 4", "size", "ipcx msg/s", "raw msg/s", "ratio"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:>8} {:>14.0} {:>14.0} {:>6.2}x\n",
            r.transport,
            super::human_size(r.size),
            r.ipcx_mps,
            r.raw_mps,
            r.ratio()
        ));
    }
    out.push_str(&format!(
        "queue 4 → 4: {PRODUCERS} producer and {CONSUMERS} consumer processes on one queue; ratio = ipcx / raw throughput (higher is better); median of {ROUNDS} interleaved rounds\n"
    ));
    out
}

/// The rows as JSON.
pub fn json(rows: &[FanRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "transport": r.transport,
                    "size": r.size,
                    "producers": PRODUCERS,
                    "consumers": CONSUMERS,
                    "ipcx_msgs_per_sec": r.ipcx_mps,
                    "raw_msgs_per_sec": r.raw_mps,
                    "ratio": r.ratio(),
                    "messages_per_round": r.messages,
                    "rounds": ROUNDS,
                })
            })
            .collect(),
    )
}

//! Shared-memory benchmark: ipcx `shm:` beside a raw baseline written
//! directly against libc (an SPSC byte ring in a shared mapping, with a
//! futex wake-up or pure spinning), two processes, same run, ratio printed.
//! Blocking round trips put both processes on CPU 0 (same core), so a run
//! measures one placement rather than whatever the scheduler picked;
//! spinning runs are left to the scheduler (see `place`).
//!
//! ```text
//! cargo bench --bench shm              # full run
//! IPCX_BENCH_QUICK=1 cargo bench --bench shm
//! ```

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use ipc_backends::shm::Shm;
use ipcx::{Endpoint, Listener, Receiver, Schema, Sender, Transport};

const ROLE: &str = "IPCX_BENCH_SHM_ROLE";
/// The CPU the peer process pins itself to, if any.
const PEER_CPU: &str = "IPCX_BENCH_SHM_CPU";
const RING: usize = 4 << 20;

// ---------- raw baseline ----------
//
// A plain SPSC ring as one would write it by hand: head, tail and each
// wake-up pair on their own cache lines, each side caching the peer's
// index and reading the shared one only when the cached view is short, and
// (when blocking) the usual fence-then-check of the peer's sleeping flag.

#[repr(C, align(128))]
struct Index(AtomicU64);

#[repr(C, align(128))]
struct Wake {
    sleeping: AtomicU32,
    seq: AtomicU32,
}

#[repr(C)]
struct RawRing {
    head: Index,
    tail: Index,
    /// The consumer sleeps here for data.
    data: Wake,
    /// The producer sleeps here for space.
    space: Wake,
    bytes: [u8; RING],
}

/// One side's private view of a ring: its own index and the peer's, as
/// last read.
#[derive(Default)]
struct Cursor {
    own: u64,
    peer: u64,
}

fn futex_wait(w: &AtomicU32, v: u32) {
    // SAFETY: `w` is a live aligned word in a shared mapping; null timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            w.as_ptr(),
            libc::FUTEX_WAIT,
            v,
            std::ptr::null::<libc::timespec>(),
        );
    }
}

fn futex_wake(w: &AtomicU32) {
    // SAFETY: `w` is a live aligned word; FUTEX_WAKE only uses the address.
    unsafe {
        libc::syscall(libc::SYS_futex, w.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

/// Waits until `ready()`; `block` sleeps on `wake`'s futex at once.
fn raw_wait(wake: &Wake, block: bool, mut ready: impl FnMut() -> bool) {
    loop {
        if ready() {
            return;
        }
        if !block {
            std::hint::spin_loop();
            continue;
        }
        let s = wake.seq.load(Ordering::Acquire);
        wake.sleeping.store(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if ready() {
            wake.sleeping.store(0, Ordering::Relaxed);
            return;
        }
        futex_wait(&wake.seq, s);
        wake.sleeping.store(0, Ordering::Relaxed);
    }
}

fn raw_publish(index: &Index, value: u64, waiter: &Wake, block: bool) {
    index.0.store(value, Ordering::Release);
    if block {
        fence(Ordering::SeqCst);
        if waiter.sleeping.load(Ordering::Relaxed) != 0 {
            waiter.seq.fetch_add(1, Ordering::Release);
            futex_wake(&waiter.seq);
        }
    }
}

impl RawRing {
    fn copy_in(&self, pos: u64, src: &[u8]) {
        let off = pos as usize % RING;
        let first = src.len().min(RING - off);
        let base = self.bytes.as_ptr() as *mut u8;
        // SAFETY: both ranges are inside `bytes`; the producer owns them.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), base.add(off), first);
            std::ptr::copy_nonoverlapping(src.as_ptr().add(first), base, src.len() - first);
        }
    }

    fn copy_out(&self, pos: u64, dst: &mut [u8]) {
        let off = pos as usize % RING;
        let first = dst.len().min(RING - off);
        // SAFETY: both ranges are inside `bytes`, published by the producer.
        unsafe {
            std::ptr::copy_nonoverlapping(self.bytes.as_ptr().add(off), dst.as_mut_ptr(), first);
            std::ptr::copy_nonoverlapping(
                self.bytes.as_ptr(),
                dst.as_mut_ptr().add(first),
                dst.len() - first,
            );
        }
    }

    fn send(&self, c: &mut Cursor, msg: &[u8], block: bool) {
        let need = 8 + msg.len().div_ceil(8) as u64 * 8;
        if RING as u64 - (c.own - c.peer) < need {
            raw_wait(&self.space, block, || {
                c.peer = self.tail.0.load(Ordering::Acquire);
                RING as u64 - (c.own - c.peer) >= need
            });
        }
        self.copy_in(c.own, &(msg.len() as u64).to_le_bytes());
        self.copy_in(c.own + 8, msg);
        c.own += need;
        raw_publish(&self.head, c.own, &self.data, block);
    }

    fn recv(&self, c: &mut Cursor, buf: &mut Vec<u8>, block: bool) {
        if c.peer == c.own {
            raw_wait(&self.data, block, || {
                c.peer = self.head.0.load(Ordering::Acquire);
                c.peer != c.own
            });
        }
        let mut h = [0u8; 8];
        self.copy_out(c.own, &mut h);
        let len = u64::from_le_bytes(h) as usize;
        buf.resize(len, 0);
        self.copy_out(c.own + 8, buf);
        c.own += 8 + len.div_ceil(8) as u64 * 8;
        raw_publish(&self.tail, c.own, &self.space, block);
    }
}

fn raw_rings() -> (&'static RawRing, &'static RawRing) {
    let size = 2 * std::mem::size_of::<RawRing>();
    // SAFETY: a fresh anonymous shared mapping, inherited by the forked
    // child; zeroed memory is a valid RawRing (atomics and bytes).
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert!(p != libc::MAP_FAILED);
        let a = &*(p as *const RawRing);
        let b = &*((p as *const RawRing).add(1));
        (a, b)
    }
}

/// Pins this process to `cpu`, or lets it run anywhere with `None`.
fn pin(cpu: Option<usize>) {
    // SAFETY: cpu_set_t is plain bits, zeroed is the empty set; CPU_SET
    // stays inside it for cpu < CPU_SETSIZE; pid 0 is this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        match cpu {
            Some(c) => libc::CPU_SET(c, &mut set),
            // Every CPU the set can name: the kernel keeps the online ones.
            None => (0..libc::CPU_SETSIZE as usize).for_each(|c| libc::CPU_SET(c, &mut set)),
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Where the two processes run: both on CPU 0 when `same`, else wherever
/// the scheduler puts them. Pinning two spinners to two CPUs of a shared
/// machine starves them whenever another process lands on either CPU.
/// Returns the peer's CPU.
fn place(same: bool) -> Option<usize> {
    if same {
        pin(Some(0));
        Some(0)
    } else {
        None
    }
}

/// Forks a child running `f`, returns its pid.
fn fork(f: impl FnOnce()) -> libc::pid_t {
    // SAFETY: the bench is single-threaded when it forks; the child only
    // touches the shared mapping and exits without unwinding.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            f();
            libc::_exit(0);
        }
        pid
    }
}

fn reap(pid: libc::pid_t) {
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
}

fn raw_rtt(rounds: usize, block: bool) -> Vec<Duration> {
    let (ping, pong) = raw_rings();
    let cpu = place(block);
    let child = fork(|| {
        if cpu.is_some() {
            pin(cpu);
        }
        let (mut t, mut h, mut buf) = (Cursor::default(), Cursor::default(), Vec::new());
        for _ in 0..rounds {
            ping.recv(&mut t, &mut buf, block);
            pong.send(&mut h, &buf, block);
        }
    });
    let (mut h, mut t, mut buf) = (Cursor::default(), Cursor::default(), Vec::new());
    let msg = [7u8; 64];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let s = Instant::now();
        ping.send(&mut h, &msg, block);
        pong.recv(&mut t, &mut buf, block);
        times.push(s.elapsed());
    }
    reap(child);
    pin(None);
    times
}

fn raw_throughput(size: usize, count: usize) -> Duration {
    let (ring, done) = raw_rings();
    let cpu = place(false);
    let child = fork(|| {
        if cpu.is_some() {
            pin(cpu);
        }
        let (mut t, mut buf) = (Cursor::default(), Vec::new());
        for _ in 0..count {
            ring.recv(&mut t, &mut buf, false);
        }
        done.head.0.store(1, Ordering::Release);
    });
    let msg = vec![7u8; size];
    let mut h = Cursor::default();
    let s = Instant::now();
    for _ in 0..count {
        ring.send(&mut h, &msg, false);
    }
    while done.head.0.load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let d = s.elapsed();
    reap(child);
    pin(None);
    d
}

// ---------- ipcx ----------

fn endpoint(wait: &str) -> Endpoint {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!(
        "shm:/bench{}x{n}?wait={wait}&capacity={RING}&max_message_size=1048576",
        std::process::id()
    )
    .parse()
    .unwrap()
}

fn spawn(
    ep: &Endpoint,
    role: &str,
    count: usize,
    cpu: Option<usize>,
) -> (ipcx::AnyChannel, std::process::Child) {
    let mut l = ipcx::listen(ep).unwrap();
    let child = Command::new(std::env::current_exe().unwrap())
        .env(ROLE, format!("{role} {count} {ep}"))
        .env(PEER_CPU, cpu.map_or(String::new(), |c| c.to_string()))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let ch = l.accept_timeout(Duration::from_secs(10)).unwrap();
    (ch, child)
}

fn peer(role: &str) {
    let mut it = role.splitn(3, ' ');
    let (role, count, ep) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    let count: usize = count.parse().unwrap();
    let ep: Endpoint = ep.parse().unwrap();
    if let Some(cpu) = std::env::var(PEER_CPU).ok().and_then(|c| c.parse().ok()) {
        pin(Some(cpu));
    }
    let mut ch = <Shm as Transport>::connect(&ep, &Schema::bytes()).unwrap();
    let mut buf = Vec::new();
    match role {
        "echo" => {
            for _ in 0..count {
                ch.recv_into(&mut buf).unwrap();
                ch.send(&buf).unwrap();
            }
        }
        "sink" => {
            for _ in 0..count {
                ch.recv_into(&mut buf).unwrap();
            }
            ch.send(b"done").unwrap();
        }
        "sink-in-place" => {
            let mut sum = 0u64;
            for _ in 0..count {
                let g = ch.recv_in_place().unwrap();
                sum += u64::from(g.first().copied().unwrap_or(0));
            }
            std::hint::black_box(sum);
            ch.send(b"done").unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    let _ = ch.recv();
}

fn ipcx_rtt(rounds: usize, wait: &str) -> Vec<Duration> {
    let cpu = place(wait == "block");
    let (mut ch, mut child) = spawn(&endpoint(wait), "echo", rounds, cpu);
    let msg = [7u8; 64];
    let mut buf = Vec::new();
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let s = Instant::now();
        ch.send(&msg).unwrap();
        ch.recv_into(&mut buf).unwrap();
        times.push(s.elapsed());
    }
    drop(ch);
    child.wait().unwrap();
    pin(None);
    times
}

fn ipcx_throughput(size: usize, count: usize, loan: bool) -> Duration {
    let ep = endpoint("spin");
    let mut l = <Shm as Transport>::listen(&ep, &Schema::bytes()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(
            ROLE,
            format!(
                "{} {count} {ep}",
                if loan { "sink-in-place" } else { "sink" }
            ),
        )
        .spawn()
        .unwrap();
    let mut ch = l.accept_timeout(Duration::from_secs(10)).unwrap();
    let msg = vec![7u8; size];
    let s = Instant::now();
    for _ in 0..count {
        if loan {
            let mut m = ch.loan(size).unwrap();
            m[0] = 7;
            m.send();
        } else {
            ch.send(&msg).unwrap();
        }
    }
    ch.recv().unwrap();
    let d = s.elapsed();
    drop(ch);
    child.wait().unwrap();
    d
}

fn pct(times: &mut [Duration], p: f64) -> f64 {
    times.sort();
    let i = ((times.len() as f64 - 1.0) * p).round() as usize;
    times[i].as_secs_f64() * 1e6
}

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        peer(&role);
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = std::env::var_os("IPCX_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    println!(
        "shared memory, two processes; ratio = ipcx / raw (lower is better for latency, higher for throughput)\n"
    );
    println!(
        "{:<28} {:>12} {:>12} {:>12} {:>12} {:>7}",
        "round trip 64 B", "raw p50 µs", "raw p99 µs", "ipcx p50 µs", "ipcx p99 µs", "ratio"
    );
    for (label, block, wait, rounds) in [
        ("wait=spin", false, "spin", 200_000 / scale),
        ("wait=block, same core", true, "block", 20_000 / scale),
    ] {
        let mut raw = raw_rtt(rounds, block);
        let mut ours = ipcx_rtt(rounds, wait);
        let (r50, r99, o50, o99) = (
            pct(&mut raw, 0.5),
            pct(&mut raw, 0.99),
            pct(&mut ours, 0.5),
            pct(&mut ours, 0.99),
        );
        println!(
            "{label:<28} {r50:>12.2} {r99:>12.2} {o50:>12.2} {o99:>12.2} {:>6.2}x",
            o50 / r50
        );
    }
    println!(
        "\n{:<28} {:>14} {:>14} {:>14} {:>7} {:>14} {:>7}",
        "one-way, wait=spin", "raw msg/s", "raw GB/s", "ipcx GB/s", "ratio", "loan msg/s", "ratio"
    );
    for size in [64usize, 4096, 65536, 1 << 20] {
        let bytes_total = if quick { 64 << 20 } else { 512 << 20 };
        let count = (bytes_total / size).clamp(100, 2_000_000 / scale);
        let raw = raw_throughput(size, count);
        let ours = ipcx_throughput(size, count, false);
        let loan = ipcx_throughput(size, count, true);
        let rate = |d: Duration| count as f64 / d.as_secs_f64();
        let gbs = |d: Duration| (count * size) as f64 / d.as_secs_f64() / 1e9;
        println!(
            "{:<28} {:>14.0} {:>14.2} {:>14.2} {:>6.2}x {:>14.0} {:>6.2}x",
            format!("{size} B x {count}"),
            rate(raw),
            gbs(raw),
            gbs(ours),
            rate(ours) / rate(raw),
            rate(loan),
            rate(loan) / rate(raw)
        );
    }
}

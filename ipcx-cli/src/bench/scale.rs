//! `ipcx bench --scale`: what many connections cost.
//!
//! For each transport and each N (default 10, 100, 1,000): a server
//! process accepts N connections, each served by a thread that echoes; a
//! client process opens N connections and holds them. Measured from the
//! parent: the time to connect all N (in the client), the server's CPU
//! time over an idle window (`/proc/PID/stat` utime + stime; 5 s, 1 s with
//! `--quick`), both processes' resident memory (`VmRSS`), and the round
//! trip (p50 of 64-byte echoes) of one connection while the others idle.
//!
//! The round trip is compared with a baseline: per transport, a first pair
//! holding one connection (no idle ones, the `N = 1` row) stays up while
//! each N is measured. Before timing, every thread of both pairs is pinned
//! to CPU 0 (`sched_setaffinity`, as `--pin same` does for the transport
//! rows), so the active client and its echo thread share a core in both;
//! then [`SAMPLES`] batches of round trips alternate between the baseline
//! and the N pair, and the medians of the batch medians give `rtt(N)`,
//! `rtt(1)` and their ratio. Interleaving puts a change in the machine's
//! load on both sides of the ratio.
//!
//! Peers are this binary re-executed with [`SCALE_VAR`] set; they end
//! cleanly (the client drops its connections, the server joins its echo
//! threads) so no kernel object is left behind.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipcx::{Endpoint, Listener, Receiver, Sender};
use serde_json::{Value, json};

/// Environment variable that makes the binary a scale peer:
/// `server ENDPOINT N` or `client ENDPOINT N`.
pub const SCALE_VAR: &str = "IPCX_BENCH_SCALE";

/// The transports measured, in table order.
pub const TRANSPORTS: [&str; 7] = ["unix", "tcp", "fifo", "mq", "sysv-mq", "shm", "sysv-shm"];

/// Round trips timed per sample.
const ROUND_TRIPS: usize = 500;

/// Interleaved samples (batches of 500 round trips) per side of a ratio.
pub const SAMPLES: usize = 9;

/// The CPU both peers' threads are pinned to before round trips are timed.
const RTT_CPU: usize = 0;

/// One row: one transport at one N.
#[derive(Debug, Clone)]
pub struct ScaleRow {
    /// The transport's scheme.
    pub transport: String,
    /// Connections asked for.
    pub n: usize,
    /// Connections established (fewer than `n` when one failed).
    pub connected: usize,
    /// Time to establish them, seconds.
    pub connect_s: f64,
    /// Server CPU over the idle window, percent of one core.
    pub idle_cpu_pct: f64,
    /// Server resident memory, KiB.
    pub server_rss_kib: u64,
    /// Client resident memory, KiB.
    pub client_rss_kib: u64,
    /// Round trip of one connection while the others idle, ns: the
    /// median of [`SAMPLES`] batch medians, both peers pinned to one core.
    pub rtt_p50_ns: f64,
    /// The baseline's round trip (one connection, none idle), timed in
    /// the same interleaving, ns; for the baseline row its own figure.
    pub rtt_base_ns: f64,
    /// `rtt_p50_ns / rtt_base_ns` (0 when either is missing).
    pub rtt_ratio: f64,
    /// Why fewer than `n` connected.
    pub error: Option<String>,
}

fn endpoint(transport: &str, tag: usize) -> String {
    let name = format!("ipcx-scale-{}-{tag}", std::process::id());
    match transport {
        "unix" => format!("unix:/tmp/{name}.sock"),
        "tcp" => "tcp://127.0.0.1:0".to_string(),
        "fifo" => format!("fifo:/tmp/{name}"),
        "mq" => format!("mq:/{name}"),
        "sysv-mq" => format!("sysv-mq:/tmp/{name}"),
        "shm" => format!("shm:/{name}"),
        "sysv-shm" => format!("sysv-shm:/tmp/{name}"),
        other => other.to_string(),
    }
}

/// A peer process, driven through its stdin and stdout.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    fn spawn(role: &str, endpoint: &str, n: usize) -> Result<Peer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .arg("bench")
            .env(SCALE_VAR, format!("{role} {endpoint} {n}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning a scale peer: {e}"))?;
        let stdout = child.stdout.take().ok_or("peer stdout")?;
        Ok(Peer {
            stdin: child.stdin.take(),
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line, split at the first space into key and value.
    fn line(&mut self) -> Result<(String, String), String> {
        match self.lines.next() {
            Some(Ok(l)) => {
                let (k, v) = l.split_once(' ').unwrap_or((&l, ""));
                Ok((k.to_string(), v.to_string()))
            }
            _ => Err("a scale peer ended early".to_string()),
        }
    }

    fn tell(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Closes its stdin (the signal to end) and waits, at most 60 s.
    fn finish(&mut self) {
        self.stdin.take();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// User plus system CPU time of `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return Duration::ZERO;
    };
    let Some(close) = stat.rfind(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf takes a constant and reads no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A server and the client holding its connections.
struct Pair {
    server: Peer,
    client: Peer,
}

impl Pair {
    /// Pins every thread of both peers to `cpu`.
    fn pin(&self, cpu: usize) -> Result<(), String> {
        use nix::sched::{CpuSet, sched_setaffinity};
        let mut set = CpuSet::new();
        set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
        for pid in [self.server.pid(), self.client.pid()] {
            let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
                .map_err(|e| format!("/proc/{pid}/task: {e}"))?;
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                    continue;
                };
                // A thread that ended meanwhile is no error.
                let _ = sched_setaffinity(nix::unistd::Pid::from_raw(tid), &set);
            }
        }
        Ok(())
    }

    /// One sample: the median of [`ROUND_TRIPS`] round trips, ns (0 with
    /// no connection).
    fn rtt(&mut self) -> Result<f64, String> {
        self.client.tell("rtt");
        let (_, v) = self.client.line()?;
        Ok(v.parse().unwrap_or(0.0))
    }

    fn finish(mut self) {
        self.client.finish();
        self.server.finish();
    }
}

/// The median of `v` (0 when empty).
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Sets up one transport at `n` connections and measures all but the
/// round trip, idling `idle`.
fn measure(
    transport: &str,
    n: usize,
    idle: Duration,
    tag: usize,
) -> Result<(Pair, ScaleRow), String> {
    let mut server = Peer::spawn("server", &endpoint(transport, tag), n)?;
    let (k, at) = server.line()?;
    if k != "ready" {
        return Err(format!("{transport}: the server said {k} {at}"));
    }
    let mut client = Peer::spawn("client", &at, n)?;
    let (k, v) = client.line()?;
    let (connected, connect_s, error) = match k.as_str() {
        "connected" => {
            let (count, rest) = v.split_once(' ').unwrap_or((&v, "0"));
            let (secs, err) = rest.split_once(' ').unwrap_or((rest, ""));
            (
                count.parse().unwrap_or(0),
                secs.parse().unwrap_or(0.0),
                (!err.is_empty()).then(|| err.to_string()),
            )
        }
        _ => return Err(format!("{transport}: the client said {k} {v}")),
    };
    // The server has accepted what the client established.
    server.tell(&format!("expect {connected}"));
    let _ = server.line()?;
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let before = cpu_time(server.pid());
    std::thread::sleep(idle);
    let used = cpu_time(server.pid()).saturating_sub(before);
    let idle_cpu_pct = 100.0 * used.as_secs_f64() / start.elapsed().as_secs_f64();
    let (server_rss_kib, client_rss_kib) = (rss_kib(server.pid()), rss_kib(client.pid()));
    let row = ScaleRow {
        transport: transport.to_string(),
        n,
        connected,
        connect_s,
        idle_cpu_pct,
        server_rss_kib,
        client_rss_kib,
        rtt_p50_ns: 0.0,
        rtt_base_ns: 0.0,
        rtt_ratio: 0.0,
        error,
    };
    Ok((Pair { server, client }, row))
}

/// `SAMPLES` round-trip samples alternating between `base` and `pair`:
/// the two medians.
fn interleaved(base: &mut Pair, pair: &mut Pair) -> Result<(f64, f64), String> {
    base.pin(RTT_CPU)?;
    pair.pin(RTT_CPU)?;
    let (mut b, mut p) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        b.push(base.rtt()?);
        p.push(pair.rtt()?);
    }
    Ok((median(&mut b), median(&mut p)))
}

fn progress_line(row: &ScaleRow) -> String {
    format!(
        "{} N={}: {} connected in {:.2} s, idle CPU {:.1} %, rtt {} ({:.2}x N=1)",
        row.transport,
        row.n,
        row.connected,
        row.connect_s,
        row.idle_cpu_pct,
        super::human_ns(row.rtt_p50_ns),
        row.rtt_ratio
    )
}

fn ratio(a: f64, b: f64) -> f64 {
    if a > 0.0 && b > 0.0 { a / b } else { 0.0 }
}

/// Runs every selected transport at every count; `progress` gets a line
/// per row.
///
/// # Errors
/// A message naming the transport that could not be measured at all.
pub fn run(
    transports: &[String],
    counts: &[usize],
    idle: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ScaleRow>, String> {
    let chosen: Vec<&str> = if transports.is_empty() {
        TRANSPORTS.to_vec()
    } else {
        TRANSPORTS
            .iter()
            .copied()
            .filter(|t| transports.iter().any(|s| s == t))
            .collect()
    };
    let mut rows = Vec::new();
    let mut tag = 0;
    for t in chosen {
        // The baseline: one connection, no idle ones, up for the whole
        // transport.
        tag += 1;
        let (mut base, mut base_row) = measure(t, 1, idle, tag)?;
        let mut base_samples = Vec::new();
        let first = rows.len();
        rows.push(base_row.clone());
        for &n in counts.iter().filter(|&&n| n > 1) {
            tag += 1;
            let (mut pair, mut row) = measure(t, n, idle, tag)?;
            let (b, p) = interleaved(&mut base, &mut pair)?;
            pair.finish();
            base_samples.push(b);
            row.rtt_p50_ns = p;
            row.rtt_base_ns = b;
            row.rtt_ratio = ratio(p, b);
            progress(&progress_line(&row));
            rows.push(row);
        }
        if base_samples.is_empty() {
            // No N to interleave with: the baseline alone.
            base.pin(RTT_CPU)?;
            let mut s = Vec::new();
            for _ in 0..SAMPLES {
                s.push(base.rtt()?);
            }
            base_samples.push(median(&mut s));
        }
        base.finish();
        base_row.rtt_p50_ns = median(&mut base_samples);
        base_row.rtt_base_ns = base_row.rtt_p50_ns;
        base_row.rtt_ratio = ratio(base_row.rtt_p50_ns, base_row.rtt_base_ns);
        progress(&progress_line(&base_row));
        rows[first] = base_row;
    }
    Ok(rows)
}

/// The table of `rows`.
pub fn table(rows: &[ScaleRow]) -> String {
    let mut o = String::from(
        "\nScale: N connections, one server thread each; idle server CPU in % of one core\n\
         N = 1 is the baseline (one connection, none idle); rtt: one connection, both peers on CPU 0,\n\
         median of interleaved samples; vs N=1: rtt(N) / rtt(1) from the same interleaving\n\
         transport     N  connected  connect s  per conn   idle CPU  server RSS  client RSS   rtt p50  vs N=1\n",
    );
    for r in rows {
        let per = if r.connected > 0 {
            super::human_ns(r.connect_s * 1e9 / r.connected as f64)
        } else {
            "-".into()
        };
        o.push_str(&format!(
            "{:<9} {:>5}  {:>9}  {:>9.3}  {:>8}  {:>8.2} %  {:>7} MiB  {:>7} MiB  {:>8}  {:>5.2}x\n",
            r.transport,
            r.n,
            r.connected,
            r.connect_s,
            per,
            r.idle_cpu_pct,
            r.server_rss_kib / 1024,
            r.client_rss_kib / 1024,
            super::human_ns(r.rtt_p50_ns),
            r.rtt_ratio,
        ));
        if let Some(e) = &r.error {
            // The whole message is in the JSON; its first sentence here.
            let first = e.split(". ").next().unwrap_or(e);
            o.push_str(&format!("          stopped at {}: {first}\n", r.connected));
        }
    }
    o
}

/// The rows as JSON.
pub fn json(rows: &[ScaleRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "transport": r.transport,
                    "n": r.n,
                    "connected": r.connected,
                    "connect_s": r.connect_s,
                    "idle_cpu_percent": r.idle_cpu_pct,
                    "server_rss_kib": r.server_rss_kib,
                    "client_rss_kib": r.client_rss_kib,
                    "rtt_p50_ns": r.rtt_p50_ns,
                    "rtt_baseline_ns": r.rtt_base_ns,
                    "rtt_ratio": r.rtt_ratio,
                    "error": r.error,
                })
            })
            .collect(),
    )
}

/// Raises the soft descriptor limit to the hard one: a thousand
/// connections need more than the usual 1,024 on some transports.
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// A scale peer's body (`spec` is the value of [`SCALE_VAR`]).
///
/// # Errors
/// What failed, for the parent to report.
pub fn peer_main(spec: &str) -> Result<(), String> {
    raise_nofile();
    let mut parts = spec.splitn(3, ' ');
    let (role, ep, n) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("0").parse::<usize>().unwrap_or(0),
    );
    let endpoint: Endpoint = ep.parse().map_err(|e| format!("{ep}: {e}"))?;
    let mut out = std::io::stdout();
    let mut say = |line: String| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    let stdin = std::io::stdin();
    let mut commands = stdin.lock().lines().map_while(Result::ok);
    match role {
        "server" => {
            let mut l = ipcx::listen(&endpoint).map_err(|e| e.to_string())?;
            say(format!("ready {}", l.endpoint()));
            let accepted = Arc::new(AtomicUsize::new(0));
            let stop = Arc::new(AtomicBool::new(false));
            let acceptor = {
                let (accepted, stop) = (accepted.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut threads = Vec::new();
                    while accepted.load(Ordering::SeqCst) < n && !stop.load(Ordering::SeqCst) {
                        let Ok(mut ch) = l.accept_timeout(Duration::from_millis(100)) else {
                            continue;
                        };
                        accepted.fetch_add(1, Ordering::SeqCst);
                        threads.push(std::thread::spawn(move || {
                            while let Ok(m) = ch.recv() {
                                if ch.send(&m).is_err() {
                                    break;
                                }
                            }
                        }));
                    }
                    // Every echo thread ends when its client goes.
                    for t in threads {
                        let _ = t.join();
                    }
                })
            };
            // The parent says how many the client established.
            let expect: usize = commands
                .next()
                .and_then(|c| c.strip_prefix("expect ")?.parse().ok())
                .unwrap_or(0)
                .min(n);
            while accepted.load(Ordering::SeqCst) < expect {
                std::thread::sleep(Duration::from_millis(1));
            }
            say(format!("accepted {expect}"));
            // Until the parent closes stdin (after the client ended).
            for _ in commands.by_ref() {}
            stop.store(true, Ordering::SeqCst);
            let _ = acceptor.join();
            Ok(())
        }
        "client" => {
            let start = Instant::now();
            let mut held = Vec::with_capacity(n);
            let mut error = String::new();
            for _ in 0..n {
                match ipcx::connect(&endpoint) {
                    Ok(ch) => held.push(ch),
                    Err(e) => {
                        error = e.to_string().replace('\n', " ");
                        break;
                    }
                }
            }
            say(format!(
                "connected {} {:.6} {error}",
                held.len(),
                start.elapsed().as_secs_f64()
            ));
            for c in commands.by_ref() {
                if c != "rtt" {
                    continue;
                }
                let Some(ch) = held.first_mut() else {
                    say("rtt 0".into());
                    continue;
                };
                let msg = [7u8; 64];
                let mut times = Vec::with_capacity(ROUND_TRIPS);
                for _ in 0..ROUND_TRIPS {
                    let t = Instant::now();
                    ch.send(&msg).map_err(|e| e.to_string())?;
                    ch.recv().map_err(|e| e.to_string())?;
                    times.push(t.elapsed().as_nanos() as f64);
                }
                times.sort_by(f64::total_cmp);
                say(format!("rtt {}", times[times.len() / 2]));
            }
            drop(held);
            Ok(())
        }
        other => Err(format!("unknown scale role {other}")),
    }
}

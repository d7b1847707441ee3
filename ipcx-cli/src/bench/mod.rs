//! `ipcx bench`: every transport measured beside a raw baseline of the same
//! mechanism, in the same run, two real processes each.
//!
//! For each transport, size and pinning, two measurements:
//!
//! - **round trip**: the client sends a message, the server echoes it; the
//!   client times each round trip (p50, p99, p99.9);
//! - **one-way throughput**: the client sends as fast as it can for the
//!   time budget, then a terminator; the server acknowledges it; messages
//!   and bytes per second over that span.
//!
//! The raw baselines ([`raw`]) do the same with hand-written system calls
//! and no framework: fixed-size reads and writes, no framing, no handshake.
//! The ratio ipcx/raw is the framework's cost.
//!
//! Each figure is measured in `--repeat` repetitions (default
//! [`stats::REPEAT`]), ipcx and raw interleaved with the one going first
//! alternating; the ratio is taken within each repetition and reported as
//! the median with its range, marked unstable when a repetition lies more
//! than ±15 % from the median ([`stats`]).
//!
//! Shared memory has one row per wait strategy, each against the raw ring
//! waiting the same way (`shm(block)`: futex, `shm(spin)`: polling), and a
//! `shm(loan)` row for the zero-copy path; polling rows run cross-core
//! only.
//!
//! With `--async` ([`aio`]), the rows are instead each transport through
//! the async API, beside its blocking row and a raw tokio baseline.
//!
//! The binary re-executes itself for the two peers (environment variable
//! [`PEER_VAR`]), so each peer is its own process, pinned as asked.

pub mod aio;
pub mod batch;
pub mod chart;
pub mod measure;
#[cfg(feature = "peers")]
pub mod peers;
pub mod queue_fan;
pub mod raw;
pub mod report;
pub mod scale;
pub mod stats;
pub mod sync;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clap::builder::TypedValueParser as _;
use measure::{Kind, Outcome, Role, Spec, Target};
use stats::Spread;

/// Environment variable that makes the binary a benchmark peer.
pub const PEER_VAR: &str = "IPCX_BENCH_PEER";
/// Environment variable holding the client's configuration, for a server
/// that starts its client itself ([`raw::TargetDef::spawned`]).
pub const CLIENT_VAR: &str = "IPCX_BENCH_CLIENT";

/// Where the two peers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pin {
    /// Both peers on CPU 0: wake-ups stay on one core.
    Same,
    /// Client on CPU 0, server on CPU 1: every wake-up crosses cores.
    Cross,
    /// Let the scheduler choose.
    None,
}

impl Pin {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Pin::Same => "same",
            Pin::Cross => "cross",
            Pin::None => "none",
        }
    }

    fn cpu(self, role: Role) -> Option<usize> {
        match (self, role) {
            (Pin::None, _) => None,
            (Pin::Same, _) | (Pin::Cross, Role::Client) => Some(0),
            (Pin::Cross, Role::Server) => Some(1),
        }
    }
}

/// Options of `ipcx bench`.
#[derive(Debug, Clone, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcx bench\n  ipcx bench --sizes 64,4096 --pin same --transports unix,fifo\n  ipcx bench --transports 'shm(spin),shm(loan)' --pin cross\n  ipcx bench --full --json bench.json --svg bench.svg\n  ipcx bench --sizes 64,4096 --repeat 9 --json bench.json\n  ipcx bench --async --json async.json"
)]
pub struct Args {
    /// The default profile: a few minutes for everything on 2 cores
    /// (each side of a repetition measures for 60 ms).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// More samples per repetition (about 3× the time of the default).
    #[arg(long)]
    pub full: bool,
    /// Time each side of one repetition measures, in milliseconds
    /// (overrides the profile).
    #[arg(long, hide = true)]
    pub budget_ms: Option<u64>,
    /// Repetitions per figure: ipcx and its baseline take turns, and the
    /// ratio is the median of the per-repetition ratios, with its range
    /// (`--scale` interleaves samples of its own instead).
    #[arg(long, alias = "rounds", value_name = "N", default_value_t = stats::REPEAT,
          conflicts_with = "scale",
          value_parser = clap::value_parser!(u64).range(1..=1000).map(|n| n as usize))]
    pub repeat: usize,
    /// Write every figure and the machine's description as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<std::path::PathBuf>,
    /// Write a bar chart of p50 latency and throughput as SVG (with
    /// --scale: idle CPU, connect time and the round-trip ratio against N).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<std::path::PathBuf>,
    /// Message sizes in bytes, comma-separated [default: 64,4096,65536,1048576;
    /// with --async: 64,4096].
    #[arg(long, value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// CPU placement of the two peers; give several to compare.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = vec![Pin::Same, Pin::Cross])]
    pub pin: Vec<Pin>,
    /// Transports to measure, comma-separated: schemes (every row of that
    /// transport) or row labels such as `shm(spin)`; default every one this
    /// build supports.
    #[arg(long, value_delimiter = ',')]
    pub transports: Vec<String>,
    /// Also measure other IPC libraries (iceoryx2, ipc-channel,
    /// interprocess), each against the raw baseline of its mechanism;
    /// needs a build with `--features peers`.
    #[arg(long)]
    pub peers: bool,
    /// Measure the synchronisation primitives and shared state (Mutex,
    /// Semaphore, Region::read) beside raw libc; alone unless
    /// `--transports` is given too.
    #[arg(long)]
    pub sync: bool,
    /// Measure standalone queues with 4 producer and 4 consumer processes
    /// on one queue (queue(mq), queue(sysv-mq); --sizes, default 64,4096)
    /// beside raw mq_send/mq_receive and msgsnd/msgrcv loops of 4 + 4
    /// processes; alone unless `--transports` is given too.
    #[arg(long)]
    pub queues: bool,
    /// Measure the async API instead (ipcx::tokio, one current-thread
    /// runtime per peer): each transport beside its blocking row and a raw
    /// tokio baseline where tokio drives the mechanism (UnixStream,
    /// TcpStream, unix::pipe), each figure in --repeat interleaved rounds.
    #[arg(long = "async", conflicts_with = "peers")]
    pub asynchronous: bool,
    /// Measure what many connections cost instead: for each transport
    /// and each of `--counts`, connect time, idle server CPU (5 s; 1 s
    /// with --quick), resident memory, and one connection's round trip
    /// while the others idle. `--transports` picks transports by scheme.
    #[arg(long, conflicts_with_all = ["sync", "asynchronous"])]
    pub scale: bool,
    /// Connection counts of `--scale`.
    #[arg(long, value_delimiter = ',', default_values_t = vec![10usize, 100, 1000])]
    pub counts: Vec<usize>,
    /// Measure batches instead: one-way throughput of messages sent 64
    /// per `send_batch` on pipe:, unix: and shm: (wait=block), beside one
    /// message per call and the raw baseline (default size 64 B).
    #[arg(long, conflicts_with_all = ["scale", "sync", "asynchronous", "peers"])]
    pub batch: bool,
}

impl Args {
    /// The message sizes asked for, or `default`.
    pub fn sizes_or(&self, default: &[usize]) -> Vec<usize> {
        if self.sizes.is_empty() {
            default.to_vec()
        } else {
            self.sizes.clone()
        }
    }

    /// The message sizes of the transport rows.
    pub fn sizes(&self) -> Vec<usize> {
        self.sizes_or(&DEFAULT_SIZES)
    }
}

/// The transport rows' message sizes unless `--sizes` says otherwise.
pub const DEFAULT_SIZES: [usize; 4] = [64, 4096, 65536, 1 << 20];

/// One repetition of a row: ipcx and its baseline, measured back to back.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rep {
    /// ipcx's figures (or another library's, with `--peers`).
    pub ipcx: Outcome,
    /// The raw baseline's figures.
    pub raw: Outcome,
}

impl Rep {
    /// ipcx relative to raw in this repetition: p50 round trip ipcx/raw
    /// (lower is better) or messages per second ipcx/raw (higher is
    /// better).
    pub fn ratio(&self, kind: Kind) -> f64 {
        match kind {
            Kind::Latency => self.ipcx.p50_ns / self.raw.p50_ns,
            Kind::Throughput => self.ipcx.msgs_per_s / self.raw.msgs_per_s,
        }
    }
}

/// One row of results: a transport at one size and pinning, ipcx beside
/// raw, over its repetitions. Build it with [`Row::new`] (or measure it
/// with [`measure_row`]).
#[derive(Debug, Clone)]
pub struct Row {
    /// The transport's row label.
    pub transport: String,
    /// Message size in bytes.
    pub size: usize,
    /// CPU placement.
    pub pin: Pin,
    /// What was measured.
    pub kind: Kind,
    /// ipcx's figures: each the median over the repetitions.
    pub ipcx: Outcome,
    /// The raw baseline's figures: each the median over the repetitions.
    pub raw: Outcome,
    /// Every repetition, in the order measured (at least one).
    pub reps: Vec<Rep>,
}

impl Row {
    /// The row of these repetitions (at least one), its figures the
    /// medians over them.
    pub fn new(
        transport: impl Into<String>,
        size: usize,
        pin: Pin,
        kind: Kind,
        reps: Vec<Rep>,
    ) -> Row {
        Row {
            transport: transport.into(),
            size,
            pin,
            kind,
            ipcx: Outcome::median_of(reps.iter().map(|r| &r.ipcx)),
            raw: Outcome::median_of(reps.iter().map(|r| &r.raw)),
            reps,
        }
    }

    /// The per-repetition ratios ipcx/raw ([`Rep::ratio`]): median, range,
    /// whether unstable.
    pub fn spread(&self) -> Spread {
        Spread::of(self.reps.iter().map(|r| r.ratio(self.kind))).unwrap_or_else(|| {
            let r = Rep {
                ipcx: self.ipcx,
                raw: self.raw,
            }
            .ratio(self.kind);
            Spread {
                median: r,
                min: r,
                max: r,
                n: 1,
            }
        })
    }

    /// ipcx relative to raw: the median of the per-repetition ratios; for
    /// latency ipcx/raw (lower is better), for throughput ipcx/raw (higher
    /// is better).
    pub fn ratio(&self) -> f64 {
        self.spread().median
    }
}

/// Runs `ipcx bench`, or the peer role when re-executed as one.
///
/// # Errors
/// A message naming the transport and step that failed.
pub fn main(args: Args) -> Result<(), String> {
    if std::env::var_os(PEER_VAR).is_some() {
        return measure::peer_main();
    }
    if let Ok(spec) = std::env::var(scale::SCALE_VAR) {
        return scale::peer_main(&spec);
    }
    if let Ok(cfg) = std::env::var(batch::BATCH_VAR) {
        return batch::peer_main(&cfg);
    }
    if args.batch {
        return batch::main(&args);
    }
    if args.scale {
        let idle = Duration::from_millis(if args.quick { 1000 } else { 5000 });
        let rows = scale::run(&args.transports, &args.counts, idle, &mut |line| {
            eprintln!("{line}")
        })?;
        print!("{}", scale::table(&rows));
        if let Some(path) = &args.json {
            let text =
                serde_json::to_string_pretty(&serde_json::json!({ "scale": scale::json(&rows) }))
                    .unwrap_or_default()
                    + "\n";
            std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(path) = &args.svg {
            std::fs::write(path, chart::scale_svg(&rows))
                .map_err(|e| format!("writing {}: {e}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(());
    }
    let rows = if ((args.sync || args.queues) && args.transports.is_empty()) || args.asynchronous {
        Vec::new()
    } else {
        run(&args, &mut |line| eprintln!("{line}"))?
    };
    let async_rows = if args.asynchronous {
        aio::run(&args, &mut |line| eprintln!("{line}"))?
    } else {
        Vec::new()
    };
    let sync_rows = if args.sync {
        sync::run(
            Duration::from_millis(budget_ms(&args)),
            args.repeat,
            &mut |line| eprintln!("{line}"),
        )?
    } else {
        Vec::new()
    };
    if !rows.is_empty() {
        print!("{}", table(&rows));
    }
    if !async_rows.is_empty() {
        print!("{}", aio::table(&async_rows));
    }
    let fan_rows = if args.queues {
        queue_fan::run(
            &args.sizes_or(&[64, 4096]),
            Duration::from_millis(budget_ms(&args)) * 4,
            &mut |line| eprintln!("{line}"),
        )?
    } else {
        Vec::new()
    };
    if !sync_rows.is_empty() {
        print!("{}", sync::table(&sync_rows));
    }
    if !fan_rows.is_empty() {
        print!("{}", queue_fan::table(&fan_rows));
    }
    if let Some(path) = &args.json {
        let mut text = report::json(&args, &rows);
        if !sync_rows.is_empty() || !async_rows.is_empty() || !fan_rows.is_empty() {
            if let Ok(serde_json::Value::Object(mut o)) = serde_json::from_str(&text) {
                if !fan_rows.is_empty() {
                    o.insert("queue_fan".into(), queue_fan::json(&fan_rows));
                }
                if !sync_rows.is_empty() {
                    o.insert("sync".into(), sync::json(&sync_rows));
                }
                if !async_rows.is_empty() {
                    o.insert("async".into(), aio::json(&async_rows));
                    o.insert(
                        "sizes".into(),
                        serde_json::json!(args.sizes_or(&aio::SIZES)),
                    );
                }
                text = serde_json::to_string_pretty(&o).unwrap_or_default() + "\n";
            }
        }
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, chart::svg(&rows))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Measures every selected transport; `progress` gets one line per figure.
///
/// # Errors
/// A message naming the transport and step that failed.
pub fn run(args: &Args, progress: &mut dyn FnMut(&str)) -> Result<Vec<Row>, String> {
    let budget = Duration::from_millis(budget_ms(args));
    let repeat = args.repeat.max(1);
    if args.peers && !cfg!(feature = "peers") {
        return Err(
            "--peers needs a build with the peers feature: cargo build --release -p ipcx-cli --features peers"
                .to_string(),
        );
    }
    for t in &args.transports {
        if t == "nats" && !cfg!(feature = "nats") {
            return Err(
                "--transports nats needs a build with the nats feature: cargo build --release -p ipcx-cli --features nats"
                    .to_string(),
            );
        }
        let Some(d) = raw::all_targets()
            .filter(|d| d.library.is_none())
            .find(|d| d.selected_by(t))
        else {
            let mut known: Vec<&str> = raw::targets().iter().map(|d| d.scheme).collect();
            known.dedup();
            known.extend(
                raw::targets()
                    .iter()
                    .filter(|d| d.label != d.scheme)
                    .map(|d| d.label),
            );
            return Err(format!(
                "unknown transport {t:?}; known: {}",
                known.join(", ")
            ));
        };
        if !raw::supported(d.scheme) {
            return Err(format!("this build of ipcx does not support {t}"));
        }
    }
    let selected: Vec<&raw::TargetDef> = raw::all_targets()
        .filter(|d| raw::supported(d.scheme))
        .filter(|d| {
            if d.library.is_some() {
                args.peers
            } else if d.scheme == "nats" {
                // Opt-in: it needs a NATS server.
                args.transports.iter().any(|t| d.selected_by(t))
            } else {
                args.transports.is_empty() || args.transports.iter().any(|t| d.selected_by(t))
            }
        })
        .collect();
    let pins = |d: &raw::TargetDef| -> Vec<Pin> {
        args.pin
            .iter()
            .copied()
            .filter(|&p| !d.cross_only || p == Pin::Cross)
            .collect()
    };
    let all_sizes = args.sizes();
    let total: usize = selected
        .iter()
        .map(|d| {
            let sizes = all_sizes.iter().filter(|&&s| raw::queue::fits(d.label, s));
            pins(d).len() * sizes.count() * 2
        })
        .sum();
    // What the other libraries leave behind in the file system goes when
    // the run ends, however it ends.
    #[cfg(feature = "peers")]
    let _leftovers = args.peers.then(peers::Leftovers::note);
    // The nats rows run through a server of the run's own, killed at its
    // end; without the binary they are an error line and the other rows go
    // on.
    #[cfg(feature = "nats")]
    let mut _nats_server = None;
    #[cfg(feature = "nats")]
    let selected: Vec<&raw::TargetDef> = if selected.iter().any(|d| d.scheme == "nats") {
        match raw::nats::Server::start() {
            Ok(s) => {
                _nats_server = Some(s);
                selected
            }
            Err(e) => {
                progress(&format!("error: {e}"));
                selected
                    .into_iter()
                    .filter(|d| d.scheme != "nats")
                    .collect()
            }
        }
    } else {
        selected
    };
    let mut rows = Vec::new();
    for target in selected {
        let target_pins = pins(target);
        if target_pins.len() < args.pin.len() {
            progress(&format!(
                "skipping {} with --pin other than cross: both peers poll, so only cross-core placement measures the transport",
                target.label
            ));
        }
        for &pin in &target_pins {
            for &size in &all_sizes {
                if !raw::queue::fits(target.label, size) {
                    progress(&format!(
                        "skipping {} at {}: a queue message is one kernel message, and this one exceeds the kernel's limit",
                        target.label,
                        human_size(size)
                    ));
                    continue;
                }
                for kind in [Kind::Latency, Kind::Throughput] {
                    let spec = Spec { kind, size, budget };
                    let row = measure_row(target, &spec, pin, repeat)?;
                    progress(&format!(
                        "[{:>3}/{total}] {:<15} {:>8} {:<5} {:<10} {} {:>12} raw {:>12} ratio {}",
                        rows.len() + 1,
                        row.transport,
                        human_size(size),
                        pin.name(),
                        kind.name(),
                        if target.library.is_some() {
                            target.label
                        } else {
                            "ipcx"
                        },
                        figure(kind, &row.ipcx),
                        figure(kind, &row.raw),
                        row.spread().show_ratio()
                    ));
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

/// The time each side of one repetition measures, in milliseconds:
/// `--budget-ms`, or the profile's (60 ms; 200 ms with `--full`). Five
/// repetitions of 60 ms measure as long as the single 300 ms measurement
/// this profile made before figures were repeated.
pub fn budget_ms(args: &Args) -> u64 {
    match (args.budget_ms, args.full) {
        (Some(ms), _) => ms.max(1),
        (None, true) => 200,
        (None, false) => 60,
    }
}

/// Measures one row: `repeat` repetitions of ipcx and the raw baseline
/// of `target`, interleaved, the one going first alternating
/// ([`stats::interleave`]).
///
/// # Errors
/// A message naming the transport and step that failed.
pub fn measure_row(
    target: &raw::TargetDef,
    spec: &Spec,
    pin: Pin,
    repeat: usize,
) -> Result<Row, String> {
    let reps = stats::interleave(
        repeat.max(1),
        || measure_pair(target, Target::Ipcx, spec, pin),
        || measure_pair(target, Target::Raw, spec, pin),
    )?
    .into_iter()
    .map(|(ipcx, raw)| Rep { ipcx, raw })
    .collect();
    Ok(Row::new(target.label, spec.size, pin, spec.kind, reps))
}

struct PeerProcess {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl PeerProcess {
    fn spawn(config: &str, client: Option<&str>) -> Result<PeerProcess, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        if let Some(c) = client {
            cmd.env(CLIENT_VAR, c);
        }
        let mut child = cmd
            .arg("bench")
            .env(PEER_VAR, config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning a benchmark peer: {e}"))?;
        let stdout = child.stdout.take().ok_or("peer stdout")?;
        Ok(PeerProcess {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    fn line(&mut self, what: &str) -> Result<String, String> {
        match self.lines.next() {
            Some(Ok(l)) => Ok(l),
            _ => {
                let status = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                Err(format!(
                    "benchmark peer ended before reporting {what} ({status})"
                ))
            }
        }
    }

    fn finish(mut self) -> Result<(), String> {
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("benchmark peer failed: {status}"))
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn measure_pair(
    target: &raw::TargetDef,
    which: Target,
    spec: &Spec,
    pin: Pin,
) -> Result<Outcome, String> {
    let address = (target.address)();
    let server_cfg = measure::config(
        target.label,
        which,
        Role::Server,
        &address,
        spec,
        pin.cpu(Role::Server),
    );
    if target.spawned {
        // The server starts the client; the client's result comes out of
        // the server's standard output, which it inherits.
        let client_cfg = measure::config(
            target.label,
            which,
            Role::Client,
            &address,
            spec,
            pin.cpu(Role::Client),
        );
        let mut server = PeerProcess::spawn(&server_cfg, Some(&client_cfg))?;
        let ready = server.line("that it started its client")?;
        if !ready.starts_with("READY ") {
            return Err(format!("{} server: {ready}", target.label));
        }
        let result = server.line("the client's result")?;
        let outcome = result
            .strip_prefix("RESULT ")
            .and_then(Outcome::parse)
            .ok_or_else(|| format!("{} client: {result}", target.label))?;
        server.finish()?;
        return Ok(outcome);
    }
    let mut server = PeerProcess::spawn(&server_cfg, None)?;
    let ready = server.line("its address")?;
    let address = ready
        .strip_prefix("READY ")
        .ok_or_else(|| format!("{} server: {ready}", target.label))?
        .to_string();
    let client_cfg = measure::config(
        target.label,
        which,
        Role::Client,
        &address,
        spec,
        pin.cpu(Role::Client),
    );
    let mut client = PeerProcess::spawn(&client_cfg, None)?;
    let result = client.line("its result")?;
    let outcome = result
        .strip_prefix("RESULT ")
        .and_then(Outcome::parse)
        .ok_or_else(|| format!("{} client: {result}", target.label))?;
    client.finish()?;
    server.finish()?;
    Ok(outcome)
}

/// The figure shown for a measurement: p50 round trip or messages per second.
pub fn figure(kind: Kind, o: &Outcome) -> String {
    match kind {
        Kind::Latency => human_ns(o.p50_ns),
        Kind::Throughput => format!("{}/s", human_count(o.msgs_per_s)),
    }
}

/// The results as a text table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(format!(
        "{:<15} {:>7} {:<5} | {:>9} {:>9} {:>9} | {:>9} {:>9} | {:<18}   {:>11} {:>10} {:>11} | {:<18}",
        "transport", "size", "pin", "rtt p50", "p99", "p99.9", "raw p50", "raw p99", "ratio [min-max]",
        "msgs/s", "GB/s", "raw msgs/s", "ratio [min-max]"
    ).trim_end());
    out.push('\n');
    let mut keys: Vec<(String, Pin, usize)> = rows
        .iter()
        .map(|r| (r.transport.clone(), r.pin, r.size))
        .collect();
    keys.dedup();
    for (t, pin, size) in keys {
        let find = |k: Kind| {
            rows.iter()
                .find(|r| r.transport == t && r.pin == pin && r.size == size && r.kind == k)
        };
        let (lat, thr) = (find(Kind::Latency), find(Kind::Throughput));
        let mut line = format!("{:<15} {:>7} {:<5} | ", t, human_size(size), pin.name());
        match lat {
            Some(r) => line.push_str(&format!(
                "{:>9} {:>9} {:>9} | {:>9} {:>9} | {:<18}",
                human_ns(r.ipcx.p50_ns),
                human_ns(r.ipcx.p99_ns),
                human_ns(r.ipcx.p999_ns),
                human_ns(r.raw.p50_ns),
                human_ns(r.raw.p99_ns),
                r.spread().show_ratio()
            )),
            None => line.push_str(&format!("{:>72}", "")),
        }
        if let Some(r) = thr {
            line.push_str(&format!(
                "   {:>11} {:>10} {:>11} | {:<18}",
                human_count(r.ipcx.msgs_per_s),
                format!("{:.3}", r.ipcx.msgs_per_s * size as f64 / 1e9),
                human_count(r.raw.msgs_per_s),
                r.spread().show_ratio()
            ));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out.push_str("latency ratio = ipcx p50 / raw p50 (lower is better); throughput ratio = ipcx / raw (higher is better)\n");
    let reps = rows.iter().map(|r| r.reps.len()).max().unwrap_or(1);
    out.push_str(&format!(
        "figures: median of {reps} interleaved repetitions; ratio: median [min-max] of the per-repetition ratios; {} = unstable (a repetition more than ±{:.0} % from the median)\n",
        stats::MARK,
        stats::UNSTABLE * 100.0
    ));
    let mut notes: Vec<&str> = raw::all_targets()
        .filter(|d| rows.iter().any(|r| r.transport == d.label))
        .filter_map(|d| d.note)
        .collect();
    notes.dedup();
    for n in notes {
        out.push_str(n);
        out.push('\n');
    }
    out
}

/// `4 KiB`, `1 MiB`, `64 B`.
pub fn human_size(n: usize) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1024 && n % 1024 == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

/// `850 ns`, `12.3 µs`, `1.20 ms`.
pub fn human_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.0} ns")
    } else if ns < 1e6 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// `1.25 M`, `830 k`.
pub fn human_count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.2} M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.0} k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(p50: f64) -> Outcome {
        Outcome {
            p50_ns: p50,
            p99_ns: 2.0 * p50,
            p999_ns: 3.0 * p50,
            samples: 100,
            msgs_per_s: 0.0,
        }
    }

    fn row(ipcx: &[f64], raw: &[f64]) -> Row {
        let reps = ipcx
            .iter()
            .zip(raw)
            .map(|(&a, &b)| Rep {
                ipcx: latency(a),
                raw: latency(b),
            })
            .collect();
        Row::new("unix", 64, Pin::Same, Kind::Latency, reps)
    }

    #[test]
    fn a_row_is_the_median_of_its_repetitions() {
        let r = row(&[10.0, 30.0, 20.0], &[10.0, 10.0, 10.0]);
        assert_eq!(r.ipcx.p50_ns, 20.0);
        assert_eq!(r.ipcx.p99_ns, 40.0);
        assert_eq!(r.raw.p50_ns, 10.0);
        let s = r.spread();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(r.ratio(), 2.0);
        assert!(s.unstable());
    }

    #[test]
    fn the_ratio_is_taken_within_each_repetition() {
        // Both sides slow down together in the second repetition: the
        // ratio does not move, though each figure does.
        let r = row(&[10.0, 20.0, 11.0], &[10.0, 20.0, 10.0]);
        let s = r.spread();
        assert_eq!((s.min, s.median, s.max), (1.0, 1.0, 1.1));
        assert!(!s.unstable());
    }

    #[test]
    fn the_table_marks_an_unstable_row() {
        let steady = row(&[10.0, 10.5, 9.5], &[10.0, 10.0, 10.0]);
        let mut shaky = row(&[10.0, 20.0, 10.0], &[10.0, 10.0, 10.0]);
        shaky.pin = Pin::Cross;
        let t = table(&[steady, shaky]);
        let line = |pin: &str| {
            t.lines()
                .find(|l| l.starts_with("unix") && l.contains(pin))
                .unwrap()
                .to_string()
        };
        assert!(line("same").ends_with("1.00x [0.95-1.05]"), "{t}");
        assert!(line("cross").ends_with("1.00x [1.00-2.00]~"), "{t}");
        assert!(t.contains("median of 3 interleaved repetitions"), "{t}");
    }
}

//! `ipcx bench --batch`: one-way throughput of small messages sent in
//! batches (`Sender::send_batch`, received with `Receiver::recv_batch`),
//! beside the same transport one message per call and the raw
//! per-message baseline of its mechanism.
//!
//! Rows: `pipe:`, `unix:` and `shm:` with `wait=block` (the rows the
//! batching goal names), at each `--sizes` (default 64 B) and `--pin`.
//! Each figure is measured [`REPS`] times, interleaved (raw, ipcx,
//! batched, raw, …), and reported as the median with the spread of the
//! batched/raw ratio. The per-message and raw figures come from the same
//! peers as the main table (`measure_pair`); the batched peers are this
//! module's ([`BATCH_VAR`]).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipcx::{Batch, Endpoint, Listener, Receiver, Sender};

use super::measure::{DATA, Kind, Outcome, Role, STOP, Spec, Target};
use super::{Args, PeerProcess, Pin, human_count, human_size, measure_pair, raw};

/// Environment variable that makes the binary a batched benchmark peer.
pub const BATCH_VAR: &str = "IPCX_BENCH_BATCH";
/// Environment variable holding the client's configuration, for a server
/// that starts its client itself (`pipe:`).
const BATCH_CLIENT_VAR: &str = "IPCX_BENCH_BATCH_CLIENT";
/// Messages per batch.
pub const BATCH: usize = 64;
/// Interleaved repetitions of each figure.
pub const REPS: usize = 5;
/// The rows: benchmark labels of the transports measured.
const LABELS: [&str; 3] = ["pipe", "unix", "shm(block)"];
/// Sizes unless `--sizes` says otherwise.
const SIZES: [usize; 1] = [64];

/// One row: a transport at one size and pinning.
#[derive(Debug, Clone)]
pub struct BatchRow {
    /// The benchmark label of the transport.
    pub transport: String,
    /// Message size in bytes.
    pub size: usize,
    /// CPU placement.
    pub pin: Pin,
    /// Raw per-message messages/s, one per repetition.
    pub raw: Vec<f64>,
    /// ipcx one message per call, messages/s, per repetition.
    pub single: Vec<f64>,
    /// ipcx in batches of [`BATCH`], messages/s, per repetition.
    pub batched: Vec<f64>,
    /// The same through the async API (`ipcx::tokio`, the sender's
    /// `send_batch().await` on a current-thread runtime; the receiver
    /// blocking), messages/s, per repetition.
    pub async_batched: Vec<f64>,
}

impl BatchRow {
    /// Batched/raw per repetition (the goal: at least 3).
    pub fn ratios(&self) -> Vec<f64> {
        self.batched
            .iter()
            .zip(&self.raw)
            .map(|(b, r)| b / r)
            .collect()
    }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() { 0.0 } else { s[s.len() / 2] }
}

fn spread(v: &[f64]) -> (f64, f64) {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max)
}

/// `ipcx bench --batch`: measures, prints the table, writes `--json`.
///
/// # Errors
/// A message naming the transport and step that failed.
pub fn main(args: &Args) -> Result<(), String> {
    let rows = run(args, &mut |line| eprintln!("{line}"))?;
    print!("{}", table(&rows));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&serde_json::json!({ "batch": json(&rows) }))
            .unwrap_or_default()
            + "\n";
        std::fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Measures every row; `progress` gets one line per figure.
///
/// # Errors
/// A message naming the transport and step that failed.
pub fn run(args: &Args, progress: &mut dyn FnMut(&str)) -> Result<Vec<BatchRow>, String> {
    let budget = Duration::from_millis(super::budget_ms(args));
    let mut rows = Vec::new();
    for label in LABELS {
        let def = raw::all_targets()
            .find(|d| d.label == label)
            .ok_or_else(|| format!("no benchmark target {label}"))?;
        let chosen =
            args.transports.is_empty() || args.transports.iter().any(|t| def.selected_by(t));
        if !chosen || !raw::supported(def.scheme) {
            continue;
        }
        for &size in &args.sizes_or(&SIZES) {
            for &pin in &args.pin {
                let spec = Spec {
                    kind: Kind::Throughput,
                    size: size.max(1),
                    budget,
                };
                let mut row = BatchRow {
                    transport: label.to_string(),
                    size,
                    pin,
                    raw: Vec::new(),
                    single: Vec::new(),
                    batched: Vec::new(),
                    async_batched: Vec::new(),
                };
                for rep in 0..REPS {
                    row.raw
                        .push(measure_pair(def, Target::Raw, &spec, pin)?.msgs_per_s);
                    row.single
                        .push(measure_pair(def, Target::Ipcx, &spec, pin)?.msgs_per_s);
                    row.batched
                        .push(measure_batched(def, &spec, pin, false)?.msgs_per_s);
                    row.async_batched
                        .push(measure_batched(def, &spec, pin, true)?.msgs_per_s);
                    progress(&format!(
                        "batch {label} {} pin={} rep {}/{REPS}: raw {}/s, ipcx {}/s, batched {}/s, async batched {}/s",
                        human_size(size),
                        pin.name(),
                        rep + 1,
                        human_count(row.raw[rep]),
                        human_count(row.single[rep]),
                        human_count(row.batched[rep]),
                        human_count(row.async_batched[rep]),
                    ));
                }
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The table of batch rows.
pub fn table(rows: &[BatchRow]) -> String {
    let mut out = format!(
        "\none-way throughput, batches of {BATCH} (send_batch / recv_batch), median of {REPS} interleaved repetitions\n"
    );
    out += &format!(
        "{:<12} {:>6} {:>6} {:>12} {:>12} {:>12} {:>10} {:>22} {:>14} {:>10}\n",
        "transport",
        "size",
        "pin",
        "raw",
        "ipcx",
        "batched",
        "ipcx/raw",
        "batched/raw",
        "async batched",
        "async/raw"
    );
    for r in rows {
        let ratios = r.ratios();
        let (lo, hi) = spread(&ratios);
        out += &format!(
            "{:<12} {:>6} {:>6} {:>12} {:>12} {:>12} {:>9.2}× {:>6.2}× ({:>5.2}–{:>5.2}) {:>14} {:>9.2}×\n",
            r.transport,
            human_size(r.size),
            r.pin.name(),
            format!("{}/s", human_count(median(&r.raw))),
            format!("{}/s", human_count(median(&r.single))),
            format!("{}/s", human_count(median(&r.batched))),
            median(&r.single) / median(&r.raw),
            median(&ratios),
            lo,
            hi,
            format!("{}/s", human_count(median(&r.async_batched))),
            median(&r.async_batched) / median(&r.raw),
        );
    }
    out
}

/// The rows as JSON, every repetition included.
pub fn json(rows: &[BatchRow]) -> serde_json::Value {
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "transport": r.transport,
                    "size": r.size,
                    "pin": r.pin.name(),
                    "batch": BATCH,
                    "raw_msgs_per_s": r.raw,
                    "ipcx_msgs_per_s": r.single,
                    "batched_msgs_per_s": r.batched,
                    "async_batched_msgs_per_s": r.async_batched,
                    "batched_over_raw": r.ratios(),
                    "batched_over_raw_median": median(&r.ratios()),
                })
            })
            .collect(),
    )
}

fn config(
    label: &str,
    role: Role,
    asynchronous: bool,
    spec: &Spec,
    cpu: Option<usize>,
    address: &str,
) -> String {
    format!(
        "{label}\t{}\t{}\t{}\t{}\t{}\t{address}",
        if asynchronous { "async" } else { "blocking" },
        match role {
            Role::Server => "server",
            Role::Client => "client",
        },
        spec.size,
        spec.budget.as_millis(),
        cpu.map_or("-".to_string(), |c| c.to_string()),
    )
}

fn spawn_peer(config: &str, client: Option<&str>) -> Result<PeerProcess, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    if let Some(c) = client {
        cmd.env(BATCH_CLIENT_VAR, c);
    }
    let mut child = cmd
        .arg("bench")
        .env(BATCH_VAR, config)
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

/// One batched measurement: a server and a client process.
fn measure_batched(
    def: &raw::TargetDef,
    spec: &Spec,
    pin: Pin,
    asynchronous: bool,
) -> Result<Outcome, String> {
    let address = (def.address)();
    let cfg = |role, at: &str| config(def.label, role, asynchronous, spec, pin.cpu(role), at);
    let server_cfg = cfg(Role::Server, &address);
    let result = if def.spawned {
        let client_cfg = cfg(Role::Client, &address);
        let mut server = spawn_peer(&server_cfg, Some(&client_cfg))?;
        server.line("that it started its client")?;
        let result = server.line("the client's result")?;
        server.finish()?;
        result
    } else {
        let mut server = spawn_peer(&server_cfg, None)?;
        let ready = server.line("its address")?;
        let at = ready
            .strip_prefix("READY ")
            .ok_or_else(|| format!("{} batch server: {ready}", def.label))?;
        let client_cfg = cfg(Role::Client, at);
        let mut client = spawn_peer(&client_cfg, None)?;
        let result = client.line("its result")?;
        client.finish()?;
        server.finish()?;
        result
    };
    result
        .strip_prefix("RESULT ")
        .and_then(Outcome::parse)
        .ok_or_else(|| format!("{} batch client: {result}", def.label))
}

fn pin_to(cpu: usize) -> Result<(), String> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("pinning to cpu {cpu}: {e}"))
}

/// The re-executed batched peer.
///
/// # Errors
/// What failed, as text (the parent reports it).
pub fn peer_main(cfg: &str) -> Result<(), String> {
    let f: Vec<&str> = cfg.splitn(7, '\t').collect();
    let [_label, mode, role, size, budget, cpu, address] = f[..] else {
        return Err(format!("bad batch peer configuration {cfg:?}"));
    };
    let size: usize = size.parse().map_err(|_| "size")?;
    let budget = Duration::from_millis(budget.parse().map_err(|_| "budget")?);
    if let Ok(c) = cpu.parse::<usize>() {
        pin_to(c)?;
    }
    let ep: Endpoint = address
        .parse()
        .map_err(|e: ipcx::EndpointError| e.to_string())?;
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    if role == "client" && mode == "async" {
        let o = async_client(&ep, size, budget)?;
        say(&format!("RESULT {}", o.encode()));
        return Ok(());
    }
    if role == "client" {
        let mut ch = ipcx::connect(&ep).map_err(|e| e.to_string())?;
        let o = client(&mut ch, size, budget).map_err(|e| e.to_string())?;
        say(&format!("RESULT {}", o.encode()));
        return Ok(());
    }
    if ep.scheme() == ipcx::Scheme::Pipe {
        let client_cfg = std::env::var(BATCH_CLIENT_VAR)
            .map_err(|_| format!("{BATCH_CLIENT_VAR} is not set"))?;
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.arg("bench")
            .env(BATCH_VAR, client_cfg)
            .env_remove(BATCH_CLIENT_VAR)
            .stdin(Stdio::null());
        let (mut child, mut ch) = ipcx::spawn(cmd, &ep).map_err(|e| e.to_string())?;
        say("READY spawned");
        let r = server(&mut ch).map_err(|e| e.to_string());
        drop(ch);
        let _ = child.wait();
        return r;
    }
    let mut l = ipcx::listen(&ep).map_err(|e| e.to_string())?;
    say(&format!("READY {}", l.endpoint()));
    let mut ch = l.accept().map_err(|e| e.to_string())?;
    server(&mut ch).map_err(|e| e.to_string())
}

/// Sends batches of [`BATCH`] messages for `budget`, then the stop
/// message, and waits for the server's acknowledgement.
fn client(ch: &mut ipcx::AnyChannel, size: usize, budget: Duration) -> ipcx::Result<Outcome> {
    let msgs = vec![vec![DATA; size.max(1)]; BATCH];
    let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        ch.send_batch(&refs)?;
        n += BATCH as u64;
        if start.elapsed() >= budget {
            break;
        }
    }
    ch.send(&vec![STOP; size.max(1)])?;
    let mut ack = Vec::new();
    ch.recv_into(&mut ack)?;
    let secs = start.elapsed().as_secs_f64();
    Ok(Outcome {
        samples: n,
        msgs_per_s: n as f64 / secs,
        ..Outcome::default()
    })
}

/// [`client`] through the async API, on a current-thread runtime.
fn async_client(ep: &Endpoint, size: usize, budget: Duration) -> Result<Outcome, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    rt.block_on(async {
        let mut ch = if ep.scheme() == ipcx::Scheme::Pipe {
            ipcx::tokio::connect_parent().await
        } else {
            ipcx::tokio::connect(ep).await
        }
        .map_err(|e| e.to_string())?;
        let msgs = vec![vec![DATA; size.max(1)]; BATCH];
        let refs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
        let start = Instant::now();
        let mut n: u64 = 0;
        loop {
            ch.send_batch(&refs).await.map_err(|e| e.to_string())?;
            n += BATCH as u64;
            if start.elapsed() >= budget {
                break;
            }
        }
        ch.send(&vec![STOP; size.max(1)])
            .await
            .map_err(|e| e.to_string())?;
        ch.recv().await.map_err(|e| e.to_string())?;
        let secs = start.elapsed().as_secs_f64();
        Ok(Outcome {
            samples: n,
            msgs_per_s: n as f64 / secs,
            ..Outcome::default()
        })
    })
}

/// Receives in batches until the stop message, then acknowledges it.
fn server(ch: &mut ipcx::AnyChannel) -> ipcx::Result<()> {
    let mut batch = Batch::with_capacity(BATCH, BATCH * 64);
    loop {
        ch.recv_batch(&mut batch, BATCH)?;
        // The stop message is the last the client sends.
        let last = batch.get(batch.len() - 1).and_then(|m| m.first().copied());
        if last == Some(STOP) {
            return ch.send(b"ack");
        }
    }
}

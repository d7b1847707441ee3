//! `ipcx bench --async`: every transport through the async API
//! (`ipcx::tokio`), beside the blocking ipcx row of the same transport and,
//! where tokio drives the same mechanism itself, a raw tokio baseline
//! ([`raw::aio`]: `UnixStream`, `TcpStream`,
//! `unix::pipe` for pipes and FIFOs, length-prefixed by hand).
//!
//! The measurements are those of the blocking rows (round trip, one-way
//! throughput; two processes, pinned as asked). Each async peer runs a
//! current-thread runtime, the single thread a tokio service would give a
//! connection. Each figure is measured in `--repeat` rounds (default
//! [`stats::REPEAT`]); a round runs async, blocking and raw tokio once
//! each, starting with a different one every round ([`stats::order`]), so
//! drift in clock speed or load hits all alike. Ratios are taken within a
//! round and reported as their median and range, marked unstable as the
//! transport rows' are ([`stats::Spread::unstable`]). Each side of a round
//! measures for 300 ms (1 s with `--full`; `--budget-ms` overrides).
//!
//! Shared memory is measured with `wait=block` on both sides (the async
//! half waits through its bridge or doorbell; the blocking row sleeps on
//! the futex).

use std::time::{Duration, Instant};

use ipcx::Endpoint;
use serde_json::{Value, json};

use super::measure::{self, DATA, Kind, Outcome, STOP, Spec, Target};
use super::raw::{self, aio as tokio_raw};
use super::stats::{self, Spread};
use super::{Args, Pin, human_count, human_ns, human_size};

/// Sizes measured unless `--sizes` says otherwise.
pub const SIZES: [usize; 2] = [64, 4096];

/// A transport with async rows.
struct AsyncTarget {
    /// The scheme, as the table names it.
    scheme: &'static str,
    /// The blocking row it stands beside ([`raw::TargetDef::label`]).
    blocking: &'static str,
    /// The raw tokio baseline, when tokio drives the mechanism.
    tokio: Option<&'static str>,
}

/// Every transport, in table order.
const TARGETS: &[AsyncTarget] = &[
    AsyncTarget {
        scheme: "pipe",
        blocking: "pipe",
        tokio: Some("tokio::net::unix::pipe"),
    },
    AsyncTarget {
        scheme: "fifo",
        blocking: "fifo",
        tokio: Some("tokio::net::unix::pipe"),
    },
    AsyncTarget {
        scheme: "mq",
        blocking: "mq",
        tokio: None,
    },
    AsyncTarget {
        scheme: "sysv-mq",
        blocking: "sysv-mq",
        tokio: None,
    },
    AsyncTarget {
        scheme: "unix",
        blocking: "unix",
        tokio: Some("tokio::net::UnixStream"),
    },
    AsyncTarget {
        scheme: "tcp",
        blocking: "tcp",
        tokio: Some("tokio::net::TcpStream"),
    },
    AsyncTarget {
        scheme: "shm",
        blocking: "shm(block)",
        tokio: None,
    },
    AsyncTarget {
        scheme: "sysv-shm",
        blocking: "sysv-shm(block)",
        tokio: None,
    },
];

/// One round of a figure: each implementation once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Round {
    /// ipcx through `ipcx::tokio`.
    pub asynchronous: Outcome,
    /// ipcx's blocking API.
    pub blocking: Outcome,
    /// The raw tokio baseline, where there is one.
    pub tokio: Option<Outcome>,
}

/// One async row: a transport at one size, pinning and measurement.
#[derive(Debug, Clone)]
pub struct AsyncRow {
    /// The transport's scheme.
    pub transport: &'static str,
    /// The raw tokio baseline's name, where there is one.
    pub baseline: Option<&'static str>,
    /// Message size in bytes.
    pub size: usize,
    /// CPU placement.
    pub pin: Pin,
    /// What was measured.
    pub kind: Kind,
    /// Every round's figures.
    pub rounds: Vec<Round>,
}

/// Which column a figure or ratio is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// Async ipcx.
    Async,
    /// Blocking ipcx.
    Blocking,
    /// Raw tokio.
    Tokio,
}

impl AsyncRow {
    /// The figure a ratio is made of: p50 round trip (ns) or messages per
    /// second.
    fn figure(&self, o: &Outcome) -> f64 {
        match self.kind {
            Kind::Latency => o.p50_ns,
            Kind::Throughput => o.msgs_per_s,
        }
    }

    fn outcome(r: &Round, c: Column) -> Option<&Outcome> {
        match c {
            Column::Async => Some(&r.asynchronous),
            Column::Blocking => Some(&r.blocking),
            Column::Tokio => r.tokio.as_ref(),
        }
    }

    /// A column's figure over the rounds (`None` without a baseline).
    pub fn spread(&self, c: Column) -> Option<Spread> {
        Spread::of(
            self.rounds
                .iter()
                .filter_map(|r| Self::outcome(r, c))
                .map(|o| self.figure(o)),
        )
    }

    /// Async against `c`, round by round: p50 async / p50 `c` for round
    /// trips (lower is better), async / `c` messages per second for
    /// throughput (higher is better).
    pub fn ratio(&self, c: Column) -> Option<Spread> {
        Spread::of(self.rounds.iter().filter_map(|r| {
            let other = Self::outcome(r, c)?;
            Some(self.figure(&r.asynchronous) / self.figure(other))
        }))
    }
}

/// Measures the async rows of every selected transport; `progress` gets
/// one line per figure.
///
/// # Errors
/// A message naming the transport and step that failed.
pub fn run(args: &Args, progress: &mut dyn FnMut(&str)) -> Result<Vec<AsyncRow>, String> {
    let budget = Duration::from_millis(budget_ms(args));
    let rounds = args.repeat.max(1);
    for t in &args.transports {
        if !TARGETS.iter().any(|a| a.scheme == t || a.blocking == t) {
            let known: Vec<&str> = TARGETS.iter().map(|a| a.scheme).collect();
            return Err(format!(
                "no async rows for {t:?}; known: {}",
                known.join(", ")
            ));
        }
        if !raw::supported(t.split('(').next().unwrap_or(t)) {
            return Err(format!("this build of ipcx does not support {t}"));
        }
    }
    let selected: Vec<&AsyncTarget> = TARGETS
        .iter()
        .filter(|a| raw::supported(a.scheme))
        .filter(|a| {
            args.transports.is_empty()
                || args
                    .transports
                    .iter()
                    .any(|t| t == a.scheme || t == a.blocking)
        })
        .collect();
    let sizes = args.sizes_or(&SIZES);
    let total = selected.len() * sizes.len() * args.pin.len() * 2;
    let mut rows = Vec::new();
    for target in selected {
        let def = raw::targets()
            .iter()
            .find(|d| d.label == target.blocking)
            .ok_or_else(|| format!("no blocking row {}", target.blocking))?;
        for &pin in &args.pin {
            for &size in &sizes {
                for kind in [Kind::Latency, Kind::Throughput] {
                    let spec = Spec { kind, size, budget };
                    let mut row = AsyncRow {
                        transport: target.scheme,
                        baseline: target.tokio,
                        size,
                        pin,
                        kind,
                        rounds: Vec::with_capacity(rounds),
                    };
                    let sides: &[Target] = if target.tokio.is_some() {
                        &[Target::Async, Target::Ipcx, Target::Tokio]
                    } else {
                        &[Target::Async, Target::Ipcx]
                    };
                    for n in 0..rounds {
                        let mut round = Round::default();
                        for which in stats::order(sides, n) {
                            let o = super::measure_pair(def, which, &spec, pin)?;
                            match which {
                                Target::Async => round.asynchronous = o,
                                Target::Tokio => round.tokio = Some(o),
                                _ => round.blocking = o,
                            }
                        }
                        row.rounds.push(round);
                    }
                    progress(&progress_line(rows.len() + 1, total, &row));
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

/// The time each side of a round measures, in milliseconds:
/// `--budget-ms`, or 300 ms (1 s with `--full`).
pub fn budget_ms(args: &Args) -> u64 {
    match (args.budget_ms, args.full) {
        (Some(ms), _) => ms.max(1),
        (None, true) => 1000,
        (None, false) => 300,
    }
}

fn progress_line(n: usize, total: usize, row: &AsyncRow) -> String {
    let fig = |c| {
        row.spread(c)
            .map_or("-".to_string(), |s| show(row.kind, s.median))
    };
    let ratio = |c| {
        row.ratio(c)
            .map_or("-".to_string(), |s| format!("{:.2}", s.median))
    };
    format!(
        "[{n:>3}/{total}] {:<9} {:>6} {:<5} {:<10} async {:>10} blocking {:>10} tokio {:>10} async/tokio {} async/blocking {}",
        row.transport,
        human_size(row.size),
        row.pin.name(),
        row.kind.name(),
        fig(Column::Async),
        fig(Column::Blocking),
        fig(Column::Tokio),
        ratio(Column::Tokio),
        ratio(Column::Blocking),
    )
}

fn show(kind: Kind, v: f64) -> String {
    match kind {
        Kind::Latency => human_ns(v),
        Kind::Throughput => format!("{}/s", human_count(v)),
    }
}

fn show_ratio(s: Option<Spread>) -> String {
    s.map_or("-".to_string(), |s| s.show_ratio())
}

/// The async rows as a text table.
pub fn table(rows: &[AsyncRow]) -> String {
    let mut out = format!(
        "{:<9} {:>6} {:<5} {:<10} | {:>10} {:>10} {:>10} | {:>20} | {:>20}\n",
        "async",
        "size",
        "pin",
        "measure",
        "async",
        "blocking",
        "raw tokio",
        "async/tokio",
        "async/blocking"
    );
    for r in rows {
        let fig = |c| {
            r.spread(c)
                .map_or("-".to_string(), |s| show(r.kind, s.median))
        };
        let line = format!(
            "{:<9} {:>6} {:<5} {:<10} | {:>10} {:>10} {:>10} | {:>20} | {:>20}",
            r.transport,
            human_size(r.size),
            r.pin.name(),
            r.kind.name(),
            fig(Column::Async),
            fig(Column::Blocking),
            fig(Column::Tokio),
            show_ratio(r.ratio(Column::Tokio)),
            show_ratio(r.ratio(Column::Blocking)),
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let rounds = rows.first().map_or(stats::REPEAT, |r| r.rounds.len());
    out.push_str(&format!(
        "round-trip: p50, ratio = async p50 / other p50 (lower is better); throughput: msgs/s, ratio = async / other (higher is better)\nfigures: median of {rounds} interleaved rounds; ratios: median [min-max] of the per-round ratios; {} = unstable (a round more than ±{:.0} % from the median)\nasync peers: one current-thread tokio runtime per process; shm, sysv-shm: wait=block on both sides\n",
        stats::MARK,
        stats::UNSTABLE * 100.0
    ));
    let mut baselines: Vec<String> = TARGETS
        .iter()
        .filter(|a| rows.iter().any(|r| r.transport == a.scheme))
        .filter_map(|a| a.tokio.map(|b| format!("{}: {b}", a.scheme)))
        .collect();
    if !baselines.is_empty() {
        baselines.dedup();
        out.push_str(&format!(
            "raw tokio = {}, with a u32 length prefix written with each message and a BufReader on the reading side\n",
            baselines.join("; ")
        ));
    }
    out
}

/// The rows as the JSON report's `async` array.
pub fn json(rows: &[AsyncRow]) -> Value {
    let outcome = |kind: Kind, size: usize, o: &Outcome| match kind {
        Kind::Latency => json!({
            "p50_ns": o.p50_ns, "p99_ns": o.p99_ns, "p999_ns": o.p999_ns, "samples": o.samples,
        }),
        Kind::Throughput => json!({
            "msgs_per_s": o.msgs_per_s,
            "gb_per_s": o.msgs_per_s * size as f64 / 1e9,
            "samples": o.samples,
        }),
    };
    Value::Array(
        rows.iter()
            .map(|r| {
                let spread = |c| r.spread(c).map_or(Value::Null, |s| s.json());
                let ratio = |c| r.ratio(c).map_or(Value::Null, |s| s.json());
                json!({
                    "transport": r.transport,
                    "size": r.size,
                    "pin": r.pin.name(),
                    "kind": r.kind.name(),
                    "tokio_baseline": r.baseline,
                    "async": spread(Column::Async),
                    "blocking": spread(Column::Blocking),
                    "tokio": spread(Column::Tokio),
                    "ratio_async_tokio": ratio(Column::Tokio),
                    "ratio_async_blocking": ratio(Column::Blocking),
                    "rounds": r.rounds.iter().map(|x| json!({
                        "async": outcome(r.kind, r.size, &x.asynchronous),
                        "blocking": outcome(r.kind, r.size, &x.blocking),
                        "tokio": x.tokio.as_ref().map(|o| outcome(r.kind, r.size, o)),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// A connection as the async loops see it.
trait AsyncLink {
    async fn send(&mut self, msg: &[u8]) -> Result<(), String>;
    async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), String>;
}

impl AsyncLink for ipcx::tokio::Channel {
    #[inline]
    async fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        ipcx::tokio::Channel::send(self, msg)
            .await
            .map_err(|e| e.to_string())
    }

    #[inline]
    async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), String> {
        self.recv_into(buf).await.map_err(|e| e.to_string())
    }
}

impl<R, W> AsyncLink for tokio_raw::Framed<R, W>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    #[inline]
    async fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        tokio_raw::Framed::send(self, msg).await
    }

    #[inline]
    async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), String> {
        tokio_raw::Framed::recv(self, buf).await
    }
}

/// The re-executed peer of an async row: async ipcx (`ipcx`) or the raw
/// tokio baseline, on a current-thread runtime.
///
/// # Errors
/// What failed, as text (the parent reports it).
pub(super) fn peer(
    def: &raw::TargetDef,
    ipcx: bool,
    server: bool,
    address: &str,
    spec: &Spec,
    ready: &dyn Fn(&str),
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting a tokio runtime: {e}"))?;
    rt.block_on(async {
        let mut child = None;
        let result = if ipcx {
            let ep: Endpoint = address
                .parse()
                .map_err(|e: ipcx::EndpointError| e.to_string())?;
            let ch = match (server, def.spawned) {
                (true, true) => {
                    let (c, ch) =
                        ipcx::spawn(measure::client_command()?, &ep).map_err(|e| e.to_string())?;
                    child = Some(c);
                    ready("spawned");
                    ipcx::tokio::Channel::new(ch).map_err(|e| e.to_string())?
                }
                (true, false) => {
                    let mut l = ipcx::tokio::listen(&ep).map_err(|e| e.to_string())?;
                    ready(&l.endpoint().to_string());
                    l.accept().await.map_err(|e| e.to_string())?
                }
                (false, true) => ipcx::tokio::connect_parent()
                    .await
                    .map_err(|e| e.to_string())?,
                (false, false) => ipcx::tokio::connect(&ep).await.map_err(|e| e.to_string())?,
            };
            drive(ch, server, spec).await
        } else {
            match (def.scheme, server) {
                ("unix", true) => {
                    drive(tokio_raw::unix_server(address, ready).await?, true, spec).await
                }
                ("unix", false) => drive(tokio_raw::unix_client(address).await?, false, spec).await,
                ("tcp", true) => drive(tokio_raw::tcp_server(ready).await?, true, spec).await,
                ("tcp", false) => drive(tokio_raw::tcp_client(address).await?, false, spec).await,
                ("pipe", true) => {
                    let (link, c) = tokio_raw::pipe_server()?;
                    child = Some(c);
                    ready("spawned");
                    drive(link, true, spec).await
                }
                ("pipe", false) => drive(tokio_raw::pipe_client()?, false, spec).await,
                ("fifo", true) => drive(tokio_raw::fifo_server(address, ready)?, true, spec).await,
                ("fifo", false) => drive(tokio_raw::fifo_client(address)?, false, spec).await,
                (other, _) => Err(format!("no raw tokio baseline for {other}")),
            }
        };
        if let Some(mut c) = child {
            // The client exits after its last message; reap it.
            let _ = c.wait();
        }
        result
    })
}

/// Serves, or measures and prints the result, then closes `link`.
async fn drive<L: AsyncLink>(mut link: L, server: bool, spec: &Spec) -> Result<(), String> {
    if server {
        return serve(&mut link, spec).await;
    }
    let o = match spec.kind {
        Kind::Latency => latency(&mut link, spec).await?,
        Kind::Throughput => throughput(&mut link, spec).await?,
    };
    println!("RESULT {}", o.encode());
    Ok(())
}

async fn serve<L: AsyncLink>(link: &mut L, spec: &Spec) -> Result<(), String> {
    let mut buf = Vec::with_capacity(spec.size);
    loop {
        link.recv(&mut buf).await?;
        if buf.first() == Some(&STOP) {
            if spec.kind == Kind::Throughput {
                link.send(&buf).await?;
            }
            return Ok(());
        }
        if spec.kind == Kind::Latency {
            link.send(&buf).await?;
        }
    }
}

async fn latency<L: AsyncLink>(link: &mut L, spec: &Spec) -> Result<Outcome, String> {
    let mut msg = vec![DATA; spec.size];
    let mut buf = Vec::with_capacity(spec.size);
    let warm = Instant::now();
    while warm.elapsed() < spec.budget / 10 {
        link.send(&msg).await?;
        link.recv(&mut buf).await?;
    }
    let mut samples: Vec<u64> = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    while (start.elapsed() < spec.budget || samples.len() < 200) && samples.len() < 5_000_000 {
        let t = Instant::now();
        link.send(&msg).await?;
        link.recv(&mut buf).await?;
        samples.push(t.elapsed().as_nanos() as u64);
    }
    msg[0] = STOP;
    link.send(&msg).await?;
    Ok(measure::round_trips(samples))
}

async fn throughput<L: AsyncLink>(link: &mut L, spec: &Spec) -> Result<Outcome, String> {
    let mut msg = vec![DATA; spec.size];
    let mut buf = Vec::with_capacity(spec.size);
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        link.send(&msg).await?;
        n += 1;
        if n % 16 == 0 && start.elapsed() >= spec.budget {
            break;
        }
    }
    msg[0] = STOP;
    link.send(&msg).await?;
    link.recv(&mut buf).await?;
    let secs = start.elapsed().as_secs_f64();
    Ok(Outcome {
        samples: n,
        msgs_per_s: n as f64 / secs,
        ..Outcome::default()
    })
}

//! The measurement loops, the same for ipcx and for the raw baselines, and
//! the peer side of the re-executed benchmark process.

use std::io::Write;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use ipcx::backends::shm::{ShmReceiver, ShmSender};
use ipcx::{Channel, Endpoint, Listener, Receiver, Sender};

use super::raw;

/// Round trips a latency measurement times at least, if they fit in
/// [`MAX_STRETCH`] times its budget: on a loaded machine a cross-core
/// round trip can average hundreds of microseconds, and a p50 of fewer
/// samples wanders.
const MIN_ROUND_TRIPS: usize = 200;
/// How far past its budget a latency measurement may run to reach
/// [`MIN_ROUND_TRIPS`]: 1 MiB round trips take milliseconds, and 200 of
/// them per repetition would make those rows alone minutes long.
const MAX_STRETCH: u32 = 4;

/// Environment variable of a throughput client: send exactly this many
/// messages rather than for the time budget (for profiles that compare
/// work per message, `docs/benchmarks.md`).
pub const MESSAGES_VAR: &str = "IPCX_BENCH_MESSAGES";

/// First byte of an ordinary message.
pub(super) const DATA: u8 = 0;
/// First byte of the message that ends a measurement.
pub(super) const STOP: u8 = 1;

/// What is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Round-trip latency.
    Latency,
    /// One-way throughput.
    Throughput,
}

impl Kind {
    /// The name used in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Latency => "round-trip",
            Kind::Throughput => "throughput",
        }
    }
}

/// Which implementation runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The ipcx transport.
    Ipcx,
    /// The raw baseline of the same mechanism.
    Raw,
    /// The ipcx transport through its async API (`ipcx::tokio`), on a
    /// current-thread runtime (`ipcx bench --async`).
    Async,
    /// The raw tokio baseline of the same mechanism (`ipcx bench --async`).
    Tokio,
}

/// Which side a peer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Listens, echoes or counts.
    Server,
    /// Connects and measures.
    Client,
}

/// One measurement's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// What is measured.
    pub kind: Kind,
    /// Message size in bytes (at least 1).
    pub size: usize,
    /// How long to measure.
    pub budget: Duration,
}

/// One measurement's figures.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Median round trip, ns.
    pub p50_ns: f64,
    /// 99th percentile round trip, ns.
    pub p99_ns: f64,
    /// 99.9th percentile round trip, ns.
    pub p999_ns: f64,
    /// Round trips timed, or messages sent.
    pub samples: u64,
    /// Messages per second (throughput).
    pub msgs_per_s: f64,
}

impl Outcome {
    /// Each figure the median of that figure over `outcomes` (all zero for
    /// none): what a row shows of its repetitions.
    pub fn median_of<'a>(outcomes: impl IntoIterator<Item = &'a Outcome> + Clone) -> Outcome {
        let m = |f: fn(&Outcome) -> f64| {
            super::stats::median(outcomes.clone().into_iter().map(f)).unwrap_or(0.0)
        };
        Outcome {
            p50_ns: m(|o| o.p50_ns),
            p99_ns: m(|o| o.p99_ns),
            p999_ns: m(|o| o.p999_ns),
            samples: m(|o| o.samples as f64) as u64,
            msgs_per_s: m(|o| o.msgs_per_s),
        }
    }

    pub(super) fn encode(&self) -> String {
        format!(
            "p50={} p99={} p999={} samples={} rate={}",
            self.p50_ns, self.p99_ns, self.p999_ns, self.samples, self.msgs_per_s
        )
    }

    /// Parses what `Outcome::encode` printed.
    pub fn parse(s: &str) -> Option<Outcome> {
        let mut o = Outcome::default();
        for kv in s.split_whitespace() {
            let (k, v) = kv.split_once('=')?;
            match k {
                "p50" => o.p50_ns = v.parse().ok()?,
                "p99" => o.p99_ns = v.parse().ok()?,
                "p999" => o.p999_ns = v.parse().ok()?,
                "samples" => o.samples = v.parse().ok()?,
                "rate" => o.msgs_per_s = v.parse().ok()?,
                _ => return None,
            }
        }
        Some(o)
    }
}

/// A connection as the loops see it.
pub trait Link {
    /// Sends one message.
    ///
    /// # Errors
    /// The transport's error, as text.
    fn send(&mut self, msg: &[u8]) -> Result<(), String>;
    /// Receives one message of `size` bytes into `buf` (a link that reads
    /// in place may leave `buf` as it is: the measuring side never looks).
    ///
    /// # Errors
    /// The transport's error, as text.
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<(), String>;
    /// The server's step: receives one message and, with `echo`, sends it
    /// back unless it is the stop message. Returns whether it was, with
    /// the message then in `buf`.
    ///
    /// # Errors
    /// The transport's error, as text.
    #[inline]
    fn serve_one(&mut self, buf: &mut Vec<u8>, size: usize, echo: bool) -> Result<bool, String> {
        self.recv(buf, size)?;
        let stop = buf.first() == Some(&STOP);
        if echo && !stop {
            self.send(buf)?;
        }
        Ok(stop)
    }
}

/// A shared-memory channel driven through its zero-copy calls: the sender
/// writes each message into a [`loan`](ShmSender::loan) of ring space, the
/// receiver reads it where it lies with
/// [`recv_in_place`](ShmReceiver::recv_in_place), and an echo copies it
/// from one ring straight into a loan on the other.
pub struct LoanLink {
    tx: ShmSender,
    rx: ShmReceiver,
}

impl LoanLink {
    /// The zero-copy link over `ch`, which must be a shared-memory channel.
    ///
    /// # Errors
    /// When `ch` is of another transport.
    pub fn new(ch: ipcx::AnyChannel) -> Result<LoanLink, String> {
        match ch.into_shm() {
            Ok(c) => {
                let (tx, rx) = c.split();
                Ok(LoanLink { tx, rx })
            }
            Err(other) => Err(format!("loan needs a shared-memory channel, not {other:?}")),
        }
    }
}

impl Link for LoanLink {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        let mut loan = self.tx.loan(msg.len()).map_err(|e| e.to_string())?;
        loan.copy_from_slice(msg);
        loan.send();
        Ok(())
    }

    #[inline]
    fn recv(&mut self, _buf: &mut Vec<u8>, _size: usize) -> Result<(), String> {
        let m = self.rx.recv_in_place().map_err(|e| e.to_string())?;
        std::hint::black_box(m.first());
        Ok(())
    }

    #[inline]
    fn serve_one(&mut self, buf: &mut Vec<u8>, _size: usize, echo: bool) -> Result<bool, String> {
        let m = self.rx.recv_in_place().map_err(|e| e.to_string())?;
        if m.first() == Some(&STOP) {
            buf.clear();
            buf.extend_from_slice(&m);
            return Ok(true);
        }
        if echo {
            let mut loan = self.tx.loan(m.len()).map_err(|e| e.to_string())?;
            loan.copy_from_slice(&m);
            loan.send();
        }
        Ok(false)
    }
}

impl Link for ipcx::AnyChannel {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        Sender::send(self, msg).map_err(|e| e.to_string())
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, _size: usize) -> Result<(), String> {
        self.recv_into(buf).map_err(|e| e.to_string())
    }
}

/// A link to a client this process started; waits for it when dropped.
pub struct WithChild<L> {
    link: L,
    child: Child,
}

impl<L: Link> WithChild<L> {
    /// Pairs `link` with the `child` at its other end.
    pub fn new(link: L, child: Child) -> WithChild<L> {
        WithChild { link, child }
    }
}

impl<L: Link> Link for WithChild<L> {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.link.send(msg)
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<(), String> {
        self.link.recv(buf, size)
    }
}

impl<L> Drop for WithChild<L> {
    fn drop(&mut self) {
        // The client exits after its last message; reap it.
        let _ = self.child.wait();
    }
}

/// For a server that starts its own client: the command running this
/// binary as that client (its configuration is in [`super::CLIENT_VAR`]).
/// Its standard output is ours, so its result reaches the benchmark.
///
/// # Errors
/// When the configuration or the executable's path is missing.
pub fn client_command() -> Result<Command, String> {
    let cfg = std::env::var(super::CLIENT_VAR)
        .map_err(|_| format!("{} is not set", super::CLIENT_VAR))?;
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("bench")
        .env(super::PEER_VAR, cfg)
        .env_remove(super::CLIENT_VAR)
        .stdin(std::process::Stdio::null());
    Ok(cmd)
}

/// The configuration string handed to a peer process.
pub fn config(
    scheme: &str,
    target: Target,
    role: Role,
    address: &str,
    spec: &Spec,
    cpu: Option<usize>,
) -> String {
    format!(
        "{scheme}\t{}\t{}\t{}\t{}\t{}\t{}\t{address}",
        match target {
            Target::Ipcx => "ipcx",
            Target::Raw => "raw",
            Target::Async => "async",
            Target::Tokio => "tokio",
        },
        match role {
            Role::Server => "server",
            Role::Client => "client",
        },
        match spec.kind {
            Kind::Latency => "latency",
            Kind::Throughput => "throughput",
        },
        spec.size,
        spec.budget.as_millis(),
        cpu.map_or("-".to_string(), |c| c.to_string()),
    )
}

/// The re-executed peer: parse the configuration, pin, serve or measure.
///
/// # Errors
/// What failed, as text (the parent reports it).
pub fn peer_main() -> Result<(), String> {
    let cfg = std::env::var(super::PEER_VAR).map_err(|e| e.to_string())?;
    let f: Vec<&str> = cfg.splitn(8, '\t').collect();
    let [label, target, role, kind, size, budget, cpu, address] = f[..] else {
        return Err(format!("bad peer configuration {cfg:?}"));
    };
    let spec = Spec {
        kind: if kind == "latency" {
            Kind::Latency
        } else {
            Kind::Throughput
        },
        size: size.parse().map_err(|_| "size")?,
        budget: Duration::from_millis(budget.parse().map_err(|_| "budget")?),
    };
    if let Ok(c) = cpu.parse::<usize>() {
        pin_to(c)?;
    }
    let def = raw::all_targets()
        .find(|t| t.label == label)
        .ok_or_else(|| format!("unknown transport {label}"))?;
    let ready = |addr: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "READY {addr}");
        let _ = out.flush();
    };
    if target == "async" || target == "tokio" {
        return super::aio::peer(
            def,
            target == "async",
            role == "server",
            address,
            &spec,
            &ready,
        );
    }
    let library = match (target, def.library) {
        // Another library's row: it stands in the ipcx column.
        ("ipcx", Some(l)) => Some(l),
        _ => None,
    };
    let mut link: Box<dyn Link> = match (target, role, library) {
        (_, "server", Some((server, _))) => server(address, spec.size, &ready)?,
        (_, _, Some((_, client))) => client(address)?,
        ("ipcx", "server", None) if def.path == raw::Path::Queue => {
            raw::queue::server(address, spec.size, &ready)?
        }
        ("ipcx", _, None) if def.path == raw::Path::Queue => raw::queue::client(address)?,
        ("ipcx", "server", None) if def.spawned => {
            let ep: Endpoint = address
                .parse()
                .map_err(|e: ipcx::EndpointError| e.to_string())?;
            let (child, ch) = ipcx::spawn(client_command()?, &ep).map_err(|e| e.to_string())?;
            ready("spawned");
            Box::new(WithChild::new(ch, child))
        }
        ("ipcx", "server", None) => {
            let ep: Endpoint = address
                .parse()
                .map_err(|e: ipcx::EndpointError| e.to_string())?;
            let mut l = ipcx::listen(&ep).map_err(|e| e.to_string())?;
            ready(&l.endpoint().to_string());
            ipcx_link(def.path, l.accept().map_err(|e| e.to_string())?)?
        }
        ("ipcx", _, None) => {
            let ep: Endpoint = address
                .parse()
                .map_err(|e: ipcx::EndpointError| e.to_string())?;
            ipcx_link(def.path, ipcx::connect(&ep).map_err(|e| e.to_string())?)?
        }
        (_, "server", _) => (def.raw_server)(address, spec.size, &ready)?,
        _ => (def.raw_client)(address)?,
    };
    if role == "server" {
        serve(link.as_mut(), &spec)
    } else {
        let o = match spec.kind {
            Kind::Latency => latency(link.as_mut(), &spec)?,
            Kind::Throughput => throughput(link.as_mut(), &spec)?,
        };
        println!("RESULT {}", o.encode());
        Ok(())
    }
}

fn ipcx_link(path: raw::Path, ch: ipcx::AnyChannel) -> Result<Box<dyn Link>, String> {
    Ok(match path {
        raw::Path::Copy => Box::new(ch),
        raw::Path::Loan => Box::new(LoanLink::new(ch)?),
        raw::Path::Queue => return Err("a standalone queue is not a connection".into()),
    })
}

fn pin_to(cpu: usize) -> Result<(), String> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|e| format!("cpu {cpu}: {e}"))?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|e| format!("pinning to cpu {cpu}: {e}"))
}

fn serve(link: &mut dyn Link, spec: &Spec) -> Result<(), String> {
    let mut buf = Vec::with_capacity(spec.size);
    let echo = spec.kind == Kind::Latency;
    loop {
        if link.serve_one(&mut buf, spec.size, echo)? {
            if spec.kind == Kind::Throughput {
                link.send(&buf)?;
            }
            return Ok(());
        }
    }
}

fn latency(link: &mut dyn Link, spec: &Spec) -> Result<Outcome, String> {
    let mut msg = vec![DATA; spec.size];
    let mut buf = Vec::with_capacity(spec.size);
    let warm = Instant::now();
    while warm.elapsed() < spec.budget / 10 {
        link.send(&msg)?;
        link.recv(&mut buf, spec.size)?;
    }
    let mut samples: Vec<u64> = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        let enough = samples.len() >= MIN_ROUND_TRIPS || elapsed >= spec.budget * MAX_STRETCH;
        if (elapsed >= spec.budget && enough && !samples.is_empty()) || samples.len() >= 5_000_000 {
            break;
        }
        let t = Instant::now();
        link.send(&msg)?;
        link.recv(&mut buf, spec.size)?;
        samples.push(t.elapsed().as_nanos() as u64);
    }
    msg[0] = STOP;
    link.send(&msg)?;
    Ok(round_trips(samples))
}

/// The figures of a latency measurement: percentiles of its round trips
/// (ns, at least one).
pub(super) fn round_trips(mut samples: Vec<u64>) -> Outcome {
    samples.sort_unstable();
    let pct = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize] as f64;
    Outcome {
        p50_ns: pct(0.50),
        p99_ns: pct(0.99),
        p999_ns: pct(0.999),
        samples: samples.len() as u64,
        msgs_per_s: 0.0,
    }
}

fn throughput(link: &mut dyn Link, spec: &Spec) -> Result<Outcome, String> {
    let mut msg = vec![DATA; spec.size];
    let mut buf = Vec::with_capacity(spec.size);
    // A fixed count instead of the time budget, for per-message profiles
    // (`docs/benchmarks.md`): the same work for ipcx and raw.
    let count = std::env::var(MESSAGES_VAR)
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| format!("{MESSAGES_VAR}={v:?}: expected a number of messages"))
        })
        .transpose()?;
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        link.send(&msg)?;
        n += 1;
        let done = match count {
            Some(c) => n >= c,
            None => n % 16 == 0 && start.elapsed() >= spec.budget,
        };
        if done {
            break;
        }
    }
    msg[0] = STOP;
    link.send(&msg)?;
    link.recv(&mut buf, spec.size)?;
    let secs = start.elapsed().as_secs_f64();
    Ok(Outcome {
        samples: n,
        msgs_per_s: n as f64 / secs,
        ..Outcome::default()
    })
}

//! Standalone queues (`ipcx::queue`) across real processes and real kernel
//! queues, on `mq:` and `sysv-mq:`. Producers and consumers are this test
//! binary re-executed with a role (`ROLE_VAR`); they report on stdout.
//! Every case makes its own queue names and removes its queue even when
//! it fails ([`Cleanup`]); every child runs under a watchdog.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcx::queue::{ByteProducer, Consumer, Producer};
use ipcx::{Endpoint, Error, IpcMessage};
use serde::{Deserialize, Serialize};

const ROLE_VAR: &str = "IPCX_QUEUE_TEST_ROLE";
/// Longest a child may run before the case fails.
const WATCHDOG: Duration = Duration::from_secs(120);

/// A job as the producers send it: who, which one, and a payload derived
/// from both, so a consumer can check it is not corrupted.
#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[ipc(name = "test.Job")]
struct Job {
    producer: u32,
    seq: u64,
    payload: Vec<u8>,
}

/// Another type, for the mismatch cases.
#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[ipc(name = "test.Invoice")]
struct Invoice {
    number: u64,
}

/// The producer id of the message that tells a consumer to stop.
const STOP: u32 = u32::MAX;

/// The size of a payload: random-looking, at most `max`.
fn payload_len(producer: u32, seq: u64, max: usize) -> usize {
    (mix(producer, seq) % (max as u64 + 1)) as usize
}

fn mix(producer: u32, seq: u64) -> u64 {
    let mut x = (u64::from(producer) << 40) ^ seq ^ 0x9e37_79b9_7f4a_7c15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^ (x >> 33)
}

/// Byte `i` of a payload: a consumer checks every byte.
fn payload_byte(producer: u32, seq: u64, i: usize) -> u8 {
    (mix(producer, seq) as usize).wrapping_add(i * 31) as u8
}

fn payload(producer: u32, seq: u64, max: usize) -> Vec<u8> {
    (0..payload_len(producer, seq, max))
        .map(|i| payload_byte(producer, seq, i))
        .collect()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A fresh endpoint of `kind` (`mq` or `sysv-mq`) with `options`.
fn endpoint(kind: &str, options: &str) -> Endpoint {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("ipcxtest-q-{}-{n}", std::process::id());
    let s = match kind {
        "mq" => format!("mq:/{name}?pattern=queue{options}"),
        _ => format!(
            "sysv-mq:{}/{name}?pattern=queue{options}",
            std::env::temp_dir().display()
        ),
    };
    s.parse().unwrap()
}

/// Removes the case's queue when dropped, whatever happened; and checks
/// that nothing of it is left.
struct Cleanup(Endpoint);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = ipcx::queue::remove(&self.0);
        assert!(
            ipcx::queue::stat(&self.0).is_err(),
            "{} still exists after remove",
            self.0
        );
        let leftovers: Vec<String> = ["/dev/mqueue", "/dev/shm"]
            .iter()
            .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| {
                let a = self.0.address();
                let base = a.rsplit('/').next().unwrap_or(a);
                f.contains(base)
            })
            .collect();
        if self.0.scheme() == ipcx::Scheme::SysvMq {
            assert!(
                std::fs::metadata(self.0.address()).is_err(),
                "key file {} left behind",
                self.0.address()
            );
        }
        if !std::thread::panicking() {
            assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
        }
    }
}

/// A child process and the records it prints, read as they come (so a
/// chatty child never blocks on a full pipe). Killed if dropped while it
/// runs: a failing case leaves no process behind.
struct Peer {
    child: Child,
    lines: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts this binary as `role` (`producer`, `consumer`) with `args`.
fn spawn(role: &str, args: &[String]) -> Peer {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["peer_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, format!("{role} {}", args.join(" ")))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(out)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("R ").map(str::to_string))
            .collect::<Vec<_>>()
    });
    Peer {
        child,
        lines: Some(lines),
    }
}

/// The records a child printed (`R …` lines), once it exited with
/// success within the watchdog.
fn finish(mut peer: Peer, what: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        if let Some(status) = peer.child.try_wait().unwrap() {
            assert!(status.success(), "{what} failed: {status}");
            break;
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "{what} did not finish within {WATCHDOG:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    peer.lines.take().unwrap().join().unwrap()
}

/// Kills a child with SIGKILL; the records it printed before.
fn kill(mut peer: Peer) -> Vec<String> {
    peer.child.kill().unwrap();
    peer.child.wait().unwrap();
    peer.lines.take().unwrap().join().unwrap()
}

/// The re-executed child's entry; a no-op in the normal test run.
#[test]
fn peer_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let words: Vec<&str> = role.split_whitespace().collect();
    let ep: Endpoint = words[1].parse().unwrap();
    let num = |i: usize| words[i].parse::<u64>().unwrap();
    match words[0] {
        // producer ENDPOINT ID COUNT MAX_PAYLOAD
        "producer" => {
            raise_queue_memory();
            let (id, count, max) = (num(2) as u32, num(3), num(4) as usize);
            let mut p = Producer::<Job>::open(&ep).unwrap();
            for seq in 0..count {
                p.send(&Job {
                    producer: id,
                    seq,
                    payload: payload(id, seq, max),
                })
                .unwrap();
            }
        }
        // consumer ENDPOINT: prints "R producer seq" per job until a stop.
        "consumer" => {
            let mut c = Consumer::<Job>::open(&ep).unwrap();
            let mut out = std::io::stdout().lock();
            // The test harness printed "test peer_entry ... " without a
            // newline: records start on a line of their own.
            writeln!(out).unwrap();
            loop {
                let job = c.recv().unwrap();
                if job.producer == STOP {
                    break;
                }
                let intact = job
                    .payload
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == payload_byte(job.producer, job.seq, i));
                assert!(intact, "job {} of {} corrupted", job.seq, job.producer);
                writeln!(out, "R {} {}", job.producer, job.seq).unwrap();
                // Flushed per message: a killed consumer loses at most the
                // one message it had not printed yet.
                out.flush().unwrap();
            }
        }
        // async-producer ENDPOINT ID COUNT MAX_PAYLOAD
        #[cfg(feature = "tokio")]
        "async-producer" => {
            raise_queue_memory();
            let (id, count, max) = (num(2) as u32, num(3), num(4) as usize);
            runtime().block_on(async {
                let mut p = ipcx::tokio::queue::Producer::<Job>::open(&ep).unwrap();
                for seq in 0..count {
                    let job = Job {
                        producer: id,
                        seq,
                        payload: payload(id, seq, max),
                    };
                    p.send(&job).await.unwrap();
                }
            });
        }
        // async-consumer ENDPOINT: as "consumer", each receive raced
        // against a short timer that often wins (a dropped receive must
        // lose nothing).
        #[cfg(feature = "tokio")]
        "async-consumer" => runtime().block_on(async {
            let mut c = ipcx::tokio::queue::Consumer::<Job>::open(&ep).unwrap();
            let mut out = std::io::stdout().lock();
            writeln!(out).unwrap();
            loop {
                let job = tokio::select! {
                    job = c.recv() => job.unwrap(),
                    () = tokio::time::sleep(Duration::from_micros(50)) => continue,
                };
                if job.producer == STOP {
                    break;
                }
                let intact = job
                    .payload
                    .iter()
                    .enumerate()
                    .all(|(i, &b)| b == payload_byte(job.producer, job.seq, i));
                assert!(intact, "job {} of {} corrupted", job.seq, job.producer);
                writeln!(out, "R {} {}", job.producer, job.seq).unwrap();
                out.flush().unwrap();
            }
        }),
        // hold ENDPOINT producer|consumer: opens one handle, says so, and
        // keeps it open until killed (at most a minute).
        "hold" => {
            let _p;
            let _c;
            if words[2] == "producer" {
                _p = ByteProducer::open(&ep).unwrap();
            } else {
                _c = ipcx::queue::ByteConsumer::open(&ep).unwrap();
            }
            println!();
            println!("R open");
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown role {other}"),
    }
    std::process::exit(0);
}

#[cfg(feature = "tokio")]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Lets this process hold more POSIX queue memory when it may (root may
/// raise its hard limit): the "10,000 before any consumer" case needs
/// about 1.4 MB, above the usual 800 KiB `ulimit -q`.
fn raise_queue_memory() {
    let want = libc::rlimit {
        rlim_cur: 8 << 20,
        rlim_max: 8 << 20,
    };
    // SAFETY: setrlimit reads one rlimit from a live local.
    let _ = unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &want) };
}

/// Sends `STOP` once per consumer.
fn stop_consumers(ep: &Endpoint, consumers: usize) {
    let mut p = Producer::<Job>::open(ep).unwrap();
    for _ in 0..consumers {
        p.send(&Job {
            producer: STOP,
            seq: 0,
            payload: Vec::new(),
        })
        .unwrap();
    }
}

fn parse(lines: &[String]) -> Vec<(u32, u64)> {
    lines
        .iter()
        .map(|l| {
            let (p, s) = l.split_once(' ').unwrap();
            (p.parse().unwrap(), s.parse().unwrap())
        })
        .collect()
}

/// A producer sends `N` messages and exits; only then does a consumer
/// start, and it receives all of them in order.
fn survives_its_producer(kind: &str) {
    const N: u64 = 10_000;
    // Room for all N: 24-byte payloads, capacity N. Within the kernel's
    // limits for a privileged process (root may exceed msg_max/msgmnb and
    // raise RLIMIT_MSGQUEUE); otherwise the kernel's capacity, reported.
    let mut ep = endpoint(kind, &format!("&capacity={N}&max_message_size=24"));
    let _cleanup = Cleanup(ep.clone());
    raise_queue_memory();
    let n = match Producer::<Job>::create(&ep) {
        Ok(_) => N,
        Err(e @ Error::Limit { .. }) => {
            let Error::Limit { limit, .. } = e else {
                unreachable!()
            };
            eprintln!(
                "NOTE: {e}\nNOTE: this kernel holds at most {limit} such messages in one queue for this user; the case runs with that many ({kind}: consumer_starts_later sends {N} through a full queue instead)"
            );
            ep.options_mut().capacity = Some(limit as usize);
            Producer::<Job>::create(&ep).unwrap();
            limit
        }
        Err(e) => panic!("{e}"),
    };
    let p = spawn(
        "producer",
        &[ep.to_string(), "7".into(), n.to_string(), "8".into()],
    );
    finish(p, "producer");
    let status = ipcx::queue::stat(&ep).unwrap().status;
    assert_eq!(
        status.messages as u64, n,
        "queued after the producer exited"
    );
    let c = spawn("consumer", &[ep.to_string()]);
    stop_consumers(&ep, 1);
    let got = parse(&finish(c, "consumer"));
    let want: Vec<(u32, u64)> = (0..n).map(|s| (7, s)).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "not all received in order");
}

/// A producer starts sending `N` messages before any consumer exists
/// (blocking whenever the queue is full); a consumer started later
/// receives all of them in order.
fn consumer_starts_later(kind: &str) {
    const N: u64 = 10_000;
    let ep = endpoint(kind, "&max_message_size=64");
    let _cleanup = Cleanup(ep.clone());
    Producer::<Job>::create(&ep).unwrap();
    let p = spawn(
        "producer",
        &[ep.to_string(), "3".into(), N.to_string(), "48".into()],
    );
    // Until the queue is full, with the producer blocked on it.
    let start = Instant::now();
    while ipcx::queue::stat(&ep).unwrap().status.messages == 0 {
        assert!(start.elapsed() < WATCHDOG, "the producer sent nothing");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(200));
    let c = spawn("consumer", &[ep.to_string()]);
    finish(p, "producer");
    stop_consumers(&ep, 1);
    let got = parse(&finish(c, "consumer"));
    let want: Vec<(u32, u64)> = (0..N).map(|s| (3, s)).collect();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "not all received in order");
}

/// `P` producers and `C` consumers, all at once, messages of random sizes:
/// each message received exactly once overall, each producer's messages
/// in order as any one consumer sees them.
fn many_to_many(kind: &str, per_producer: u64) {
    many_to_many_with(kind, per_producer, ["consumer"; 4], ["producer"; 4]);
}

/// As [`many_to_many`], two of the producers and two of the consumers
/// async (their receives raced against a timer).
#[cfg(feature = "tokio")]
fn many_to_many_async(kind: &str, per_producer: u64) {
    many_to_many_with(
        kind,
        per_producer,
        ["consumer", "async-consumer", "consumer", "async-consumer"],
        ["async-producer", "producer", "async-producer", "producer"],
    );
}

fn many_to_many_with(kind: &str, per_producer: u64, consumers: [&str; 4], producers: [&str; 4]) {
    const P: u32 = 4;
    const C: usize = 4;
    let ep = endpoint(kind, "&max_message_size=1024");
    let _cleanup = Cleanup(ep.clone());
    Producer::<Job>::create(&ep).unwrap();
    let start = Instant::now();
    let consumers: Vec<Peer> = consumers
        .iter()
        .map(|role| spawn(role, &[ep.to_string()]))
        .collect();
    let producers: Vec<Peer> = (0..P)
        .map(|id| {
            spawn(
                producers[id as usize],
                &[
                    ep.to_string(),
                    id.to_string(),
                    per_producer.to_string(),
                    "900".into(),
                ],
            )
        })
        .collect();
    for p in producers {
        finish(p, "producer");
    }
    stop_consumers(&ep, C);
    let mut seen: HashMap<(u32, u64), usize> = HashMap::new();
    for (i, c) in consumers.into_iter().enumerate() {
        let got = parse(&finish(c, "consumer"));
        let mut last: HashMap<u32, u64> = HashMap::new();
        for &(p, s) in &got {
            if let Some(&prev) = last.get(&p) {
                assert!(s > prev, "consumer {i} saw producer {p}'s {s} after {prev}");
            }
            last.insert(p, s);
            *seen.entry((p, s)).or_default() += 1;
        }
    }
    let total = u64::from(P) * per_producer;
    assert_eq!(seen.len() as u64, total, "messages lost");
    assert!(
        seen.values().all(|&n| n == 1),
        "a message was received twice"
    );
    eprintln!(
        "{kind}: {P} producers x {C} consumers x {per_producer} messages: {total} in {:?}",
        start.elapsed()
    );
}

/// A consumer killed with SIGKILL mid-stream: the other keeps draining;
/// what is missing is at most the one message the killed one had taken
/// and not yet reported (at most once after receive).
fn consumer_killed(kind: &str) {
    const N: u64 = 3000;
    let ep = endpoint(kind, "&max_message_size=256");
    let _cleanup = Cleanup(ep.clone());
    Producer::<Job>::create(&ep).unwrap();
    let victim = spawn("consumer", &[ep.to_string()]);
    let survivor = spawn("consumer", &[ep.to_string()]);
    let producer = spawn(
        "producer",
        &[ep.to_string(), "1".into(), N.to_string(), "200".into()],
    );
    // Kill the victim once it is busy draining.
    std::thread::sleep(Duration::from_millis(150));
    let killed = parse(&kill(victim));
    finish(producer, "producer");
    stop_consumers(&ep, 1);
    let mut got = parse(&finish(survivor, "surviving consumer"));
    got.extend(&killed);
    got.sort_unstable();
    let before = got.len();
    got.dedup();
    assert_eq!(got.len(), before, "a message was received twice");
    let missing = N - got.len() as u64;
    assert!(
        missing <= 1,
        "{missing} messages lost, not only the victim's last"
    );
    eprintln!(
        "{kind}: victim reported {} messages before SIGKILL, {missing} lost with it",
        killed.len()
    );
}

/// A consumer of another type is refused at open; a message of another
/// type in the queue is reported as `SchemaMismatch`, consumed, and the
/// next message is received.
fn type_mismatch(kind: &str) {
    let ep = endpoint(kind, "");
    let _cleanup = Cleanup(ep.clone());
    let mut jobs = Producer::<Job>::create(&ep).unwrap();
    match Consumer::<Invoice>::open(&ep) {
        Err(e @ Error::SchemaMismatch { .. }) => {
            let s = e.to_string();
            assert!(s.contains("test.Job") && s.contains("test.Invoice"), "{s}");
        }
        other => panic!("opened as another type: {other:?}"),
    }
    match Producer::<Invoice>::open(&ep) {
        Err(Error::SchemaMismatch { .. }) => {}
        other => panic!("opened as another type: {other:?}"),
    }
    // A stray message: raw bytes (no type), then a job.
    ByteProducer::open(&ep).unwrap().send(b"not a job").unwrap();
    jobs.send(&Job {
        producer: 1,
        seq: 1,
        payload: vec![1],
    })
    .unwrap();
    let mut c = Consumer::<Job>::open(&ep).unwrap();
    match c.try_recv() {
        Err(e @ Error::SchemaMismatch { .. }) => {
            let s = e.to_string();
            assert!(s.contains("test.Job") && s.contains("bytes"), "{s}");
        }
        other => panic!("raw bytes decoded as a job: {other:?}"),
    }
    assert_eq!(c.try_recv().unwrap().seq, 1);
    assert!(matches!(c.try_recv(), Err(Error::WouldBlock)));
    // The raw consumer sees every message and its type's fingerprint.
    let mut raw = ipcx::queue::ByteConsumer::open(&ep).unwrap();
    jobs.send(&Job {
        producer: 2,
        seq: 2,
        payload: vec![],
    })
    .unwrap();
    let d = raw.recv_until(ipcx::Deadline::Now).unwrap();
    assert_eq!(d.fingerprint, <Job as IpcMessage>::FINGERPRINT);
}

/// A full queue: `try_send` says `WouldBlock`, `send_timeout` `Timeout`;
/// after one receive there is room again.
fn full_queue(kind: &str) {
    let ep = endpoint(kind, "&capacity=2&max_message_size=64");
    let _cleanup = Cleanup(ep.clone());
    let mut p = ByteProducer::create(&ep).unwrap();
    let msg = [7u8; 64];
    let mut sent = 0;
    loop {
        match p.try_send(&msg) {
            Ok(()) => sent += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(sent <= 2, "capacity=2 took more than 2 full-size messages");
    }
    assert_eq!(sent, 2);
    assert!(matches!(
        p.send_timeout(&msg, Duration::from_millis(30)),
        Err(Error::Timeout)
    ));
    let mut c = ipcx::queue::ByteConsumer::open(&ep).unwrap();
    assert_eq!(c.recv().unwrap(), msg);
    p.try_send(&msg).unwrap();
    assert!(matches!(
        p.try_send(&[0; 65]),
        Err(Error::MessageTooLarge { size: 65, max: 64 })
    ));
    assert_eq!(ipcx::queue::purge(&ep).unwrap(), 2);
    assert!(matches!(
        c.recv_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
}

/// Higher priorities first, oldest first within one, on both kernels.
fn priorities(kind: &str) {
    let ep = endpoint(kind, "&max_message_size=64");
    let _cleanup = Cleanup(ep.clone());
    let mut p = Producer::<Invoice>::create(&ep).unwrap();
    for (number, prio) in [(1, 0), (2, 5), (3, 5), (4, 1), (5, 32767)] {
        p.send_with_priority(&Invoice { number }, prio).unwrap();
    }
    assert!(matches!(
        p.send_with_priority(&Invoice { number: 6 }, 32768),
        Err(Error::Limit { .. })
    ));
    let mut c = Consumer::<Invoice>::open(&ep).unwrap();
    let order: Vec<(u64, u32)> = (0..5)
        .map(|_| {
            let (m, prio) = c.recv_until_with_priority(ipcx::Deadline::Now).unwrap();
            (m.number, prio)
        })
        .collect();
    assert_eq!(order, [(5, 32767), (2, 5), (3, 5), (4, 1), (1, 0)]);
}

/// A message above the kernel's per-message limit is refused, naming it.
fn too_large_names_the_limit(kind: &str) {
    let ep = endpoint(kind, "");
    let _cleanup = Cleanup(ep.clone());
    let mut p = ByteProducer::create(&ep).unwrap();
    let e = p.send(&vec![0; p.max_message_size() + 1]).unwrap_err();
    let s = e.to_string();
    let limit = if kind == "mq" {
        "msgsize_max"
    } else {
        "msgmax"
    };
    assert!(matches!(e, Error::Limit { .. }) && s.contains(limit), "{s}");
    let e = endpoint(kind, "&max_message_size=1000000");
    match ByteProducer::create(&e) {
        Err(err @ Error::Limit { .. }) => assert!(err.to_string().contains(limit), "{err}"),
        other => {
            let _ = ipcx::queue::remove(&e);
            panic!("{other:?}")
        }
    }
    let _ = ipcx::queue::remove(&e);
    // create on an existing queue is refused; open is not.
    assert!(matches!(
        ByteProducer::create(&ep),
        Err(Error::AddrInUse { .. })
    ));
    ByteProducer::open(&ep).unwrap();
    // Another mode than the creator's is an error.
    let mut other = ep.clone();
    other.options_mut().mode = 0o660;
    assert!(matches!(
        ByteProducer::open(&other),
        Err(Error::PermissionDenied(_))
    ));
}

/// `listen`/`connect` refuse a queue endpoint, pointing at `ipcx::queue`.
#[test]
fn connections_refuse_queue_endpoints() {
    for kind in ["mq", "sysv-mq"] {
        let ep = endpoint(kind, "");
        for e in [
            ipcx::listen(&ep).map(|_| ()).unwrap_err(),
            ipcx::connect(&ep).map(|_| ()).unwrap_err(),
        ] {
            assert!(e.to_string().contains("ipcx::queue"), "{e}");
        }
    }
}

macro_rules! both_kernels {
    ($($case:ident $(($arg:expr))?;)*) => {
        mod mq {
            $(#[test] fn $case() { super::$case("mq" $(, $arg)?) })*
        }
        mod sysv_mq {
            $(#[test] fn $case() { super::$case("sysv-mq" $(, $arg)?) })*
        }
    };
}

both_kernels! {
    survives_its_producer;
    consumer_starts_later;
    many_to_many(super::many_to_many_count());
    consumer_killed;
    type_mismatch;
    full_queue;
    priorities;
    too_large_names_the_limit;
}

#[cfg(feature = "tokio")]
mod async_handles {
    use super::many_to_many_async;

    both_kernels! {
        many_to_many_async(5_000);
    }
}

/// Messages per producer in the 4 x 4 case (`IPCX_QUEUE_TEST_N` overrides).
fn many_to_many_count() -> u64 {
    std::env::var("IPCX_QUEUE_TEST_N")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000)
}

/// The producers and consumers `stat` counts, polled until they are
/// `want` (a child opens its handle some time after it starts).
fn wait_for_openers(ep: &Endpoint, want: (usize, usize)) {
    let start = Instant::now();
    loop {
        let info = ipcx::queue::stat(ep).unwrap();
        let got = (info.producers.unwrap(), info.consumers.unwrap());
        if got == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{ep}: stat counts {got:?} producers/consumers, expected {want:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `stat` counts the producers and consumers that have a queue open, in
/// other processes and this one; a killed one stops counting; none once
/// all are gone.
fn counts_producers_and_consumers(kind: &str) {
    let ep = endpoint(kind, "");
    let _cleanup = Cleanup(ep.clone());
    drop(ByteProducer::create(&ep).unwrap());
    wait_for_openers(&ep, (0, 0));
    let a = ep.to_string();
    let mut producers: Vec<Peer> = (0..2)
        .map(|_| spawn("hold", &[a.clone(), "producer".into()]))
        .collect();
    let consumers: Vec<Peer> = (0..3)
        .map(|_| spawn("hold", &[a.clone(), "consumer".into()]))
        .collect();
    wait_for_openers(&ep, (2, 3));
    // One more here, in this process.
    let here = ipcx::queue::ByteConsumer::open(&ep).unwrap();
    wait_for_openers(&ep, (2, 4));
    drop(here);
    wait_for_openers(&ep, (2, 3));
    // A producer killed with SIGKILL (its record stays behind): not
    // counted.
    kill(producers.pop().unwrap());
    wait_for_openers(&ep, (1, 3));
    for p in producers.into_iter().chain(consumers) {
        kill(p);
    }
    wait_for_openers(&ep, (0, 0));
}

#[test]
fn stat_counts_producers_and_consumers_on_mq() {
    counts_producers_and_consumers("mq");
}

#[test]
fn stat_counts_producers_and_consumers_on_sysv_mq() {
    counts_producers_and_consumers("sysv-mq");
}

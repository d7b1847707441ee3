//! `nats://…?pattern=queue`: standalone queues on JetStream, against real
//! `nats-server` processes with JetStream (`-js -sd DIR`, started per test
//! by `util/nats.rs`). Producers and consumers are this test binary
//! re-executed with a role; each test runs under a watchdog and its
//! servers (and their store directories) go with it.

use std::collections::BTreeMap;
use std::time::Duration;

use ipcx::queue::{self, ByteProducer, Consumer, Producer};
use ipcx::{Endpoint, Error, IpcMessage};
use serde::{Deserialize, Serialize};

use crate::util::nats::NatsServer;
use crate::util::{self, Peer, parse, report, watchdog};

const LIMIT: Duration = Duration::from_secs(240);

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[ipc(name = "test.Job")]
pub struct Job {
    seq: u64,
    body: Vec<u8>,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[ipc(name = "test.Invoice")]
pub struct Invoice {
    number: u64,
}

/// The marker of the message that tells a consumer to stop.
const STOP: u64 = u64::MAX;

fn job(seq: u64) -> Job {
    Job {
        seq,
        body: (0..(seq % 97) as u8).map(|i| i ^ seq as u8).collect(),
    }
}

fn check(j: &Job) {
    assert_eq!(*j, job(j.seq), "message {} corrupted", j.seq);
}

/// Opens a handle, retrying while a fresh cluster elects its JetStream
/// leader (the server answers "temporarily unavailable" meanwhile).
fn retry<T>(what: &str, mut f: impl FnMut() -> ipcx::Result<T>) -> T {
    let start = std::time::Instant::now();
    loop {
        match f() {
            Ok(t) => return t,
            Err(e) if start.elapsed() < Duration::from_secs(60) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => panic!("{what}: {e}"),
        }
    }
}

/// What a re-executed peer does, chosen by its role.
fn role() {
    let (role, ep, arg) = util::peer_params();
    let ep = parse(&ep);
    match role.as_str() {
        // Sends jobs FROM..TO (arg "FROM..TO"), reporting every 500 and
        // at the end, then exits.
        "produce" => {
            let (from, to) = arg.split_once("..").expect("FROM..TO");
            let (from, to): (u64, u64) = (from.parse().unwrap(), to.parse().unwrap());
            let mut p = retry("open the producer", || Producer::<Job>::open(&ep));
            for seq in from..to {
                // The id makes a resend after an unknown outcome harmless.
                p.send_with_id(&job(seq), &format!("job-{seq}"))
                    .unwrap_or_else(|e| panic!("send {seq}: {e}"));
                if (seq + 1 - from) % 500 == 0 {
                    report(format!("sent={}", seq + 1 - from));
                }
            }
            report(format!("done={}", to - from));
        }
        // Sends `arg` STOP messages.
        "stop" => {
            let mut p = retry("open the producer", || Producer::<Job>::open(&ep));
            for _ in 0..arg.parse::<u32>().unwrap() {
                p.send(&Job {
                    seq: STOP,
                    body: vec![],
                })
                .expect("send stop");
            }
        }
        // Receives and acknowledges until a STOP arrives (or, with arg
        // "N", until N messages); reports every seq it acknowledged, and
        // the redeliveries it saw.
        "consume" => {
            let want: Option<usize> = arg.parse().ok();
            let mut c = retry("open the consumer", || Consumer::<Job>::open(&ep));
            report("ready");
            let mut seqs = Vec::new();
            let mut redelivered = 0u64;
            loop {
                let m = c
                    .recv_acked_timeout(Duration::from_secs(60))
                    .expect("recv_acked");
                if m.deliveries() > 1 {
                    redelivered += 1;
                }
                if m.seq == STOP {
                    m.ack().expect("ack stop");
                    break;
                }
                check(&m);
                let seq = m.seq;
                // Unconfirmed, the message may come again: it is
                // handled either way.
                if let Err(e) = m.ack() {
                    eprintln!("ack {seq}: {e}");
                }
                seqs.push(seq);
                if seqs.len() % 500 == 0 {
                    report(format!("got={}", seqs.len()));
                }
                if want == Some(seqs.len()) {
                    break;
                }
            }
            let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
            report(format!("redelivered={redelivered}"));
            report(format!("seqs={}", list.join(",")));
        }
        // Receives one message, reports it, and never acknowledges it:
        // it waits to be killed.
        "hold" => {
            let mut c = Consumer::<Job>::open(&ep).expect("open consumer");
            let m = c
                .recv_acked_timeout(Duration::from_secs(30))
                .expect("recv_acked");
            report(format!("holding={}", m.seq));
            // Killed here, the message unacknowledged.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Pulls one batch of up to N (arg) messages, reports how many, and
        // never acknowledges them: it waits to be killed.
        "hold-batch" => {
            let mut c = Consumer::<Job>::open(&ep).expect("open consumer");
            let batch = c
                .recv_batch_timeout(arg.parse().unwrap(), Duration::from_secs(30))
                .expect("recv_batch");
            report(format!("holding={}", batch.len()));
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// Removes the case's queue when dropped, even when the case failed
/// (the server goes too, but a queue left behind would be a bug).
struct Cleanup(Endpoint);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = queue::remove(&self.0);
    }
}

/// A producer process sends 10,000 messages and exits before any
/// consumer exists; a consumer process started afterwards receives every
/// one, in order, and the queue is empty after.
#[test]
fn producer_exits_then_a_later_consumer_receives_all() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "jetstream::producer_exits_then_a_later_consumer_receives_all";
    watchdog(LIMIT, TEST, || {
        let nats = NatsServer::start_jetstream();
        let ep = format!("{}?pattern=queue", nats.endpoint("js10k"));
        let _cleanup = Cleanup(parse(&ep));
        let producer = Peer::spawn(TEST, "produce", &ep, "0..10000");
        assert_eq!(producer.expect_value_skipping("done"), "10000");
        producer.expect_success();
        let info = queue::stat(&parse(&ep)).expect("stat");
        assert_eq!(info.status.messages, 10_000);
        assert_eq!(info.recorded.as_ref().map(|t| &*t.name), Some("test.Job"));
        let consumer = Peer::spawn(TEST, "consume", &ep, "10000");
        assert_eq!(consumer.expect_line(), "ready");
        let (redelivered, seqs) = seqs_of_skipping(&consumer);
        consumer.expect_success();
        assert_eq!(redelivered, 0);
        assert_eq!(seqs, (0..10_000).collect::<Vec<_>>(), "all, in order");
        let info = queue::stat(&parse(&ep)).expect("stat");
        assert_eq!(info.status.messages, 0, "every message acknowledged");
        assert!(queue::remove(&parse(&ep)).expect("remove"));
        assert!(!queue::remove(&parse(&ep)).expect("remove again"));
    });
}

/// A consumer receives a message and is killed (SIGKILL) before
/// acknowledging it: after `ack_wait` the server delivers it to another
/// consumer, marked as a redelivery; nothing else is lost.
#[test]
fn a_message_unacknowledged_by_a_killed_consumer_is_redelivered() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "jetstream::a_message_unacknowledged_by_a_killed_consumer_is_redelivered";
    watchdog(LIMIT, TEST, || {
        let nats = NatsServer::start_jetstream();
        let ep = format!("{}?pattern=queue&ack_wait=1s", nats.endpoint("jskill"));
        let endpoint = parse(&ep);
        let _cleanup = Cleanup(endpoint.clone());
        let mut p = Producer::<Job>::open(&endpoint).expect("open producer");
        for seq in 0..3 {
            p.send(&job(seq)).expect("send");
        }
        let mut holder = Peer::spawn(TEST, "hold", &ep, "");
        assert_eq!(holder.expect_value("holding"), "0");
        holder.kill();
        let mut c = Consumer::<Job>::open(&endpoint).expect("open consumer");
        let mut got = BTreeMap::new();
        for _ in 0..3 {
            let m = c
                .recv_acked_timeout(Duration::from_secs(30))
                .expect("recv_acked");
            check(&m);
            got.insert(m.seq, m.deliveries());
            m.ack().expect("ack");
        }
        assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
        assert!(got[&0] >= 2, "message 0 was redelivered: {got:?}");
        assert_eq!((got[&1], got[&2]), (1, 1), "{got:?}");
        assert!(matches!(c.try_recv_acked(), Err(Error::WouldBlock)));
        assert_eq!(queue::stat(&endpoint).expect("stat").status.messages, 0);
    });
}

/// The server is stopped and started again on the same store directory,
/// first gracefully (SIGTERM), then killed (SIGKILL): the queue, its type
/// and every unacknowledged message are still there. After SIGKILL,
/// acknowledgements of the last moments may be lost with the server's
/// unwritten state, so acknowledged messages may come again (at least
/// once); after SIGTERM, none does.
#[test]
fn the_queue_survives_a_broker_restart() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "jetstream::the_queue_survives_a_broker_restart";
    watchdog(LIMIT, TEST, || {
        let mut nats = NatsServer::start_jetstream();
        let ep = format!("{}?pattern=queue", nats.endpoint("jsrestart"));
        let endpoint = parse(&ep);
        let _cleanup = Cleanup(endpoint.clone());
        let producer = Peer::spawn(TEST, "produce", &ep, "0..300");
        assert_eq!(producer.expect_value_skipping("done"), "300");
        producer.expect_success();
        let take = |range: std::ops::Range<u64>| {
            let mut c = retry("open the consumer", || Consumer::<Job>::open(&endpoint));
            for seq in range {
                let m = c.recv_acked_timeout(Duration::from_secs(30)).expect("recv");
                check(&m);
                assert_eq!(m.seq, seq);
                m.ack().expect("ack");
            }
        };
        take(0..100);
        nats.restart(true);
        let info = retry("stat after the restart", || queue::stat(&endpoint));
        assert_eq!(info.status.messages, 200, "after a graceful restart");
        assert_eq!(info.recorded.as_ref().map(|t| &*t.name), Some("test.Job"));
        assert!(matches!(
            Consumer::<Invoice>::open(&endpoint),
            Err(Error::SchemaMismatch { .. })
        ));
        take(100..150);
        nats.restart(false);
        let info = retry("stat after the kill", || queue::stat(&endpoint));
        let left = info.status.messages;
        assert!(
            (150..=200).contains(&left),
            "{left} messages after the kill"
        );
        let mut c = retry("open after the kill", || Consumer::<Job>::open(&endpoint));
        let mut seen = Vec::new();
        loop {
            match c.recv_acked_timeout(Duration::from_secs(3)) {
                Ok(m) => {
                    check(&m);
                    seen.push(m.seq);
                    m.ack().expect("ack");
                }
                Err(Error::Timeout) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        seen.sort_unstable();
        seen.dedup();
        let unacked: Vec<u64> = (150..300).collect();
        assert!(
            unacked.iter().all(|s| seen.binary_search(s).is_ok()),
            "every unacknowledged message is there after the kill"
        );
        assert!(seen.iter().all(|s| (100..300).contains(s)), "{seen:?}");
    });
}

/// Four consumer processes compete for 8,000 messages from two producer
/// processes: every message is acknowledged by exactly one consumer.
#[test]
fn competing_consumers_receive_each_message_once() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "jetstream::competing_consumers_receive_each_message_once";
    watchdog(LIMIT, TEST, || {
        let nats = NatsServer::start_jetstream();
        let ep = format!("{}?pattern=queue", nats.endpoint("jscompete"));
        let _cleanup = Cleanup(parse(&ep));
        // The queue exists before anyone races to create it.
        drop(Producer::<Job>::open(&parse(&ep)).expect("create"));
        let consumers: Vec<Peer> = (0..4)
            .map(|_| Peer::spawn(TEST, "consume", &ep, ""))
            .collect();
        for c in &consumers {
            assert_eq!(c.expect_line(), "ready");
        }
        let producers = [
            Peer::spawn(TEST, "produce", &ep, "0..4000"),
            Peer::spawn(TEST, "produce", &ep, "4000..8000"),
        ];
        for p in producers {
            assert_eq!(p.expect_value_skipping("done"), "4000");
            p.expect_success();
        }
        Peer::spawn(TEST, "stop", &ep, "4").expect_success();
        let mut seen = BTreeMap::new();
        let mut busy = 0;
        for c in consumers {
            let (redelivered, seqs) = seqs_of_skipping(&c);
            c.expect_success();
            assert_eq!(redelivered, 0, "nothing needed redelivering");
            busy += usize::from(!seqs.is_empty());
            for s in seqs {
                *seen.entry(s).or_insert(0u32) += 1;
            }
        }
        assert_eq!(seen.len(), 8000, "every message received");
        assert!(seen.values().all(|&n| n == 1), "none twice");
        assert!(busy >= 2, "the consumers shared the work");
    });
}

/// Types, options and limits: a handle of another type is refused at open
/// naming both types; priorities, message ids on kernel queues and
/// options that contradict the existing queue are refused with what to
/// do; a message id is stored once; a full queue gives `WouldBlock`.
#[test]
fn types_options_and_limits_are_checked() {
    if util::is_peer() {
        return role();
    }
    watchdog(LIMIT, "types_options_and_limits_are_checked", || {
        let nats = NatsServer::start_jetstream();
        let ep = format!("{}?pattern=queue&capacity=3", nats.endpoint("jstypes"));
        let endpoint = parse(&ep);
        let _cleanup = Cleanup(endpoint.clone());
        let mut p = Producer::<Job>::create(&endpoint).expect("create");
        assert!(matches!(
            Producer::<Job>::create(&endpoint),
            Err(Error::AddrInUse { .. })
        ));
        match Consumer::<Invoice>::open(&endpoint) {
            Err(e @ Error::SchemaMismatch { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("test.Job") && text.contains("test.Invoice"),
                    "{text}"
                );
            }
            other => panic!("expected SchemaMismatch, got {other:?}"),
        }
        assert!(matches!(
            Producer::<Invoice>::open(&endpoint),
            Err(Error::SchemaMismatch { .. })
        ));
        // Deduplication: the same id twice is stored once.
        p.send_with_id(&job(1), "order-1").expect("send");
        p.send_with_id(&job(1), "order-1").expect("send again");
        assert_eq!(queue::stat(&endpoint).expect("stat").status.messages, 1);
        // Priorities: JetStream has none.
        match p.send_with_priority(&job(2), 5) {
            Err(Error::Unsupported { reason, .. }) => {
                assert!(reason.contains("no priorities"), "{reason}")
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        // Capacity: the fourth message does not fit.
        p.try_send(&job(2)).expect("second");
        p.try_send(&job(3)).expect("third");
        assert!(matches!(p.try_send(&job(4)), Err(Error::WouldBlock)));
        assert!(matches!(
            p.send_timeout(&job(4), Duration::from_millis(300)),
            Err(Error::Timeout)
        ));
        // Options that contradict the queue as it exists.
        let other = parse(&format!("{ep}&replicas=1").replace("capacity=3", "capacity=9"));
        match Producer::<Job>::open(&other) {
            Err(Error::Unsupported { reason, .. }) => {
                assert!(reason.contains("capacity=3"), "{reason}")
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        // replicas=3 on a single server.
        let lone = parse(&format!(
            "{}?pattern=queue&replicas=3",
            nats.endpoint("jsreplicas")
        ));
        let e = Producer::<Job>::open(&lone).expect_err("replicas=3 on one server");
        assert!(e.to_string().contains("replicas"), "{e}");
        // Kernel queues take no message id.
        let mq = parse(&format!("mq:/{}?pattern=queue", util::unique("jsmq")));
        if util::mqueue_mounted() {
            let mut kp = ByteProducer::open(&mq).expect("mq producer");
            assert!(matches!(
                kp.send_with_id_until(b"x", "id", ipcx::Deadline::Now),
                Err(Error::Unsupported { .. })
            ));
            queue::remove(&mq).expect("remove mq");
        }
        // Purge.
        assert_eq!(queue::purge(&endpoint).expect("purge"), 3);
        assert_eq!(queue::stat(&endpoint).expect("stat").status.messages, 0);
        // Raw bytes to a typed consumer: reported as another type, taken
        // out of the queue, never decoded nor redelivered.
        let mut raw = ByteProducer::open(&endpoint).expect("raw producer");
        raw.send(b"not a job").expect("send raw");
        let mut typed = Consumer::<Job>::open(&endpoint).expect("consumer");
        match typed.recv_acked_timeout(Duration::from_secs(10)) {
            Err(Error::SchemaMismatch { .. }) => {}
            other => panic!("expected SchemaMismatch, got {other:?}"),
        }
        assert!(matches!(
            typed.recv_acked_timeout(Duration::from_secs(2)),
            Err(Error::Timeout)
        ));
        drop(typed);
        // Remove.
        assert!(queue::remove(&endpoint).expect("remove"));
        assert!(matches!(queue::stat(&endpoint), Err(Error::Io { .. })));
    });
}

/// Options that only make sense on a queue, or that contradict, are
/// refused when the endpoint is parsed.
#[test]
fn queue_options_are_checked_when_parsed() {
    for (bad, says) in [
        ("nats://127.0.0.1:4222/q?replicas=3", "pattern=queue"),
        (
            "nats://127.0.0.1:4222/q?pattern=queue&replicas=9",
            "replicas",
        ),
        (
            "nats://127.0.0.1:4222/q?pattern=queue&ack_wait=5",
            "no unit",
        ),
        (
            "nats://127.0.0.1:4222/q?pattern=queue&ack_wait=1ms",
            "ack_wait",
        ),
        (
            "nats://127.0.0.1:4222/q?pattern=queue&max_bytes=0",
            "max_bytes",
        ),
        ("nats://127.0.0.1:4222/q?user=a", "password_file"),
        ("nats://127.0.0.1:4222/q?tls_ca=/x.pem", "tls=required"),
        ("nats://127.0.0.1:4222,/q", "empty server"),
        ("nats://127.0.0.1:4222,h:0/q", "port"),
        (
            "nats://127.0.0.1:4222/q?pattern=queue&heartbeat=1s",
            "standalone queue",
        ),
    ] {
        let e = bad.parse::<Endpoint>().expect_err(bad);
        assert!(e.to_string().contains(says), "{bad}: {e}");
    }
    let ok: Endpoint = "nats://10.0.0.1:4222,10.0.0.2:4222/jobs?pattern=queue&replicas=3&ack_wait=5s&max_bytes=1024"
        .parse()
        .expect("parse");
    assert_eq!(ok.to_string().parse::<Endpoint>().unwrap(), ok);
}

/// A server that admits one user: `user=` with `password_file=` gets in;
/// a wrong password is `PermissionDenied`; `creds=` naming a missing file
/// is an error naming it; `tls=required` against this server
/// (no TLS) fails saying so.
#[test]
fn credentials_are_used_and_refusals_are_clear() {
    if util::is_peer() {
        return role();
    }
    watchdog(LIMIT, "credentials_are_used_and_refusals_are_clear", || {
        let nats = NatsServer::start_with_user("ipcx", "s3cret");
        let dir = std::env::temp_dir().join(util::unique("jscreds"));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        let bad = dir.join("bad");
        std::fs::write(&good, "s3cret\n").unwrap();
        std::fs::write(&bad, "wrong\n").unwrap();
        let base = format!("{}?pattern=queue", nats.endpoint("jsauth"));
        let with = |file: &std::path::Path| {
            parse(&format!(
                "{base}&user=ipcx&password_file={}",
                file.display()
            ))
        };
        let result = std::panic::catch_unwind(|| {
            let endpoint = with(&good);
            let mut p = Producer::<Job>::open(&endpoint).expect("open with the password");
            p.send(&job(7)).expect("send");
            let mut c = Consumer::<Job>::open(&endpoint).expect("consumer");
            assert_eq!(
                c.recv_timeout(Duration::from_secs(10)).expect("recv"),
                job(7)
            );
            assert!(queue::remove(&endpoint).expect("remove"));
            match Producer::<Job>::open(&with(&bad)) {
                Err(Error::PermissionDenied(why)) => assert!(why.contains("user="), "{why}"),
                other => panic!("expected PermissionDenied, got {other:?}"),
            }
            match Producer::<Job>::open(&parse(&base)) {
                Err(Error::PermissionDenied(_)) => {}
                other => panic!("expected PermissionDenied without credentials, got {other:?}"),
            }
            let missing = dir.join("missing");
            match Producer::<Job>::open(&with(&missing)) {
                Err(e @ Error::Io { .. }) => {
                    assert!(e.to_string().contains("password_file"), "{e}")
                }
                other => panic!("expected Io, got {other:?}"),
            }
            let no_creds = dir.join("none.creds");
            match Producer::<Job>::open(&parse(&format!("{base}&creds={}", no_creds.display()))) {
                Err(e @ Error::Io { .. }) => {
                    let why = e.to_string();
                    assert!(
                        why.contains(&format!("creds={}", no_creds.display())),
                        "{why}"
                    )
                }
                other => panic!("creds= of a missing file: expected Io, got {other:?}"),
            }
            // This server has no TLS: a client that requires it says so.
            match Producer::<Job>::open(&parse(&format!("{base}&tls=required"))) {
                Err(e @ Error::Io { .. }) => {
                    assert!(e.to_string().contains("tls=required"), "{e}")
                }
                other => panic!("tls=required without TLS: expected Io, got {other:?}"),
            }
            // A channel connects with the same credentials.
            let ch_ep = parse(&format!(
                "{}?user=ipcx&password_file={}",
                nats.endpoint("jsauthch"),
                good.display()
            ));
            let mut l = ipcx::listen(&ch_ep).expect("listen with credentials");
            let t = std::thread::spawn(move || {
                let mut ch = ipcx::Listener::accept(&mut l).expect("accept");
                let m = ipcx::Receiver::recv(&mut ch).expect("recv");
                ipcx::Sender::send(&mut ch, &m).expect("echo");
            });
            let mut ch = ipcx::connect(&ch_ep).expect("connect with credentials");
            ipcx::Sender::send(&mut ch, b"hi").expect("send");
            assert_eq!(ipcx::Receiver::recv(&mut ch).expect("echo"), b"hi");
            t.join().expect("server thread");
        });
        let _ = std::fs::remove_dir_all(&dir);
        if let Err(p) = result {
            std::panic::resume_unwind(p);
        }
    });
}

/// Runs producers on `producer_ep` and a consumer on `consumer_ep` of a
/// three-node cluster with a stream of three replicas, kills node
/// `victim` once traffic flows, and checks that every message the
/// producers had confirmed reaches the consumer.
fn cluster_case(test: &str, victim: usize, servers_of: impl Fn(&[NatsServer]) -> (String, String)) {
    let mut nodes = NatsServer::start_jetstream_cluster(3);
    let name = util::unique("jscl");
    let (producer_servers, consumer_servers) = servers_of(&nodes);
    let opts = "?pattern=queue&replicas=3&ack_wait=5s&connect_timeout=20s";
    let producer_ep = format!("nats://{producer_servers}/{name}{opts}");
    let consumer_ep = format!("nats://{consumer_servers}/{name}{opts}");
    // Created once the cluster has its leader.
    let all: Vec<String> = nodes.iter().map(NatsServer::address).collect();
    let admin = parse(&format!("nats://{}/{name}{opts}", all.join(",")));
    retry("create the replicated queue", || {
        Producer::<Job>::open(&admin)
    });
    let consumer = Peer::spawn(test, "consume", &consumer_ep, "");
    assert_eq!(consumer.expect_line(), "ready");
    let producer = Peer::spawn(test, "produce", &producer_ep, "0..6000");
    // Once traffic flows, the node goes.
    assert_eq!(producer.expect_value("sent"), "500");
    nodes[victim].kill();
    assert_eq!(producer.expect_value_skipping("done"), "6000");
    producer.expect_success();
    retry("send the stop", || {
        let mut p = Producer::<Job>::open(&admin_without(&admin, &nodes, victim))?;
        p.send(&Job {
            seq: STOP,
            body: vec![],
        })
    });
    let (redelivered, seqs) = seqs_of_skipping(&consumer);
    consumer.expect_success();
    let mut seen = BTreeMap::new();
    for s in &seqs {
        *seen.entry(*s).or_insert(0u32) += 1;
    }
    let lost: Vec<u64> = (0..6000).filter(|s| !seen.contains_key(s)).collect();
    assert!(lost.is_empty(), "confirmed messages lost: {lost:?}");
    // At least once: a message whose acknowledgement was lost with the
    // node may come twice. Mostly that is a redelivery (its delivery
    // count says 2), but when the node held the consumer's leader, the
    // new leader may not have the first delivery either and hands the
    // message out again as a first delivery: JetStream's consumer state
    // is replicated after the fact. Either way only what was in flight
    // when the node died comes again; one message at a time is pulled,
    // so that is a handful, far below the bound.
    let twice = seen.values().filter(|&&n| n > 1).count() as u64;
    assert!(
        twice <= 100,
        "{twice} messages came more than once ({redelivered} marked as redeliveries)"
    );
    if twice > redelivered {
        eprintln!("NOTE: {twice} duplicates, {redelivered} marked as redeliveries");
    }
    let _ = queue::remove(&admin_without(&admin, &nodes, victim));
}

/// The admin endpoint without the killed node.
fn admin_without(_admin: &Endpoint, nodes: &[NatsServer], victim: usize) -> Endpoint {
    let live: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, n)| n.address())
        .collect();
    let name = _admin.address().split_once('/').unwrap().1;
    parse(&format!(
        "nats://{}/{name}?pattern=queue&replicas=3&ack_wait=5s&connect_timeout=20s",
        live.join(",")
    ))
}

/// Three nodes, a stream of three replicas; the producer on node 1, the
/// consumer on node 3; node 2, which neither is connected to, is killed
/// mid-run: nothing confirmed is lost.
#[test]
fn cluster_keeps_every_message_when_another_node_dies() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "jetstream::cluster_keeps_every_message_when_another_node_dies";
    watchdog(LIMIT, TEST, || {
        cluster_case(TEST, 1, |n| (n[0].address(), n[2].address()));
    });
}

/// The producer is given several servers and is on the first (node 1);
/// node 1 is killed mid-run: the producer fails over to node 2 and goes
/// on, and nothing confirmed is lost.
#[test]
fn cluster_client_fails_over_when_its_node_dies() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "jetstream::cluster_client_fails_over_when_its_node_dies";
    watchdog(LIMIT, TEST, || {
        cluster_case(TEST, 0, |n| {
            (
                format!("{},{}", n[0].address(), n[1].address()),
                n[2].address(),
            )
        });
    });
}

/// `seqs_of`, skipping the progress lines before.
fn seqs_of_skipping(peer: &Peer) -> (u64, Vec<u64>) {
    loop {
        let line = peer.expect_line();
        if let Some(v) = line.strip_prefix("redelivered=") {
            let redelivered = v.parse().unwrap();
            let list = peer.expect_value("seqs");
            let seqs = list
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect();
            return (redelivered, seqs);
        }
    }
}

trait Skipping {
    fn expect_value_skipping(&self, key: &str) -> String;
}

impl Skipping for Peer {
    /// Waits for `key=value`, skipping other report lines.
    fn expect_value_skipping(&self, key: &str) -> String {
        loop {
            let line = self.expect_line();
            if let Some(v) = line.strip_prefix(&format!("{key}=")) {
                return v.to_string();
            }
        }
    }
}

/// The async API on a `nats://` queue: an async producer and an async
/// consumer on a tokio runtime of their own, with acknowledgements.
#[cfg(feature = "tokio")]
#[test]
fn async_producer_and_consumer() {
    if util::is_peer() {
        return role();
    }
    watchdog(LIMIT, "async_producer_and_consumer", || {
        let nats = NatsServer::start_jetstream();
        let endpoint = parse(&format!(
            "{}?pattern=queue&ack_wait=1s",
            nats.endpoint("jsasync")
        ));
        let _cleanup = Cleanup(endpoint.clone());
        let rt = crate::util::current_thread();
        rt.block_on(async {
            let mut p = ipcx::tokio::queue::Producer::<Job>::open(&endpoint).expect("producer");
            let mut c = ipcx::tokio::queue::Consumer::<Job>::open(&endpoint).expect("consumer");
            for seq in 0..200 {
                p.send_with_id(&job(seq), &format!("a{seq}"))
                    .await
                    .expect("send");
            }
            // A resend under the same id is stored once.
            p.send_with_id(&job(0), "a0").await.expect("resend");
            // Given back once: delivered again.
            let first = c.recv_acked().await.expect("recv");
            assert_eq!(first.seq, 0);
            first.nak().await.expect("nak");
            let mut seen = Vec::new();
            while seen.len() < 200 {
                let m = tokio::time::timeout(Duration::from_secs(30), c.recv_acked())
                    .await
                    .expect("a message within 30 s")
                    .expect("recv");
                check(&m);
                if m.seq == 0 {
                    assert!(m.deliveries() >= 2, "message 0 came back after nak");
                }
                seen.push(m.seq);
                m.ack().await.expect("ack");
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..200).collect::<Vec<_>>());
        });
        assert_eq!(queue::stat(&endpoint).expect("stat").status.messages, 0);
    });
}

/// `Received::ack().await` (and `nak`) under tokio does not hold the
/// runtime's thread while the server confirms: with the server stopped
/// (SIGSTOP) for 600 ms, a ticker on the same current-thread runtime keeps
/// ticking while the ack waits; the ack completes once the server runs
/// again, and the message is gone from the queue. A message dropped
/// unacknowledged is acknowledged, as documented.
#[test]
fn async_ack_does_not_block_the_runtime_thread() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    if util::is_peer() {
        return role();
    }
    watchdog(LIMIT, "async_ack_does_not_block_the_runtime_thread", || {
        let nats = NatsServer::start_jetstream();
        let endpoint = parse(&format!(
            "{}?pattern=queue&ack_wait=30s",
            nats.endpoint("jsasyncack")
        ));
        let _cleanup = Cleanup(endpoint.clone());
        let pid = nats.pid() as i32;
        let rt = crate::util::current_thread();
        rt.block_on(async {
            let mut p = ipcx::tokio::queue::Producer::<Job>::open(&endpoint).expect("producer");
            let mut c = ipcx::tokio::queue::Consumer::<Job>::open(&endpoint).expect("consumer");
            for seq in 0..4 {
                p.send(&job(seq)).await.expect("send");
            }
            for (seq, settle) in [(0, "ack"), (1, "nak")] {
                let m = c.recv_acked().await.expect("recv");
                assert_eq!(m.seq, seq);
                let ticks = Arc::new(AtomicU32::new(0));
                let ticker = tokio::spawn({
                    let ticks = Arc::clone(&ticks);
                    async move {
                        loop {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            ticks.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                // SAFETY: kill(2) on the test's own server process.
                assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
                let resume = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(600));
                    // SAFETY: as above.
                    unsafe { libc::kill(pid, libc::SIGCONT) };
                });
                let settled = if settle == "ack" {
                    m.ack().await
                } else {
                    m.nak().await
                };
                let during = ticks.load(Ordering::Relaxed);
                resume.join().expect("resume thread");
                ticker.abort();
                settled.unwrap_or_else(|e| panic!("{settle}: {e}"));
                // A blocking ack would hold the only thread for the 600 ms
                // (about 60 ticks of 10 ms); 5 is far from both.
                assert!(
                    during >= 5,
                    "{settle}().await held the runtime thread: {during} ticks in 600 ms"
                );
            }
            // The nak gave message 1 back: it comes again, before 2.
            let again = c.recv_acked().await.expect("recv");
            assert_eq!((again.seq, again.deliveries() >= 2), (1, true));
            again.ack().await.expect("ack");
            // Dropped unacknowledged: acknowledged without waiting.
            drop(c.recv_acked().await.expect("recv 2"));
            let last = c.recv_acked().await.expect("recv 3");
            assert_eq!(last.seq, 3);
            let (_, ack) = last.into_parts();
            ack.ack_async().await.expect("ack_async");
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let info = queue::stat(&endpoint).expect("stat");
            let pending = info.status.jetstream.as_ref().and_then(|j| j.ack_pending);
            if info.status.messages == 0 && pending == Some(0) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "messages left after ack/nak/drop: {} stored, {pending:?} unacknowledged",
                info.status.messages
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    });
}

/// `recv_batch` pulls what the stream has in one request: 32 of 100
/// queued messages at once, in order; a message of another type in the
/// middle is an `Err` in its place and the others are delivered; `ack_all`
/// confirms a batch. An empty queue gives `WouldBlock`/`Timeout`, and a
/// batch pull that timed out leaves no request behind at the server:
/// messages sent afterwards go at once to another consumer (not after
/// `ack_wait`, which they would wait out had they been sent to a
/// forgotten request). On a kernel queue the same call takes what is
/// queued.
#[test]
fn batch_pull_hands_out_what_is_queued() {
    if util::is_peer() {
        return role();
    }
    watchdog(LIMIT, "batch_pull_hands_out_what_is_queued", || {
        let nats = NatsServer::start_jetstream();
        let endpoint = parse(&format!(
            "{}?pattern=queue&ack_wait=30s",
            nats.endpoint("jsbatch")
        ));
        let _cleanup = Cleanup(endpoint.clone());
        let mut p = Producer::<Job>::open(&endpoint).expect("producer");
        let mut raw = ByteProducer::open(&endpoint).expect("raw producer");
        for seq in 0..100 {
            if seq == 50 {
                raw.send(b"not a job").expect("send raw");
            }
            p.send(&job(seq)).expect("send");
        }
        let mut c = Consumer::<Job>::open(&endpoint).expect("consumer");
        assert!(c.recv_batch(0).expect("recv_batch(0)").is_empty());
        let first = c
            .recv_batch_timeout(32, Duration::from_secs(10))
            .expect("first batch");
        assert_eq!(first.len(), 32, "one pull for 32 of the 101 queued");
        let mut seqs = Vec::new();
        let mut foreign = 0;
        let mut batch = first;
        loop {
            let mut handled = Vec::new();
            for m in batch {
                match m {
                    Ok(m) => {
                        check(&m);
                        assert_eq!(m.deliveries(), 1);
                        seqs.push(m.seq);
                        handled.push(m);
                    }
                    Err(Error::SchemaMismatch { .. }) => foreign += 1,
                    Err(e) => panic!("unexpected error in a batch: {e}"),
                }
            }
            queue::ack_all(handled).expect("ack_all");
            if seqs.len() == 100 {
                break;
            }
            batch = c
                .recv_batch_timeout(32, Duration::from_secs(10))
                .expect("next batch");
        }
        assert_eq!(seqs, (0..100).collect::<Vec<_>>(), "all, in order");
        assert_eq!(foreign, 1, "the raw message, reported once");
        let info = queue::stat(&endpoint).expect("stat");
        assert_eq!(info.status.messages, 0, "every message acknowledged");
        assert_eq!(info.status.jetstream.and_then(|j| j.ack_pending), Some(0));
        assert!(matches!(
            c.recv_batch_until(8, ipcx::Deadline::Now),
            Err(Error::WouldBlock)
        ));
        assert!(matches!(
            c.recv_batch_timeout(8, Duration::from_millis(300)),
            Err(Error::Timeout)
        ));
        // Nothing pulled by the timed-out call: another consumer gets the
        // next messages at once, first deliveries.
        for seq in 200..205 {
            p.send(&job(seq)).expect("send");
        }
        let mut other = Consumer::<Job>::open(&endpoint).expect("second consumer");
        let mut got = Vec::new();
        while got.len() < 5 {
            for m in other
                .recv_batch_timeout(10, Duration::from_secs(20))
                .expect("batch after a timed-out pull")
            {
                let m = m.expect("a job");
                assert_eq!(m.deliveries(), 1, "message {} redelivered", m.seq);
                got.push(m.seq);
                m.ack().expect("ack");
            }
        }
        // A message taken by a forgotten request would come back only as
        // a redelivery (`deliveries() == 1` above fails).
        assert_eq!(got, (200..205).collect::<Vec<_>>());
        // A kernel queue: what is queued, at most once.
        if util::mqueue_mounted() {
            let mq = parse(&format!(
                "mq:/{}?pattern=queue&capacity=8&max_message_size=256",
                util::unique("jsbmq")
            ));
            let _mq_cleanup = Cleanup(mq.clone());
            let mut kp = Producer::<Job>::open(&mq).expect("mq producer");
            for seq in 0..5 {
                kp.send(&job(seq)).expect("mq send");
            }
            let mut kc = Consumer::<Job>::open(&mq).expect("mq consumer");
            let got: Vec<u64> = kc
                .recv_batch_timeout(10, Duration::from_secs(5))
                .expect("mq batch")
                .into_iter()
                .map(|m| m.expect("mq job").seq)
                .collect();
            assert_eq!(got, vec![0, 1, 2, 3, 4]);
            assert!(matches!(
                kc.recv_batch_until(10, ipcx::Deadline::Now),
                Err(Error::WouldBlock)
            ));
        }
    });
}

/// A consumer pulls a batch of 10 and is killed (SIGKILL) before
/// acknowledging any: after `ack_wait` every one of the 10 is delivered
/// to another consumer, marked as redelivered; the 10 it never pulled
/// are first deliveries. At least once holds for a batch.
#[test]
fn a_batch_held_by_a_killed_consumer_is_redelivered() {
    if util::is_peer() {
        return role();
    }
    const TEST: &str = "jetstream::a_batch_held_by_a_killed_consumer_is_redelivered";
    watchdog(LIMIT, TEST, || {
        let nats = NatsServer::start_jetstream();
        let ep = format!("{}?pattern=queue&ack_wait=1s", nats.endpoint("jsbkill"));
        let endpoint = parse(&ep);
        let _cleanup = Cleanup(endpoint.clone());
        let mut p = Producer::<Job>::open(&endpoint).expect("open producer");
        for seq in 0..20 {
            p.send(&job(seq)).expect("send");
        }
        let mut holder = Peer::spawn(TEST, "hold-batch", &ep, "10");
        assert_eq!(holder.expect_value("holding"), "10");
        holder.kill();
        let mut c = Consumer::<Job>::open(&endpoint).expect("open consumer");
        let mut got = BTreeMap::new();
        while got.len() < 20 {
            let batch = c
                .recv_batch_timeout(20, Duration::from_secs(30))
                .expect("recv_batch");
            let mut handled = Vec::new();
            for m in batch {
                let m = m.expect("a job");
                check(&m);
                assert!(
                    got.insert(m.seq, m.deliveries()).is_none(),
                    "message {} twice",
                    m.seq
                );
                handled.push(m);
            }
            queue::ack_all(handled).expect("ack_all");
        }
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            (0..20).collect::<Vec<_>>()
        );
        for seq in 0..10 {
            assert!(got[&seq] >= 2, "message {seq} was redelivered: {got:?}");
        }
        for seq in 10..20 {
            assert_eq!(got[&seq], 1, "message {seq}: {got:?}");
        }
        assert_eq!(queue::stat(&endpoint).expect("stat").status.messages, 0);
    });
}

/// Under tokio: `recv_batch(..).await` and `ack_all(..).await`.
#[test]
fn async_batch_pull_and_ack_all() {
    if util::is_peer() {
        return role();
    }
    watchdog(LIMIT, "async_batch_pull_and_ack_all", || {
        let nats = NatsServer::start_jetstream();
        let endpoint = parse(&format!("{}?pattern=queue", nats.endpoint("jsabatch")));
        let _cleanup = Cleanup(endpoint.clone());
        let rt = crate::util::current_thread();
        rt.block_on(async {
            let mut p = ipcx::tokio::queue::Producer::<Job>::open(&endpoint).expect("producer");
            let mut c = ipcx::tokio::queue::Consumer::<Job>::open(&endpoint).expect("consumer");
            for seq in 0..50 {
                p.send(&job(seq)).await.expect("send");
            }
            let mut seqs = Vec::new();
            let mut sizes = Vec::new();
            while seqs.len() < 50 {
                let batch = tokio::time::timeout(Duration::from_secs(30), c.recv_batch(20))
                    .await
                    .expect("a batch within 30 s")
                    .expect("recv_batch");
                sizes.push(batch.len());
                let batch: Vec<_> = batch.into_iter().map(|m| m.expect("a job")).collect();
                seqs.extend(batch.iter().map(|m| m.seq));
                ipcx::tokio::queue::ack_all(batch).await.expect("ack_all");
            }
            assert_eq!(seqs, (0..50).collect::<Vec<_>>());
            assert_eq!(sizes, vec![20, 20, 10], "what was queued, 20 at most");
            // A kernel queue under tokio: the first awaited, then what is
            // queued.
            if util::mqueue_mounted() {
                let mq = parse(&format!(
                    "mq:/{}?pattern=queue&capacity=8&max_message_size=256",
                    util::unique("jsabmq")
                ));
                let _mq_cleanup = Cleanup(mq.clone());
                let mut kp = ipcx::tokio::queue::Producer::<Job>::open(&mq).expect("mq producer");
                let mut kc = ipcx::tokio::queue::Consumer::<Job>::open(&mq).expect("mq consumer");
                let waiting = tokio::spawn(async move {
                    let batch = kc.recv_batch(10).await.expect("mq batch");
                    batch
                        .into_iter()
                        .map(|m| m.expect("mq job").seq)
                        .collect::<Vec<_>>()
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                for seq in 0..3 {
                    kp.send(&job(seq)).await.expect("mq send");
                }
                let got = tokio::time::timeout(Duration::from_secs(10), waiting)
                    .await
                    .expect("the batch within 10 s")
                    .expect("task");
                assert!(
                    !got.is_empty() && got == (0..got.len() as u64).collect::<Vec<_>>(),
                    "mq batch: {got:?}"
                );
            }
        });
        let info = queue::stat(&endpoint).expect("stat");
        assert_eq!(info.status.messages, 0);
        assert_eq!(info.status.jetstream.and_then(|j| j.ack_pending), Some(0));
    });
}

/// A roll call whose reply subject is not an inbox gets no answer: a client
/// allowed to publish on the roll-call subject cannot make the open handles
/// publish (with their credentials) where it chooses — here into the
/// queue's own stream. A roll call through an inbox still counts each open
/// handle once, however many roll calls are made at once.
#[test]
fn a_roll_call_is_answered_only_to_an_inbox() {
    const TEST: &str = "jetstream::a_roll_call_is_answered_only_to_an_inbox";
    watchdog(LIMIT, TEST, || {
        let nats = NatsServer::start_jetstream();
        let name = util::unique("jswho");
        let endpoint = parse(&format!("{}?pattern=queue", nats.endpoint(&name)));
        let _cleanup = Cleanup(endpoint.clone());
        let _p = Producer::<Job>::open(&endpoint).expect("producer");
        let _c = Consumer::<Job>::open(&endpoint).expect("consumer");
        let stream = queue::stat(&endpoint)
            .expect("stat")
            .status
            .jetstream
            .expect("a JetStream status")
            .stream;
        let mut raw = crate::util::nats::RawClient::connect(&nats.address());
        // Reply into the queue's subject: were it answered, each handle
        // would store a foreign message in the stream.
        let queue_subject = format!("ipcx.{name}.q");
        for _ in 0..5 {
            raw.publish(&format!("ipcx.q.who.{stream}"), Some(&queue_subject), b"");
        }
        std::thread::sleep(Duration::from_millis(500));
        let info = queue::stat(&endpoint).expect("stat");
        assert_eq!(
            info.status.messages, 0,
            "no answer was stored in the stream"
        );
        assert_eq!(
            (info.producers, info.consumers),
            (Some(1), Some(1)),
            "each open handle counted once"
        );
    });
}

/// A `creds=` or `nkey=` path naming a FIFO (no writer) is refused as not a
/// regular file, not waited on forever.
#[test]
fn a_key_file_that_is_a_fifo_is_refused_at_once() {
    const TEST: &str = "jetstream::a_key_file_that_is_a_fifo_is_refused_at_once";
    watchdog(LIMIT, TEST, || {
        let dir = std::env::temp_dir().join(util::unique("jsfifo"));
        std::fs::create_dir_all(&dir).expect("dir");
        let fifo = dir.join("key");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: mkfifo(3) on a NUL-terminated path of this test's own dir.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for option in ["creds", "nkey"] {
            let ep = parse(&format!(
                "nats://127.0.0.1:1/jsfifo?pattern=queue&{option}={}",
                fifo.display()
            ));
            // A hang on the FIFO would end at the watchdog.
            let err = Producer::<Job>::open(&ep).expect_err("a FIFO is no key file");
            let text = err.to_string();
            assert!(
                text.contains("not a regular file") && text.contains(&format!("{option}=")),
                "{option}: {text}"
            );
        }
        std::fs::remove_dir_all(&dir).expect("remove dir");
    });
}

/// Async `recv_batch` futures dropped while they wait (a timeout around
/// them) leave no task behind that pulls again: once their last request
/// at the server has expired, a message reaches the next receive as a
/// first delivery, instead of being taken by an orphaned pull and
/// redelivered only after `ack_wait`.
#[test]
fn a_cancelled_async_batch_pull_takes_nothing_later() {
    const TEST: &str = "jetstream::a_cancelled_async_batch_pull_takes_nothing_later";
    watchdog(LIMIT, TEST, || {
        let nats = NatsServer::start_jetstream();
        let endpoint = parse(&format!(
            "{}?pattern=queue&ack_wait=20s",
            nats.endpoint("jscancel")
        ));
        let _cleanup = Cleanup(endpoint.clone());
        let rt = crate::util::current_thread();
        rt.block_on(async {
            let mut p = ipcx::tokio::queue::Producer::<Job>::open(&endpoint).expect("producer");
            let mut c = ipcx::tokio::queue::Consumer::<Job>::open(&endpoint).expect("consumer");
            for _ in 0..5 {
                let waited =
                    tokio::time::timeout(Duration::from_millis(100), c.recv_batch(8)).await;
                assert!(waited.is_err(), "nothing is queued yet");
            }
            // The last cancelled call's request stays at the server until
            // it expires (5 s); a message sent before then may go to it.
            // What must not be left is a task that pulls again.
            tokio::time::sleep(Duration::from_secs(7)).await;
            p.send(&job(7)).await.expect("send");
            // A watchdog only: taken by an orphaned pull, the message would
            // come back after `ack_wait` as a redelivery (checked below).
            let batch = tokio::time::timeout(Duration::from_secs(60), c.recv_batch(8))
                .await
                .expect("the message within 60 s")
                .expect("recv_batch");
            let got: Vec<_> = batch.into_iter().map(|m| m.expect("a job")).collect();
            assert_eq!(got.len(), 1);
            assert_eq!(
                (got[0].seq, got[0].deliveries()),
                (7, 1),
                "a first delivery"
            );
            ipcx::tokio::queue::ack_all(got).await.expect("ack_all");
        });
    });
}

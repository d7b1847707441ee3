//! The `ipcx` binary run for real: send/recv across two processes on every
//! transport, ls and clean, doctor, bench --json. No speed assertions;
//! every wait is bounded, so a hang fails the test instead of CI.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod util;

use util::*;

/// Runs `ipcx bench ARGS --json FILE` under the watchdog; asserts it
/// succeeded and returns the JSON it wrote, and its output.
fn bench_json(reg: &Registry, args: &[&str]) -> (serde_json::Value, Output) {
    let file = std::env::temp_dir().join(format!("{}.json", unique("bench")));
    let out = run(
        ipcx(reg).args(args).arg("--json").arg(&file).to_owned_cmd(),
        b"",
    );
    let text = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_str(&text.expect("the JSON file")).expect("valid JSON");
    (v, out)
}

#[test]
fn send_and_recv_on_every_transport() {
    let reg = Registry::new();
    for scheme in ipcx::backends::any::SUPPORTED {
        let scheme = scheme.as_str();
        if scheme == "pipe" {
            continue;
        }
        // nats:// goes through a server of the test's own.
        let server = (scheme == "nats").then(nats::NatsServer::start);
        let ep = match &server {
            Some(s) => s.endpoint("cli"),
            None => endpoint_for(scheme),
        };
        let mut recv = ipcx(&reg);
        recv.args(["recv", &ep, "--count", "3"]);
        let r = listening(recv);
        let mut send = ipcx(&reg);
        send.args(["send", &ep, "-"]);
        let s = run(send, b"hello\nworld\n");
        assert!(
            s.status.success(),
            "{scheme}: send failed: {}",
            String::from_utf8_lossy(&s.stderr)
        );
        let mut send = ipcx(&reg);
        send.args(["send", &ep, "00ff", "--hex"]);
        let s = run(send, b"");
        assert!(
            s.status.success(),
            "{scheme}: send --hex failed: {}",
            String::from_utf8_lossy(&s.stderr)
        );
        let out = wait(r);
        assert!(out.status.success(), "{scheme}: recv failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("hello\nworld\n"), "{scheme}: got {text:?}");
        assert_eq!(&out.stdout[12..], b"\x00\xff\n", "{scheme}");
        let _ = std::fs::remove_file(ep.split_once(':').unwrap().1);
    }
}

#[test]
fn serve_echoes() {
    let reg = Registry::new();
    let ep = endpoint_for("unix");
    // The listener is killed on drop: its socket file is removed here.
    let _file = RemoveOnDrop(ep.strip_prefix("unix:").unwrap().to_string());
    let mut serve = ipcx(&reg);
    serve.args(["serve", &ep, "--echo"]);
    let _s = listening(serve);
    let mut send = ipcx(&reg);
    send.args(["send", &ep, "ping", "--wait-reply"]);
    let out = run(send, b"");
    assert!(out.status.success());
    assert_eq!(out.stdout, b"ping\n");
}

/// One client's failure is not the server's: `serve` goes on after a client
/// that sends garbage and one whose hello announces other message types,
/// and echoes for the next good client.
#[test]
fn serve_survives_garbage_and_wrong_type_clients() {
    use ipcx::{Schema, TypeTag};
    let reg = Registry::new();
    for scheme in ["tcp", "unix"] {
        let ep = endpoint_for(scheme);
        let endpoint: ipcx::Endpoint = ep.parse().unwrap();
        let _file = (scheme == "unix").then(|| RemoveOnDrop(endpoint.address().to_string()));
        let mut serve = ipcx(&reg);
        serve.args(["serve", &ep, "--echo"]);
        let mut s = listening(serve);
        // For failure messages: whether serve went away (it may be on its
        // way out when a client notices).
        let mut serve_state = || {
            let until = Instant::now() + Duration::from_secs(2);
            loop {
                match s.0.try_wait().unwrap() {
                    Some(status) => return format!("serve exited: {status}"),
                    None if Instant::now() > until => return "serve still runs".to_string(),
                    None => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        };

        // A frame length no frame may have, then gone.
        let garbage = [0xFFu8; 4];
        if scheme == "tcp" {
            let mut c = std::net::TcpStream::connect(endpoint.address()).unwrap();
            c.write_all(&garbage).unwrap();
        } else {
            let mut c = std::os::unix::net::UnixStream::connect(endpoint.address()).unwrap();
            c.write_all(&garbage).unwrap();
        }

        // A client that speaks another protocol version is refused, and told
        // why. (A raw-bytes server accepts peers of any message type, so the
        // version is what this server can refuse.)
        let schema = Schema::bytes().with_protocol_version(99);
        match ipcx::connect_with(&endpoint, &schema) {
            Err(ipcx::Error::VersionMismatch { remote, .. }) => assert_eq!(remote, 1),
            Err(e) => panic!(
                "{scheme}: a client of another protocol got {e:?}, expected VersionMismatch ({})",
                serve_state()
            ),
            Ok(_) => panic!("{scheme}: serve accepted a client of protocol version 99"),
        }
        // A client of other message types is served (raw bytes take any),
        // and its departure leaves the server running.
        let typed = Schema::new(TypeTag::new("Quote", 33), TypeTag::new("Order", 11));
        drop(ipcx::connect_with(&endpoint, &typed).expect("a typed client of a raw server"));

        let mut send = ipcx(&reg);
        send.args(["send", &ep, "ping", "--wait-reply"]);
        let out = run(send, b"");
        assert!(
            out.status.success(),
            "{scheme}: a good client after the bad ones: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim_end(),
            serve_state()
        );
        assert_eq!(out.stdout, b"ping\n", "{scheme}");
        if let Some(status) = s.0.try_wait().unwrap() {
            panic!("{scheme}: serve exited ({status}) after serving the good client");
        }
    }
}

#[test]
fn ls_shows_a_live_listener_and_clean_removes_only_a_killed_ones_leftovers() {
    let reg = Registry::new();
    let dead_ep = endpoint_for("unix");
    let dead_path = dead_ep.strip_prefix("unix:").unwrap().to_string();
    let live_ep = endpoint_for("unix");
    let live_path = live_ep.strip_prefix("unix:").unwrap().to_string();
    // The live listener is killed on drop: its socket file is removed here.
    let _live_file = RemoveOnDrop(live_path.clone());
    let mut c = ipcx(&reg);
    c.args(["recv", &dead_ep]);
    let mut dead = listening(c);
    let mut c = ipcx(&reg);
    c.args(["recv", &live_ep]);
    let _live = listening(c);

    let ls = run(ipcx(&reg).arg("ls").to_owned_cmd(), b"");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        text.contains(&live_path) && text.contains(&dead_path),
        "ls: {text}"
    );

    dead.0.kill().unwrap(); // SIGKILL: no chance to clean up
    dead.0.wait().unwrap();
    assert!(std::path::Path::new(&dead_path).exists());

    let dry = run(ipcx(&reg).args(["clean", "--dry-run"]).to_owned_cmd(), b"");
    assert!(String::from_utf8_lossy(&dry.stdout).contains(&dead_path));
    assert!(
        std::path::Path::new(&dead_path).exists(),
        "dry run removed it"
    );

    let clean = run(ipcx(&reg).arg("clean").to_owned_cmd(), b"");
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(text.contains(&dead_path), "clean: {text}");
    assert!(
        !text.contains(&live_path),
        "clean touched the live one: {text}"
    );
    assert!(!std::path::Path::new(&dead_path).exists());
    assert!(std::path::Path::new(&live_path).exists());

    let ls = run(ipcx(&reg).arg("ls").to_owned_cmd(), b"");
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(
        text.contains(&live_path) && !text.contains(&dead_path),
        "ls: {text}"
    );
}

/// A private working directory, canonical (as a child's getcwd reports it)
/// and removed on drop with whatever a test left in it.
struct WorkDir(PathBuf);

impl WorkDir {
    fn new(tag: &str) -> WorkDir {
        let d = std::env::temp_dir().join(unique(tag));
        std::fs::create_dir_all(&d).unwrap();
        WorkDir(std::fs::canonicalize(&d).unwrap())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn clean_from_another_directory_tells_same_relative_sockets_apart() {
    let reg = Registry::new();
    let a = WorkDir::new("dir-a");
    let b = WorkDir::new("dir-b");
    let rel = format!("{}.sock", unique("rel"));
    let ep = format!("unix:{rel}");
    let dead_path = a.0.join(&rel);
    let live_path = b.0.join(&rel);

    let mut c = ipcx(&reg);
    c.current_dir(&a.0).args(["recv", &ep]);
    let mut dead = listening(c);
    let mut c = ipcx(&reg);
    c.current_dir(&b.0).args(["recv", &ep]);
    let _live = listening(c);
    assert!(dead_path.exists() && live_path.exists());

    dead.0.kill().unwrap(); // SIGKILL: no chance to clean up
    dead.0.wait().unwrap();
    assert!(dead_path.exists());

    let mut c = ipcx(&reg);
    c.current_dir(&b.0).arg("clean");
    let clean = run(c, b"");
    assert!(
        clean.status.success(),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(
        text.contains(&*dead_path.to_string_lossy()),
        "clean: {text}"
    );
    assert!(
        !text.contains(&*live_path.to_string_lossy()),
        "clean touched the live one: {text}"
    );
    assert!(!dead_path.exists(), "A's dead socket is still there");
    assert!(live_path.exists(), "B's live socket was removed");
}

#[test]
fn doctor_prints_each_limit() {
    let reg = Registry::new();
    let out = run(ipcx(&reg).arg("doctor").to_owned_cmd(), b"");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for limit in [
        "msg_max",
        "msgsize_max",
        "queues_max",
        "RLIMIT_MSGQUEUE",
        "msgmax",
        "msgmnb",
        "msgmni",
        "shmmax",
        "shmall",
        "SEMMSL",
        "/dev/shm",
        "PIPE_BUF",
        "pipe-max-size",
        "somaxconn",
    ] {
        assert!(
            text.contains(limit),
            "doctor does not mention {limit}:\n{text}"
        );
    }
}

#[test]
fn bench_writes_json() {
    let reg = Registry::new();
    let (v, _) = bench_json(
        &reg,
        &[
            "bench",
            "--sizes",
            "64",
            "--pin",
            "none",
            "--transports",
            "unix",
            "--budget-ms",
            "20",
        ],
    );
    let results = v["results"].as_array().unwrap();
    assert!(results.iter().any(|r| r["transport"] == "unix"));
    assert!(v["machine"]["kernel"].is_string());
}

#[test]
fn bench_has_shm_rows_per_wait_strategy() {
    let reg = Registry::new();
    let (v, _) = bench_json(
        &reg,
        &[
            "bench",
            "--sizes",
            "64",
            "--pin",
            "same,cross",
            "--transports",
            "shm",
            "--budget-ms",
            "20",
        ],
    );
    let results = v["results"].as_array().unwrap();
    let has = |t: &str, pin: &str| {
        results
            .iter()
            .any(|r| r["transport"] == t && r["pin"] == pin)
    };
    for t in ["shm(block)", "shm(spin)", "shm(loan)"] {
        assert!(has(t, "cross"), "no cross row for {t}");
    }
    assert!(has("shm(block)", "same"));
    // Two pollers on one core measure the scheduler, so those are skipped.
    assert!(!has("shm(spin)", "same") && !has("shm(loan)", "same"));
}

#[test]
fn bench_async_has_rows_beside_blocking_and_raw_tokio() {
    let reg = Registry::new();
    let (v, out) = bench_json(
        &reg,
        &[
            "bench",
            "--async",
            "--sizes",
            "64",
            "--pin",
            "none",
            "--transports",
            "unix,shm",
            "--budget-ms",
            "20",
            "--rounds",
            "1",
        ],
    );
    let rows = v["async"].as_array().expect("an async array");
    let row = |t: &str, kind: &str| {
        rows.iter()
            .find(|r| r["transport"] == t && r["kind"] == kind)
            .unwrap_or_else(|| panic!("no async {kind} row for {t}"))
    };
    for kind in ["round-trip", "throughput"] {
        // Sockets have a raw tokio baseline; shared memory has none.
        let unix = row("unix", kind);
        for k in ["async", "blocking", "tokio"] {
            assert!(unix[k]["median"].as_f64().unwrap() > 0.0, "{k}: {unix}");
        }
        assert!(unix["ratio_async_tokio"]["median"].is_f64());
        let shm = row("shm", kind);
        assert!(shm["ratio_async_blocking"]["median"].is_f64());
        assert!(shm["tokio"].is_null());
    }
    // The transport rows are not run alongside.
    assert!(v["results"].as_array().unwrap().is_empty());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("async/tokio"), "{table}");
}

#[test]
fn failures_exit_non_zero_with_one_line() {
    let reg = Registry::new();
    let out = run(
        ipcx(&reg)
            .args(["send", "nonsense:/x", "hi"])
            .to_owned_cmd(),
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// `Command` builder methods return `&mut Command`; `run` takes one by value.
trait ToOwnedCmd {
    fn to_owned_cmd(&mut self) -> Command;
}

impl ToOwnedCmd for Command {
    fn to_owned_cmd(&mut self) -> Command {
        let mut c = Command::new(self.get_program());
        c.args(self.get_args());
        for (k, v) in self.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }
}

#[cfg(feature = "peers")]
#[test]
fn bench_peers_adds_library_rows() {
    let reg = Registry::new();
    let (v, _) = bench_json(
        &reg,
        &[
            "bench",
            "--peers",
            "--sizes",
            "64",
            "--budget-ms",
            "20",
            "--pin",
            "cross",
            "--transports",
            "unix",
        ],
    );
    let results = v["results"].as_array().unwrap();
    for t in ["unix", "iceoryx2", "ipc-channel", "interprocess"] {
        assert!(
            results.iter().any(|r| r["transport"] == t),
            "no row for {t}"
        );
    }
}

#[cfg(not(feature = "peers"))]
#[test]
fn bench_peers_needs_the_feature() {
    let reg = Registry::new();
    let out = run(
        ipcx(&reg)
            .args(["bench", "--peers", "--sizes", "64", "--transports", "unix"])
            .to_owned_cmd(),
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features peers"), "{err}");
}

/// `ipcx -vv` logs what an operator asks about: the listener, a refused
/// client with the reason, and an accepted one with its pid.
#[test]
fn verbose_logs_refusals_and_accepts() {
    let reg = Registry::new();
    let ep = endpoint_for("unix");
    let endpoint: ipcx::Endpoint = ep.parse().unwrap();
    let _file = RemoveOnDrop(endpoint.address().to_string());
    let mut recv = ipcx(&reg);
    recv.args(["-vv", "recv", &ep, "--count", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let g = Guard(recv.spawn().expect("spawn ipcx"));
    let start = Instant::now();
    while !std::path::Path::new(endpoint.address()).exists() {
        assert!(start.elapsed() < WATCHDOG, "recv did not listen in time");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Another protocol version: refused in the handshake.
    let old = ipcx::Schema::bytes().with_protocol_version(99);
    assert!(ipcx::connect_with(&endpoint, &old).is_err());
    let mut send = ipcx(&reg);
    send.args(["send", &ep, "hello"]);
    assert!(run(send, b"").status.success());
    let out = wait(g);
    assert!(out.status.success(), "recv: {out:?}");
    assert_eq!(out.stdout, b"hello\n");
    let log = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "listening",
        "protocol version",
        "handshake failed",
        "accepted",
    ] {
        assert!(log.contains(needle), "the log lacks {needle:?}:\n{log}");
    }
}

/// A standalone queue removed on drop, whatever the test's outcome.
struct QueueGuard(String);

impl Drop for QueueGuard {
    fn drop(&mut self) {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ipcx"));
        c.args(["queue", "rm", &self.0]);
        let _ = run(c, b"");
        if let Some(path) = self.0.strip_prefix("sysv-mq:") {
            let path = path.split('?').next().unwrap_or(path);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[track_caller]
fn queue_ok(reg: &Registry, args: &[&str]) -> String {
    let mut c = ipcx(reg);
    c.arg("queue").args(args);
    let out = run(c, b"");
    assert!(
        out.status.success(),
        "ipcx queue {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn queue_round_trip(ep: &str) {
    let reg = Registry::new();
    let _guard = QueueGuard(ep.to_string());
    let created = queue_ok(&reg, &["create", ep]);
    assert!(created.contains("created"), "{created}");
    let mut again = ipcx(&reg);
    again.args(["queue", "create", ep]);
    assert!(
        !run(again, b"").status.success(),
        "create of an existing queue"
    );
    queue_ok(&reg, &["send", ep, "one"]);
    queue_ok(&reg, &["send", ep, "two"]);
    let stat = queue_ok(&reg, &["stat", ep]);
    assert!(stat.contains("messages         2"), "stat: {stat}");
    assert!(stat.contains("max message      100 bytes"), "stat: {stat}");
    assert!(stat.contains("type             bytes"), "stat: {stat}");
    assert!(stat.contains("last "), "stat: {stat}");
    assert!(stat.contains("producers        0"), "stat: {stat}");
    assert!(stat.contains("consumers        0"), "stat: {stat}");
    let ls = queue_ok(&reg, &["ls"]);
    let kind = ep.split(':').next().unwrap();
    assert!(
        ls.lines()
            .skip(1)
            .any(|l| l.starts_with(&format!("{kind} "))),
        "ls: {ls}"
    );
    // The endpoint that opens it, for a System V queue too (whose key
    // file the kernel does not know).
    let base = ep.split('?').next().unwrap();
    assert!(
        ls.contains(&format!("{base}?pattern=queue")),
        "ls does not name {base}: {ls}"
    );
    let purged = queue_ok(&reg, &["purge", ep]);
    assert!(purged.contains("purged 2 messages"), "{purged}");
    let stat = queue_ok(&reg, &["stat", ep]);
    assert!(stat.contains("messages         0"), "stat: {stat}");
    let rm = queue_ok(&reg, &["rm", ep]);
    assert!(rm.contains("removed"), "{rm}");
    let mut c = ipcx(&reg);
    c.args(["queue", "stat", ep]);
    assert!(!run(c, b"").status.success(), "stat after rm");
}

#[test]
fn queue_create_stat_purge_rm_on_mq() {
    let ep = format!(
        "mq:/{}?pattern=queue&capacity=5&max_message_size=100",
        unique("q")
    );
    queue_round_trip(&ep);
}

#[test]
fn queue_create_stat_purge_rm_on_sysv_mq() {
    let dir = std::env::temp_dir();
    let ep = format!(
        "sysv-mq:{}?pattern=queue&max_message_size=100",
        dir.join(unique("sq")).display()
    );
    queue_round_trip(&ep);
}

#[test]
fn queue_ls_finds_a_queue_and_clean_never_removes_one() {
    let reg = Registry::new();
    let name = unique("keep");
    let ep = format!("mq:/{name}?pattern=queue&capacity=5&max_message_size=100");
    let _guard = QueueGuard(ep.clone());
    queue_ok(&reg, &["create", &ep]);
    queue_ok(&reg, &["send", &ep, "kept"]);
    let ls = queue_ok(&reg, &["ls"]);
    assert!(ls.contains(&format!("/{name}")), "queue ls: {ls}");
    let all = run(ipcx(&reg).arg("ls").to_owned_cmd(), b"");
    let text = String::from_utf8_lossy(&all.stdout);
    assert!(
        text.contains("standalone queues") && text.contains(&format!("/{name}")),
        "ls: {text}"
    );
    // No process has it open and its creator is gone: still not clean's.
    let dry = run(ipcx(&reg).args(["clean", "--dry-run"]).to_owned_cmd(), b"");
    assert!(!String::from_utf8_lossy(&dry.stdout).contains(&name));
    let clean = run(ipcx(&reg).arg("clean").to_owned_cmd(), b"");
    assert!(clean.status.success());
    assert!(!String::from_utf8_lossy(&clean.stdout).contains(&name));
    let stat = queue_ok(&reg, &["stat", &ep]);
    assert!(stat.contains("messages         1"), "after clean: {stat}");
}

#[test]
fn bench_has_queue_rows_and_skips_sizes_beyond_one_kernel_message() {
    let reg = Registry::new();
    let (v, out) = bench_json(
        &reg,
        &[
            "bench",
            "--sizes",
            "64,65536",
            "--pin",
            "none",
            "--transports",
            "queue(mq),queue(sysv-mq)",
            "--budget-ms",
            "20",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("skipping queue(mq) at 64 KiB"), "{stderr}");
    let results = v["results"].as_array().unwrap();
    for t in ["queue(mq)", "queue(sysv-mq)"] {
        assert!(
            results
                .iter()
                .any(|r| r["transport"] == t && r["size"] == 64),
            "no 64 B row for {t}"
        );
        assert!(
            !results
                .iter()
                .any(|r| r["transport"] == t && r["size"] == 65536),
            "a 64 KiB row for {t}"
        );
    }
}

/// `ipcx bench --queues`: 4 producer and 4 consumer processes per queue,
/// ipcx and raw, on both kernels; every message counted (a round that
/// lost one fails the run); nothing left behind.
#[test]
fn bench_queues_runs_four_producers_and_four_consumers() {
    let reg = Registry::new();
    let (v, out) = bench_json(
        &reg,
        &["bench", "--queues", "--sizes", "64", "--budget-ms", "5"],
    );
    let rows = v["queue_fan"].as_array().expect("queue_fan rows");
    for t in ["queue(mq)", "queue(sysv-mq)"] {
        let row = rows
            .iter()
            .find(|r| r["transport"] == t && r["size"] == 64)
            .unwrap_or_else(|| panic!("no 64 B 4 → 4 row for {t}: {rows:?}"));
        assert_eq!(row["producers"], 4);
        assert_eq!(row["consumers"], 4);
        for k in ["ipcx_msgs_per_sec", "raw_msgs_per_sec"] {
            assert!(row[k].as_f64().unwrap() > 0.0, "{t} {k}: {row}");
        }
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("queue, 4 → 4"), "{stdout}");
    let left: Vec<String> = std::fs::read_dir("/dev/mqueue")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-fan-"))
        .collect();
    assert!(left.is_empty(), "queues left behind: {left:?}");
}

/// `ipcx doctor --nats` reads a server's INFO: reachable, max_payload,
/// JetStream on or off, and asks for the account's JetStream information;
/// an address where nothing listens fails.
#[test]
fn doctor_checks_a_nats_server() {
    let reg = Registry::new();
    for (server, js) in [
        (nats::NatsServer::start_jetstream(), "enabled"),
        (nats::NatsServer::start(), "not enabled"),
    ] {
        let out = run(
            ipcx(&reg)
                .args(["doctor", "--nats", &server.address()])
                .to_owned_cmd(),
            b"",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "doctor --nats: {text}");
        assert!(text.contains("max_payload"), "{text}");
        assert!(text.contains("1048576"), "{text}");
        let js_line = text
            .lines()
            .find(|l| l.trim_start().starts_with("jetstream"))
            .unwrap_or_else(|| panic!("no jetstream line: {text}"));
        assert!(js_line.contains(js), "expected JetStream {js}: {js_line}");
        // The account's own information, asked of the server.
        let account = text
            .lines()
            .find(|l| l.trim_start().starts_with("jetstream_account"))
            .unwrap_or_else(|| panic!("no jetstream_account line: {text}"));
        let expected = if js == "enabled" {
            "enabled (0 streams, 0 consumers"
        } else {
            "not enabled"
        };
        assert!(account.contains(expected), "expected {expected}: {account}");
    }
    let gone = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let out = run(
        ipcx(&reg).args(["doctor", "--nats", &gone]).to_owned_cmd(),
        b"",
    );
    assert!(!out.status.success(), "doctor --nats {gone} succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not reachable"), "{err}");
}

/// `ipcx send`/`recv` and `doctor --nats` with `creds=`, against a server
/// in operator mode: the message goes through, doctor says the server
/// accepts the credentials; a user of an account the server does not know
/// fails doctor and send, saying the server refused authorization; a creds
/// file others can read fails send, saying `chmod 600`.
#[cfg(feature = "nats")]
#[test]
fn creds_through_send_recv_and_doctor() {
    use nats_jwt::{KeyDir, Operator};
    let reg = Registry::new();
    let dir = KeyDir::new("clicreds");
    let operator = Operator::new();
    let account = operator.account("app");
    let server = nats::NatsServer::start_with_config(
        &dir.0,
        &operator.server_config(&dir.0, &[&account]),
        false,
    );
    let creds = dir.write("app.creds", &account.user_creds("cli"), 0o600);
    let ep = format!("{}?creds={creds}", server.endpoint("clicreds"));
    let mut recv = ipcx(&reg);
    recv.args(["recv", &ep, "--count", "1"]);
    let r = listening(recv);
    let s = run(ipcx(&reg).args(["send", &ep, "hello"]).to_owned_cmd(), b"");
    assert!(
        s.status.success(),
        "send with creds=: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    let out = wait(r);
    assert!(out.status.success(), "recv with creds=");
    assert_eq!(out.stdout, b"hello\n");

    let doctor = |ep: &str| {
        run(
            ipcx(&reg).args(["doctor", "--nats", ep]).to_owned_cmd(),
            b"",
        )
    };
    let out = doctor(&ep);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "doctor: {text}");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("credentials"))
        .unwrap_or_else(|| panic!("no credentials line: {text}"));
    assert!(line.contains("accepted") && line.contains(&creds), "{line}");

    let stranger = operator.account("stranger");
    let unknown = dir.write("stranger.creds", &stranger.user_creds("s"), 0o600);
    let bad = format!("{}?creds={unknown}", server.endpoint("clicreds"));
    let out = doctor(&bad);
    assert!(!out.status.success(), "doctor admitted an unknown account");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused authorization"), "{err}");
    let out = run(ipcx(&reg).args(["send", &bad, "x"]).to_owned_cmd(), b"");
    assert!(!out.status.success(), "send admitted an unknown account");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused authorization"), "{err}");

    let open = dir.write("open.creds", &account.user_creds("o"), 0o644);
    let out = run(
        ipcx(&reg)
            .args([
                "send",
                &format!("{}?creds={open}", server.endpoint("clicreds")),
                "x",
            ])
            .to_owned_cmd(),
        b"",
    );
    assert!(
        !out.status.success(),
        "send used a creds file others can read"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("chmod 600 {open}")), "{err}");
}

/// `--transports nats` starts a nats-server of its own and measures
/// ipcx's `nats://` beside raw async-nats through it.
#[cfg(feature = "nats")]
#[test]
fn bench_nats_has_rows_beside_raw_async_nats() {
    let reg = Registry::new();
    let (v, _) = bench_json(
        &reg,
        &[
            "bench",
            "--sizes",
            "64",
            "--pin",
            "none",
            "--transports",
            "nats",
            "--budget-ms",
            "20",
        ],
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(
        results.iter().filter(|r| r["transport"] == "nats").count(),
        2,
        "{results:?}"
    );
}

/// Without the `nats` feature, `--transports nats` says how to build it.
#[cfg(not(feature = "nats"))]
#[test]
fn bench_nats_needs_the_feature() {
    let reg = Registry::new();
    let out = run(
        ipcx(&reg)
            .args(["bench", "--transports", "nats", "--sizes", "64"])
            .to_owned_cmd(),
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--features nats"), "{err}");
}

/// `ipcx queue ls --nats`, `stat` and `rm` on JetStream queues: the
/// server's ipcx queues with messages, bytes and the handles open now
/// (counted by their answers to a roll call), a stream that is not an
/// ipcx queue named apart, and `rm` of a missing queue an error.
#[cfg(feature = "nats")]
#[test]
fn queue_ls_stat_rm_on_a_nats_server() {
    use ipcx::queue::{ByteConsumer, ByteProducer};
    let server = nats::NatsServer::start_jetstream();
    let reg = Registry::new();
    let name = unique("jq").replace('/', "-");
    let ep = format!("nats://{}/{name}?pattern=queue", server.address());
    queue_ok(&reg, &["create", &ep]);
    queue_ok(&reg, &["send", &ep, "one"]);
    queue_ok(&reg, &["send", &ep, "two"]);
    // A stream of another application on the same server.
    let mut raw = nats::RawClient::connect(&server.address());
    raw.sub("_INBOX.foreign", 1);
    raw.publish(
        "$JS.API.STREAM.CREATE.orders_other",
        Some("_INBOX.foreign"),
        br#"{"name":"orders_other","subjects":["orders.other"],"storage":"memory"}"#,
    );
    let created = String::from_utf8_lossy(&raw.next_message()).into_owned();
    assert!(created.contains("\"config\""), "foreign stream: {created}");

    let endpoint: ipcx::Endpoint = ep.parse().unwrap();
    let producer = ByteProducer::open(&endpoint).expect("producer");
    let consumers: Vec<ByteConsumer> = (0..2)
        .map(|_| ByteConsumer::open(&endpoint).expect("consumer"))
        .collect();

    let ls = queue_ok(&reg, &["ls", "--nats", &server.address()]);
    let row = ls
        .lines()
        .find(|l| l.starts_with("nats ") && l.contains(&name))
        .unwrap_or_else(|| panic!("no row for {name}: {ls}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    // KIND QUEUE TYPE MESSAGES BYTES PRODUCERS CONSUMERS STORED ENDPOINT
    assert_eq!(cols[1], name, "{ls}");
    assert_eq!(cols[2], "bytes", "{ls}");
    assert_eq!(cols[3], "2", "messages: {ls}");
    assert!(cols[4].parse::<u64>().unwrap() > 6, "bytes: {ls}");
    assert_eq!((cols[5], cols[6]), ("1", "2"), "producers, consumers: {ls}");
    assert!(row.ends_with(&format!("/{name}?pattern=queue")), "{ls}");
    assert!(
        !ls.lines()
            .any(|l| l.starts_with("nats ") && l.contains("orders_other")),
        "{ls}"
    );
    assert!(
        ls.contains("not ipcx queues, not shown): orders_other"),
        "foreign stream not named: {ls}"
    );
    // The same through a nats:// endpoint, as the option says.
    let ls2 = queue_ok(
        &reg,
        &["ls", "--nats", &format!("nats://{}", server.address())],
    );
    assert!(ls2.contains(&name), "{ls2}");

    let stat = queue_ok(&reg, &["stat", &ep]);
    assert!(stat.contains("messages         2"), "stat: {stat}");
    assert!(stat.contains("type             bytes"), "stat: {stat}");
    assert!(stat.contains("producers        1 "), "stat: {stat}");
    assert!(
        stat.contains("other NATS publishers cannot be known"),
        "stat: {stat}"
    );
    assert!(stat.contains("consumers        2 "), "stat: {stat}");
    assert!(stat.contains("last stored      "), "stat: {stat}");
    drop(producer);
    drop(consumers);
    let stat = queue_ok(&reg, &["stat", &ep]);
    assert!(stat.contains("producers        0 "), "after close: {stat}");
    assert!(stat.contains("consumers        0 "), "after close: {stat}");

    let rm = queue_ok(&reg, &["rm", &ep]);
    assert!(rm.contains("removed"), "{rm}");
    let out = run(ipcx(&reg).args(["queue", "rm", &ep]).to_owned_cmd(), b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "rm of a missing queue succeeded");
    assert!(
        err.contains("no such queue") && err.contains("ipcxq_"),
        "rm of a missing queue: {err}"
    );
    let out = run(ipcx(&reg).args(["queue", "stat", &ep]).to_owned_cmd(), b"");
    assert!(!out.status.success(), "stat after rm");
    let ls = queue_ok(&reg, &["ls", "--nats", &server.address()]);
    assert!(!ls.contains(&name), "ls after rm: {ls}");
    // The library call behind ls.
    let server_ep: ipcx::Endpoint = format!("nats://{}/any", server.address()).parse().unwrap();
    let listing = ipcx::queue::list_broker(&server_ep).expect("list_broker");
    assert!(listing.queues.is_empty(), "{listing:?}");
    assert_eq!(listing.other_streams, ["orders_other"]);
    // A server without JetStream, and none at all: clear errors.
    let core = nats::NatsServer::start();
    let out = run(
        ipcx(&reg)
            .args(["queue", "ls", "--nats", &core.address()])
            .to_owned_cmd(),
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("JetStream enabled"),
        "ls on a server without JetStream: {err}"
    );
    let gone = core.address();
    drop(core);
    let out = run(
        ipcx(&reg)
            .args(["queue", "ls", "--nats", &gone])
            .to_owned_cmd(),
        b"",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("start one"),
        "ls with no server: {err}"
    );
}

/// `ipcx recv` and `ipcx serve` stopped by SIGTERM (as systemd, Docker and
/// `kill` stop them) remove what they listened on — a socket file, a
/// rendezvous FIFO — and end as the signal ends a process.
#[test]
fn sigterm_removes_a_listeners_names() {
    use std::os::unix::process::ExitStatusExt;
    let reg = Registry::new();
    for (scheme, cmd) in [("unix", "recv"), ("fifo", "serve")] {
        let ep = endpoint_for(scheme);
        let path = ep.split_once(':').unwrap().1.to_string();
        let _file = RemoveOnDrop(path.clone());
        let mut c = ipcx(&reg);
        c.arg(cmd).arg(&ep);
        if cmd == "serve" {
            c.arg("--echo");
        }
        let mut l = listening(c);
        assert!(std::path::Path::new(&path).exists(), "{ep}: listening");
        // SAFETY: kill(2) on the child this test started.
        let sent = unsafe { libc::kill(l.0.id() as i32, libc::SIGTERM) };
        assert_eq!(sent, 0, "{ep}");
        let status = l.0.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGTERM), "{ep}: {status:?}");
        assert!(
            !std::path::Path::new(&path).exists(),
            "{ep}: {path} left behind"
        );
    }
}

//! Helpers shared by the CLI test files: unique names, a private registry,
//! the `ipcx` binary under a watchdog, children killed on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const WATCHDOG: Duration = Duration::from_secs(20);

/// A name unique to this test process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcx-cli-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private registry directory, removed on drop.
pub struct Registry(pub PathBuf);

impl Registry {
    pub fn new() -> Registry {
        let d = std::env::temp_dir().join(unique("reg"));
        std::fs::create_dir_all(&d).unwrap();
        Registry(d)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn ipcx(reg: &Registry) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ipcx"));
    c.env("IPCX_REGISTRY_DIR", &reg.0);
    c
}

/// A child killed on drop, so a failing test leaves no process behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a command to completion under the watchdog.
#[track_caller]
pub fn run(mut cmd: Command, stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ipcx");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    wait(Guard(child))
}

/// Waits for a child's exit under the watchdog and collects its output.
#[track_caller]
pub fn wait(mut g: Guard) -> Output {
    let start = Instant::now();
    while g.0.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < WATCHDOG,
            "ipcx did not finish within {WATCHDOG:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = Output {
        status: g.0.wait().unwrap(),
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    use std::io::Read;
    if let Some(mut s) = g.0.stdout.take() {
        s.read_to_end(&mut out.stdout).unwrap();
    }
    if let Some(mut s) = g.0.stderr.take() {
        s.read_to_end(&mut out.stderr).unwrap();
    }
    out
}

/// Starts a listening subcommand and waits for it to say it listens.
#[track_caller]
pub fn listening(mut cmd: Command) -> Guard {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut g = Guard(cmd.spawn().expect("spawn ipcx"));
    let stderr = g.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        let _ = tx.send(first);
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(WATCHDOG)
        .expect("listener did not start in time");
    assert!(line.contains("listening on"), "listener said: {line}");
    g
}

/// `nats-server` processes for `nats://`, shared with the integration
/// tests (a server of their own per test, killed on drop).
#[path = "../../../tests/integration/util/nats.rs"]
#[allow(dead_code)]
pub mod nats;

/// NATS operators, accounts and users made by a test (operator mode).
#[cfg(feature = "nats")]
#[path = "../../../tests/integration/util/nats_jwt.rs"]
#[allow(dead_code)]
pub mod nats_jwt;

/// The CLI tests run no re-executed peers (`nats::endpoint` asks).
#[allow(dead_code)]
pub fn is_peer() -> bool {
    false
}

pub fn endpoint_for(scheme: &str) -> String {
    match scheme {
        "unix" => format!("unix:/tmp/{}.sock", unique("u")),
        "tcp" => {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("tcp://{}", l.local_addr().unwrap())
        }
        "fifo" => format!("fifo:/tmp/{}", unique("f")),
        "mq" => format!("mq:/{}", unique("q")),
        "sysv-mq" | "sysv-shm" => format!("{scheme}:/tmp/{}", unique("s")),
        other => format!("{other}:/{}", unique("x")),
    }
}

/// Removes a file on drop (a killed listener's socket file).
pub struct RemoveOnDrop(pub String);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

//! Helpers shared by the integration tests: peers in other processes,
//! watchdogs, unique names, deterministic random data, leftover probes, and
//! the routes to a transport (`route.rs`).

#![allow(dead_code)]

/// Instantiates a suite's cases for one transport.
///
/// `matrix!(suite, transport => endpoint expression; case case …)` makes
/// `suite::transport::case` tests of plain cases, `fn case(test, ep)`.
///
/// A suite whose cases are generic over the [`Route`] to the transport,
/// `fn case<R: Route>(test, ep)` (with `fn run_role<R: Route>()`), names
/// the routes:
/// - `matrix!(suite, transport => endpoint, by_type path::To::Transport; case …)`
///   makes `suite::transport::case` through the endpoint ([`ByEndpoint`],
///   the run-time dispatch) and `suite::transport::by_type::case` through
///   the `Transport` type ([`ByType`]), each on a fresh endpoint from the
///   same expression; a test's peers take its route. Every case runs on
///   both routes: the second adds about 15 s to the integration binary on
///   two shared cores;
/// - `matrix!(suite, transport => endpoint, by_endpoint; case …)` makes
///   only the first, for a transport no `Transport` type can run alone.
///
/// Each test is run by [`run_case`] with the suite's `CASE_LIMIT` and
/// `run_role`. A transport may leave a case out only where the mechanism
/// makes it meaningless, with the reason beside the invocation.
macro_rules! matrix {
    ($suite:ident, $transport:ident => $endpoint:expr; $($case:ident)*) => {
        pub mod $transport {
            fn endpoint() -> String {
                $endpoint
            }
            $(
                #[test]
                fn $case() {
                    crate::util::run_case(
                        concat!(stringify!($suite), "::", stringify!($transport), "::", stringify!($case)),
                        endpoint(),
                        super::CASE_LIMIT,
                        super::$case,
                        super::run_role,
                    );
                }
            )*
        }
    };
    ($suite:ident, $transport:ident => $endpoint:expr, by_endpoint; $($case:ident)*) => {
        pub mod $transport {
            fn endpoint() -> String {
                $endpoint
            }
            $(
                #[test]
                fn $case() {
                    crate::util::run_case(
                        concat!(stringify!($suite), "::", stringify!($transport), "::", stringify!($case)),
                        endpoint(),
                        super::CASE_LIMIT,
                        super::$case::<crate::util::ByEndpoint>,
                        super::run_role::<crate::util::ByEndpoint>,
                    );
                }
            )*
        }
    };
    ($suite:ident, $transport:ident => $endpoint:expr, by_type $type:ty; $($case:ident)*) => {
        pub mod $transport {
            fn endpoint() -> String {
                $endpoint
            }
            $(
                #[test]
                fn $case() {
                    crate::util::run_case(
                        concat!(stringify!($suite), "::", stringify!($transport), "::", stringify!($case)),
                        endpoint(),
                        super::CASE_LIMIT,
                        super::$case::<crate::util::ByEndpoint>,
                        super::run_role::<crate::util::ByEndpoint>,
                    );
                }
            )*
            /// The same cases through the `Transport` type.
            pub mod by_type {
                type Route = crate::util::ByType<$type>;
                $(
                    #[test]
                    fn $case() {
                        crate::util::run_case(
                            concat!(stringify!($suite), "::", stringify!($transport), "::by_type::", stringify!($case)),
                            super::endpoint(),
                            super::super::CASE_LIMIT,
                            super::super::$case::<Route>,
                            super::super::run_role::<Route>,
                        );
                    }
                )*
            }
        }
    };
}

pub mod bad_clients;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "nats")]
pub mod nats_jwt;
mod route;

pub use route::{ByEndpoint, ByType, Route};

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A single-threaded runtime with I/O and time, for a case that drives
/// async code from its own thread.
#[cfg(feature = "tokio")]
pub fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A runtime with two workers and everything enabled.
#[cfg(feature = "tokio")]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Environment variable naming the role a re-executed test binary plays.
pub const ROLE_VAR: &str = "IPCX_TEST_PEER_ROLE";
/// Environment variable carrying the endpoint to the peer.
pub const ENDPOINT_VAR: &str = "IPCX_TEST_PEER_ENDPOINT";
/// Environment variable carrying a role's argument.
pub const ARG_VAR: &str = "IPCX_TEST_PEER_ARG";
/// Lines a peer prints for the test start with this.
pub const REPORT: &str = "PEER:";

/// Whether this process is a re-executed peer.
pub fn is_peer() -> bool {
    std::env::var_os(ROLE_VAR).is_some()
}

/// The peer's role, endpoint and argument.
pub fn peer_params() -> (String, String, String) {
    let get = |v| std::env::var(v).unwrap_or_default();
    (get(ROLE_VAR), get(ENDPOINT_VAR), get(ARG_VAR))
}

/// Prints a report line for the parent.
pub fn report(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{REPORT}{line}");
    let _ = out.flush();
}

/// Waits for a line on stdin from the parent (`None` at EOF).
pub fn await_parent() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim().to_string()),
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique on this machine for this run: `ipcx-t-PID-N`.
pub fn unique(tag: &str) -> String {
    format!(
        "ipcxt{}{}x{}",
        tag,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A peer process: this test binary re-executed to run one test with a role.
/// Killed and reaped on drop, so a failing test leaves no process behind.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    /// The command that re-executes this test binary to run `test` (its
    /// full libtest name) as `role`, with piped stdin and stdout.
    pub fn command(test: &str, role: &str, endpoint: &str, arg: &str) -> Command {
        let exe = std::env::current_exe().expect("current_exe");
        let mut cmd = Command::new(exe);
        cmd.args([test, "--exact", "--nocapture", "--test-threads=1", "-q"])
            .env(ROLE_VAR, role)
            .env(ENDPOINT_VAR, endpoint)
            .env(ARG_VAR, arg)
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        cmd
    }

    /// Starts `test` in a new process as `role`.
    #[track_caller]
    pub fn spawn(test: &str, role: &str, endpoint: &str, arg: &str) -> Peer {
        let child = Peer::command(test, role, endpoint, arg)
            .spawn()
            .expect("spawn peer");
        Peer::adopt(child)
    }

    /// Takes charge of a child started from [`Peer::command`].
    pub fn adopt(mut child: Child) -> Peer {
        let stdout: ChildStdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(r) = line.strip_prefix(REPORT) {
                    if tx.send(r.to_string()).is_err() {
                        break;
                    }
                }
            }
        });
        Peer {
            stdin: child.stdin.take(),
            child,
            lines,
        }
    }

    /// The peer's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most 30 s) for the next report line.
    #[track_caller]
    pub fn expect_line(&self) -> String {
        match self.lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => panic!("peer {} reported nothing within 30 s", self.pid()),
        }
    }

    /// The next report line if the peer has printed one, without waiting.
    pub fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// Waits at most `limit` for a report line `key=value` and returns the
    /// value, or `None` when the peer printed nothing by then.
    #[track_caller]
    pub fn value_within(&self, key: &str, limit: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(limit).ok()?;
        match line.strip_prefix(&format!("{key}=")) {
            Some(v) => Some(v.to_string()),
            None => panic!("peer reported {line:?}, expected {key}=…"),
        }
    }

    /// Waits for a report line `key=value` and returns the value.
    #[track_caller]
    pub fn expect_value(&self, key: &str) -> String {
        let line = self.expect_line();
        match line.strip_prefix(&format!("{key}=")) {
            Some(v) => v.to_string(),
            None => panic!("peer reported {line:?}, expected {key}=…"),
        }
    }

    /// Sends a line to the peer's stdin.
    pub fn tell(&mut self, line: &str) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = writeln!(s, "{line}");
            let _ = s.flush();
        }
    }

    /// Kills the peer with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (at most 60 s) for the peer to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill takes plain values; the pid is our live child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the peer did not exit within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (at most 60 s) for the peer to exit and asserts it succeeded.
    #[track_caller]
    pub fn expect_success(mut self) {
        self.stdin.take();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.child.try_wait().expect("wait") {
                Some(status) => {
                    assert!(status.success(), "peer {} failed: {status}", self.pid());
                    return;
                }
                None if std::time::Instant::now() > deadline => {
                    panic!("peer {} did not exit within 60 s", self.pid())
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        }
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

/// Runs `f` on a thread and fails (instead of hanging) if it takes longer
/// than `limit`. The result is returned.
#[track_caller]
pub fn watchdog<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!("sender dropped without sending"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("watchdog: {what} did not finish within {limit:?} (hang)")
        }
    }
}

/// A small deterministic generator (xorshift64*), so a failing run can be
/// replayed from its seed.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// FNV-1a over `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// A self-checking message: `seq` (8 bytes), checksum of the rest (8),
/// then `len` random bytes.
pub fn make_message(rng: &mut Rng, seq: u64, len: usize) -> Vec<u8> {
    let mut m = vec![0u8; 16 + len];
    rng.fill(&mut m[16..]);
    let sum = checksum(&m[16..]);
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m[8..16].copy_from_slice(&sum.to_le_bytes());
    m
}

/// Checks a message made by [`make_message`] and returns its sequence number.
#[track_caller]
pub fn check_message(m: &[u8]) -> u64 {
    assert!(
        m.len() >= 16,
        "message of {} bytes is shorter than its header",
        m.len()
    );
    let seq = u64::from_le_bytes(m[..8].try_into().unwrap());
    let sum = u64::from_le_bytes(m[8..16].try_into().unwrap());
    assert_eq!(checksum(&m[16..]), sum, "message {seq} is corrupt");
    seq
}

/// Kernel objects that an endpoint's transport may leave behind, found by
/// looking where each mechanism keeps them (not by asking ipcx): the socket
/// file, FIFOs beside the path, `/dev/shm` and `/dev/mqueue` entries with the
/// name, and System V objects created or last used by any of `pids`.
pub fn leftovers(endpoint: &ipcx::Endpoint, pids: &[u32]) -> Vec<String> {
    use ipcx::Scheme;
    let mut found = Vec::new();
    let addr = endpoint.address();
    let base = addr.rsplit('/').next().unwrap_or(addr).to_string();
    let in_dir = |dir: &str, needle: &str, found: &mut Vec<String>| {
        if needle.is_empty() {
            return;
        }
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.contains(needle) {
                    found.push(format!("{dir}/{n}"));
                }
            }
        }
    };
    match endpoint.scheme() {
        Scheme::Unix => {
            if !addr.starts_with('@') && std::path::Path::new(addr).exists() {
                found.push(addr.to_string());
            }
        }
        // A NATS connection's subjects exist only while subscribed.
        Scheme::Tcp | Scheme::Pipe | Scheme::Nats => {}
        Scheme::Fifo => {
            let dir = std::path::Path::new(addr)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|| ".".into());
            in_dir(&dir, &base, &mut found);
        }
        // The key file a sysv-mq listener created for ftok.
        Scheme::SysvMq => {
            if std::path::Path::new(addr).exists() {
                found.push(addr.to_string());
            }
        }
        Scheme::Mq | Scheme::Shm | Scheme::SysvShm | Scheme::Sem | Scheme::SysvSem => {}
    }
    // Every transport: nothing of ours in /dev/shm or /dev/mqueue.
    if endpoint.scheme() == Scheme::Mq {
        assert!(
            mqueue_mounted(),
            "/dev/mqueue is not mounted, so POSIX queues cannot be checked for leftovers; run `mount -t mqueue none /dev/mqueue` (as .ci/run does)"
        );
    }
    in_dir("/dev/shm", &base, &mut found);
    in_dir("/dev/mqueue", &base, &mut found);
    for kind in ["msg", "shm", "sem"] {
        found.extend(sysv_objects(kind, pids));
    }
    found
}

/// System V objects of `kind` (`msg`, `shm`, `sem`) whose creator is one of `pids`.
pub fn sysv_objects(kind: &str, pids: &[u32]) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{kind}")) else {
        return Vec::new();
    };
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split_whitespace().collect();
    let col = |name: &str| cols.iter().position(|c| *c == name);
    let (Some(id_col), cpid_col) = (
        col(match kind {
            "msg" => "msqid",
            "shm" => "shmid",
            _ => "semid",
        }),
        col("cpid"),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        let creator = cpid_col
            .and_then(|c| f.get(c))
            .and_then(|p| p.parse::<u32>().ok());
        // Semaphore sets have no cpid column: match on the registry instead.
        let ours = match creator {
            Some(p) => pids.contains(&p),
            None => false,
        };
        if ours {
            out.push(format!("sysv {kind} id {}", f.get(id_col).unwrap_or(&"?")));
        }
    }
    out
}

/// Whether the POSIX message queue filesystem is mounted at /dev/mqueue.
pub fn mqueue_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(1) == Some("/dev/mqueue"))
        })
        .unwrap_or(false)
}

/// Fails the test if any kernel object or registry record of `pids` on
/// `ep` is left.
#[track_caller]
pub fn assert_nothing_left(ep: &str, pids: &[u32], when: &str) {
    let endpoint: ipcx::Endpoint = ep.parse().expect("endpoint");
    let mut left = leftovers(&endpoint, pids);
    left.extend(
        ipcx::backends::registry::list()
            .into_iter()
            .filter(|r| pids.contains(&r.pid))
            // Only this endpoint's: a pid of a process that died in another
            // test may have been reused by one of `pids`.
            .filter(|r| {
                r.endpoint.parse::<ipcx::Endpoint>().is_ok_and(|e| {
                    e.scheme() == endpoint.scheme() && e.address() == endpoint.address()
                })
            })
            .map(|r| format!("registry record {} {} of {}", r.kind, r.id, r.endpoint)),
    );
    assert!(left.is_empty(), "{when}: left behind: {left:?}");
}

/// Runs a case under a watchdog of `limit`, or, in a re-executed peer, the
/// suite's `role` (which reads what to do from the environment).
pub fn run_case(
    test: &'static str,
    endpoint: String,
    limit: Duration,
    case: fn(&'static str, &str),
    role: fn(),
) {
    if is_peer() {
        role();
        return;
    }
    watchdog(limit, test, move || case(test, &endpoint));
}

/// Parses an endpoint the test made, failing the test if it does not.
#[track_caller]
pub fn parse(ep: &str) -> ipcx::Endpoint {
    ep.parse().unwrap_or_else(|e| panic!("{ep}: {e}"))
}

/// `ep` with one more option, `key=value` (given as a string, so options
/// the parser does not know yet can be written down).
pub fn with_option(ep: &str, option: &str) -> String {
    let sep = if ep.contains('?') { '&' } else { '?' };
    format!("{ep}{sep}{option}")
}

/// A loopback TCP address that was free a moment ago (for a listener that
/// must be known before it starts).
pub fn free_tcp_address() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr").to_string()
}

/// A loopback TCP address where nothing listens: a socket is bound there
/// and does not listen, so connecting is refused, and the port stays
/// taken (no other test can start listening there) while the returned
/// descriptor lives.
pub fn refusing_tcp_address() -> (std::os::fd::OwnedFd, String) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: socket takes integers only.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: a descriptor socket just returned, owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_in is a plain C struct for which all-zero is valid.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sin` is a live sockaddr_in and `len` its size.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sin as *const libc::sockaddr_in).cast(),
            len,
        )
    };
    assert!(
        r == 0,
        "bind 127.0.0.1:0: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: getsockname writes at most `len` bytes into the live `sin`.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut sin as *mut libc::sockaddr_in).cast(),
            &mut len,
        )
    };
    assert!(r == 0, "getsockname: {}", std::io::Error::last_os_error());
    (fd, format!("127.0.0.1:{}", u16::from_be(sin.sin_port)))
}

/// Removes, when dropped, what a case that failed half-way may have left
/// on its endpoint (a fresh one of this process): a killed listener's
/// rendezvous, reclaimed by listening there once more and closing; files
/// and FIFOs whose names are the endpoint's name or begin with it; the
/// POSIX queues of the client processes named with [`Reclaim::client`]
/// (a client killed before the listener took its queues leaves them);
/// and the System V queues and registry records of the endpoint. Declare
/// it first in a case, so it runs after the case's peers are gone.
pub struct Reclaim {
    endpoint: String,
    clients: Vec<u32>,
}

impl Reclaim {
    /// A guard for `endpoint`.
    pub fn new(endpoint: &str) -> Reclaim {
        Reclaim {
            endpoint: endpoint.to_string(),
            clients: Vec::new(),
        }
    }

    /// Also removes what client process `pid` may leave.
    pub fn client(&mut self, pid: u32) {
        self.clients.push(pid);
    }
}

impl Drop for Reclaim {
    fn drop(&mut self) {
        use ipcx::Scheme;
        let Ok(ep) = self.endpoint.parse::<ipcx::Endpoint>() else {
            return;
        };
        if matches!(ep.scheme(), Scheme::Tcp | Scheme::Pipe | Scheme::Nats) {
            return;
        }
        drop(ipcx::listen(&ep));
        let addr = ep.address();
        let base = addr.rsplit('/').next().unwrap_or(addr);
        if base.is_empty() {
            return;
        }
        if ep.scheme() == Scheme::Mq {
            // The rendezvous `/ipcx.NAME` and a client's `/ipcx.NAME.PID.N.up`
            // and `.down` (N counts that process's connects: one here).
            let rendezvous = format!("/ipcx.{base}");
            let mut names = vec![rendezvous.clone()];
            for pid in &self.clients {
                for n in 0..4 {
                    for dir in ["up", "down"] {
                        names.push(format!("{rendezvous}.{pid}.{n}.{dir}"));
                    }
                }
            }
            for name in names {
                if let Ok(c) = std::ffi::CString::new(name) {
                    // SAFETY: `c` is a NUL-terminated string alive for the call.
                    unsafe { libc::mq_unlink(c.as_ptr()) };
                }
            }
        }
        let ours = |name: &str| {
            let name = name.strip_prefix("ipcx.").unwrap_or(name);
            name == base || name.strip_prefix(base).is_some_and(|r| r.starts_with('.'))
        };
        let dir = std::path::Path::new(addr)
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        for d in ["/dev/mqueue", "/dev/shm", dir.as_str()] {
            let Ok(rd) = std::fs::read_dir(if d.is_empty() { "." } else { d }) else {
                continue;
            };
            for e in rd.flatten() {
                if ours(&e.file_name().to_string_lossy()) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let same = |s: &str| {
            s.parse::<ipcx::Endpoint>()
                .is_ok_and(|e| e.scheme() == ep.scheme() && e.address() == ep.address())
        };
        for r in ipcx::backends::registry::list() {
            if !same(&r.endpoint) {
                continue;
            }
            if r.kind == ipcx::backends::registry::Kind::SysvQueue {
                if let Ok(id) = r.id.parse::<i32>() {
                    // SAFETY: IPC_RMID takes no buffer; a queue already
                    // removed only makes the call fail.
                    unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
                }
            }
            ipcx::backends::registry::unregister(r.kind, &r.id);
        }
    }
}

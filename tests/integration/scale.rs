//! Many connections: a server holding hundreds of idle connections, each
//! with a thread blocked in `recv`, uses (almost) no CPU (a watchdog
//! against liveness polling, not a benchmark); when the per-user POSIX
//! queue memory runs out, the error names the numbers.

use std::time::{Duration, Instant};

use ipcx::{Endpoint, Error, Listener, Receiver, Sender};

use crate::util::{self, Peer, report};

/// Idle connections held by the test.
const CONNECTIONS: usize = 500;

/// Runs a case, or in a re-executed peer the role it was started for.
fn run(test: &'static str, case: fn(&'static str)) {
    if util::is_peer() {
        role();
        return;
    }
    util::watchdog(Duration::from_secs(240), test, move || case(test));
}

fn role() {
    let (role, ep, arg) = util::peer_params();
    let endpoint: Endpoint = ep.parse().expect("endpoint");
    let n: usize = arg.parse().expect("N");
    match role.as_str() {
        // Accepts `n` connections, each served by a thread that echoes
        // until the peer goes; then waits for the parent.
        "idle-server" => {
            let mut l = ipcx::listen(&endpoint).expect("listen");
            report("listening");
            let start = Instant::now();
            for _ in 0..n {
                let mut ch = l.accept().expect("accept");
                std::thread::spawn(move || {
                    loop {
                        match ch.recv() {
                            Ok(buf) => {
                                if ch.send(&buf).is_err() {
                                    return;
                                }
                            }
                            Err(Error::Disconnected) => return,
                            Err(e) => panic!("recv: {e}"),
                        }
                    }
                });
            }
            report(format!("accepted_ms={}", start.elapsed().as_millis()));
            util::await_parent();
        }
        // Connects `n` times, checks that the last connection echoes, and
        // holds them all until the parent says otherwise.
        "idle-clients" => {
            let start = Instant::now();
            let mut held = Vec::with_capacity(n);
            for _ in 0..n {
                held.push(ipcx::connect(&endpoint).expect("connect"));
            }
            let connect = start.elapsed();
            let last = held.last_mut().expect("one connection");
            last.send(b"ping").expect("send");
            assert_eq!(last.recv().expect("recv"), b"ping");
            report(format!("connected_ms={}", connect.as_millis()));
            util::await_parent();
        }
        // Lowers RLIMIT_MSGQUEUE (soft and hard, so ipcx cannot raise it
        // back), listens, and connects until the queue memory runs out.
        "mq-limit" => {
            let limit = libc::rlimit {
                rlim_cur: n as libc::rlim_t,
                rlim_max: n as libc::rlim_t,
            };
            // SAFETY: setrlimit reads one rlimit struct through a pointer
            // to a live local.
            let r = unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &limit) };
            assert_eq!(r, 0, "setrlimit");
            let mut held = Vec::new();
            let err = match ipcx::listen(&endpoint) {
                Err(e) => e,
                Ok(_listener) => loop {
                    match ipcx::connect(&endpoint) {
                        Ok(ch) => held.push(ch),
                        Err(e) => break e,
                    }
                    assert!(held.len() < 100, "{n} bytes of queues held 100 connections");
                },
            };
            report(format!("held={}", held.len()));
            report(format!("error={err}"));
        }
        other => panic!("unknown role {other}"),
    }
}

/// User plus system CPU time of process `pid` so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // The command name may hold spaces: fields after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').expect(")") + 1..]
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15, i.e. 12 and 13 after ')'.
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf takes a constant and reads no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(ticks * 1_000_000_000 / hz)
}

fn shm_idle_connections_cost_no_cpu(test: &'static str) {
    let ep = format!("shm:/{}", util::unique("idle"));
    let n = CONNECTIONS.to_string();
    let server = Peer::spawn(test, "idle-server", &ep, &n);
    assert_eq!(server.expect_line(), "listening");
    let clients = Peer::spawn(test, "idle-clients", &ep, &n);
    let accepted = server
        .value_within("accepted_ms", Duration::from_secs(200))
        .expect("the server accepted every connection");
    let connected = clients
        .value_within("connected_ms", Duration::from_secs(30))
        .expect("the clients connected");
    eprintln!(
        "{CONNECTIONS} shm connections: accepted in {accepted} ms, connected in {connected} ms"
    );
    // Let the last handshake threads finish before measuring.
    std::thread::sleep(Duration::from_millis(300));
    let wall = Instant::now();
    let before = cpu_time(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_time(server.pid()) - before;
    let wall = wall.elapsed();
    let share = used.as_secs_f64() / wall.as_secs_f64();
    eprintln!(
        "server CPU over {wall:?} idle with {CONNECTIONS} connections: {used:?} ({:.1} % of one core)",
        share * 100.0
    );
    // Watchdog, not a benchmark: polling every connection for its peer's
    // liveness costs a whole core or more at this count; sleeping until
    // something happens costs next to nothing. A fifth of one core leaves
    // room for a loaded machine (clock-tick accounting, stray wake-ups).
    assert!(
        share < 0.2,
        "{CONNECTIONS} idle shm connections cost {:.1} % of one core",
        share * 100.0
    );
}

fn mq_limit_error_names_the_numbers(test: &'static str) {
    let ep = format!("mq:/{}", util::unique("lim"));
    // 100,000 bytes: one default connection (85,120) fits when this
    // user holds no other queues, never two.
    let limit = 100_000;
    let peer = Peer::spawn(test, "mq-limit", &ep, &limit.to_string());
    let held: usize = peer.expect_value("held").parse().expect("held");
    let err = peer.expect_value("error");
    eprintln!("with RLIMIT_MSGQUEUE={limit}: {held} connection(s), then: {err}");
    assert!(held <= 1, "{held} connections in {limit} bytes");
    for part in [
        format!("RLIMIT_MSGQUEUE is {limit} bytes per user (hard limit {limit})"),
        format!("this process holds {held}"),
        "bytes with the kernel's bookkeeping".to_string(),
        "a hundred such connections would need".to_string(),
        "ulimit -q".to_string(),
        "limits.conf".to_string(),
        "CAP_SYS_RESOURCE".to_string(),
    ] {
        assert!(err.contains(&part), "the error names {part:?}: {err}");
    }
    assert!(!err.contains("capacity=0"), "{err}");
    peer.expect_success();
}

#[test]
fn mq_limit() {
    run("scale::mq_limit", mq_limit_error_names_the_numbers);
}

#[test]
fn shm_idle() {
    run("scale::shm_idle", shm_idle_connections_cost_no_cpu);
}

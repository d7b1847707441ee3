//! What a shared-memory message costs, for measuring changes to the rings.
//!
//! ```text
//! cargo run --release --example shm_costs -- fast-path 100000
//! valgrind --tool=callgrind cargo-target/release/examples/shm_costs fast-path 100000
//! cargo run --release --features tokio --example shm_costs -- round-trip blocking 20000
//! cargo run --release --features tokio --example shm_costs -- round-trip async 20000
//! ```
//!
//! - `fast-path N`: one thread sends N 64-byte messages on `shm:` with
//!   `wait=block` and receives each at once from the other end of the same
//!   connection, so no side ever waits: what is left is the blocking fast
//!   path (copy, publish, the wake-up check). Run it under callgrind and
//!   divide the instructions by N (minus a run with N = 0 for set-up).
//! - `round-trip blocking|async N`: this program re-executed as an echo
//!   server, N round trips of 64 bytes on `shm:` with `wait=block`, both
//!   sides blocking or both async (tokio, driven from the reactor); prints
//!   the median and 99th percentile.

use std::time::{Duration, Instant};

use ipcx::{Error, Listener as _, Receiver as _, Sender as _};

const SIZE: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    match arg(1) {
        "fast-path" => fast_path(arg(2).parse().unwrap_or(100_000)),
        "round-trip" => round_trip(arg(2), arg(3).parse().unwrap_or(20_000)),
        "echo" => echo(arg(2), arg(3)),
        _ => eprintln!("usage: shm_costs fast-path N | round-trip blocking|async N"),
    }
}

fn endpoint(tag: &str) -> ipcx::Endpoint {
    format!("shm:/ipcx-costs-{tag}-{}?wait=block", std::process::id())
        .parse()
        .expect("endpoint")
}

fn fast_path(n: u64) {
    let ep = endpoint("fast");
    let mut listener = ipcx::listen(&ep).expect("listen");
    let mut client = ipcx::connect(&ep).expect("connect");
    let mut server = listener.accept().expect("accept");
    let msg = [7u8; SIZE];
    let mut buf = Vec::with_capacity(SIZE);
    for _ in 0..n {
        client.send(&msg).expect("send");
        server.recv_into(&mut buf).expect("recv");
    }
    std::hint::black_box(&buf);
    println!("{n} messages of {SIZE} bytes sent and received");
}

fn round_trip(mode: &str, n: usize) {
    let ep = endpoint("rtt");
    let exe = std::env::current_exe().expect("current_exe");
    let mut child = std::process::Command::new(exe)
        .args(["echo", mode, &ep.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the echo server");
    // The echo server prints a line once it listens.
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut line,
    )
    .expect("echo server ready");
    let mut times = match mode {
        "async" => async_client(&ep, n),
        _ => blocking_client(&ep, n),
    };
    child.wait().expect("echo server");
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p) as usize];
    println!(
        "shm: wait=block {mode}: {n} round trips of {SIZE} B: median {:?}, p99 {:?}",
        pct(0.5),
        pct(0.99)
    );
}

fn blocking_client(ep: &ipcx::Endpoint, n: usize) -> Vec<Duration> {
    let mut c = ipcx::connect(ep).expect("connect");
    let msg = [1u8; SIZE];
    let mut buf = Vec::new();
    let mut times = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        c.send(&msg).expect("send");
        c.recv_into(&mut buf).expect("recv");
        if i >= n / 10 {
            times.push(t.elapsed());
        }
    }
    times
}

#[cfg(feature = "tokio")]
fn async_client(ep: &ipcx::Endpoint, n: usize) -> Vec<Duration> {
    runtime().block_on(async {
        let mut c = ipcx::tokio::connect(ep).await.expect("connect");
        let msg = [1u8; SIZE];
        let mut buf = Vec::new();
        let mut times = Vec::with_capacity(n);
        for i in 0..n + n / 10 {
            let t = Instant::now();
            c.send(&msg).await.expect("send");
            c.recv_into(&mut buf).await.expect("recv");
            if i >= n / 10 {
                times.push(t.elapsed());
            }
        }
        times
    })
}

#[cfg(not(feature = "tokio"))]
fn async_client(_: &ipcx::Endpoint, _: usize) -> Vec<Duration> {
    panic!("build with --features tokio for the async round trip");
}

#[cfg(feature = "tokio")]
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn echo(mode: &str, ep: &str) {
    let ep: ipcx::Endpoint = ep.parse().expect("endpoint");
    match mode {
        #[cfg(feature = "tokio")]
        "async" => runtime().block_on(async {
            let mut l = ipcx::tokio::listen(&ep).expect("listen");
            println!("ready");
            let mut c = l.accept().await.expect("accept");
            let mut buf = Vec::new();
            loop {
                match c.recv_into(&mut buf).await {
                    Ok(()) => c.send(&buf).await.expect("send"),
                    Err(Error::Disconnected) => return,
                    Err(e) => panic!("{e}"),
                }
            }
        }),
        _ => {
            let mut l = ipcx::listen(&ep).expect("listen");
            println!("ready");
            let mut c = l.accept().expect("accept");
            let mut buf = Vec::new();
            loop {
                match c.recv_into(&mut buf) {
                    Ok(()) => c.send(&buf).expect("send"),
                    Err(Error::Disconnected) => return,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }
}

//! What a small message costs sent one per call or in batches, for
//! instruction and system-call counts.
//!
//! ```text
//! cargo build --release --example batch_costs
//! B=cargo-target/release/examples/batch_costs
//! $B single unix 100000 ; $B batch unix 100000
//! valgrind --tool=callgrind --trace-children=yes $B batch shm 100000
//! strace -c -f $B batch pipe 100000
//! ```
//!
//! `single|batch pipe|unix|shm N`: this program sends N messages of 64
//! bytes to a copy of itself (a child process) that receives them, one
//! per call (`send`, `recv_into`) or 64 at a time (`send_batch`,
//! `recv_batch`); `shm:` waits with `wait=block`. The child then
//! acknowledges, so both processes end having moved exactly N messages:
//! divide each process's instructions (minus a run with N = 0 for
//! set-up) or system calls by N.

use std::process::Command;

use ipcx::{AnyChannel, Batch, Listener as _, Receiver as _, Sender as _};

const SIZE: usize = 64;
const BATCH: usize = 64;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("");
    let n: u64 = arg(3).parse().unwrap_or(100_000);
    match (arg(1), arg(2)) {
        ("child", mode) => child(mode, arg(3), arg(4).parse().unwrap_or(0)),
        (mode @ ("single" | "batch"), transport @ ("pipe" | "unix" | "shm")) => {
            parent(mode, transport, n)
        }
        _ => eprintln!("usage: batch_costs single|batch pipe|unix|shm N"),
    }
}

fn parent(mode: &str, transport: &str, n: u64) {
    let ep = match transport {
        "pipe" => "pipe:".to_string(),
        "unix" => format!("unix:@ipcx-batch-costs-{}", std::process::id()),
        _ => format!("shm:/ipcx-batch-costs-{}?wait=block", std::process::id()),
    };
    let endpoint: ipcx::Endpoint = ep.parse().expect("endpoint");
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args(["child", mode, &ep, &n.to_string()]);
    let (mut child, mut ch) = if transport == "pipe" {
        ipcx::spawn(cmd, &endpoint).expect("spawn")
    } else {
        let mut listener = ipcx::listen(&endpoint).expect("listen");
        let child = cmd.spawn().expect("spawn");
        (child, listener.accept().expect("accept"))
    };
    send(&mut ch, mode, n);
    let mut ack = Vec::new();
    ch.recv_into(&mut ack).expect("ack");
    drop(ch);
    assert!(child.wait().expect("wait").success(), "the child failed");
    println!("{n} messages of {SIZE} bytes, {mode}, over {transport}");
}

fn send(ch: &mut AnyChannel, mode: &str, n: u64) {
    let msg = [7u8; SIZE];
    if mode == "single" {
        for _ in 0..n {
            ch.send(&msg).expect("send");
        }
        return;
    }
    let refs = [&msg[..]; BATCH];
    let mut left = n as usize;
    while left > 0 {
        let k = left.min(BATCH);
        ch.send_batch(&refs[..k]).expect("send_batch");
        left -= k;
    }
}

fn child(mode: &str, ep: &str, n: u64) {
    let endpoint: ipcx::Endpoint = ep.parse().expect("endpoint");
    let mut ch = ipcx::connect(&endpoint).expect("connect");
    let mut got = 0u64;
    if mode == "single" {
        let mut buf = Vec::with_capacity(SIZE);
        while got < n {
            ch.recv_into(&mut buf).expect("recv");
            got += 1;
        }
    } else {
        let mut batch = Batch::with_capacity(BATCH, BATCH * SIZE);
        while got < n {
            got += ch.recv_batch(&mut batch, BATCH).expect("recv_batch") as u64;
        }
    }
    ch.send(b"done").expect("ack");
}

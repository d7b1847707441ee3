//! The hot path of a standalone queue (`ipcx::queue`), one send and one
//! receive of a 64-byte message in one process, beside the raw kernel
//! calls: a small program to count instructions with, where wall-clock
//! time is too noisy.
//!
//! ```text
//! cargo build --release --example queue_hot_paths
//! B=target/release/examples/queue_hot_paths
//! for op in mq raw-mq sysv-mq raw-sysv-mq; do
//!   for n in 0 20000; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null $B $op $n 2>&1 |
//!       grep -o 'refs: *[0-9,]*' | tr -d ', ' | sed "s/^/$op $n /"
//!   done
//! done
//! ```
//!
//! (instructions at `n` minus instructions at 0) / `n` is the user-space
//! cost of one send and one receive; both sides make one system call
//! each. Every queue made is removed before the program ends.

use ipcx::queue::{self, ByteConsumer, ByteProducer};

const SIZE: usize = 64;

fn os(what: &str) -> ! {
    panic!("{what}: {}", std::io::Error::last_os_error())
}

fn main() -> ipcx::Result<()> {
    let mut args = std::env::args().skip(1);
    let op = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let pid = std::process::id();
    let msg = [0x5au8; SIZE];
    match op.as_str() {
        "mq" | "sysv-mq" => {
            let s = if op == "mq" {
                format!("mq:/ipcx-qhot-{pid}?pattern=queue&max_message_size={SIZE}&capacity=10")
            } else {
                format!(
                    "sysv-mq:{}/ipcx-qhot-{pid}.key?pattern=queue&max_message_size={SIZE}",
                    std::env::temp_dir().display()
                )
            };
            let ep = s.parse()?;
            let mut p = ByteProducer::create(&ep)?;
            let mut c = ByteConsumer::open(&ep)?;
            for _ in 0..n {
                p.send(&msg)?;
                let d = c.recv_until(ipcx::Deadline::Never)?;
                std::hint::black_box(d.payload);
            }
            drop((p, c));
            queue::remove(&ep)?;
            if op == "sysv-mq" {
                let _ = std::fs::remove_file(ep.address());
            }
        }
        "raw-mq" => {
            let name = std::ffi::CString::new(format!("/ipcx-qhot-raw-{pid}")).expect("name");
            // SAFETY: mq_attr is plain integers.
            let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
            attr.mq_maxmsg = 10;
            attr.mq_msgsize = SIZE as libc::c_long;
            // SAFETY: a valid C string; for O_CREAT the variadic arguments
            // are the mode and a pointer to a live mq_attr.
            let q = unsafe {
                libc::mq_open(
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                    0o600 as libc::mode_t,
                    &attr as *const libc::mq_attr,
                )
            };
            if q < 0 {
                os("mq_open");
            }
            // SAFETY: the name made above.
            unsafe { libc::mq_unlink(name.as_ptr()) };
            let mut buf = [0u8; SIZE];
            for _ in 0..n {
                let mut prio = 0;
                // SAFETY: `msg` and `buf` are live buffers of the queue's
                // message size; `q` is open.
                unsafe {
                    if libc::mq_send(q, msg.as_ptr().cast(), SIZE, 0) != 0 {
                        os("mq_send");
                    }
                    if libc::mq_receive(q, buf.as_mut_ptr().cast(), SIZE, &mut prio) < 0 {
                        os("mq_receive");
                    }
                }
                std::hint::black_box(&buf);
            }
        }
        "raw-sysv-mq" => {
            // SAFETY: msgget takes values only.
            let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
            if id < 0 {
                os("msgget");
            }
            let long = size_of::<libc::c_long>();
            let mut out = vec![1 as libc::c_long; 1 + SIZE / long];
            let mut inb = vec![0 as libc::c_long; 1 + SIZE / long];
            for _ in 0..n {
                // SAFETY: each buffer is a type word and SIZE bytes.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        msg.as_ptr(),
                        out.as_mut_ptr().add(1).cast::<u8>(),
                        SIZE,
                    );
                    if libc::msgsnd(id, out.as_ptr().cast(), SIZE, 0) != 0 {
                        os("msgsnd");
                    }
                    if libc::msgrcv(id, inb.as_mut_ptr().cast(), SIZE, 0, 0) < 0 {
                        os("msgrcv");
                    }
                }
                std::hint::black_box(&inb);
            }
            // SAFETY: IPC_RMID reads no variadic argument.
            unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) };
        }
        _ => {
            eprintln!("usage: queue_hot_paths mq|raw-mq|sysv-mq|raw-sysv-mq [N]");
            std::process::exit(2);
        }
    }
    Ok(())
}

//! A job queue that outlives its processes: a producer queues jobs and
//! exits; then two workers, separate processes, compete for them.
//!
//! ```text
//! cargo run --example job_queue                       # mq:/ipcx-example-jobs
//! cargo run --example job_queue -- sysv-mq:/tmp/jobs?pattern=queue
//! cargo run --features nats --example job_queue -- examples/config/jobs-nats.toml
//! ```
//!
//! The workers acknowledge each job once it is done (`recv_acked`): on
//! JetStream a worker that dies before that has its job redelivered to the
//! other (at least once); on kernel queues acknowledging does nothing (at
//! most once). The queue is removed at the end; without that it would stay
//! until reboot (kernel queues) or until removed (JetStream), holding
//! whatever was left in it.

use std::process::Command;
use std::time::Duration;

use ipcx::queue::{Consumer, Producer};
use ipcx::{Endpoint, Error, IpcMessage};
use serde::{Deserialize, Serialize};

#[derive(IpcMessage, Serialize, Deserialize, Debug)]
#[ipc(name = "example.Job")]
struct Job {
    id: u32,
    image: String,
}

fn main() -> ipcx::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--worker") {
        let endpoint: Endpoint = args.next().expect("endpoint").parse()?;
        return worker(&endpoint);
    }
    let endpoint: Endpoint = match first.as_deref() {
        // A config file: `endpoint = "…"`.
        Some(path) if path.ends_with(".toml") => {
            #[derive(Deserialize)]
            struct Config {
                endpoint: Endpoint,
            }
            let text = std::fs::read_to_string(path)?;
            toml::from_str::<Config>(&text)
                .map_err(|e| std::io::Error::other(format!("{path}: {e}")))?
                .endpoint
        }
        other => other
            .unwrap_or("mq:/ipcx-example-jobs?pattern=queue")
            .parse()?,
    };

    // The producer: queues what fits (POSIX queues hold 10 messages by
    // default) and is done; nobody is listening yet.
    let mut producer = Producer::<Job>::open(&endpoint)?;
    let mut queued = 0;
    for id in 0..8 {
        let job = Job {
            id,
            image: format!("img-{id}.png"),
        };
        match producer.try_send(&job) {
            Ok(()) => queued += 1,
            Err(Error::WouldBlock) => break,
            Err(e) => return Err(e),
        }
    }
    drop(producer);
    println!("queued {queued} jobs on {endpoint}; no worker runs yet");

    // Two workers, started later, in processes of their own.
    let me = std::env::current_exe()?;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&me)
                .args(["--worker", &endpoint.to_string()])
                .spawn()
        })
        .collect::<Result<_, _>>()?;
    for mut w in workers {
        w.wait()?;
    }
    ipcx::queue::remove(&endpoint)?;
    Ok(())
}

/// Takes jobs until the queue has been empty for a moment.
fn worker(endpoint: &Endpoint) -> ipcx::Result<()> {
    let mut jobs = Consumer::<Job>::open(endpoint)?;
    loop {
        match jobs.recv_acked_timeout(Duration::from_millis(500)) {
            Ok(job) => {
                println!(
                    "worker {}: job {} ({})",
                    std::process::id(),
                    job.id,
                    job.image
                );
                std::thread::sleep(Duration::from_millis(20));
                job.ack()?; // done: it leaves the queue for good
            }
            Err(Error::Timeout) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

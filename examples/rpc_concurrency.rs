//! Four clients with ten calls in flight each against a handler that takes
//! 5 ms: how long all forty take, and how many calls the handler had at
//! once. `cargo run --release --example rpc_concurrency [ENDPOINT]`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipcx::rpc::{Client, Server};
use ipcx::{Endpoint, IpcMessage};
use serde::{Deserialize, Serialize};

#[derive(IpcMessage, Serialize, Deserialize)]
struct Work(u32);

#[derive(IpcMessage, Serialize, Deserialize)]
struct Done(u32);

fn main() -> ipcx::Result<()> {
    let endpoint: Endpoint = match std::env::args().nth(1) {
        Some(e) => e.parse()?,
        None => format!("unix:/tmp/ipcx-rpc-concurrency-{}.sock", std::process::id()).parse()?,
    };
    let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), most.clone());
    let server = Server::serve(&endpoint, move |w: Work| {
        let inside = n.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(inside, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(5));
        n.fetch_sub(1, Ordering::SeqCst);
        Ok::<_, String>(Done(w.0))
    })?;
    let clients: Vec<Client<Work, Done>> = (0..4)
        .map(|_| Client::connect(server.endpoint()))
        .collect::<ipcx::Result<_>>()?;
    let start = Instant::now();
    std::thread::scope(|s| {
        for client in &clients {
            s.spawn(move || {
                let calls: Vec<_> = (0..10)
                    .map(|i| client.start(&Work(i)).expect("start"))
                    .collect();
                for c in calls {
                    c.wait().expect("reply");
                }
            });
        }
    });
    let took = start.elapsed();
    println!(
        "{endpoint}: 4 clients x 10 calls in flight, 5 ms handler: {:.1} ms, at most {} calls in the handler at once",
        took.as_secs_f64() * 1e3,
        most.load(Ordering::SeqCst)
    );
    drop(clients);
    server.shutdown();
    Ok(())
}

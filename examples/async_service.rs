//! A tokio price service whose transport comes from a TOML file: the async
//! twin of `rpc_service.rs`, with the same configuration files.
//!
//! ```text
//! cargo run --features tokio --example async_service -- examples/config/unix.toml
//! cargo run --features tokio --example async_service -- examples/config/mq.toml
//! cargo run --features tokio --example async_service -- examples/config/shm.toml
//! ```
//!
//! The service runs each request as a task (a slow item takes 200 ms and
//! holds up nobody), then spawns `clients` copies of itself in client mode
//! (`--client ENDPOINT ID CALLS`); each makes `calls` calls at once on one
//! connection from one task and prints the replies as they come. Client 0
//! is a blocking `ipcx::rpc::Client`: the wire is the same. One call per
//! client asks for an unknown item: its error comes back to that caller,
//! and the service carries on.

use std::process::Command;
use std::time::Duration;

use ipcx::tokio::rpc::{Client, Server};
use ipcx::{Endpoint, IpcMessage};
use serde::{Deserialize, Serialize};

/// The configuration file.
#[derive(Deserialize)]
struct Config {
    endpoint: Endpoint,
    clients: u32,
    calls: u32,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug)]
#[ipc(name = "shop.PriceRequest")]
struct PriceRequest {
    item: String,
    quantity: u32,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug)]
#[ipc(name = "shop.Price")]
struct Price {
    item: String,
    quantity: u32,
    total_cents: u64,
}

const CATALOGUE: &[(&str, u64)] = &[("tea", 350), ("coffee", 420), ("scone", 275)];
/// Items that take a while to price (a slow database, say).
const SLOW: &str = "coffee";

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("async_service: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--client", endpoint, id, calls] => {
            let (endpoint, id, calls) = (endpoint.parse()?, id.parse()?, calls.parse()?);
            if id == 0 {
                tokio::task::spawn_blocking(move || blocking_client(&endpoint, calls))
                    .await?
                    .map_err(Into::into)
            } else {
                client(&endpoint, id, calls).await
            }
        }
        [config] => serve(config).await,
        _ => Err("usage: async_service CONFIG.toml (see examples/config/)".into()),
    }
}

async fn price(req: PriceRequest) -> Result<Price, String> {
    if req.item == SLOW {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let unit = CATALOGUE
        .iter()
        .find(|(name, _)| *name == req.item)
        .map(|(_, cents)| *cents)
        .ok_or_else(|| format!("no item called {:?} in the catalogue", req.item))?;
    Ok(Price {
        total_cents: unit * u64::from(req.quantity),
        item: req.item,
        quantity: req.quantity,
    })
}

async fn serve(config_path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(config_path).map_err(|e| format!("{config_path}: {e}"))?;
    let config: Config = toml::from_str(&text).map_err(|e| format!("{config_path}: {e}"))?;

    let server = Server::serve(&config.endpoint, price)?;
    println!(
        "server: serving on {} ({} transport)",
        server.endpoint(),
        server.endpoint().scheme()
    );

    let mut children = Vec::new();
    for id in 0..config.clients {
        let mut child = tokio::process::Command::from(Command::new(std::env::current_exe()?));
        child.args([
            "--client",
            &server.endpoint().to_string(),
            &id.to_string(),
            &config.calls.to_string(),
        ]);
        children.push(child.spawn()?);
    }
    let mut failed = 0;
    for mut child in children {
        if !child.wait().await?.success() {
            failed += 1;
        }
    }
    println!(
        "server: {} clients served, {} refused; shutting down",
        server.accepted(),
        server.refused()
    );
    server.shutdown().await;
    if failed > 0 {
        return Err(format!("{failed} client(s) failed").into());
    }
    Ok(())
}

fn request(k: u32) -> PriceRequest {
    let item = match k % 4 {
        0 => "tea",
        1 => SLOW,
        2 => "scone",
        _ => "caviar",
    };
    PriceRequest {
        item: item.into(),
        quantity: k + 1,
    }
}

async fn client(
    endpoint: &Endpoint,
    id: u32,
    calls: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::<PriceRequest, Price>::connect(endpoint).await?;
    // Every call in flight at once on the one connection; replies are
    // printed as they come, so the slow item's comes last.
    let mut calls: tokio::task::JoinSet<_> = (0..calls)
        .map(|k| {
            let client = client.clone();
            async move { (k, client.call(&request(k)).await) }
        })
        .collect();
    let mut unexpected = 0;
    while let Some(done) = calls.join_next().await {
        let (k, reply) = done?;
        match reply {
            Ok(p) => println!(
                "client {id}: {} x{} = {} cents",
                p.item, p.quantity, p.total_cents
            ),
            Err(e) if k % 4 == 3 => println!("client {id}: refused as expected: {e}"),
            Err(e) => {
                eprintln!("client {id}: call {k} failed: {e}");
                unexpected += 1;
            }
        }
    }
    if unexpected > 0 {
        return Err(format!("{unexpected} call(s) failed").into());
    }
    Ok(())
}

/// A blocking client of the same service.
fn blocking_client(endpoint: &Endpoint, calls: u32) -> Result<(), String> {
    let client =
        ipcx::rpc::Client::<PriceRequest, Price>::connect(endpoint).map_err(|e| e.to_string())?;
    for k in 0..calls {
        match client.call(&request(k)) {
            Ok(p) => println!(
                "client 0 (blocking): {} x{} = {} cents",
                p.item, p.quantity, p.total_cents
            ),
            Err(e) if k % 4 == 3 => println!("client 0 (blocking): refused as expected: {e}"),
            Err(e) => return Err(format!("call {k} failed: {e}")),
        }
    }
    Ok(())
}

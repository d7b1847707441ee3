//! A request–reply price service whose transport comes from a TOML file.
//!
//! ```text
//! cargo run --example rpc_service -- examples/config/unix.toml
//! cargo run --example rpc_service -- examples/config/mq.toml      # same code, other transport
//! cargo run --example rpc_service -- examples/config/shm.toml     # shared memory
//! cargo run --features nats --example rpc_service -- examples/config/nats.toml  # through a NATS server
//! ```
//!
//! The program serves, then spawns `clients` copies of itself in client
//! mode (`--client ENDPOINT ID CALLS`); each starts `calls` calls at once
//! (several in flight on one connection) and prints the replies. One call
//! per client asks for an unknown item: the handler's error comes back to
//! that caller as an error, and the service carries on.

use std::process::Command;

use ipcx::rpc::{Client, Server};
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

fn main() {
    if let Err(e) = run() {
        eprintln!("rpc_service: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--client", endpoint, id, calls] => {
            client(&endpoint.parse()?, id.parse()?, calls.parse()?)
        }
        [config] => serve(config),
        _ => Err("usage: rpc_service CONFIG.toml (see examples/config/)".into()),
    }
}

fn serve(config_path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(config_path).map_err(|e| format!("{config_path}: {e}"))?;
    let config: Config = toml::from_str(&text).map_err(|e| format!("{config_path}: {e}"))?;

    let server = Server::serve(&config.endpoint, |req: PriceRequest| {
        let unit = CATALOGUE
            .iter()
            .find(|(name, _)| *name == req.item)
            .map(|(_, cents)| *cents)
            .ok_or_else(|| format!("no item called {:?} in the catalogue", req.item))?;
        Ok::<_, String>(Price {
            total_cents: unit * u64::from(req.quantity),
            item: req.item,
            quantity: req.quantity,
        })
    })?;
    println!(
        "server: serving on {} ({} transport)",
        server.endpoint(),
        server.endpoint().scheme()
    );

    let mut children = Vec::new();
    for id in 0..config.clients {
        let child = Command::new(std::env::current_exe()?)
            .args([
                "--client",
                &server.endpoint().to_string(),
                &id.to_string(),
                &config.calls.to_string(),
            ])
            .spawn()?;
        children.push(child);
    }
    let mut failed = 0;
    for mut child in children {
        if !child.wait()?.success() {
            failed += 1;
        }
    }
    println!(
        "server: {} clients served, {} refused; shutting down",
        server.accepted(),
        server.refused()
    );
    server.shutdown();
    if failed > 0 {
        return Err(format!("{failed} client(s) failed").into());
    }
    Ok(())
}

fn client(endpoint: &Endpoint, id: u32, calls: u32) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::<PriceRequest, Price>::connect(endpoint)?;
    // Start every call before waiting for any: they are in flight together.
    let mut pending = Vec::new();
    for k in 0..calls {
        let item = CATALOGUE[(id + k) as usize % CATALOGUE.len()].0;
        pending.push(client.start(&PriceRequest {
            item: item.into(),
            quantity: k + 1,
        })?);
    }
    for call in pending {
        let p = call.wait()?;
        println!(
            "client {id} (pid {}): {} x {} = {}.{:02}",
            std::process::id(),
            p.quantity,
            p.item,
            p.total_cents / 100,
            p.total_cents % 100
        );
    }
    match client.call(&PriceRequest {
        item: "caviar".into(),
        quantity: 1,
    }) {
        Err(ipcx::Error::Remote(why)) => println!("client {id}: refused as expected: {why}"),
        other => return Err(format!("an unknown item gave {other:?}").into()),
    }
    Ok(())
}

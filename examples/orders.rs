//! The README's example: a typed order service over any endpoint.
//!
//! ```text
//! cargo run --example orders &            # the service
//! cargo run --example orders -- --client  # one order
//! ```

use ipcx::{Endpoint, IpcMessage};
use serde::{Deserialize, Serialize};

#[derive(IpcMessage, Serialize, Deserialize, Debug)]
struct Order {
    id: u64,
    item: String,
    qty: u32,
}

#[derive(IpcMessage, Serialize, Deserialize, Debug)]
struct Ack {
    id: u64,
    accepted: bool,
}

fn main() -> ipcx::Result<()> {
    // From a config file or IPCX_ENDPOINT; any scheme works unchanged.
    let endpoint = Endpoint::from_env_or("IPCX_ENDPOINT", &"unix:/tmp/orders.sock".parse()?)?;
    if std::env::args().any(|a| a == "--client") {
        let mut ch = ipcx::connect_typed::<Order, Ack>(&endpoint)?;
        ch.send(&Order {
            id: 1,
            item: "ACME".into(),
            qty: 100,
        })?;
        println!("{:?}", ch.recv()?);
        return Ok(());
    }
    // On SIGTERM/SIGINT, remove what would outlive this process, then stop.
    let _clean_stop = ipcx::shutdown::on_signals()?;
    let mut listener = ipcx::listen_typed::<Ack, Order>(&endpoint)?;
    loop {
        // Established clients only: one that fails its handshake (another
        // message type, garbage) is logged and never ends this loop.
        let mut conn = listener.accept()?;
        std::thread::spawn(move || {
            while let Ok(order) = conn.recv() {
                let _ = conn.send(&Ack {
                    id: order.id,
                    accepted: order.qty <= 1000,
                });
            }
        });
    }
}

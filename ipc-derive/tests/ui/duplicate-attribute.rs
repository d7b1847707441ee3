use ipc_core::IpcMessage;
use serde::{Deserialize, Serialize};

#[derive(IpcMessage, Serialize, Deserialize)]
#[ipc(name = "shop.Order")]
#[ipc(name = "shop.Order2")]
struct Order {
    id: u64,
}

fn main() {}

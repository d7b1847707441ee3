use ipc_core::IpcMessage;
use serde::{Deserialize, Serialize};

#[derive(IpcMessage, Serialize, Deserialize)]
struct Order {
    #[ipc(name = "identifier")]
    id: u64,
}

fn main() {}

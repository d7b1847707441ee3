use ipc_core::IpcMessage;
use serde::{Deserialize, Serialize};

#[derive(IpcMessage, Serialize, Deserialize)]
#[ipc(zerocopy)]
struct Order {
    id: u64,
}

fn main() {}

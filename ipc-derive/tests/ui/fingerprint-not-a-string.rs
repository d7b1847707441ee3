use ipc_core::IpcMessage;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Legacy(u8);

#[derive(IpcMessage, Serialize, Deserialize)]
struct Order {
    id: u64,
    #[ipc(fingerprint = 2)]
    legacy: Legacy,
}

fn main() {}

use ipc_core::IpcMessage;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Note(String);

#[derive(IpcMessage, Serialize, Deserialize)]
struct Order {
    id: u64,
    note: Note,
}

fn main() {}

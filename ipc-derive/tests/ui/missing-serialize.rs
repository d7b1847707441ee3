use ipc_core::IpcMessage;

#[derive(IpcMessage)]
struct Order {
    id: u64,
}

fn main() {}

use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
struct Tick {
    price: f64,
    qty: u64,
}

fn main() {}

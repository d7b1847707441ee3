use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone)]
#[ipc(zero_copy)]
#[repr(C)]
struct Batch {
    prices: Vec<u64>,
}

fn main() {}

use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
enum Side {
    Buy,
    Sell,
}

fn main() {}

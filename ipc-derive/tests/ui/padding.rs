use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Tick {
    side: u8,
    price: f64,
}

fn main() {}

use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Tick {
    price: f64,
    #[ipc(opaque)]
    venue: u64,
}

fn main() {}

use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Tick {
    price: &'static u64,
}

fn main() {}

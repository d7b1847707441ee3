use ipc_core::IpcMessage;

#[derive(Clone, Copy)]
struct Plain(u64);

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Tick {
    price: Plain,
}

fn main() {}

use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone)]
#[ipc(zero_copy)]
#[repr(C)]
struct Boxed {
    price: Box<u64>,
}

fn main() {}

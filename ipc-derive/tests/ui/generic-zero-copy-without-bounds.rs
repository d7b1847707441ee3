use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Pair<T> {
    a: T,
    b: T,
}

fn main() {}

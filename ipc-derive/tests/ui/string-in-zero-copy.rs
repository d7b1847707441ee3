use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone)]
#[ipc(zero_copy)]
#[repr(C)]
struct Greeting {
    text: String,
}

fn main() {}

use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Maybe {
    price: Option<&'static u64>,
}

fn main() {}

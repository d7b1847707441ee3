use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
union Bits {
    int: u32,
    float: f32,
}

fn main() {}

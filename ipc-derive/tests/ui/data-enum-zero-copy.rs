use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(u8)]
enum Command {
    Stop,
    Move { x: i32, y: i32 },
}

fn main() {}

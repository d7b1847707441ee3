use ipc_core::IpcMessage;

#[derive(IpcMessage, Clone)]
#[ipc(zero_copy, zero_copy)]
struct Tick<'a, T> {
    name: String,
    price: &'a T,
}

fn main() {}

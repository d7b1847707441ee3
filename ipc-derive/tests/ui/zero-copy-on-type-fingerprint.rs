use ipc_core::TypeFingerprint;

#[derive(TypeFingerprint, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Point {
    x: f32,
    y: f32,
}

fn main() {}

use ipc_core::{IpcMessage, ZeroCopy};

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Tick {
    price: f64,
    qty: u32,
    live: bool,
    side: Side,
    _pad: [u8; 2],
}

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(u8)]
enum Side {
    Buy = b'B',
    Sell = b'S',
}

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(i32)]
enum Signed {
    Minus = -1,
    Plus = 1,
}

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(transparent)]
struct Meters(f64);

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Pair<T: ZeroCopy, const N: usize> {
    a: [T; N],
    b: [T; N],
}

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Bounded<T>
where
    T: ZeroCopy + Copy,
{
    value: T,
}

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Empty;

#[derive(IpcMessage, Clone, Copy)]
#[ipc(zero_copy)]
#[repr(C)]
struct Outer {
    tick: Tick,
    meters: [Meters; 2],
    pair: Pair<u16, 4>,
    signed: Signed,
    bounded: Bounded<u32>,
    empty: Empty,
}

fn main() {
    let mut buf = Vec::new();
    let t = Meters(1.0);
    t.encode(&mut buf).unwrap();
    assert_eq!(buf.len(), 8);
}

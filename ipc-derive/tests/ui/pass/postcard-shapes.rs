use std::collections::HashMap;

use ipc_core::IpcMessage;
use serde::{Deserialize, Serialize};

#[derive(IpcMessage, Serialize, Deserialize)]
struct Named {
    id: u64,
    tags: HashMap<String, Vec<u8>>,
    maybe: Option<Box<str>>,
    pair: (u8, i64, f32),
}

#[derive(IpcMessage, Serialize, Deserialize, Clone)]
struct Tuple(u64, String);

#[derive(IpcMessage, Serialize, Deserialize)]
struct Unit;

#[derive(IpcMessage, Serialize, Deserialize)]
enum Event {
    Start,
    Data(Vec<u8>),
    Stop { code: i32 },
}

#[derive(IpcMessage, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: serde::de::DeserializeOwned"))]
struct Generic<T, const N: usize>
where
    T: Clone,
{
    items: Vec<T>,
    fixed: [u16; 3],
    sizes: std::marker::PhantomData<[u8; N]>,
}

#[derive(IpcMessage, Serialize, Deserialize)]
struct Nested {
    event: Event,
    generic: Generic<Tuple, 3>,
}

#[derive(IpcMessage, Serialize, Deserialize)]
#[ipc(name = "shop.v2.Order", crate = "ipc_core")]
struct Renamed {
    r#type: u8,
}

const _: () = assert!(Nested::FINGERPRINT != 0);

fn main() {
    assert_eq!(Renamed::NAME, "shop.v2.Order");
}

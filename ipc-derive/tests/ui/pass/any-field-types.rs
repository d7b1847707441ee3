use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddrV6};
use std::num::NonZeroI64;
use std::path::PathBuf;
use std::time::SystemTime;

use ipc_core::{IpcMessage, TypeFingerprint};
use serde::{Deserialize, Serialize};

#[derive(TypeFingerprint, Serialize, Deserialize)]
struct Customer {
    name: String,
    home: Option<PathBuf>,
}

#[derive(TypeFingerprint, Serialize, Deserialize)]
#[ipc(name = "shop.Status", crate = "ipc_core")]
enum Status {
    Open,
    Closed(SystemTime),
    Moved { to: SocketAddrV6 },
}

#[derive(TypeFingerprint, Serialize, Deserialize)]
struct Pair<A, B>(A, B);

#[derive(Serialize, Deserialize)]
struct Foreign {
    raw: Vec<u8>,
}

#[derive(IpcMessage, Serialize, Deserialize)]
struct Order {
    at: SystemTime,
    customer: Customer,
    status: Status,
    pair: Pair<u8, IpAddr>,
    ids: BTreeSet<NonZeroI64>,
    #[ipc(opaque)]
    foreign: Foreign,
    #[ipc(fingerprint = "foreign-v3")]
    older: Foreign,
}

#[derive(IpcMessage, Serialize, Deserialize)]
enum Event {
    Placed(Order),
    Note {
        #[ipc(opaque)]
        body: Foreign,
    },
}

const _: () = assert!(Order::FINGERPRINT != Event::FINGERPRINT);
const _: () = assert!(<Pair<u8, u16>>::TYPE_FINGERPRINT != <Pair<u16, u8>>::TYPE_FINGERPRINT);

fn main() {}

//! Integration tests of ipcx: the cross-process conformance suite and
//! transport-specific cases.

#[macro_use]
mod util;

mod conformance;
mod in_place;
#[cfg(feature = "nats")]
mod nats;
mod rpc;
mod stream;
mod typed;

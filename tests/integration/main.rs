//! Integration tests of ipcx: the cross-process conformance suite and
//! transport-specific cases.

#[macro_use]
mod util;

mod conformance;
mod idle;
mod in_place;
mod rpc;
mod stream;
mod typed;

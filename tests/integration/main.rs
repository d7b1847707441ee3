//! Integration tests of ipcx: the cross-process conformance suite and
//! transport-specific cases.

#[macro_use]
mod util;

#[cfg(feature = "tokio")]
mod async_conformance;
#[cfg(feature = "tokio")]
mod async_rpc;
mod conformance;
mod in_place;
mod rpc;
mod stream;
mod typed;

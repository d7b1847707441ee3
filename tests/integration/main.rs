//! Integration tests of ipcx: the cross-process conformance suite and
//! transport-specific cases.

#[macro_use]
mod util;

#[cfg(feature = "tokio")]
mod async_conformance;
#[cfg(feature = "tokio")]
mod async_rpc;
#[cfg(feature = "tokio")]
mod async_shm;
mod batch;
mod batch_layers;
mod conformance;
mod in_place;
#[cfg(feature = "nats")]
mod jetstream;
#[cfg(feature = "nats")]
mod nats;
mod rpc;
mod scale;
mod stream;
mod sysv_shm;
mod typed;

//! ipcx.
pub use ipc_core::*;

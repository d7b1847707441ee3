//! `#[derive(IpcMessage)]` for ipcx.
//!
//! The derive itself is not written yet; this crate only reserves its place
//! in the workspace.

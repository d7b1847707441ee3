//! `interprocess` local sockets (a Unix stream socket on Linux), named by a
//! file path, carrying whole fixed-size messages like the raw baseline.

use std::io::{Read, Write};

use ::interprocess::local_socket::prelude::*;
use ::interprocess::local_socket::{GenericFilePath, ListenerOptions};

use crate::bench::measure::Link;

/// The table's footnote for this row.
pub const NOTE: &str = "interprocess: local_socket::Stream (a Unix stream socket on Linux) named by a file path, whole fixed-size messages with write_all/read_exact; raw = the unix row's raw baseline, the same calls on a bare UnixStream";

struct Local(LocalSocketStream);

impl Link for Local {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.0.write_all(msg).map_err(|e| format!("write: {e}"))
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<(), String> {
        buf.resize(size, 0);
        self.0.read_exact(buf).map_err(|e| format!("read: {e}"))
    }
}

/// Listens on the endpoint's path, announces it, accepts one client.
pub fn server(endpoint: &str, _size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let path = endpoint.trim_start_matches("unix:").to_string();
    let name = path
        .as_str()
        .to_fs_name::<GenericFilePath>()
        .map_err(|e| format!("name {path}: {e}"))?;
    let listener = ListenerOptions::new()
        .name(name)
        .create_sync()
        .map_err(|e| format!("listen {path}: {e}"))?;
    ready(&path);
    let accepted = listener.accept();
    drop(listener);
    let _ = std::fs::remove_file(&path);
    let s = accepted.map_err(|e| format!("accept: {e}"))?;
    Ok(Box::new(Local(s)))
}

/// Connects to the path the server announced.
pub fn client(path: &str) -> Result<Box<dyn Link>, String> {
    let name = path
        .to_fs_name::<GenericFilePath>()
        .map_err(|e| format!("name {path}: {e}"))?;
    let s = LocalSocketStream::connect(name).map_err(|e| format!("connect {path}: {e}"))?;
    Ok(Box::new(Local(s)))
}

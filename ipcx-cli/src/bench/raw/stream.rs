//! Raw Unix and TCP stream sockets: `write(2)` and `read(2)` of whole
//! fixed-size messages (through std's thin wrappers, which are exactly those
//! calls).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};

use crate::bench::measure::Link;

/// A duplex byte stream moving whole fixed-size messages.
pub(super) struct Stream<S>(pub(super) S);

impl<S: Read + Write> Link for Stream<S> {
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

pub(super) fn path_of(endpoint: &str) -> String {
    // "unix:/tmp/x.sock" → "/tmp/x.raw.sock"
    let p = endpoint.trim_start_matches("unix:");
    format!("{}.raw", p)
}

pub fn unix_server(
    endpoint: &str,
    _size: usize,
    ready: &dyn Fn(&str),
) -> Result<Box<dyn Link>, String> {
    let path = path_of(endpoint);
    let l = UnixListener::bind(&path).map_err(|e| format!("bind {path}: {e}"))?;
    ready(&path);
    let accepted = l.accept();
    let _ = std::fs::remove_file(&path);
    let (s, _) = accepted.map_err(|e| format!("accept: {e}"))?;
    Ok(Box::new(Stream(s)))
}

pub fn unix_client(path: &str) -> Result<Box<dyn Link>, String> {
    let s = UnixStream::connect(path).map_err(|e| format!("connect {path}: {e}"))?;
    Ok(Box::new(Stream(s)))
}

pub fn tcp_server(
    _endpoint: &str,
    _size: usize,
    ready: &dyn Fn(&str),
) -> Result<Box<dyn Link>, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    ready(&addr.to_string());
    let (s, _) = l.accept().map_err(|e| format!("accept: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(Box::new(Stream(s)))
}

pub fn tcp_client(addr: &str) -> Result<Box<dyn Link>, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(Box::new(Stream(s)))
}

/// Two one-way byte streams (a pipe or FIFO pair) used as one duplex link.
pub(super) struct Halves {
    /// Read end.
    pub(super) r: std::fs::File,
    /// Write end.
    pub(super) w: std::fs::File,
}

impl Link for Halves {
    #[inline]
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.w.write_all(msg).map_err(|e| format!("write: {e}"))
    }

    #[inline]
    fn recv(&mut self, buf: &mut Vec<u8>, size: usize) -> Result<(), String> {
        buf.resize(size, 0);
        self.r.read_exact(buf).map_err(|e| format!("read: {e}"))
    }
}

//! Raw tokio baselines of `ipcx bench --async`: the mechanisms tokio
//! itself drives — `tokio::net::UnixStream`, `tokio::net::TcpStream`, and
//! `tokio::net::unix::pipe` for anonymous pipes and FIFOs — with the
//! framing a tokio user writes by hand for variable-length messages: a
//! little-endian `u32` length, then the bytes. A frame is copied into one
//! buffer and written with one `write_all`; the reading side goes through
//! a `BufReader` (8 KiB), so small frames arrive many per `read`.
//!
//! The connection set-up (binding, accepting, the FIFOs' blocking opens,
//! the pipes' inheritance) is the blocking baselines' own, then the
//! descriptors are handed to tokio; only the messages are measured.

use std::os::fd::OwnedFd;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::unix::pipe;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream, tcp, unix};

use super::stream::Halves;

/// The largest frame a baseline accepts (the benchmark's largest size).
const MAX_FRAME: usize = 64 << 20;

/// A byte stream carrying length-prefixed messages.
pub struct Framed<R, W> {
    r: BufReader<R>,
    w: W,
    frame: Vec<u8>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Framed<R, W> {
    fn new(r: R, w: W) -> Framed<R, W> {
        Framed {
            r: BufReader::new(r),
            w,
            frame: Vec::new(),
        }
    }

    /// Sends one message: its length and its bytes in one write.
    ///
    /// # Errors
    /// The write's error, as text.
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        self.frame.clear();
        self.frame
            .extend_from_slice(&(msg.len() as u32).to_le_bytes());
        self.frame.extend_from_slice(msg);
        self.w
            .write_all(&self.frame)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Receives one message into `buf`.
    ///
    /// # Errors
    /// The read's error, or a length over the limit, as text.
    pub async fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), String> {
        let mut header = [0u8; 4];
        self.r
            .read_exact(&mut header)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let len = u32::from_le_bytes(header) as usize;
        if len > MAX_FRAME {
            return Err(format!("a {len}-byte frame"));
        }
        buf.resize(len, 0);
        self.r
            .read_exact(buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        Ok(())
    }
}

/// A Unix stream socket.
pub type UnixLink = Framed<unix::OwnedReadHalf, unix::OwnedWriteHalf>;
/// A TCP socket.
pub type TcpLink = Framed<tcp::OwnedReadHalf, tcp::OwnedWriteHalf>;
/// Two pipe ends (an anonymous pipe pair or a FIFO pair).
pub type PipeLink = Framed<pipe::Receiver, pipe::Sender>;

/// Binds beside the ipcx endpoint's path, announces it, accepts one client.
///
/// # Errors
/// What failed, as text.
pub async fn unix_server(endpoint: &str, ready: &dyn Fn(&str)) -> Result<UnixLink, String> {
    let path = format!("{}.tokio", super::stream::path_of(endpoint));
    let l = UnixListener::bind(&path).map_err(|e| format!("bind {path}: {e}"))?;
    ready(&path);
    let accepted = l.accept().await;
    let _ = std::fs::remove_file(&path);
    let (s, _) = accepted.map_err(|e| format!("accept: {e}"))?;
    let (r, w) = s.into_split();
    Ok(Framed::new(r, w))
}

/// Connects to the path the server announced.
///
/// # Errors
/// What failed, as text.
pub async fn unix_client(path: &str) -> Result<UnixLink, String> {
    let s = UnixStream::connect(path)
        .await
        .map_err(|e| format!("connect {path}: {e}"))?;
    let (r, w) = s.into_split();
    Ok(Framed::new(r, w))
}

/// Binds a loopback port, announces it, accepts one client (`TCP_NODELAY`).
///
/// # Errors
/// What failed, as text.
pub async fn tcp_server(ready: &dyn Fn(&str)) -> Result<TcpLink, String> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("bind: {e}"))?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    ready(&addr.to_string());
    let (s, _) = l.accept().await.map_err(|e| format!("accept: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, w) = s.into_split();
    Ok(Framed::new(r, w))
}

/// Connects to the address the server announced (`TCP_NODELAY`).
///
/// # Errors
/// What failed, as text.
pub async fn tcp_client(addr: &str) -> Result<TcpLink, String> {
    let s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let (r, w) = s.into_split();
    Ok(Framed::new(r, w))
}

/// Hands two pipe ends to tokio (which makes them non-blocking).
fn pipes(h: Halves) -> Result<PipeLink, String> {
    let r = pipe::Receiver::from_owned_fd(OwnedFd::from(h.r))
        .map_err(|e| format!("pipe receiver: {e}"))?;
    let w =
        pipe::Sender::from_owned_fd(OwnedFd::from(h.w)).map_err(|e| format!("pipe sender: {e}"))?;
    Ok(Framed::new(r, w))
}

/// Makes two pipes and starts the client with its ends inherited; this
/// side's ends and the child. Inside a runtime.
///
/// # Errors
/// What failed, as text.
pub fn pipe_server() -> Result<(PipeLink, std::process::Child), String> {
    let (halves, child) = super::pipe::spawn_client()?;
    Ok((pipes(halves)?, child))
}

/// In the client, the pipe ends the server left open for it. Inside a
/// runtime.
///
/// # Errors
/// What failed, as text.
pub fn pipe_client() -> Result<PipeLink, String> {
    pipes(super::pipe::inherited()?)
}

/// Makes the FIFO pair beside the endpoint's path, announces it, opens
/// this side's ends. Inside a runtime.
///
/// # Errors
/// What failed, as text.
pub fn fifo_server(endpoint: &str, ready: &dyn Fn(&str)) -> Result<PipeLink, String> {
    pipes(super::fifo::open_server(endpoint, ready)?)
}

/// The client's ends of the FIFO pair the server announced. Inside a
/// runtime.
///
/// # Errors
/// What failed, as text.
pub fn fifo_client(base: &str) -> Result<PipeLink, String> {
    pipes(super::fifo::open_client(base)?)
}

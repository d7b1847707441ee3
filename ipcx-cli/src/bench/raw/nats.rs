//! The raw `async-nats` baseline of the `nats://` rows, and the
//! `nats-server` the benchmark starts for them.
//!
//! Raw: each peer is one `async_nats::Client` on a two-worker
//! multi-thread runtime (what ipcx's `nats://` runs on), driven from the
//! measuring thread with `block_on`. The server subscribes to
//! `bench.NAME.up`, the client to `bench.NAME.down`; a message is one
//! `publish` of the bare bytes (no sequence number, no credit, no
//! heartbeat). The round trip is a publish/subscribe ping-pong, the
//! throughput a stream of publishes the server counts.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::super::measure::Link;
use super::unique;

/// Table footnote of the `nats` rows.
pub const NOTE: &str = "nats: ipcx and raw async-nats (publish/subscribe, one client per peer on a 2-thread runtime) through one nats-server on loopback that the benchmark starts; the server process is not pinned";

/// The address (`127.0.0.1:PORT`) of the server this run started.
static SERVER: OnceLock<String> = OnceLock::new();

/// A fresh `nats://` endpoint on the server this run started.
pub fn address() -> String {
    format!(
        "nats://{}/{}",
        SERVER.get().map_or("127.0.0.1:4222", String::as_str),
        unique("n").replace('-', "_")
    )
}

/// The `nats-server` binary: `$NATS_SERVER`, else `nats-server` on the
/// `PATH`, else Debian's `/usr/sbin/nats-server`.
fn binary() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nats-server"))
            .find(|p| p.is_file())
    });
    on_path
        .or_else(|| {
            let p = PathBuf::from("/usr/sbin/nats-server");
            p.is_file().then_some(p)
        })
        .ok_or_else(|| {
            "nats: the nats-server binary was not found on the PATH or at /usr/sbin/nats-server; \
             install it (Debian/Ubuntu: sudo apt-get install -y nats-server) or name it with NATS_SERVER=/path/to/nats-server"
                .to_string()
        })
}

/// A `nats-server` on a free loopback port, killed when dropped.
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts one and makes [`address`] name it.
    ///
    /// # Errors
    /// When the binary is missing (saying how to install it) or the server
    /// does not come up.
    pub fn start() -> Result<Server, String> {
        let bin = binary()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("nats: a free port: {e}"))?
            .port();
        let mut cmd = Command::new(&bin);
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe and touches only the child:
        // it dies with this process, however this process ends.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| {
            format!(
                "nats: starting {}: {e}; install nats-server (Debian/Ubuntu: sudo apt-get install -y nats-server) or name it with NATS_SERVER=/path/to/nats-server",
                bin.display()
            )
        })?;
        // Drain its log so it never blocks on a full pipe; pass on its
        // warnings and errors (a slow consumer cut off, for one).
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines().map_while(Result::ok) {
                    if line.contains("[WRN]") || line.contains("[ERR]") {
                        eprintln!("nats-server: {line}");
                    }
                }
            });
        }
        let addr = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("nats: nats-server exited at start ({status})"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "nats: nats-server did not listen on {addr} within 20 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = SERVER.set(addr);
        Ok(Server { child })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw peer: a client, where it publishes, what it reads.
struct RawLink {
    rt: tokio::runtime::Runtime,
    client: async_nats::Client,
    to: String,
    /// `Some` until dropped (its drop spawns onto the runtime).
    from: Option<async_nats::Subscriber>,
}

impl Drop for RawLink {
    fn drop(&mut self) {
        // What was published last (the stop message) reaches the server
        // before the process exits: `flush` only hands it to the kernel,
        // and a process that exits with unread input resets its TCP
        // connection, which can lose it (the other peer then waited for
        // it forever). A message to an inbox of its own coming back means
        // the server has processed everything before it (as ipcx's close
        // does, `docs/nats.md`).
        let client = self.client.clone();
        let _ = self.rt.block_on(async move {
            let round_trip = async {
                let inbox = client.new_inbox();
                let mut sub = client.subscribe(inbox.clone()).await.ok()?;
                client.publish(inbox, bytes::Bytes::new()).await.ok()?;
                client.flush().await.ok()?;
                std::future::poll_fn(|cx| {
                    futures_core::Stream::poll_next(std::pin::Pin::new(&mut sub), cx)
                })
                .await
            };
            tokio::time::timeout(Duration::from_secs(5), round_trip).await
        });
        let _in = self.rt.enter();
        drop(self.from.take());
    }
}

/// Splits `nats://HOST:PORT/NAME`.
fn parse(address: &str) -> Result<(String, String), String> {
    let rest = address
        .strip_prefix("nats://")
        .ok_or_else(|| format!("not a nats:// address: {address}"))?;
    let (server, name) = rest
        .split_once('/')
        .ok_or_else(|| format!("no name in {address}"))?;
    Ok((
        server.to_string(),
        name.split('?').next().unwrap_or(name).to_string(),
    ))
}

fn link(address: &str, sub: &str, publish: &str) -> Result<RawLink, String> {
    let (server, name) = parse(address)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let (client, from) = rt.block_on(async {
        let client = async_nats::connect(server.as_str())
            .await
            .map_err(|e| format!("async-nats connect {server}: {e}"))?;
        let from = client
            .subscribe(format!("bench.{name}.{sub}"))
            .await
            .map_err(|e| format!("subscribe: {e}"))?;
        client.flush().await.map_err(|e| format!("flush: {e}"))?;
        Ok::<_, String>((client, from))
    })?;
    Ok(RawLink {
        rt,
        client,
        to: format!("bench.{name}.{publish}"),
        from: Some(from),
    })
}

/// The raw server: subscribes, announces the address, serves.
///
/// # Errors
/// Connecting or subscribing failed.
pub fn server(address: &str, _size: usize, ready: &dyn Fn(&str)) -> Result<Box<dyn Link>, String> {
    let l = link(address, "up", "down")?;
    ready(address);
    Ok(Box::new(l))
}

/// The raw client.
///
/// # Errors
/// Connecting or subscribing failed.
pub fn client(address: &str) -> Result<Box<dyn Link>, String> {
    Ok(Box::new(link(address, "down", "up")?))
}

impl Link for RawLink {
    fn send(&mut self, msg: &[u8]) -> Result<(), String> {
        let payload = bytes::Bytes::copy_from_slice(msg);
        self.rt
            .block_on(self.client.publish(self.to.clone(), payload))
            .map_err(|e| format!("publish: {e}"))
    }

    fn recv(&mut self, buf: &mut Vec<u8>, _size: usize) -> Result<(), String> {
        let sub = self.from.as_mut().ok_or("the subscription ended")?;
        let m = self
            .rt
            .block_on(std::future::poll_fn(|cx| {
                futures_core::Stream::poll_next(std::pin::Pin::new(&mut *sub), cx)
            }))
            .ok_or("the subscription ended")?;
        buf.clear();
        buf.extend_from_slice(&m.payload);
        Ok(())
    }
}

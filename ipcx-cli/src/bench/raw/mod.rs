//! Raw baselines: each mechanism driven by hand-written system calls, with
//! no framework, no framing and no handshake — what a careful programmer
//! would write for fixed-size messages. One module per mechanism; one entry
//! per transport in [`targets`].

mod fifo;
mod mq;
mod pipe;
mod stream;
mod sysv_mq;

use super::measure::Link;

/// A raw server for messages of the given size: binds, calls its third argument with the address to
/// connect to, accepts one client.
pub type RawServer = fn(&str, usize, &dyn Fn(&str)) -> Result<Box<dyn Link>, String>;
/// A raw client: connects to the address its server announced.
pub type RawClient = fn(&str) -> Result<Box<dyn Link>, String>;

/// A transport as the benchmark knows it: how to name an ipcx endpoint for
/// it, and how to run its raw baseline.
pub struct TargetDef {
    /// The ipcx scheme.
    pub scheme: &'static str,
    /// A fresh address: an ipcx endpoint string for the ipcx run; the raw
    /// server derives its own address from it.
    pub address: fn() -> String,
    /// The raw server: binds, calls `ready` with the address to connect to,
    /// accepts one client.
    pub raw_server: RawServer,
    /// The raw client.
    pub raw_client: RawClient,
    /// The server starts the client itself (a parent-child mechanism such
    /// as anonymous pipes), for ipcx with [`ipcx::spawn`]; the client's
    /// result then arrives on the server's standard output.
    pub spawned: bool,
    /// How the comparison is made, when it needs saying (table footnote).
    pub note: Option<&'static str>,
}

/// A name unique to this process and call.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcx-bench-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Every transport with a baseline, in table order. The benchmark runs
/// those of them this build of ipcx supports.
pub fn targets() -> &'static [TargetDef] {
    &[
        TargetDef {
            scheme: "pipe",
            address: || "pipe:".to_string(),
            raw_server: pipe::server,
            raw_client: pipe::client,
            spawned: true,
            note: Some(
                "pipe: the server process starts the client with the pipes inherited (ipcx::spawn for ipcx, pipe2 + fork/exec for raw)",
            ),
        },
        TargetDef {
            scheme: "fifo",
            address: || format!("fifo:/tmp/{}", unique("f")),
            raw_server: fifo::server,
            raw_client: fifo::client,
            spawned: false,
            note: None,
        },
        TargetDef {
            scheme: "mq",
            address: || format!("mq:/{}", unique("q")),
            raw_server: mq::server,
            raw_client: mq::client,
            spawned: false,
            note: Some(mq::NOTE),
        },
        TargetDef {
            scheme: "sysv-mq",
            address: || format!("sysv-mq:/tmp/{}", unique("s")),
            raw_server: sysv_mq::server,
            raw_client: sysv_mq::client,
            spawned: false,
            note: Some(sysv_mq::NOTE),
        },
        TargetDef {
            scheme: "unix",
            address: || format!("unix:/tmp/{}.sock", unique("u")),
            raw_server: stream::unix_server,
            raw_client: stream::unix_client,
            spawned: false,
            note: None,
        },
        TargetDef {
            scheme: "tcp",
            address: || "tcp://127.0.0.1:0".to_string(),
            raw_server: stream::tcp_server,
            raw_client: stream::tcp_client,
            spawned: false,
            note: None,
        },
    ]
}

/// Whether this build of ipcx implements `scheme`.
pub fn supported(scheme: &str) -> bool {
    ipcx::backends::any::SUPPORTED
        .iter()
        .any(|s| s.as_str() == scheme)
}

//! Raw baselines: each mechanism driven by hand-written system calls, with
//! no framework, no framing and no handshake — what a careful programmer
//! would write for fixed-size messages. One module per mechanism; one entry
//! per transport in [`targets`].

mod stream;

use super::measure::Link;

/// A raw server: binds, calls its second argument with the address to
/// connect to, accepts one client.
pub type RawServer = fn(&str, &dyn Fn(&str)) -> Result<Box<dyn Link>, String>;
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

/// Every transport with a baseline, in table order.
pub fn targets() -> &'static [TargetDef] {
    &[
        TargetDef {
            scheme: "unix",
            address: || format!("unix:/tmp/{}.sock", unique("u")),
            raw_server: stream::unix_server,
            raw_client: stream::unix_client,
        },
        TargetDef {
            scheme: "tcp",
            address: || "tcp://127.0.0.1:0".to_string(),
            raw_server: stream::tcp_server,
            raw_client: stream::tcp_client,
        },
    ]
}

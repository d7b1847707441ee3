//! Raw baselines: each mechanism driven by hand-written system calls, with
//! no framework, no framing and no handshake — what a careful programmer
//! would write for fixed-size messages. One module per mechanism; one entry
//! per transport in [`targets`]. [`aio`] holds the raw tokio baselines of
//! `ipcx bench --async`, framed as a tokio user would frame them.

pub mod aio;
mod fifo;
mod mq;
#[cfg(feature = "nats")]
pub mod nats;
mod pipe;
pub mod queue;
pub(super) mod shm;
pub(super) mod stream;
pub mod sync;
mod sysv_mq;

use super::measure::Link;

/// A raw server for messages of the given size: binds, calls its third argument with the address to
/// connect to, accepts one client.
pub type RawServer = fn(&str, usize, &dyn Fn(&str)) -> Result<Box<dyn Link>, String>;
/// A raw client: connects to the address its server announced.
pub type RawClient = fn(&str) -> Result<Box<dyn Link>, String>;

/// How the ipcx side moves a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// `send` and `recv_into`, as any transport.
    Copy,
    /// Shared memory's `loan` and `recv_in_place`.
    Loan,
    /// A standalone queue's producer and consumer ([`queue`]), not a
    /// connection.
    Queue,
}

/// A transport as the benchmark knows it (one row label: a scheme, or a
/// scheme with a variant such as `shm(spin)`): how to name an ipcx
/// endpoint for it, and how to run its raw baseline.
pub struct TargetDef {
    /// The row label: the scheme, or the scheme and the variant.
    pub label: &'static str,
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
    /// How ipcx moves messages.
    pub path: Path,
    /// Both peers poll: measured with `--pin cross` only (two spinners on
    /// one core measure the scheduler's time slice, not the transport).
    pub cross_only: bool,
    /// Another IPC library measured in place of ipcx (`--peers`): its
    /// server and client; the raw baseline is then that of the mechanism
    /// the library uses.
    pub library: Option<(RawServer, RawClient)>,
}

impl TargetDef {
    /// Whether `--transports NAME` selects this target: its scheme (every
    /// variant) or its exact label.
    pub fn selected_by(&self, name: &str) -> bool {
        self.scheme == name || self.label == name
    }
}

/// Ring capacity and message limit of the shared-memory rows: 4 MiB rings
/// (the raw baseline's size), messages up to 1 MiB.
const SHM_OPTIONS: &str = "capacity=4194304&max_message_size=1048576";

/// One shared-memory row: label, scheme, endpoint prefix, ipcx's wait
/// strategy, raw server, path, cross-core only.
macro_rules! shm_target {
    ($label:literal, $scheme:literal, $prefix:literal, $wait:literal, $raw:path, $path:expr, $cross:expr) => {
        TargetDef {
            label: $label,
            scheme: $scheme,
            address: || {
                format!(
                    concat!($prefix, "{}?wait=", $wait, "&{}"),
                    unique("m"),
                    SHM_OPTIONS
                )
            },
            raw_server: $raw,
            raw_client: shm::client,
            spawned: false,
            note: Some(shm::NOTE),
            path: $path,
            cross_only: $cross,
            library: None,
        }
    };
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
            label: "pipe",
            scheme: "pipe",
            address: || "pipe:".to_string(),
            raw_server: pipe::server,
            raw_client: pipe::client,
            spawned: true,
            note: Some(
                "pipe: the server process starts the client with the pipes inherited (ipcx::spawn for ipcx, pipe2 + fork/exec for raw)",
            ),
            path: Path::Copy,
            cross_only: false,
            library: None,
        },
        TargetDef {
            label: "fifo",
            scheme: "fifo",
            address: || format!("fifo:/tmp/{}", unique("f")),
            raw_server: fifo::server,
            raw_client: fifo::client,
            spawned: false,
            note: None,
            path: Path::Copy,
            cross_only: false,
            library: None,
        },
        TargetDef {
            label: "mq",
            scheme: "mq",
            address: || format!("mq:/{}", unique("q")),
            raw_server: mq::server,
            raw_client: mq::client,
            spawned: false,
            note: Some(mq::NOTE),
            path: Path::Copy,
            cross_only: false,
            library: None,
        },
        TargetDef {
            label: "sysv-mq",
            scheme: "sysv-mq",
            address: || format!("sysv-mq:/tmp/{}", unique("s")),
            raw_server: sysv_mq::server,
            raw_client: sysv_mq::client,
            spawned: false,
            note: Some(sysv_mq::NOTE),
            path: Path::Copy,
            cross_only: false,
            library: None,
        },
        TargetDef {
            label: "unix",
            scheme: "unix",
            address: || format!("unix:/tmp/{}.sock", unique("u")),
            raw_server: stream::unix_server,
            raw_client: stream::unix_client,
            spawned: false,
            note: None,
            path: Path::Copy,
            cross_only: false,
            library: None,
        },
        TargetDef {
            label: "tcp",
            scheme: "tcp",
            address: || "tcp://127.0.0.1:0".to_string(),
            raw_server: stream::tcp_server,
            raw_client: stream::tcp_client,
            spawned: false,
            note: None,
            path: Path::Copy,
            cross_only: false,
            library: None,
        },
        TargetDef {
            label: "queue(mq)",
            scheme: "mq",
            address: queue::mq_address,
            raw_server: queue::raw_mq_server,
            raw_client: queue::raw_mq_client,
            spawned: false,
            note: Some(queue::NOTE),
            path: Path::Queue,
            cross_only: false,
            library: None,
        },
        TargetDef {
            label: "queue(sysv-mq)",
            scheme: "sysv-mq",
            address: queue::sysv_address,
            raw_server: queue::raw_sysv_server,
            raw_client: queue::raw_sysv_client,
            spawned: false,
            note: Some(queue::NOTE),
            path: Path::Queue,
            cross_only: false,
            library: None,
        },
        shm_target!(
            "shm(block)",
            "shm",
            "shm:/",
            "block",
            shm::posix_block_server,
            Path::Copy,
            false
        ),
        shm_target!(
            "shm(spin)",
            "shm",
            "shm:/",
            "spin",
            shm::posix_spin_server,
            Path::Copy,
            true
        ),
        shm_target!(
            "shm(loan)",
            "shm",
            "shm:/",
            "spin",
            shm::posix_spin_server,
            Path::Loan,
            true
        ),
        shm_target!(
            "sysv-shm(block)",
            "sysv-shm",
            "sysv-shm:/tmp/",
            "block",
            shm::sysv_block_server,
            Path::Copy,
            false
        ),
        shm_target!(
            "sysv-shm(spin)",
            "sysv-shm",
            "sysv-shm:/tmp/",
            "spin",
            shm::sysv_spin_server,
            Path::Copy,
            true
        ),
    ]
}

/// Every row the benchmark can run: [`targets`], then with the `peers`
/// feature the other libraries' rows.
pub fn all_targets() -> impl Iterator<Item = &'static TargetDef> {
    let peers: &'static [TargetDef] = {
        #[cfg(feature = "peers")]
        {
            super::peers::targets()
        }
        #[cfg(not(feature = "peers"))]
        {
            &[]
        }
    };
    targets().iter().chain(nats_targets()).chain(peers.iter())
}

/// The `nats://` row, in a build with the `nats` feature: only when
/// `--transports` names it (it needs a `nats-server`, which the run
/// starts).
fn nats_targets() -> &'static [TargetDef] {
    #[cfg(feature = "nats")]
    {
        &[TargetDef {
            label: "nats",
            scheme: "nats",
            address: nats::address,
            raw_server: nats::server,
            raw_client: nats::client,
            spawned: false,
            note: Some(nats::NOTE),
            path: Path::Copy,
            cross_only: false,
            library: None,
        }]
    }
    #[cfg(not(feature = "nats"))]
    {
        &[]
    }
}

/// Whether this build of ipcx implements `scheme`.
pub fn supported(scheme: &str) -> bool {
    ipcx::backends::any::SUPPORTED
        .iter()
        .any(|s| s.as_str() == scheme)
}

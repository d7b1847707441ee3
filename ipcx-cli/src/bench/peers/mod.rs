//! Other IPC libraries beside ipcx (`ipcx bench --peers`, feature `peers`):
//! each does the same round trip and one-way throughput through its own
//! public API, in the ipcx column of its row, against the raw baseline of
//! the mechanism it uses underneath, so the ratio still reads "cost over
//! the bare mechanism".

mod iceoryx2;
mod interprocess;
mod ipc_channel;

use std::time::Duration;

use super::raw::{self, Path, TargetDef, shm, stream};

/// A wait longer than this means the peer is gone.
pub(crate) const PEER_TIMEOUT: Duration = Duration::from_secs(10);

/// The files iceoryx2 creates (its shared-memory objects under
/// `/dev/shm`, its directories under `/tmp/iceoryx2`) that were not there
/// before the run; removed on drop.
pub struct Leftovers {
    shm: Vec<std::ffi::OsString>,
    root_existed: bool,
}

/// iceoryx2's default root directory.
const IOX_ROOT: &str = "/tmp/iceoryx2";

fn iox_shm_objects() -> Vec<std::ffi::OsString> {
    std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().starts_with("iox2_"))
                .collect()
        })
        .unwrap_or_default()
}

impl Leftovers {
    /// Notes what exists now.
    pub fn note() -> Leftovers {
        Leftovers {
            shm: iox_shm_objects(),
            root_existed: std::path::Path::new(IOX_ROOT).exists(),
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        for name in iox_shm_objects() {
            if !self.shm.contains(&name) {
                let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(name));
            }
        }
        if !self.root_existed {
            // Only empty directories: anything still in them is another
            // program's.
            for sub in ["nodes", "services"] {
                let _ = std::fs::remove_dir(format!("{IOX_ROOT}/{sub}"));
            }
            let _ = std::fs::remove_dir(IOX_ROOT);
        }
    }
}

/// The other libraries' rows, in table order.
pub fn targets() -> &'static [TargetDef] {
    &[
        TargetDef {
            label: "iceoryx2",
            scheme: "shm",
            address: || raw::unique("x"),
            raw_server: shm::posix_spin_server,
            raw_client: shm::client,
            spawned: false,
            note: Some(iceoryx2::NOTE),
            path: Path::Copy,
            cross_only: true,
            library: Some((iceoryx2::server, iceoryx2::client)),
        },
        TargetDef {
            label: "ipc-channel",
            scheme: "unix",
            address: || format!("unix:/tmp/{}.sock", raw::unique("c")),
            raw_server: stream::unix_server,
            raw_client: stream::unix_client,
            spawned: false,
            note: Some(ipc_channel::NOTE),
            path: Path::Copy,
            cross_only: false,
            library: Some((ipc_channel::server, ipc_channel::client)),
        },
        TargetDef {
            label: "interprocess",
            scheme: "unix",
            address: || format!("unix:/tmp/{}.sock", raw::unique("l")),
            raw_server: stream::unix_server,
            raw_client: stream::unix_client,
            spawned: false,
            note: Some(interprocess::NOTE),
            path: Path::Copy,
            cross_only: false,
            library: Some((interprocess::server, interprocess::client)),
        },
    ]
}

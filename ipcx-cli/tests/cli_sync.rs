//! `ipcx` commands for the synchronisation primitives and shared state:
//! `bench --sync`, and `ls`/`rm`/`clean`/`doctor` on regions, mutexes and
//! semaphores. Names are unique to the test process and call, and what a
//! test makes is removed even when it fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// A name unique to this test process and call.
fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcx-cli-sync-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A private registry directory, removed on drop.
struct Registry(PathBuf);

impl Registry {
    fn new() -> Registry {
        let d = std::env::temp_dir().join(unique("reg"));
        std::fs::create_dir_all(&d).unwrap();
        Registry(d)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ipcx(reg: &Registry) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ipcx"));
    c.env("IPCX_REGISTRY_DIR", &reg.0);
    c
}

#[test]
fn sync_bench_writes_rows_and_json() {
    let reg = Registry::new();
    let file = std::env::temp_dir().join(format!("{}.json", unique("bench")));
    let mut c = ipcx(&reg);
    c.args(["bench", "--sync", "--budget-ms", "5", "--json"])
        .arg(&file);
    let child = c
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running ipcx");
    let pid = child.id().to_string();
    let out = child.wait_with_output().expect("waiting for ipcx");
    let text = std::fs::read_to_string(&file);
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for row in [
        "Mutex lock+unlock (shm:)",
        "Mutex hand-off, 2 processes",
        "Semaphore wait+post (sem:)",
        "Semaphore wait+post (sysv-sem:)",
        "Region::read, 64 B",
        "Region::read, 4 KiB",
    ] {
        assert!(stdout.contains(row), "no {row:?} row in\n{stdout}");
    }
    let v: serde_json::Value = serde_json::from_str(&text.unwrap()).expect("valid JSON");
    let sync = v["sync"].as_array().expect("a sync array");
    assert_eq!(sync.len(), 6);
    for r in sync {
        assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["raw_ns_per_op"].as_f64().unwrap() > 0.0, "{r}");
    }
    // The benchmark leaves nothing behind.
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ipcx-bench-") && n.contains(&format!("-{pid}-")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

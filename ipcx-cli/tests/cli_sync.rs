//! `ipcx` commands for the synchronisation primitives and shared state:
//! `bench --sync`, and `ls`/`rm`/`clean`/`doctor` on regions, mutexes and
//! semaphores. Names are unique to the test process and call, and what a
//! test makes is removed even when it fails.

use std::path::PathBuf;
use std::process::Output;

mod util;

use util::{Registry, ipcx, unique};

#[test]
fn sync_bench_writes_rows_and_json() {
    let reg = Registry::new();
    let file = std::env::temp_dir().join(format!("{}.json", unique("bench")));
    let mut c = ipcx(&reg);
    c.args(["bench", "--sync", "--budget-ms", "1", "--json"])
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
        "Region::read_into, 4 KiB",
    ] {
        assert!(stdout.contains(row), "no {row:?} row in\n{stdout}");
    }
    let v: serde_json::Value = serde_json::from_str(&text.unwrap()).expect("valid JSON");
    let sync = v["sync"].as_array().expect("a sync array");
    assert_eq!(sync.len(), 7);
    for r in sync {
        assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["raw_ns_per_op"].as_f64().unwrap() > 0.0, "{r}");
        // Every round is there, the ratio its median with the range.
        let rounds = r["rounds"].as_array().expect("rounds");
        assert_eq!(rounds.len(), 5, "{r}");
        let s = &r["ratio_spread"];
        assert!(s["min"].as_f64() <= s["median"].as_f64(), "{r}");
        assert!(s["median"].as_f64() <= s["max"].as_f64(), "{r}");
        assert!(r["unstable"].is_boolean(), "{r}");
    }
    assert!(stdout.contains("ratio [min-max]"), "{stdout}");
    // The benchmark leaves nothing behind.
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ipcx-bench-") && n.contains(&format!("-{pid}-")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[derive(ipcx::IpcMessage, Clone, Copy, Debug, Default)]
#[ipc(zero_copy, name = "test.Quote")]
#[repr(C)]
struct Quote {
    price: u64,
    qty: u64,
}

/// A region, a mutex and a semaphore of unique names (and a `sysv-sem:`
/// key file), removed on drop whatever the test did.
struct Objects {
    name: String,
    key: PathBuf,
    /// The `sysv-sem:` set's id: its record in this process's registry
    /// is removed on drop even when another process removed the set.
    semid: Option<String>,
}

impl Objects {
    fn new() -> Objects {
        let name = unique("obj");
        let key = std::env::temp_dir().join(format!("{name}.key"));
        let mut o = Objects {
            name,
            key,
            semid: None,
        };
        ipcx::shared::Region::create(&o.shm(), Quote { price: 7, qty: 1 }).unwrap();
        ipcx::sync::Mutex::create(&o.mutex()).unwrap();
        ipcx::sync::Semaphore::create(&o.sem(), 1).unwrap();
        ipcx::sync::Semaphore::create(&o.sysv_sem(), 1).unwrap();
        o.semid = ipcx::backends::registry::state::all()
            .into_iter()
            .find(|s| s.endpoint == o.sysv_sem().to_string())
            .and_then(|s| s.object.strip_prefix("semid ").map(str::to_string));
        o
    }
    fn shm(&self) -> ipcx::Endpoint {
        format!("shm:/{}", self.name).parse().unwrap()
    }
    fn mutex(&self) -> ipcx::Endpoint {
        format!("shm:/{}-m", self.name).parse().unwrap()
    }
    fn sem(&self) -> ipcx::Endpoint {
        format!("sem:/{}", self.name).parse().unwrap()
    }
    fn sysv_sem(&self) -> ipcx::Endpoint {
        format!("sysv-sem:{}", self.key.display()).parse().unwrap()
    }
    fn files(&self) -> [String; 3] {
        [
            format!("/dev/shm/ipcx.region.{}", self.name),
            format!("/dev/shm/ipcx.mutex.{}-m", self.name),
            format!("/dev/shm/sem.ipcx.{}", self.name),
        ]
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        for f in self.files() {
            let _ = std::fs::remove_file(f);
        }
        if let Ok(s) = ipcx::sync::Semaphore::open(&self.sysv_sem()) {
            let _ = s.remove();
        }
        if let Some(id) = &self.semid {
            ipcx::backends::registry::unregister(
                ipcx::backends::registry::Kind::StateSemaphore,
                id,
            );
        }
        let _ = std::fs::remove_file(&self.key);
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn sync_ls_lists_regions_mutexes_and_semaphores_and_clean_keeps_them() {
    let reg = Registry::new();
    let o = Objects::new();
    let ls = ipcx(&reg).arg("ls").output().unwrap();
    let t = text(&ls);
    assert!(ls.status.success(), "{t}");
    let line = |needle: &str| {
        t.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in\n{t}"))
            .to_string()
    };
    let region = line(&format!("shm:/{} ", o.name));
    assert!(region.starts_with("region"), "{region}");
    assert!(region.contains("test.Quote"), "{region}");
    assert!(region.contains("16 B"), "{region}");
    assert!(line(&format!("shm:/{}-m", o.name)).starts_with("mutex"));
    assert!(line(&format!("sem:/{}", o.name)).starts_with("semaphore"));
    // Not also listed as plain shared memory objects.
    assert_eq!(
        t.matches(&format!("ipcx.region.{}", o.name)).count(),
        1,
        "{t}"
    );

    let clean = ipcx(&reg).arg("clean").output().unwrap();
    assert!(clean.status.success(), "{}", text(&clean));
    for f in o.files() {
        assert!(std::path::Path::new(&f).exists(), "clean removed {f}");
    }
    ipcx::sync::Semaphore::open(&o.sysv_sem()).expect("clean kept the sysv-sem: set");
}

#[test]
fn sync_rm_removes_each_kind() {
    let reg = Registry::new();
    let o = Objects::new();
    for ep in [o.shm(), o.mutex(), o.sem(), o.sysv_sem()] {
        let out = ipcx(&reg).args(["rm", &ep.to_string()]).output().unwrap();
        assert!(out.status.success(), "rm {ep}: {}", text(&out));
        assert!(text(&out).starts_with("removed "), "{}", text(&out));
    }
    for f in o.files() {
        assert!(!std::path::Path::new(&f).exists(), "rm left {f}");
    }
    assert!(ipcx::sync::Semaphore::open(&o.sysv_sem()).is_err());
    // Again: nothing left to remove is an error with one line.
    let out = ipcx(&reg)
        .args(["rm", &o.sem().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = ipcx(&reg)
        .args(["rm", "unix:/tmp/nothing.sock"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn sync_doctor_reports_semaphore_and_shm_limits() {
    let reg = Registry::new();
    let out = ipcx(&reg).arg("doctor").output().unwrap();
    let t = text(&out);
    for limit in ["SEMMSL", "SEMMNS", "SEMMNI", "SEMVMX", "shmmax"] {
        assert!(t.contains(limit), "no {limit} in\n{t}");
    }
}

/// `ipcx` reading the registry this test process writes to (System V
/// state is found through the records its creator leaves there).
fn ipcx_here() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ipcx"));
    c.env("IPCX_REGISTRY_DIR", ipcx::backends::registry::dir());
    c
}

/// System V objects under key files of unique names, removed (with the
/// key files) on drop whatever the test did.
struct SysvObjects {
    shm: ipcx::Endpoint,
    sem: ipcx::Endpoint,
}

impl SysvObjects {
    fn new() -> SysvObjects {
        let name = unique("sysv");
        let dir = std::env::temp_dir();
        SysvObjects {
            shm: format!("sysv-shm:{}/{name}.shm", dir.display())
                .parse()
                .unwrap(),
            sem: format!("sysv-sem:{}/{name}.sem", dir.display())
                .parse()
                .unwrap(),
        }
    }
}

impl Drop for SysvObjects {
    fn drop(&mut self) {
        let _ = ipcx::backends::registry::state::remove(&self.shm);
        let _ = ipcx::backends::registry::state::remove(&self.sem);
        let _ = std::fs::remove_file(self.shm.address());
        let _ = std::fs::remove_file(self.sem.address());
    }
}

#[test]
fn sync_ls_lists_system_v_state_and_rm_removes_it() {
    let o = SysvObjects::new();
    let region = ipcx::shared::Region::create(&o.shm, Quote { price: 1, qty: 2 }).unwrap();
    let mutex = ipcx::sync::Mutex::create(&o.shm).unwrap();
    let sem = ipcx::sync::Semaphore::create(&o.sem, 3).unwrap();
    let me = std::process::id().to_string();
    let ls = ipcx_here().arg("ls").output().unwrap();
    let t = text(&ls);
    assert!(ls.status.success(), "{t}");
    let lines = |ep: &ipcx::Endpoint| -> Vec<String> {
        let ep = format!("{ep} ");
        t.lines()
            .filter(|l| l.contains(&ep))
            .map(str::to_string)
            .collect()
    };
    let shm = lines(&o.shm);
    let region_line = shm
        .iter()
        .find(|l| l.starts_with("region"))
        .unwrap_or_else(|| panic!("no region of {} in\n{t}", o.shm));
    for want in ["test.Quote", "16 B", "shmid ", me.as_str()] {
        assert!(region_line.contains(want), "no {want:?} in {region_line}");
    }
    assert!(
        shm.iter()
            .any(|l| l.starts_with("mutex") && l.contains(&me)),
        "no mutex of {} in\n{t}",
        o.shm
    );
    let sem_line = lines(&o.sem).pop().unwrap_or_default();
    assert!(sem_line.starts_with("semaphore"), "{t}");
    assert!(
        sem_line.contains("semid ") && sem_line.contains(" 3 "),
        "{sem_line}"
    );

    let rm = ipcx_here()
        .args(["rm", &o.shm.to_string()])
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", text(&rm));
    assert!(
        text(&rm).starts_with("removed mutex and region"),
        "{}",
        text(&rm)
    );
    let rm = ipcx_here()
        .args(["rm", &o.sem.to_string()])
        .output()
        .unwrap();
    assert!(text(&rm).starts_with("removed semaphore"), "{}", text(&rm));
    assert!(ipcx::sync::Semaphore::open(&o.sem).is_err());
    assert!(ipcx::sync::Mutex::open(&o.shm).is_err());
    let ls = text(&ipcx_here().arg("ls").output().unwrap());
    assert!(
        !ls.contains(&o.shm.to_string()) && !ls.contains(&o.sem.to_string()),
        "{ls}"
    );
    drop((region, mutex, sem));
}

#[test]
fn sync_clean_include_state_removes_state_whose_creator_died() {
    use ipcx::backends::registry::{self, Kind, state};
    let o = SysvObjects::new();
    let live = Objects::new();
    let sem = ipcx::sync::Semaphore::create(&o.sem, 1).unwrap();
    // The creator's record says another process (same pid, another start
    // time): a creator that is gone.
    let semid = state::all()
        .into_iter()
        .find(|s| s.endpoint == o.sem.to_string())
        .and_then(|s| s.object.strip_prefix("semid ").map(str::to_string))
        .expect("the semaphore is listed");
    let mut r = registry::read(Kind::StateSemaphore, &semid).expect("its record");
    r.start_time += 1;
    registry::register(&r).unwrap();

    let clean = ipcx_here().arg("clean").output().unwrap();
    assert!(clean.status.success(), "{}", text(&clean));
    assert!(
        !text(&clean).contains(&o.sem.to_string()),
        "{}",
        text(&clean)
    );
    ipcx::sync::Semaphore::open(&o.sem).expect("plain clean keeps state");

    let dry = ipcx_here()
        .args(["clean", "--include-state", "--dry-run"])
        .output()
        .unwrap();
    let t = text(&dry);
    assert!(dry.status.success(), "{t}");
    assert!(
        t.contains(&format!("would remove semaphore {}", o.sem)),
        "{t}"
    );
    assert!(
        !t.contains(&live.name),
        "a live creator's state is kept: {t}"
    );
    ipcx::sync::Semaphore::open(&o.sem).expect("--dry-run removes nothing");

    let real = ipcx_here()
        .args(["clean", "--include-state"])
        .output()
        .unwrap();
    assert!(real.status.success(), "{}", text(&real));
    assert!(
        text(&real).contains(&format!("removed semaphore {}", o.sem)),
        "{}",
        text(&real)
    );
    assert!(ipcx::sync::Semaphore::open(&o.sem).is_err());
    assert!(registry::read(Kind::StateSemaphore, &semid).is_none());
    for f in live.files() {
        assert!(std::path::Path::new(&f).exists(), "clean removed live {f}");
    }
    drop(sem);
}

#[test]
fn a_record_whose_system_v_object_is_gone_is_dropped_when_listed() {
    use ipcx::backends::registry::{self, Kind, state};
    let o = SysvObjects::new();
    let sem = ipcx::sync::Semaphore::create(&o.sem, 1).unwrap();
    let semid = state::all()
        .into_iter()
        .find(|s| s.endpoint == o.sem.to_string())
        .and_then(|s| s.object.strip_prefix("semid ").map(str::to_string))
        .expect("the semaphore is listed");
    // Removed by a process with another registry: this one's record stays.
    let other = Registry::new();
    let rm = ipcx(&other)
        .args(["rm", &o.sem.to_string()])
        .output()
        .unwrap();
    assert!(rm.status.success(), "{}", text(&rm));
    assert!(registry::read(Kind::StateSemaphore, &semid).is_some());
    assert!(state::all().iter().all(|s| s.endpoint != o.sem.to_string()));
    assert!(
        registry::read(Kind::StateSemaphore, &semid).is_none(),
        "the record of a removed semaphore is dropped when listed"
    );
    drop(sem);
}

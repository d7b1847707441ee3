//! `ipcx::sync` and `ipcx::shared` across real processes: the test binary
//! re-executes itself as a peer (`peer_entry`, chosen by `ROLE_VAR`).
//!
//! Every case makes its own names (pid + counter), removes them even when
//! it fails (`Names` on drop), and looks where the kernel keeps the objects
//! (`/dev/shm`, `/proc/sysvipc`) to check nothing is left behind.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcx::shared::Region;
use ipcx::sync::{Mutex, Semaphore};
use ipcx::{Endpoint, Error, IpcMessage};

const ROLE_VAR: &str = "IPCX_SYNC_TEST_ROLE";
const EP_VAR: &str = "IPCX_SYNC_TEST_ENDPOINT";
const ARG_VAR: &str = "IPCX_SYNC_TEST_ARG";
const MARK: &str = "SYNC-PEER:";

#[derive(IpcMessage, Clone, Copy, Debug, Default, PartialEq)]
#[ipc(zero_copy, name = "test.Counter")]
#[repr(C)]
struct Counter {
    value: u64,
}

/// A struct with invariants a torn read would break: `b == !a` and
/// `sum == x + y`.
#[derive(IpcMessage, Clone, Copy, Debug, Default, PartialEq)]
#[ipc(zero_copy, name = "test.Invariant")]
#[repr(C)]
struct Invariant {
    a: u64,
    x: u64,
    b: u64,
    y: u64,
    pad: [u64; 4],
    sum: u64,
    flag: bool,
    not_flag: bool,
    _rest: [u8; 6],
}

impl Invariant {
    fn holds(&self) -> bool {
        self.b == !self.a
            && self.sum == self.x.wrapping_add(self.y)
            && self.flag != self.not_flag
            && self.pad.iter().all(|&p| p == self.a)
    }
}

/// A struct every bit pattern of which is a value (no `bool`), so `read`
/// copies it without validation and `read_into` copies it straight into
/// the caller's value: invariants `b == !a`, every `pad` word `== a`.
/// 264 bytes: four 64-byte blocks (the block copy) and a word after them.
#[derive(IpcMessage, Clone, Copy, Debug, Default, PartialEq)]
#[ipc(zero_copy, name = "test.Wide")]
#[repr(C)]
struct Wide {
    a: u64,
    pad: [u64; 31],
    b: u64,
}

impl Wide {
    fn holds(&self) -> bool {
        self.b == !self.a && self.pad.iter().all(|&p| p == self.a)
    }
}

// ---------------------------------------------------------------- helpers

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> String {
    format!(
        "ipcx-sync-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The names a case uses, removed on drop (also after a failure) and
/// checked for leftovers by `assert_clean`.
struct Names {
    unique: String,
    key_files: Vec<String>,
}

impl Names {
    fn new() -> Names {
        Names {
            unique: unique(),
            key_files: Vec::new(),
        }
    }

    fn shm(&self) -> Endpoint {
        ep(&format!("shm:/{}", self.unique))
    }

    fn sem(&self) -> Endpoint {
        ep(&format!("sem:/{}", self.unique))
    }

    fn key_file(&mut self, suffix: &str) -> String {
        let p = format!(
            "{}/{}-{suffix}",
            std::env::temp_dir().display(),
            self.unique
        );
        self.key_files.push(p.clone());
        p
    }

    fn sysv_shm(&mut self) -> Endpoint {
        ep(&format!("sysv-shm:{}", self.key_file("shm")))
    }

    fn sysv_sem(&mut self) -> Endpoint {
        ep(&format!("sysv-sem:{}", self.key_file("sem")))
    }

    fn dev_shm_leftovers(&self) -> Vec<String> {
        std::fs::read_dir("/dev/shm")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(&self.unique))
            .collect()
    }

    fn sysv_keys(&self) -> Vec<i32> {
        let mut keys = Vec::new();
        for f in &self.key_files {
            let Ok(c) = std::ffi::CString::new(f.as_str()) else {
                continue;
            };
            for proj in [b's', b'r', b'm'] {
                // SAFETY: `c` is a valid C string; ftok only stats the file.
                let k = unsafe { libc::ftok(c.as_ptr(), i32::from(proj)) };
                if k != -1 {
                    keys.push(k);
                }
            }
        }
        keys
    }

    fn sysv_leftovers(&self) -> Vec<String> {
        let keys = self.sysv_keys();
        let mut found = Vec::new();
        for table in ["sem", "shm"] {
            let text =
                std::fs::read_to_string(format!("/proc/sysvipc/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let key: i32 = line
                    .split_whitespace()
                    .next()
                    .and_then(|k| k.parse().ok())
                    .unwrap_or(0);
                if key != 0 && keys.contains(&key) {
                    found.push(format!("{table}: {line}"));
                }
            }
        }
        found
    }

    /// Fails if anything of this case is still in the kernel.
    #[track_caller]
    fn assert_clean(&self) {
        let mut left = self.dev_shm_leftovers();
        left.extend(self.sysv_leftovers());
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        for n in self.dev_shm_leftovers() {
            let _ = std::fs::remove_file(format!("/dev/shm/{n}"));
        }
        for k in self.sysv_keys() {
            // SAFETY: semget/shmget/semctl/shmctl take values only (IPC_RMID
            // reads no buffer, null allowed).
            unsafe {
                let s = libc::semget(k, 0, 0);
                if s >= 0 {
                    libc::semctl(s, 0, libc::IPC_RMID);
                }
                let m = libc::shmget(k, 0, 0);
                if m >= 0 {
                    libc::shmctl(m, libc::IPC_RMID, std::ptr::null_mut());
                }
            }
        }
        for f in &self.key_files {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// A re-executed copy of this binary playing `role`; killed on drop.
struct Peer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn spawn(role: &str, endpoint: &Endpoint, arg: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "peer_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(ROLE_VAR, role)
            .env(EP_VAR, endpoint.to_string())
            .env(ARG_VAR, arg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("re-execute the test binary");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Some(l) = line.strip_prefix(MARK) {
                    let _ = tx.send(l.to_string());
                }
            }
        });
        Peer { child, lines }
    }

    #[track_caller]
    fn expect(&self, line: &str) {
        let got = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("peer said nothing ({e}) while {line:?} was expected"));
        assert_eq!(got, line);
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    #[track_caller]
    fn join(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "peer failed: {status}");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

/// Runs `f` on a thread; fails the test (instead of hanging) after `limit`.
fn watchdog(limit: Duration, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p)
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("watchdog: still running after {limit:?}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{MARK}{line}");
    let _ = out.flush();
}

// ------------------------------------------------------------- the peer

#[test]
fn peer_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return; // run as a test: nothing to do
    };
    let endpoint = ep(&std::env::var(EP_VAR).unwrap());
    let arg = std::env::var(ARG_VAR).unwrap_or_default();
    match role.as_str() {
        "increment" => {
            let n: u64 = arg.parse().unwrap();
            let r = Region::<Counter>::open(&endpoint).unwrap();
            for _ in 0..n {
                let mut g = r.lock().unwrap().unwrap_or_else(|d| d.into_inner());
                g.value += 1;
            }
        }
        "hold-region" => {
            let r = Region::<Counter>::open(&endpoint).unwrap();
            let mut g = r.lock().unwrap().unwrap();
            g.value = 41;
            g.value += 1;
            say("holding");
            std::thread::sleep(Duration::from_secs(600));
        }
        "hold-mutex" => {
            let m = Mutex::open(&endpoint).unwrap();
            let _g = m.lock().unwrap().unwrap();
            say("holding");
            std::thread::sleep(Duration::from_secs(600));
        }
        "hold-sem" => {
            let s = Semaphore::open(&endpoint).unwrap();
            s.wait().unwrap();
            say("holding");
            std::thread::sleep(Duration::from_secs(600));
        }
        "post" => {
            Semaphore::open(&endpoint).unwrap().post().unwrap();
        }
        "write-invariant" => {
            let ms: u64 = arg.parse().unwrap();
            let r = Region::<Invariant>::open(&endpoint).unwrap();
            let end = Instant::now() + Duration::from_millis(ms);
            let mut i = 0u64;
            while Instant::now() < end {
                for _ in 0..256 {
                    i += 1;
                    let mut g = r.lock().unwrap().unwrap();
                    // Field by field, through volatile stores, so a torn
                    // state exists in memory while the write goes on.
                    let p: *mut Invariant = &mut *g;
                    // SAFETY: `p` is the guard's exclusive, aligned, valid
                    // pointer; every field written is a valid value.
                    unsafe {
                        (&raw mut (*p).a).write_volatile(i);
                        (&raw mut (*p).x).write_volatile(i * 3);
                        for k in 0..4 {
                            (&raw mut (*p).pad[k]).write_volatile(i);
                        }
                        (&raw mut (*p).flag).write_volatile(i % 2 == 0);
                        (&raw mut (*p).b).write_volatile(!i);
                        (&raw mut (*p).y).write_volatile(i * 5);
                        (&raw mut (*p).sum).write_volatile(i * 8);
                        (&raw mut (*p).not_flag).write_volatile(i % 2 != 0);
                    }
                }
            }
            say(&format!("wrote {i}"));
        }
        "write-wide" => {
            let ms: u64 = arg.parse().unwrap();
            let r = Region::<Wide>::open(&endpoint).unwrap();
            let end = Instant::now() + Duration::from_millis(ms);
            let mut i = 0u64;
            while Instant::now() < end {
                for _ in 0..256 {
                    i += 1;
                    let mut g = r.lock().unwrap().unwrap();
                    let p: *mut Wide = &mut *g;
                    // SAFETY: `p` is the guard's exclusive, aligned, valid
                    // pointer; every word written is a valid u64.
                    unsafe {
                        (&raw mut (*p).a).write_volatile(i);
                        for k in 0..31 {
                            (&raw mut (*p).pad[k]).write_volatile(i);
                        }
                        (&raw mut (*p).b).write_volatile(!i);
                    }
                }
            }
            say(&format!("wrote {i}"));
        }
        "create-state" => {
            // Creates a region (this endpoint) and a sysv-sem: semaphore
            // (the argument), then exits: objects whose creator is dead.
            Region::create(&endpoint, Counter { value: 5 }).unwrap();
            Semaphore::create(&ep(&arg), 2).unwrap();
            say("created");
        }
        other => panic!("unknown role {other}"),
    }
}

// ------------------------------------------------------------ the cases

fn count_in_processes(endpoint: Endpoint, procs: u64, each: u64) {
    let r = Region::create(&endpoint, Counter::default()).unwrap();
    let start = Instant::now();
    let peers: Vec<Peer> = (0..procs)
        .map(|_| Peer::spawn("increment", &endpoint, &each.to_string()))
        .collect();
    for p in peers {
        p.join();
    }
    let took = start.elapsed();
    let total = r.read().unwrap().value;
    eprintln!("{endpoint}: {procs} processes x {each} increments = {total} in {took:?}");
    assert_eq!(total, procs * each);
    r.remove().unwrap();
}

#[test]
fn eight_processes_count_to_800000_under_the_lock() {
    let names = Names::new();
    let endpoint = names.shm();
    watchdog(Duration::from_secs(300), move || {
        count_in_processes(endpoint, 8, 100_000)
    });
    names.assert_clean();
}

#[test]
fn sysv_region_counts_across_processes() {
    let mut names = Names::new();
    let endpoint = names.sysv_shm();
    watchdog(Duration::from_secs(120), move || {
        count_in_processes(endpoint, 4, 10_000)
    });
    names.assert_clean();
}

fn killed_holder(endpoint: Endpoint) {
    let r = Region::create(&endpoint, Counter::default()).unwrap();
    let mut peer = Peer::spawn("hold-region", &endpoint, "");
    peer.expect("holding");
    peer.kill();
    // The writer died mid-write: readers are told, not given a torn value.
    match r.read() {
        Err(Error::OwnerDied { pid, .. }) => assert!(pid.is_some()),
        other => panic!("read after a writer's death: {other:?}"),
    }
    let died = r.lock().unwrap().expect_err("the holder died: OwnerDied");
    assert_eq!(died.get_ref().value, 42, "the last value written");
    let mut g = died.into_inner();
    g.value += 1;
    drop(g);
    let g = r.lock().unwrap().expect("consistent again");
    assert_eq!(g.value, 43);
    drop(g);
    assert_eq!(r.read().unwrap().value, 43);
    r.remove().unwrap();
}

#[test]
fn a_holder_killed_in_the_critical_section_is_reported_to_the_next_locker() {
    let mut names = Names::new();
    let (posix, sysv) = (names.shm(), names.sysv_shm());
    watchdog(Duration::from_secs(60), move || {
        killed_holder(posix);
        killed_holder(sysv);
    });
    names.assert_clean();
}

#[test]
fn a_mutex_survives_its_holders_death() {
    let names = Names::new();
    let endpoint = names.shm();
    watchdog(Duration::from_secs(60), move || {
        let m = Mutex::create(&endpoint).unwrap();
        let mut peer = Peer::spawn("hold-mutex", &endpoint, "");
        peer.expect("holding");
        assert!(matches!(m.try_lock(), Err(Error::WouldBlock)));
        assert!(matches!(
            m.lock_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        peer.kill();
        let g = m.lock().unwrap().expect_err("holder died").into_inner();
        // Locking again from the holding thread is an error, not a hang.
        assert!(matches!(m.lock(), Err(Error::Io { .. })));
        drop(g);
        drop(m.lock().unwrap().expect("consistent again"));
        m.remove().unwrap();
    });
    names.assert_clean();
}

#[test]
fn sysv_sem_undo_gives_back_a_killed_holders_unit() {
    let mut names = Names::new();
    let (sysv, posix) = (names.sysv_sem(), names.sem());
    watchdog(Duration::from_secs(60), move || {
        let s = Semaphore::create(&sysv, 1).unwrap();
        let mut peer = Peer::spawn("hold-sem", &sysv, "");
        peer.expect("holding");
        assert_eq!(s.value().unwrap(), 0);
        peer.kill();
        assert_eq!(s.value().unwrap(), 1, "SEM_UNDO restored the unit");
        s.remove().unwrap();

        // POSIX semaphores have no undo: the unit is lost (documented).
        let s = Semaphore::create(&posix, 1).unwrap();
        let mut peer = Peer::spawn("hold-sem", &posix, "");
        peer.expect("holding");
        peer.kill();
        assert_eq!(s.value().unwrap(), 0, "no undo on sem:");
        s.remove().unwrap();
    });
    names.assert_clean();
}

fn semaphore_basics(endpoint: Endpoint) {
    let s = Semaphore::create(&endpoint, 0).unwrap();
    assert!(matches!(
        Semaphore::create(&endpoint, 0),
        Err(Error::AddrInUse { .. })
    ));
    assert!(matches!(s.try_wait(), Err(Error::WouldBlock)));
    assert!(matches!(
        s.wait_timeout(Duration::from_millis(20)),
        Err(Error::Timeout)
    ));
    Peer::spawn("post", &endpoint, "").join();
    assert_eq!(s.value().unwrap(), 1);
    s.wait_timeout(Duration::from_secs(10)).unwrap();
    s.post().unwrap();
    s.post().unwrap();
    let other = Semaphore::open(&endpoint).unwrap();
    other.wait().unwrap();
    other.try_wait().unwrap();
    assert_eq!(s.value().unwrap(), 0);
    drop(other);
    s.remove().unwrap();
    assert!(Semaphore::open(&endpoint).is_err());
}

#[test]
fn semaphores_wait_post_and_time_out_on_both_kernels() {
    let mut names = Names::new();
    let (posix, sysv) = (names.sem(), names.sysv_sem());
    watchdog(Duration::from_secs(60), move || {
        semaphore_basics(posix);
        semaphore_basics(sysv);
    });
    names.assert_clean();
}

#[test]
fn a_seqlock_reader_never_sees_a_torn_value() {
    let names = Names::new();
    let endpoint = names.shm();
    watchdog(Duration::from_secs(60), move || {
        let init = Invariant {
            b: !0,
            not_flag: true,
            ..Invariant::default()
        };
        assert!(init.holds());
        let r = Region::create(&endpoint, init).unwrap();
        let writer = Peer::spawn("write-invariant", &endpoint, "1000");
        let (mut reads, mut changes, mut last) = (0u64, 0u64, 0u64);
        let end = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < end {
            let v = r.read().unwrap();
            assert!(v.holds(), "torn read after {reads} reads: {v:?}");
            reads += 1;
            if v.a != last {
                changes += 1;
                last = v.a;
            }
        }
        let line = writer.lines.recv_timeout(Duration::from_secs(30)).unwrap();
        writer.join();
        eprintln!(
            "seqlock: {reads} consistent reads, {changes} distinct values seen, writer {line}"
        );
        assert!(changes > 1, "the reader saw the writer's values");
        r.remove().unwrap();
    });
    names.assert_clean();
}

#[test]
fn opening_a_region_as_another_type_is_a_schema_mismatch() {
    let mut names = Names::new();
    let (posix, sysv) = (names.shm(), names.sysv_shm());
    for endpoint in [posix, sysv] {
        let r = Region::create(&endpoint, Counter { value: 7 }).unwrap();
        let e = Region::<Invariant>::open(&endpoint).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::SchemaMismatch { .. }), "{e}");
        assert!(
            text.contains("test.Counter") && text.contains("test.Invariant"),
            "{text}"
        );
        assert_eq!(
            Region::<Counter>::open(&endpoint)
                .unwrap()
                .read()
                .unwrap()
                .value,
            7
        );
        assert!(matches!(
            Region::create(&endpoint, Counter::default()),
            Err(Error::AddrInUse { .. })
        ));
        // A mutex of the same name is another object.
        Mutex::create(&endpoint).unwrap().remove().unwrap();
        r.remove().unwrap();
    }
    names.assert_clean();
}

fn mode_of(path: &str) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn sysv_mode(table: &str, endpoint: &Endpoint, proj: u8) -> u32 {
    let c = std::ffi::CString::new(endpoint.address()).unwrap();
    // SAFETY: `c` is a valid C string.
    let key = unsafe { libc::ftok(c.as_ptr(), i32::from(proj)) };
    let text = std::fs::read_to_string(format!("/proc/sysvipc/{table}")).unwrap();
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&key.to_string()))
        .unwrap_or_else(|| panic!("key {key} not in /proc/sysvipc/{table}"));
    u32::from_str_radix(line.split_whitespace().nth(2).unwrap(), 8).unwrap()
}

#[test]
fn objects_are_private_by_default_and_mode_widens_them() {
    let mut names = Names::new();
    let u = names.unique.clone();
    let sem = Semaphore::create(&names.sem(), 0).unwrap();
    assert_eq!(mode_of(&format!("/dev/shm/sem.ipcx.{u}")), 0o600);
    sem.remove().unwrap();
    let sem = Semaphore::create(&ep(&format!("sem:/{u}?mode=0640")), 0).unwrap();
    assert_eq!(mode_of(&format!("/dev/shm/sem.ipcx.{u}")), 0o640);
    sem.remove().unwrap();
    let r = Region::create(&names.shm(), Counter::default()).unwrap();
    assert_eq!(mode_of(&format!("/dev/shm/ipcx.region.{u}")), 0o600);
    r.remove().unwrap();
    let m = Mutex::create(&ep(&format!("shm:/{u}?mode=0660"))).unwrap();
    assert_eq!(mode_of(&format!("/dev/shm/ipcx.mutex.{u}")), 0o660);
    m.remove().unwrap();
    let sysv = names.sysv_sem();
    let s = Semaphore::create(&sysv, 0).unwrap();
    assert_eq!(sysv_mode("sem", &sysv, b's'), 0o600);
    s.remove().unwrap();
    let sysv = names.sysv_shm();
    let r = Region::create(&sysv, Counter::default()).unwrap();
    assert_eq!(sysv_mode("shm", &sysv, b'r') & 0o777, 0o600);
    r.remove().unwrap();
    names.assert_clean();
}

#[test]
fn semaphore_endpoints_are_not_channels() {
    let names = Names::new();
    for e in [names.sem(), ep("sysv-sem:/tmp/x")] {
        let err = ipcx::listen(&e).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("ipcx::sync"), "{err}");
        assert!(ipcx::connect(&e).is_err());
    }
    let err = Semaphore::create(&names.shm(), 0).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let err = Region::create(&names.sem(), Counter::default()).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    names.assert_clean();
}

#[test]
fn a_seqlock_read_into_never_sees_a_torn_value() {
    let names = Names::new();
    let endpoint = names.shm();
    watchdog(Duration::from_secs(60), move || {
        let init = Wide {
            b: !0,
            ..Wide::default()
        };
        let r = Region::create(&endpoint, init).unwrap();
        let writer = Peer::spawn("write-wide", &endpoint, "1000");
        let (mut reads, mut changes, mut last) = (0u64, 0u64, 0u64);
        let mut into = Wide::default();
        let end = Instant::now() + Duration::from_millis(1200);
        while Instant::now() < end {
            let v = r.read().unwrap();
            assert!(v.holds(), "torn read after {reads} reads: {v:?}");
            r.read_into(&mut into).unwrap();
            assert!(into.holds(), "torn read_into after {reads} reads: {into:?}");
            reads += 1;
            if into.a != last {
                changes += 1;
                last = into.a;
            }
        }
        let line = writer.lines.recv_timeout(Duration::from_secs(30)).unwrap();
        writer.join();
        eprintln!("seqlock read_into: {reads} consistent pairs, {changes} values, writer {line}");
        assert!(changes > 1, "the reader saw the writer's values");
        r.remove().unwrap();
    });
    names.assert_clean();
}

#[test]
fn an_invalid_bit_pattern_is_refused_by_read_read_into_and_lock() {
    use std::io::{Read, Seek, SeekFrom};
    let names = Names::new();
    let marker = 0x1122_3344_5566_7788u64;
    let init = Invariant {
        a: marker,
        b: !marker,
        pad: [marker; 4],
        not_flag: true,
        ..Invariant::default()
    };
    let r = Region::create(&names.shm(), init).unwrap();
    assert_eq!(r.read().unwrap(), init);
    // Another writer of the segment (here through its file) puts 2 in a
    // bool: no `Invariant` has that bit pattern.
    let path = format!("/dev/shm/ipcx.region.{}", names.unique);
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).unwrap();
    let at = bytes
        .windows(8)
        .position(|w| w == marker.to_ne_bytes())
        .expect("the value in the segment");
    let flag = at + std::mem::offset_of!(Invariant, flag);
    f.seek(SeekFrom::Start(flag as u64)).unwrap();
    f.write_all(&[2]).unwrap();
    drop(f);
    let e = r.read().unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e}");
    assert!(e.to_string().contains("flag"), "{e}");
    let mut out = init;
    let e = r.read_into(&mut out).unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e}");
    assert_eq!(out, init, "read_into left a valid value in place");
    let e = r.lock().unwrap_err();
    assert!(matches!(e, Error::Decode { .. }), "{e}");
    // A write repairs it.
    r.write(init).unwrap();
    assert_eq!(r.read().unwrap(), init);
    r.remove().unwrap();
    names.assert_clean();
}

#[test]
fn kernel_limits_are_checked_before_create() {
    let mut names = Names::new();
    let sysv = names.sysv_sem();
    let e = Semaphore::create(&sysv, 32768).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Limit { limit: 32767, .. }), "{e}");
    assert!(
        text.contains("initial=32768") && text.contains("SEMVMX") && text.contains("32767"),
        "{text}"
    );
    // Refused before anything was made: not even the key file.
    assert!(!std::path::Path::new(sysv.address()).exists());
    Semaphore::create(&sysv, 32767).unwrap().remove().unwrap();
    let e = Semaphore::create(&names.sem(), u32::MAX).unwrap_err();
    assert!(
        matches!(e, Error::Limit { .. }) && e.to_string().contains("SEM_VALUE_MAX"),
        "{e}"
    );
    names.assert_clean();
}

#[test]
fn system_v_state_is_listed_by_endpoint_and_removed_by_it() {
    use ipcx::backends::registry::{self, state};
    let mut names = Names::new();
    let (shm, sem) = (names.sysv_shm(), names.sysv_sem());
    let region = Region::create(&shm, Counter { value: 9 }).unwrap();
    let mutex = Mutex::create(&shm).unwrap();
    let s = Semaphore::create(&sem, 3).unwrap();
    let me = std::process::id();
    let mine: Vec<state::StateObject> = state::all()
        .into_iter()
        .filter(|o| o.endpoint == shm.to_string() || o.endpoint == sem.to_string())
        .collect();
    let find = |kind: state::StateKind| {
        mine.iter()
            .find(|o| o.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} in {mine:?}"))
    };
    let r = find(state::StateKind::Region);
    assert_eq!(r.endpoint, shm.to_string());
    assert_eq!(r.type_name.as_deref(), Some("test.Counter"));
    assert_eq!(r.size, Some(8));
    assert_eq!((r.owner, r.owner_alive), (Some(me), Some(true)));
    assert!(r.object.starts_with("shmid "), "{r:?}");
    let m = find(state::StateKind::Mutex);
    assert_eq!(
        (m.endpoint.as_str(), m.owner),
        (&*shm.to_string(), Some(me))
    );
    let v = find(state::StateKind::Semaphore);
    assert_eq!((v.value, v.owner), (Some(3), Some(me)));
    assert!(v.object.starts_with("semid "), "{v:?}");
    // Their records are not transport records: never orphans, never
    // removed with their creator.
    assert!(registry::list().iter().all(|r| !r.kind.persists()));
    // Removed by endpoint: the region and the mutex of one path, the
    // semaphore; their records go with them.
    let removed = state::remove(&shm).unwrap();
    assert_eq!(removed, [state::StateKind::Mutex, state::StateKind::Region]);
    assert_eq!(state::remove(&sem).unwrap(), [state::StateKind::Semaphore]);
    assert!(state::remove(&sem).unwrap().is_empty());
    assert!(
        state::all()
            .iter()
            .all(|o| o.endpoint != shm.to_string() && o.endpoint != sem.to_string())
    );
    drop((region, mutex, s));
    names.assert_clean();
}

#[test]
fn state_whose_creator_died_says_so() {
    use ipcx::backends::registry::state;
    let mut names = Names::new();
    let (posix, sem, live) = (
        names.shm(),
        names.sysv_sem(),
        ep(&format!("shm:/{}-live", names.unique)),
    );
    let mine = Region::create(&live, Counter::default()).unwrap();
    let peer = Peer::spawn("create-state", &posix, &sem.to_string());
    peer.expect("created");
    let pid = peer.child.id();
    peer.join();
    let found: Vec<state::StateObject> = state::all()
        .into_iter()
        .filter(|o| o.endpoint.contains(&names.unique))
        .collect();
    let of = |e: &Endpoint| {
        found
            .iter()
            .find(|o| o.endpoint == e.to_string())
            .unwrap_or_else(|| panic!("no {e} in {found:?}"))
    };
    assert_eq!(
        (of(&posix).owner, of(&posix).owner_alive),
        (Some(pid), Some(false))
    );
    assert_eq!(
        (of(&sem).owner, of(&sem).owner_alive),
        (Some(pid), Some(false))
    );
    assert_eq!(of(&live).owner_alive, Some(true));
    for o in &found {
        o.remove().unwrap();
    }
    drop(mine);
    names.assert_clean();
}

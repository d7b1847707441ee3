//! `sysv-shm:`-specific cases: the sides wake each other through futex
//! words in the segment, so a connection makes no System V semaphore set.

use std::time::Duration;

use ipcx::{Listener, Receiver, Sender};

use crate::util;

const CASE_LIMIT: Duration = Duration::from_secs(60);

/// Ids of the private (`IPC_PRIVATE`, key 0) System V semaphore sets of
/// four semaphores on this machine: what `sysv-shm:` made per connection
/// before it woke through futexes. Nothing else in this workspace's tests
/// makes one (`sysv-sem:` semaphores are keyed sets of one; the registry
/// test of orphaned sets makes a set of two).
fn private_sets_of_four() -> Vec<String> {
    let text = std::fs::read_to_string("/proc/sysvipc/sem")
        .expect("/proc/sysvipc/sem: System V IPC must be visible to run this test");
    let mut lines = text.lines();
    let cols: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .unwrap_or_else(|| panic!("/proc/sysvipc/sem has no {name} column: {cols:?}"))
    };
    let (key, semid, nsems) = (col("key"), col("semid"), col("nsems"));
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.get(key) == Some(&"0") && f.get(nsems) == Some(&"4"))
        .filter_map(|f| f.get(semid).map(|s| s.to_string()))
        .collect()
}

/// While a connection is up and carries messages both ways (the echo
/// side sleeps in a blocking wait between them), no semaphore set exists
/// that did not exist before, and the registry names none of ours.
#[test]
fn connection_makes_no_semaphore_set() {
    let ep = format!("sysv-shm:/tmp/{}?wait=block", util::unique("ns"));
    let before = private_sets_of_four();
    util::watchdog(CASE_LIMIT, "connection_makes_no_semaphore_set", move || {
        let mut l = ipcx::listen(&util::parse(&ep)).expect("listen");
        let server = std::thread::spawn(move || {
            let mut c = l.accept().expect("accept");
            while let Ok(m) = c.recv() {
                c.send(&m).expect("echo");
            }
        });
        let mut c = ipcx::connect(&util::parse(&ep)).expect("connect");
        for i in 0..100u32 {
            // Let the echo side go to sleep now and then.
            if i % 10 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
            c.send(&i.to_le_bytes()).expect("send");
            assert_eq!(c.recv().expect("recv"), i.to_le_bytes(), "echo of {i}");
        }
        let during = private_sets_of_four();
        let new: Vec<&String> = during.iter().filter(|id| !before.contains(id)).collect();
        assert!(
            new.is_empty(),
            "semaphore sets made while a sysv-shm: connection was up: {new:?}"
        );
        let me = std::process::id();
        let recorded: Vec<_> = ipcx::backends::registry::list()
            .into_iter()
            .filter(|r| r.pid == me && r.kind == ipcx::backends::registry::Kind::SysvSemaphores)
            .collect();
        assert!(recorded.is_empty(), "semaphore sets recorded: {recorded:?}");
        drop(c);
        server.join().expect("echo thread");
    });
}

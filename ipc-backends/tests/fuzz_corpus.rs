//! Replays the committed fuzz corpus, `fuzz/corpus/<target>/`, through the
//! fuzz target bodies on stable, so every seed and every input a fuzzer
//! once found runs in the normal test suite (see `fuzz/README.md`).

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipc_backends::fuzzing::{TARGETS, seeds};

const HOW_TO_WRITE_SEEDS: &str =
    "cargo run -p ipc-backends --features nats --example write_fuzz_seeds";

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Fails the test (aborting the binary) if it runs longer than `secs`.
fn watchdog(secs: u64) {
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(secs));
        eprintln!("watchdog: corpus replay still running after {secs}s");
        std::process::abort();
    });
}

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; every fuzz target needs a corpus", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_file_passes_its_target() {
    watchdog(300);
    let mut failed = Vec::new();
    let mut total = 0;
    for (target, body) in TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "fuzz/corpus/{target} is empty");
        for file in files {
            let bytes = fs::read(&file).expect("corpus file");
            total += 1;
            if catch_unwind(AssertUnwindSafe(|| body(&bytes))).is_err() {
                failed.push(file.display().to_string());
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {total} corpus inputs fail:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn every_target_has_a_fuzz_binary() {
    for (target, _) in TARGETS {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{target}.rs"));
        let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            text.contains(&format!("fuzzing::{target}(")),
            "{} does not call ipc_backends::fuzzing::{target}",
            file.display()
        );
    }
}

/// The seed files are what the encoders produce today: a wire format
/// change shows up here, and the seeds follow it with one command.
#[test]
fn seeds_are_committed_and_current() {
    for (target, name, bytes) in seeds() {
        let file = fuzz_dir().join("corpus").join(target).join(&name);
        let committed = fs::read(&file).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; write the seeds with `{HOW_TO_WRITE_SEEDS}`",
                file.display()
            )
        });
        assert!(
            committed == bytes,
            "{} is stale; rewrite the seeds with `{HOW_TO_WRITE_SEEDS}`",
            file.display()
        );
    }
}

#!/usr/bin/env bash
# Runs every fuzz target for N seconds (first argument, default 10), growing
# fuzz/corpus/<target>/. Needs a nightly toolchain and cargo-fuzz
# (`cargo install cargo-fuzz`); without them it says so and exits 0, since
# the stable replay (cargo test -p ipc-backends --test fuzz_corpus) still
# covers the committed corpus.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz/run.sh: cargo +nightly fuzz is not available (rustup toolchain install nightly; cargo install cargo-fuzz); skipping"
  exit 0
fi
# A message is at most 64 KiB in these targets: a larger allocation is a bug.
flags=(-max_total_time="$secs" -timeout=10 -malloc_limit_mb=64)
status=0
for target in $(cargo +nightly fuzz list); do
  echo "== $target (${secs}s)"
  cargo +nightly fuzz run "$target" -- "${flags[@]}" || { status=1; echo "== $target FAILED: see fuzz/artifacts/$target/"; }
done
exit "$status"

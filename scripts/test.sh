#!/usr/bin/env bash
# Command 2: set up what is missing and run every check and test: formatting, clippy
# with warnings as errors, documentation, unit, pipeline, property and system tests
# (the system tests need root: network namespaces and XDP).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo test --workspace
# Every parser an outsider reaches, under libFuzzer for a bounded time each (the
# committed seeds stay untouched): the wire layer's views, XMPP from control nodes,
# frames from the fabric and from pods, API requests, the config loader, state files.
# cargo-fuzz wants nightly for -Zsanitizer; the stable toolchain ships the same
# sanitizer runtimes, so it builds the targets with RUSTC_BOOTSTRAP=1 (one path, with or
# without a nightly on the machine).
for target in wire xmpp fabric_rx pod_rx api_request config state_files; do
  corpus=$(mktemp -d)
  echo "fuzz: $target"
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo +stable fuzz run "$target" "$corpus" "seeds/$target" -- \
    -max_total_time="${FUZZ_SECONDS:-20}" -rss_limit_mb=2048 2>&1 | tail -2)
  rm -rf "$corpus"
done
# The flow table's concurrency models (loom explores the interleavings).
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p flow-table --test loom --release --target-dir target/loom

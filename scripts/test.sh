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
# The fabric receive path under libFuzzer for a bounded time (needs a nightly toolchain,
# which cargo-fuzz builds with; the committed seeds stay untouched).
if command -v cargo-fuzz >/dev/null && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  corpus=$(mktemp -d)
  (cd fuzz && cargo +nightly fuzz run fabric_rx "$corpus" seeds/fabric_rx -- -max_total_time=30 -rss_limit_mb=2048 2>&1 | tail -3)
  rm -rf "$corpus"
else
  echo "fuzz: skipped: cargo-fuzz and a nightly toolchain are needed (not on this machine)"
fi
# The flow table's concurrency models (loom explores the interleavings).
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p flow-table --test loom --release --target-dir target/loom

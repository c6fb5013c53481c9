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
# The flow table's concurrency models (loom explores the interleavings).
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p flow-table --test loom --release --target-dir target/loom

#!/usr/bin/env bash
# The longer fuzzing campaign the README reports: every target for RUNS executions
# (default 10 million), two targets at a time, each from its committed seeds into a
# scratch corpus; prints each target's executions, time and outcome. Needs cargo-fuzz
# (scripts/setup.sh installs it); builds with the stable toolchain's sanitizer runtimes
# (RUSTC_BOOTSTRAP=1), as scripts/test.sh does.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
runs="${RUNS:-10000000}"
targets=(${TARGETS:-pod_rx fabric_rx api_request config state_files wire xmpp})
export RUSTC_BOOTSTRAP=1
cargo +stable fuzz build >/dev/null
# The state-files target writes files for every input: keep them in memory.
export TMPDIR="${TMPDIR:-/dev/shm}"
run() {
  local target=$1 corpus log
  corpus=$(mktemp -d)
  log=$(mktemp)
  local start=$SECONDS
  if cargo +stable fuzz run "$target" "$corpus" "seeds/$target" -- -runs="$runs" -rss_limit_mb=2048 \
      -print_final_stats=1 >"$log" 2>&1; then
    echo "$target: $(grep -m1 -o 'Done [0-9]* runs' "$log" || echo "$runs runs") in $((SECONDS - start)) s, no crash;" \
      "$(grep -m1 'stat::peak_rss_mb' "$log" | tr -s ' ')"
  else
    echo "$target: FAILED after $((SECONDS - start)) s"; tail -30 "$log"
  fi
  rm -rf "$corpus" "$log"
}
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  run "${targets[i]}" &
  if ((i + 1 < ${#targets[@]})); then run "${targets[i + 1]}" & fi
  wait
done

#!/usr/bin/env bash
# Command 1: set up what is missing, build the vrouter, run the lab (a node of network
# namespaces with pods in two VRFs on a real vrouter; prints what happened; removes it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p vrouter -p vrouter-lab -p vrouter-cni
exec target/release/vrouter-lab --vrouter target/release/vrouter lab "$@"

#!/usr/bin/env bash
# Installs what building, running and testing the vrouter needs on Debian 12, if it
# is missing: clang + libbpf headers (the XDP program), iproute2, ping, ethtool and
# sysctl (the lab and the system tests), Open vSwitch (a peer in the benchmark),
# nsenter, the CNI plugins' host-local IPAM, podman with runc and a static busybox
# (the CNI plugin and the container runtime that drives it), rustfmt and clippy (the
# checks), haproxy (ingress), dnsmasq (kube-dns in the lab and the tests) and iperf3
# (the TCP benchmark).
set -euo pipefail

packages=(haproxy dnsmasq-base iperf3 clang llvm libbpf-dev linux-libc-dev iproute2 iputils-ping ethtool procps tshark openvswitch-switch util-linux containernetworking-plugins podman runc busybox-static prometheus curl tmux nfdump)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install the Rust toolchain (https://rustup.rs) and run again" >&2
  exit 1
fi
if command -v rustup >/dev/null; then
  for c in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c"
  done
  # The fuzz step needs cargo-fuzz (from crates.io); it builds with nightly when there
  # is one and with the stable toolchain's own sanitizer runtimes otherwise.
  if ! command -v cargo-fuzz >/dev/null; then
    cargo install cargo-fuzz --locked --quiet
  fi
fi

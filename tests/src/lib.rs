//! Helpers shared by the system tests.
//!
//! Contract: [`node`] builds a compute node (network namespaces, a real vrouter
//! process over AF_XDP) that removes itself when dropped, even when a test fails;
//! [`serial`] keeps root tests from competing for the machine's two cores.
#![forbid(unsafe_code)]

use std::sync::{Mutex, MutexGuard};
use vrouter::config::{PollMode, XdpMode};
use vrouter::lab::node::{LabNode, NodeOptions};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the machine for one system test at a time.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Fails (not skips) when not root: these tests are part of CI, which runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "system tests need root (network namespaces, XDP); run them as root, as CI does"
    );
}

/// A node with a given `[flows]` configuration.
pub fn node_with_flows(binary: &str, flows: vrouter::flows::FlowConfig) -> LabNode {
    require_root();
    LabNode::new(NodeOptions {
        binary: binary.into(),
        workers: 1,
        xdp_mode: XdpMode::Native,
        poll_mode: PollMode::Adaptive,
        flows,
        fabric_ip: std::net::Ipv4Addr::new(198, 18, 0, 1),
    })
    .expect("creating the node namespace")
}

/// Node `n` (1, 2, ...) of a multi-node setup: fabric address 198.18.0.n.
pub fn fabric_node(binary: &str, n: u8) -> LabNode {
    require_root();
    LabNode::new(NodeOptions {
        binary: binary.into(),
        workers: 1,
        xdp_mode: XdpMode::Native,
        poll_mode: PollMode::Adaptive,
        flows: vrouter::flows::FlowConfig {
            entries: 1 << 16,
            ..Default::default()
        },
        fabric_ip: std::net::Ipv4Addr::new(198, 18, 0, n),
    })
    .expect("creating the node namespace")
}

/// A node running `binary` (pass `env!("CARGO_BIN_EXE_vrouter-under-test")`).
pub fn node(binary: &str, xdp_mode: XdpMode) -> LabNode {
    require_root();
    LabNode::new(NodeOptions {
        binary: binary.into(),
        workers: 1,
        xdp_mode,
        poll_mode: PollMode::Adaptive,
        flows: vrouter::flows::FlowConfig {
            entries: 1 << 18,
            ..Default::default()
        },
        fabric_ip: std::net::Ipv4Addr::new(198, 18, 0, 1),
    })
    .expect("creating the node namespace")
}

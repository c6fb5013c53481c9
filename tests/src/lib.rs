//! Helpers shared by the system tests.
//!
//! Contract: [`node`], [`node_with_flows`] and [`fabric_node`] build compute nodes
//! (network namespaces, a real vrouter process over AF_XDP) that remove themselves
//! when dropped, even when a test fails; [`fabric_host`] adds a plain host to a fabric
//! LAN; [`serial`] keeps root tests from competing for the machine's two cores.
#![forbid(unsafe_code)]

use nexthop::encap::Encap;
use std::net::Ipv4Addr;
use std::sync::{Mutex, MutexGuard};
use vrouter::config::{PollMode, XdpMode};
use vrouter::flows::FlowConfig;
use vrouter_lab::netns::Netns;
use vrouter_lab::node::{FabricLan, LabNode, NodeOptions};

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

fn build(binary: &str, xdp_mode: XdpMode, flows: FlowConfig, fabric_last: u8) -> LabNode {
    require_root();
    LabNode::new(NodeOptions {
        binary: binary.into(),
        workers: 1,
        xdp_mode,
        poll_mode: PollMode::Adaptive,
        flows,
        fabric_ip: Ipv4Addr::new(198, 18, 0, fabric_last),
    })
    .expect("creating the node namespace")
}

/// A node running `binary` (pass `env!("CARGO_BIN_EXE_vrouter-under-test")`).
pub fn node(binary: &str, xdp_mode: XdpMode) -> LabNode {
    build(
        binary,
        xdp_mode,
        FlowConfig {
            entries: 1 << 18,
            ..Default::default()
        },
        1,
    )
}

/// A node with a given `[flows]` configuration.
pub fn node_with_flows(binary: &str, flows: FlowConfig) -> LabNode {
    build(binary, XdpMode::Native, flows, 1)
}

/// Node `n` (1, 2, ...) of a multi-node setup: fabric address 198.18.0.n.
pub fn fabric_node(binary: &str, n: u8) -> LabNode {
    build(
        binary,
        XdpMode::Native,
        FlowConfig {
            entries: 1 << 16,
            ..Default::default()
        },
        n,
    )
}

/// Node `n` of a multi-node setup with a given `[flows]` configuration.
pub fn fabric_node_with_flows(binary: &str, n: u8, flows: FlowConfig) -> LabNode {
    build(binary, XdpMode::Native, flows, n)
}

/// The `[xmpp]` section of node `n` peering with the control node at `peer`
/// (`ADDRESS:PORT`), with a short hold time so that tests see a lost peer soon.
pub fn xmpp_section(peer: &str, n: u8) -> String {
    format!("[xmpp]\nservers = [\"{peer}\"]\nhost = \"node-{n}\"\nhold_time_secs = 9")
}

/// Node `n` of a multi-node setup, peering with the control node at `peer`, on
/// `lan` and running (without pods).
pub fn peering_node(binary: &str, lan: &FabricLan, n: u8, peer: &str) -> LabNode {
    let mut node = fabric_node(binary, n);
    node.add_config(&xmpp_section(peer, n));
    node.join(lan).expect("joining the fabric");
    node.start_vrouter().expect("starting the vrouter");
    node
}

/// Two running nodes (fabric 198.18.0.1 and .2) on `lan`, without pods.
pub fn two_started_nodes(binary: &str, lan: &FabricLan) -> (LabNode, LabNode) {
    let (mut a, mut b) = (fabric_node(binary, 1), fabric_node(binary, 2));
    for n in [&mut a, &mut b] {
        n.join(lan).expect("joining the fabric");
        n.start_vrouter().expect("starting the vrouter");
    }
    (a, b)
}

/// Two running nodes (fabric 198.18.0.1 and .2) on `lan`, each with one pod in VRF
/// red (red-1 on node 1, red-2 on node 2).
pub fn two_nodes(binary: &str, lan: &FabricLan) -> (LabNode, LabNode) {
    let mut a = fabric_node(binary, 1);
    let mut b = fabric_node(binary, 2);
    for (n, index) in [(&mut a, 1), (&mut b, 2)] {
        n.join(lan).expect("joining the fabric");
        n.start_vrouter().expect("starting the vrouter");
        n.add_pod("red", 0, index, true).expect("adding a pod");
    }
    (a, b)
}

/// Gives VRF `vrf` of `node` the VXLAN network identifier `vni`.
pub fn set_vrf_vni(node: &LabNode, vrf: &str, vni: u32) {
    let _: serde_json::Value = node
        .api()
        .call(&vrouter::api::Request::SetVrfVni { vrf: vrf.into(), vni })
        .expect("setting the VRF's VNI");
}

/// A plain host on `lan` with fabric address 198.18.0.`last` (no vrouter).
pub fn fabric_host(lan: &FabricLan, last: u8) -> Netns {
    lan.add_host(last).expect("fabric host")
}

/// Points `node`'s VRF of `remote`'s pod `pod` at that pod through a tunnel with
/// `encap` (its label, or `vni` for VXLAN), replacing any route to it there.
pub fn route_to_pod(node: &LabNode, remote: &LabNode, pod: usize, encap: Encap, vni: u32) {
    node.route_to(remote, pod, encap, vni)
        .expect("routing to the remote pod");
}

/// Where the lab's control-node peer of [`control_node`] listens: host 10 of the
/// fabric.
pub const CONTROL_NODE: &str = "198.18.0.10:5269";

/// The lab's control-node peer on a host of `lan` at [`CONTROL_NODE`], and that host
/// (in that order: dropped as a pair, the peer goes before its namespace).
pub fn control_node(lan: &FabricLan, lab: &str) -> (ControlNodePeer, Netns) {
    let host = fabric_host(lan, 10);
    (ControlNodePeer::start(&host, lab, CONTROL_NODE), host)
}

/// The lab's control-node peer (XMPP) in `host`, listening on `listen`; killed when
/// dropped. `lab` is the lab binary (`env!("CARGO_BIN_EXE_vrouter-lab-under-test")`).
#[derive(Debug)]
pub struct ControlNodePeer(std::process::Child);

impl ControlNodePeer {
    /// Starts it.
    pub fn start(host: &Netns, lab: &str, listen: &str) -> Self {
        Self::start_with::<&str>(host, lab, listen, &[])
    }

    /// Starts it with further arguments (`--config-dir`, the TLS files).
    pub fn start_with<S: AsRef<std::ffi::OsStr>>(host: &Netns, lab: &str, listen: &str, args: &[S]) -> Self {
        let child = host
            .command(lab)
            .args(["control-node", "--listen", listen])
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("control-node peer");
        Self(child)
    }
}

impl Drop for ControlNodePeer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A process a test started, stopped when dropped, even when the test fails.
#[derive(Debug)]
pub struct Background(Option<std::process::Child>);

impl Background {
    /// Spawns `command`.
    pub fn spawn(command: &mut std::process::Command) -> Self {
        Self(Some(
            command.spawn().unwrap_or_else(|e| panic!("spawning {command:?}: {e}")),
        ))
    }

    /// Sends `signal` and waits up to `wait` for the exit, then kills it; the exit
    /// status if it exited by itself. Once only: later calls return `None`.
    pub fn stop_with(
        &mut self,
        signal: nix::sys::signal::Signal,
        wait: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.0.take()?;
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        let deadline = std::time::Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits up to `limit` for `done`, looking every 50 ms; how long it took, or `None`.
pub fn wait_for(limit: std::time::Duration, mut done: impl FnMut() -> bool) -> Option<std::time::Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

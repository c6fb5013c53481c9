//! The pod-to-pod paths the TCP benchmark compares, each built in namespaces of its
//! own for one measurement and removed when dropped: this vrouter on one node and
//! across two (MPLSoUDP, VXLAN), the Linux kernel's routed veth per pod (what Calico-
//! and Cilium-style CNIs give, offloads on as users run it) on one node and with
//! its VXLAN device across two, and Open vSwitch's userspace datapath with AF_XDP
//! ports on one node.

use crate::bench::ovs::{self, OpenVswitch};
use crate::node::{FabricLan, LabNode, NodeOptions, Pod, FABRIC_IF};
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::net::Ipv4Addr;
use std::path::Path;
use vrouter::config::{PollMode, XdpMode};

/// The VNI of the pods' network across nodes.
const VNI: u32 = 100;
/// The fabric's MTU: a pod's 1500-byte packet plus any tunnel header.
const FABRIC_MTU: &str = "1600";
/// The fabric's MTU under jumbo pods.
const JUMBO_FABRIC_MTU: &str = "9100";
/// The MAC the OVS path routes with (the pods' gateway).
const OVS_GATEWAY_MAC: &str = "02:00:00:00:0f:01";

/// The pods' MTU on the jumbo path.
pub const JUMBO_MTU: u16 = 9000;

/// A path between two pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TcpPath {
    /// Both pods on one node, this vrouter between them.
    Vrouter,
    /// Both pods on one node with a 9000-byte MTU, this vrouter between them (each
    /// frame a chain of three UMEM chunks).
    VrouterJumbo,
    /// Both pods on one node, this vrouter between them without transmit checksum
    /// offload (`dataplane.tx_checksum_offload = false`): the pods compute their
    /// checksums in software, as on a kernel before 6.11.
    VrouterChecksumsInPods,
    /// Both pods on one node, the kernel routing between their veths.
    Kernel,
    /// Both pods on one node, Open vSwitch (userspace datapath, AF_XDP ports).
    Ovs,
    /// Pods on two nodes, vrouters with MPLS over UDP between them.
    VrouterMplsoudp,
    /// Pods on two nodes, vrouters with VXLAN.
    VrouterVxlan,
    /// Pods on two nodes with a 9000-byte MTU over a fabric that carries it, vrouters
    /// with MPLS over UDP.
    VrouterJumboMplsoudp,
    /// Pods on two nodes, the kernel routing into its VXLAN device.
    KernelVxlan,
}

impl TcpPath {
    /// Its name on the command line and in the table.
    pub fn name(self) -> &'static str {
        match self {
            TcpPath::Vrouter => "vrouter",
            TcpPath::VrouterJumbo => "vrouter-jumbo",
            TcpPath::VrouterChecksumsInPods => "vrouter-checksums-in-pods",
            TcpPath::Kernel => "kernel",
            TcpPath::Ovs => "ovs",
            TcpPath::VrouterMplsoudp => "vrouter-mplsoudp",
            TcpPath::VrouterVxlan => "vrouter-vxlan",
            TcpPath::VrouterJumboMplsoudp => "vrouter-jumbo-mplsoudp",
            TcpPath::KernelVxlan => "kernel-vxlan",
        }
    }

    /// True if the pods are on two nodes.
    pub fn across_nodes(self) -> bool {
        matches!(
            self,
            TcpPath::VrouterMplsoudp | TcpPath::VrouterVxlan | TcpPath::VrouterJumboMplsoudp | TcpPath::KernelVxlan
        )
    }

    /// The kernel path this one is compared with (itself for a kernel path).
    pub fn kernel_peer(self) -> TcpPath {
        if self.across_nodes() {
            TcpPath::KernelVxlan
        } else {
            TcpPath::Kernel
        }
    }
}

/// A built path. Fields drop in order: the switch before the nodes, the nodes
/// before the fabric.
#[derive(Debug)]
pub struct Built {
    _ovs: Option<OpenVswitch>,
    nodes: Vec<LabNode>,
    _lan: Option<FabricLan>,
}

impl Built {
    fn one_node(node: LabNode, ovs: Option<OpenVswitch>) -> Built {
        Built {
            _ovs: ovs,
            nodes: vec![node],
            _lan: None,
        }
    }

    /// The client pod and the server pod.
    pub fn pods(&self) -> (&Pod, &Pod) {
        match self.nodes.as_slice() {
            [one] => (&one.pods[0], &one.pods[1]),
            [a, b, ..] => (&a.pods[0], &b.pods[0]),
            [] => unreachable!("a path has a node"),
        }
    }

    /// The vrouters' logs (what to look at when a path does not work).
    pub fn logs(&self) -> String {
        self.nodes.iter().map(LabNode::log).collect::<Vec<_>>().join("\n")
    }
}

fn options(binary: &Path, fabric_last: u8, poll_mode: PollMode) -> NodeOptions {
    NodeOptions {
        binary: binary.to_path_buf(),
        workers: 1,
        xdp_mode: XdpMode::Native,
        poll_mode,
        flows: vrouter::flows::FlowConfig {
            entries: 1 << 18,
            ..Default::default()
        },
        fabric_ip: Ipv4Addr::new(198, 18, 0, fabric_last),
    }
}

/// Builds `path` with the vrouter `binary`.
pub fn build(path: TcpPath, binary: &Path, poll_mode: PollMode) -> anyhow::Result<Built> {
    let one = |n| LabNode::new(options(binary, n, poll_mode));
    let built = match path {
        TcpPath::Vrouter | TcpPath::VrouterChecksumsInPods => {
            let mut node = one(1)?;
            node.set_checksum_offload(path == TcpPath::Vrouter);
            node.start_vrouter()?;
            node.add_pod("red", 0, 1, true)?;
            node.add_pod("red", 0, 2, true)?;
            Built::one_node(node, None)
        }
        TcpPath::VrouterJumbo => {
            let mut node = one(1)?;
            node.start_vrouter()?;
            for i in 0..2 {
                node.add_pod("red", 0, i + 1, false)?;
                node.set_pod_mtu(usize::from(i), JUMBO_MTU)?;
                node.attach(usize::from(i))?;
            }
            Built::one_node(node, None)
        }
        TcpPath::Kernel => {
            let mut node = one(1)?;
            kernel_pods(&mut node, &[1, 2])?;
            Built::one_node(node, None)
        }
        TcpPath::Ovs => {
            let mut node = one(1)?;
            let switch = open_vswitch(&mut node)?;
            Built::one_node(node, Some(switch))
        }
        TcpPath::VrouterMplsoudp | TcpPath::VrouterVxlan | TcpPath::VrouterJumboMplsoudp => {
            let encap = if path == TcpPath::VrouterVxlan {
                Encap::Vxlan
            } else {
                Encap::MplsOverUdp
            };
            let jumbo = path == TcpPath::VrouterJumboMplsoudp;
            let (fabric_mtu, pod_mtu) = if jumbo {
                (JUMBO_FABRIC_MTU, Some(JUMBO_MTU))
            } else {
                (FABRIC_MTU, None)
            };
            let lan = FabricLan::new()?;
            let (mut a, mut b) = (one(1)?, one(2)?);
            // The two nodes' workers on cores of their own, as on two machines
            // (sharing one, each would wait out the other's spinning).
            if let [first, .., last] = vrouter::run::available_cores()[..] {
                a.set_forwarding_cores(&[last]);
                b.set_forwarding_cores(&[first]);
            }
            for (n, index) in [(&mut a, 1), (&mut b, 2)] {
                join(n, &lan, fabric_mtu)?;
                n.start_vrouter()?;
                n.add_pod("red", 0, index, pod_mtu.is_none())?;
                if let Some(mtu) = pod_mtu {
                    n.set_pod_mtu(0, mtu)?;
                    n.attach(0)?;
                }
                if encap == Encap::Vxlan {
                    let _: serde_json::Value = n.api().call(&vrouter::api::Request::SetVrfVni {
                        vrf: "red".into(),
                        vni: VNI,
                    })?;
                }
            }
            a.route_to(&b, 0, encap, VNI)?;
            b.route_to(&a, 0, encap, VNI)?;
            Built {
                _ovs: None,
                nodes: vec![a, b],
                _lan: Some(lan),
            }
        }
        TcpPath::KernelVxlan => {
            let lan = FabricLan::new()?;
            let (mut a, mut b) = (one(1)?, one(2)?);
            for (n, index) in [(&mut a, 1), (&mut b, 2)] {
                join(n, &lan, FABRIC_MTU)?;
                kernel_pods(n, &[index])?;
                vxlan_device(n)?;
            }
            kernel_vxlan_route(&a, &b)?;
            kernel_vxlan_route(&b, &a)?;
            Built {
                _ovs: None,
                nodes: vec![a, b],
                _lan: Some(lan),
            }
        }
    };
    Ok(built)
}

/// Joins `node` to the fabric with room for tunnel headers.
fn join(node: &LabNode, lan: &FabricLan, mtu: &str) -> anyhow::Result<()> {
    node.join(lan)?;
    node.ns.ip(&["link", "set", "dev", FABRIC_IF, "mtu", mtu])?;
    lan.ns.ip(&["link", "set", "dev", &node.lan_port(), "mtu", mtu])?;
    Ok(())
}

/// Pods the kernel routes for, as a routed-veth CNI sets them up: forwarding on,
/// a host route to each pod through its host end, which answers ARP for what it
/// routes elsewhere (proxy ARP) and for the gateway, the pods' offloads as a veth
/// has them (the lab's pods change them for AF_XDP).
fn kernel_pods(node: &mut LabNode, indexes: &[u8]) -> anyhow::Result<()> {
    node.ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
    node.ns.ip(&["addr", "add", "198.18.1.1/32", "dev", "lo"])?;
    for index in indexes {
        let pod = node.add_pod("red", 0, *index, false)?;
        pod.ns.exec(
            "ethtool",
            &["-K", "eth0", "tx", "on", "tso", "on", "gso", "on", "gro", "off"],
        )?;
        let (host_if, route) = (pod.host_if.clone(), format!("{}/32", pod.ipv4));
        node.ns
            .exec("sysctl", &["-qw", &format!("net.ipv4.conf.{host_if}.proxy_arp=1")])?;
        node.ns.ip(&["route", "add", &route, "dev", &host_if])?;
    }
    Ok(())
}

/// The kernel's VXLAN device `vxlan0` on `node`, with its transit address
/// 198.18.3.N (N: the node's fabric address) and a MAC made from it.
fn vxlan_device(node: &LabNode) -> anyhow::Result<()> {
    let n = node.fabric_ip().octets()[3];
    let ns = &node.ns;
    crate::bench::devices::add_vxlan_device(ns, VNI, node.fabric_ip())?;
    ns.ip(&["link", "set", "vxlan0", "address", &vxlan_mac(n), "mtu", "1550", "up"])?;
    ns.ip(&["addr", "add", &format!("198.18.3.{n}/24"), "dev", "vxlan0"])?;
    Ok(())
}

fn vxlan_mac(n: u8) -> String {
    format!("02:00:00:00:03:{n:02x}")
}

/// On `from`, the route to `to`'s pod through `to`'s VXLAN device.
fn kernel_vxlan_route(from: &LabNode, to: &LabNode) -> anyhow::Result<()> {
    let n = to.fabric_ip().octets()[3];
    let (mac, transit) = (vxlan_mac(n), format!("198.18.3.{n}"));
    let ns = &from.ns;
    ns.ip(&[
        "neigh",
        "add",
        &transit,
        "lladdr",
        &mac,
        "dev",
        "vxlan0",
        "nud",
        "permanent",
    ])?;
    ns.exec(
        "bridge",
        &[
            "fdb",
            "append",
            &mac,
            "dev",
            "vxlan0",
            "dst",
            &to.fabric_ip().to_string(),
        ],
    )?;
    let pod = format!("{}/32", to.pods[0].ipv4);
    ns.ip(&["route", "add", &pod, "via", &transit, "dev", "vxlan0"])?;
    Ok(())
}

/// Open vSwitch routing between two pods' AF_XDP ports: per destination, TTL and
/// MACs rewritten and out of the pod's port (the pods know the gateway MAC for each
/// other's address: the switch answers no ARP). Its polling thread takes the core a
/// vrouter worker would.
fn open_vswitch(node: &mut LabNode) -> anyhow::Result<OpenVswitch> {
    anyhow::ensure!(
        ovs::installed(),
        "Open vSwitch is not installed (scripts/setup.sh installs openvswitch-switch)"
    );
    node.add_pod("red", 0, 1, false)?;
    node.add_pod("red", 0, 2, false)?;
    let switch = OpenVswitch::start(&node.ns, crate::bench::devices::forwarding_core())?;
    switch.vsctl(&[
        "add-br",
        "br-int",
        "--",
        "set",
        "bridge",
        "br-int",
        "datapath_type=netdev",
    ])?;
    for pod in &node.pods {
        switch.add_afxdp_port("br-int", &pod.host_if)?;
    }
    switch.ofctl("del-flows", "br-int", &[])?;
    for (i, pod) in node.pods.iter().enumerate() {
        let other = &node.pods[1 - i];
        other.ns.ip(&[
            "neigh",
            "replace",
            &pod.ipv4.to_string(),
            "lladdr",
            OVS_GATEWAY_MAC,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
        let mac: MacAddr = pod.mac;
        switch.ofctl(
            "add-flow",
            "br-int",
            &[&format!(
                "ip,nw_dst={},actions=dec_ttl,mod_dl_src:{OVS_GATEWAY_MAC},mod_dl_dst:{mac},output:{}",
                pod.ipv4, pod.host_if
            )],
        )?;
    }
    Ok(switch)
}

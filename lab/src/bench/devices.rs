//! The devices under test, each built in its own namespaces for one case: a pod
//! namespace (the generator's side), the node namespace holding the device, a fabric
//! bridge and a sink host with one address per ECMP member.

use super::ovs::OpenVswitch;
use super::{Case, Device};
use crate::netns::Netns;
use crate::node::{FabricLan, LabNode, NodeOptions, FABRIC_IF};
use control_client::{RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use vrouter::config::{PollMode, XdpMode};

/// The remote pod the streams go to, behind the sink host, per family.
pub const REMOTE_POD4: &str = "198.18.2.2";
/// IPv6 counterpart of [`REMOTE_POD4`].
pub const REMOTE_POD6: &str = "2001:2:0:2::2";
const REMOTE_PREFIXES: [&str; 2] = ["198.18.2.0/24", "2001:2:0:2::/64"];
/// The vrouter's gateway MAC (what pods send to).
const VROUTER_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, 0x00]);
/// The fabric's MTU.
const FABRIC_MTU: &str = "1600";
/// VNI (VXLAN) and label (MPLS) of the remote VRF.
const VNI: u32 = 100;
const LABEL: u32 = 40;

/// The sink host's fabric address ends in this (198.18.0.2).
const SINK_HOST: u8 = 2;

/// Tunnel endpoint of ECMP member `k` (the sink host answers on all of them).
fn member_ip(k: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 18, 0, SINK_HOST + k)
}

/// A device built for a case. Fields drop in order: the switch before the node, the
/// node before the fabric.
pub struct Dut {
    /// The device.
    pub device: Device,
    ovs: Option<OpenVswitch>,
    /// The node namespace (and the vrouter, when it is one).
    pub node: LabNode,
    /// The sink host, behind the tunnel endpoints.
    pub sink_host: Netns,
    _lan: FabricLan,
    /// Where the generator sends its frames.
    pub dst_mac: MacAddr,
}

/// The forwarding core: the highest, where the vrouter pins its worker.
pub fn forwarding_core() -> usize {
    vrouter::run::available_cores().last().copied().unwrap_or(0)
}

pub(super) fn read_mac(ns: &Netns, ifname: &str) -> anyhow::Result<MacAddr> {
    String::from_utf8_lossy(&ns.exec("cat", &[&format!("/sys/class/net/{ifname}/address")])?.stdout)
        .trim()
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))
}

impl Dut {
    /// Builds `device` for `case` and waits until its tunnels are resolved.
    pub fn build(binary: &std::path::Path, device: Device, case: &Case) -> anyhow::Result<Dut> {
        let lan = FabricLan::new()?;
        let sink_host = lan.add_host(SINK_HOST)?;
        for k in 1..case.ecmp {
            sink_host.ip(&["addr", "add", &format!("{}/24", member_ip(k)), "dev", "eth0"])?;
        }
        let mut node = LabNode::new(NodeOptions {
            binary: binary.to_path_buf(),
            workers: 1,
            xdp_mode: XdpMode::Native,
            poll_mode: PollMode::Busy,
            flows: vrouter::flows::FlowConfig {
                // Room for 1M flows in each direction, all from the generator's pod.
                entries: 1 << 22,
                max_per_interface: Some(0),
                ..Default::default()
            },
            fabric_ip: Ipv4Addr::new(198, 18, 0, 1),
        })?;
        node.join(&lan)?;
        // Room for a 1500-byte frame plus any tunnel header, as fabrics are set up, so
        // that IMIX's large frames cross without fragments.
        for (ns, ifname) in [
            (&node.ns, FABRIC_IF.to_string()),
            (&lan.ns, node.lan_port()),
            (&lan.ns, FabricLan::host_port(SINK_HOST)),
            (&sink_host, "eth0".to_string()),
        ] {
            ns.ip(&["link", "set", "dev", &ifname, "mtu", FABRIC_MTU])?;
        }
        let mut ovs = None;
        let dst_mac = match device {
            Device::VrouterMplsoudp | Device::VrouterMplsogre | Device::VrouterVxlan => {
                let encap = device.vrouter_encap().expect("a vrouter device");
                vrouter(&mut node, encap, case.ecmp)?
            }
            Device::Minimal => {
                node.add_pod("red", 0, 1, false)?;
                read_mac(&node.ns, &node.pods[0].host_if)?
            }
            Device::Kernel => kernel(&mut node, case.ecmp)?,
            Device::Ovs => {
                let (switch, mac) = open_vswitch(&mut node, &sink_host, case.ecmp)?;
                ovs = Some(switch);
                mac
            }
        };
        let dut = Dut {
            device,
            ovs,
            node,
            sink_host,
            _lan: lan,
            dst_mac,
        };
        dut.resolve_tunnels(case.ecmp)?;
        Ok(dut)
    }

    /// The Open vSwitch instance, when it is the device.
    pub fn ovs(&self) -> Option<&OpenVswitch> {
        self.ovs.as_ref()
    }

    /// The generator's source and destination MACs.
    pub fn macs(&self) -> (MacAddr, MacAddr) {
        (self.node.pods[0].mac, self.dst_mac)
    }

    /// The pod's address and the remote pod's, of `v6`'s family.
    pub fn addresses(&self, v6: bool) -> (IpAddr, IpAddr) {
        let pod = &self.node.pods[0];
        if v6 {
            (pod.ipv6.into(), REMOTE_POD6.parse().expect("literal"))
        } else {
            (pod.ipv4.into(), REMOTE_POD4.parse().expect("literal"))
        }
    }

    /// Resolves the tunnel endpoints before measuring: the kernel learns their MACs
    /// from a ping, a vrouter solicits them itself (waited for here).
    fn resolve_tunnels(&self, members: u8) -> anyhow::Result<()> {
        for k in 0..members {
            let ip = member_ip(k).to_string();
            self.node
                .ns
                .succeeds("ping", &["-c", "1", "-w", "3", "-W", "1", "-q", &ip]);
        }
        if self.device.vrouter_encap().is_some() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let nhs: Vec<vrouter::api::NextHopView> = self.node.api().call(&vrouter::api::Request::NextHops)?;
                let resolved = nhs
                    .iter()
                    .filter(
                        |h| matches!(h.nexthop, nexthop::NextHop::Tunnel { outer_mac, .. } if outer_mac.0 != [0; 6]),
                    )
                    .count();
                if resolved >= usize::from(members) {
                    return Ok(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{resolved} of {members} tunnels resolved after 10 s"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }
}

/// A vrouter with one pod; routes to the remote pod's prefixes over `members`
/// tunnels (ECMP when more than one).
fn vrouter(node: &mut LabNode, encap: Encap, members: u8) -> anyhow::Result<MacAddr> {
    node.start_vrouter()?;
    node.add_pod("red", 0, 1, false)?;
    // The generator varies its source address past 60,000 flows.
    node.allow_subnet_sources(0)?;
    node.attach(0)?;
    let api = node.api();
    let _: serde_json::Value = api.call(&vrouter::api::Request::SetVrfVni {
        vrf: "red".into(),
        vni: VNI,
    })?;
    let label = if encap == Encap::Vxlan { VNI } else { LABEL };
    let tunnel = |k: u8| RouteTarget::Tunnel {
        remote: member_ip(k),
        label,
        encaps: vec![encap],
        mac: None,
    };
    let target = if members <= 1 {
        tunnel(0)
    } else {
        RouteTarget::Ecmp {
            members: (0..members).map(tunnel).collect(),
        }
    };
    for prefix in REMOTE_PREFIXES {
        let route = RouteSpec {
            vrf: "red".into(),
            prefix: prefix.parse()?,
            target: target.clone(),
        };
        let _: serde_json::Value = api.call(&vrouter::api::Request::AddRoute { route })?;
    }
    Ok(VROUTER_MAC)
}

/// The Linux kernel routing into a `vxlan` device: one neighbour per member behind
/// its own tunnel endpoint (forwarding database entries), multipath routes hashing
/// on the 5-tuple.
fn kernel(node: &mut LabNode, members: u8) -> anyhow::Result<MacAddr> {
    node.add_pod("red", 0, 1, false)?;
    let host_if = node.pods[0].host_if.clone();
    let ns = &node.ns;
    for sysctl in [
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.fib_multipath_hash_policy=1",
        "net.ipv6.fib_multipath_hash_policy=1",
        &format!("net.ipv6.conf.{host_if}.disable_ipv6=0"),
    ] {
        ns.exec("sysctl", &["-qw", sysctl])?;
    }
    ns.ip(&["addr", "add", "198.18.1.1/24", "dev", &host_if])?;
    ns.ip(&["-6", "addr", "add", "2001:2:0:1::1/64", "dev", &host_if, "nodad"])?;
    add_vxlan_device(ns, VNI, Ipv4Addr::new(198, 18, 0, 1))?;
    ns.ip(&["addr", "add", "198.18.3.1/24", "dev", "vxlan0"])?;
    ns.ip(&["-6", "addr", "add", "2001:2:0:3::1/64", "dev", "vxlan0", "nodad"])?;
    ns.ip(&["link", "set", "vxlan0", "up"])?;
    let (mut via4, mut via6) = (Vec::new(), Vec::new());
    for k in 0..members {
        let mac = format!("02:00:00:00:03:{:02x}", 2 + k);
        let (n4, n6) = (format!("198.18.3.{}", 2 + k), format!("2001:2:0:3::{}", 2 + k));
        for n in [&n4, &n6] {
            ns.ip(&["neigh", "add", n, "lladdr", &mac, "dev", "vxlan0", "nud", "permanent"])?;
        }
        let remote = member_ip(k).to_string();
        ns.exec("bridge", &["fdb", "append", &mac, "dev", "vxlan0", "dst", &remote])?;
        via4.push(n4);
        via6.push(n6);
    }
    for (family, prefix, via) in [("-4", REMOTE_PREFIXES[0], via4), ("-6", REMOTE_PREFIXES[1], via6)] {
        let mut args = vec![family, "route", "add", prefix];
        if via.len() == 1 {
            args.extend(["via", via[0].as_str(), "dev", "vxlan0"]);
        } else {
            for v in &via {
                args.extend(["nexthop", "via", v.as_str(), "dev", "vxlan0"]);
            }
        }
        ns.ip(&args)?;
    }
    read_mac(ns, &host_if)
}

/// The kernel's VXLAN device `vxlan0` in `ns` for `vni`, from `local` over the
/// fabric interface, forwarding by static entries only (no learning).
pub(crate) fn add_vxlan_device(ns: &Netns, vni: u32, local: Ipv4Addr) -> anyhow::Result<()> {
    let (vni, local) = (vni.to_string(), local.to_string());
    ns.ip(&[
        "link",
        "add",
        "vxlan0",
        "type",
        "vxlan",
        "id",
        &vni,
        "local",
        &local,
        "dstport",
        "4789",
        "nolearning",
        "dev",
        FABRIC_IF,
    ])?;
    Ok(())
}

/// Open vSwitch's userspace datapath: `br-int` with the pod's AF_XDP port and one
/// VXLAN port per member (a select group over them for ECMP), `br-phy` with the
/// fabric's AF_XDP port and the tunnel source address; OpenFlow rules route (TTL,
/// MACs) and encapsulate as the vrouter does.
fn open_vswitch(node: &mut LabNode, sink_host: &Netns, members: u8) -> anyhow::Result<(OpenVswitch, MacAddr)> {
    anyhow::ensure!(
        super::ovs::installed(),
        "Open vSwitch is not installed (scripts/setup.sh installs openvswitch-switch)"
    );
    node.add_pod("red", 0, 1, false)?;
    let host_if = node.pods[0].host_if.clone();
    let ns = &node.ns;
    let ovs = OpenVswitch::start(ns, forwarding_core())?;
    for bridge in ["br-phy", "br-int"] {
        ovs.vsctl(&["add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev"])?;
    }
    // The tunnel source address moves from the fabric interface to br-phy.
    ns.ip(&["addr", "flush", "dev", FABRIC_IF])?;
    ovs.add_afxdp_port("br-phy", FABRIC_IF)?;
    ovs.add_afxdp_port("br-int", &host_if)?;
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "br-phy"])?;
    ns.ip(&["link", "set", "br-phy", "up"])?;
    let sink_mac = read_mac(sink_host, "eth0")?.to_string();
    let key = VNI.to_string();
    for k in 0..members {
        let (port, remote) = (format!("vx{k}"), member_ip(k).to_string());
        ovs.vsctl(&[
            "add-port",
            "br-int",
            &port,
            "--",
            "set",
            "interface",
            &port,
            "type=vxlan",
            &format!("options:remote_ip={remote}"),
            &format!("options:key={key}"),
        ])?;
        ovs.appctl(&["tnl/neigh/set", "br-phy", &remote, &sink_mac])?;
    }
    let output = if members <= 1 {
        "output:vx0".to_string()
    } else {
        let buckets: Vec<String> = (0..members).map(|k| format!("bucket=actions=output:vx{k}")).collect();
        ovs.ofctl(
            "add-group",
            "br-int",
            &[&format!(
                "group_id=1,type=select,selection_method=hash,fields(ip_src,ip_dst,ipv6_src,ipv6_dst,tcp_src,tcp_dst,udp_src,udp_dst),{}",
                buckets.join(",")
            )],
        )?;
        "group:1".to_string()
    };
    ovs.ofctl("del-flows", "br-int", &[])?;
    for family in ["ip", "ipv6"] {
        ovs.ofctl(
            "add-flow",
            "br-int",
            &[&format!(
                "{family},in_port={host_if},actions=dec_ttl,mod_dl_src:02:00:00:00:03:01,mod_dl_dst:02:00:00:00:03:02,{output}"
            )],
        )?;
    }
    let mac = read_mac(ns, &host_if)?;
    Ok((ovs, mac))
}

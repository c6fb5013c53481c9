//! The node every packet target runs against: two pods in VRF red (one with an
//! allowed address pair and a small MTU), a blue pod, a VNI, a tunnel route, an ECMP
//! route and a route to a pod; the node's interface with source NAT, and a service
//! with a node port, an external IP and client affinity.

use control_client::{DesiredState, InterfaceSpec, RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use nexthop::{FabricInfo, MacAddr, Snapshot};
use std::sync::OnceLock;
use vrouter::packet::{process, PacketBuf, PipelineContext};

pub fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let mut s = DesiredState::new(16);
        s.set_fabric("fabric0");
        s.set_fabric_info(FabricInfo {
            ip: Some([198, 18, 0, 1].into()),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            mtu: 1500,
        });
        for (name, vrf, last) in [("a", "red", 2u8), ("b", "red", 3u8), ("c", "blue", 2u8)] {
            s.add_interface(InterfaceSpec {
                name: name.into(),
                vrf: vrf.into(),
                mac: MacAddr([2, 0, 0, 0, 1, last]),
                ipv4: Some([198, 18, 1, last].into()),
                ipv6: Some(format!("2001:2:0:1::{last}").parse().unwrap()),
                gateway4: Some([198, 18, 1, 1].into()),
                gateway6: Some("2001:2:0:1::1".parse().unwrap()),
                allowed_address_pairs: if name == "a" { vec!["198.18.9.0/24".parse().unwrap()] } else { Vec::new() },
                mtu: if name == "b" { Some(1280) } else { None },
                vlan: None,
                security_groups: Vec::new(),
                local_preference: None,
            })
            .unwrap();
        }
        // Nested mode: pod "a.7" behind VLAN 7 on port a, in VRF blue.
        s.add_interface(InterfaceSpec {
            name: "a.7".into(),
            vrf: "blue".into(),
            mac: MacAddr([2, 0, 0, 0, 1, 9]),
            ipv4: Some([198, 18, 3, 2].into()),
            gateway4: Some([198, 18, 3, 1].into()),
            vlan: Some(control_client::VlanSpec { parent: "a".into(), id: 7 }),
            ..InterfaceSpec::default()
        })
        .unwrap();
        // The node's interface in red, with source NAT, and a service with a node
        // port and an external IP: frames on the fabric that are no tunnel take the
        // native path.
        s.set_host_interface("vhost0-vr");
        s.set_snat(
            "red",
            nexthop::SnatRanges {
                tcp: nexthop::PortRange { first: 57_000, last: 57_099 },
                udp: nexthop::PortRange { first: 61_000, last: 61_099 },
                icmp: nexthop::PortRange { first: 61_000, last: 61_099 },
            },
        );
        s.add_interface(InterfaceSpec {
            name: "vhost0-vr".into(),
            vrf: "red".into(),
            mac: MacAddr([2, 0, 0, 0, 1, 0x4f]),
            ipv4: Some([198, 18, 0, 1].into()),
            gateway4: Some([169, 254, 0, 1].into()),
            ..InterfaceSpec::default()
        })
        .unwrap();
        s.add_service(control_client::ServiceSpec {
            name: "default/web".into(),
            vrf: "red".into(),
            ip: [198, 18, 100, 10].into(),
            ports: vec![control_client::ServicePort {
                protocol: control_client::L4Protocol::Tcp,
                port: 80,
                target_port: 9376,
                node_port: Some(30080),
            }],
            backends: vec![[198, 18, 1, 3].into()],
            affinity_timeout_secs: Some(60),
            external_ips: vec![[198, 18, 200, 10].into()],
            health_check: None,
            load_balancer: false,
        })
        .unwrap();
        s.set_vrf_vni("red", 4100).unwrap();
        let tunnel = |label| RouteTarget::Tunnel {
            remote: [198, 18, 0, 2].into(),
            label,
            encaps: vec![Encap::MplsOverUdp],
            mac: None,
        };
        let routes = [
            ("198.18.2.0/24", tunnel(17)),
            ("198.19.0.0/16", RouteTarget::Ecmp { members: vec![tunnel(18), RouteTarget::Interface { name: "b".into() }] }),
            ("198.20.0.0/16", RouteTarget::Interface { name: "a".into() }),
            ("198.21.0.0/16", RouteTarget::Discard),
        ];
        for (prefix, target) in routes {
            s.add_route(RouteSpec { vrf: "red".into(), prefix: prefix.parse().unwrap(), target }).unwrap();
        }
        s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]))
    })
}

/// Runs `data` as a frame received on `vif` through the whole pipeline.
pub fn run_frame(vif: u32, data: &[u8], ctx: &mut PipelineContext) {
    let mut buf = vec![0u8; 4096];
    let len = data.len().min(4096 - 256);
    buf[256..256 + len].copy_from_slice(&data[..len]);
    let Some(mut pkt) = PacketBuf::new(&mut buf, 256, len) else { return };
    let _ = process(snapshot(), nexthop::Vif(vif), &mut pkt, ctx);
    assert!(pkt.start() + pkt.len() <= 4096);
}

//! Two compute nodes on one fabric LAN, a pod on each in one VRF: ping (IPv4 and
//! IPv6) and a 10 MB TCP transfer cross the fabric with each of MPLS over UDP, MPLS
//! over GRE and VXLAN; unknown labels and VNIs are counted drops.

use control_client::{RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use std::net::IpAddr;
use system_tests::{fabric_node, serial};
use vrouter::api::Request;
use vrouter::lab::node::{FabricLan, LabNode};
use vrouter::lab::traffic::{ping, tcp_transfer};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// Points `node`'s VRF red at `remote`'s pod through a tunnel with `encap`.
fn route_to(node: &LabNode, remote: &LabNode, encap: Encap, vni: u32) {
    let pod = &remote.pods[0];
    let vif = remote
        .interfaces()
        .unwrap()
        .into_iter()
        .find(|i| i.name == pod.host_if)
        .unwrap()
        .vif;
    let label = if encap == Encap::Vxlan {
        vni
    } else {
        control_client::label_of(vif)
    };
    let remote_ip = std::net::Ipv4Addr::new(
        198,
        18,
        0,
        if remote.ns.name() == node.ns.name() {
            0
        } else {
            remote.fabric_ip().octets()[3]
        },
    );
    let api = node.api();
    for prefix in [format!("{}/32", pod.ipv4), format!("{}/128", pod.ipv6)] {
        let _ = api.call::<serde_json::Value>(&Request::RemoveRoute {
            vrf: "red".into(),
            prefix: prefix.parse().unwrap(),
        });
        let target = RouteTarget::Tunnel {
            remote: remote_ip,
            label,
            encaps: vec![encap],
            mac: None,
        };
        let _: serde_json::Value = api
            .call(&Request::AddRoute {
                route: RouteSpec {
                    vrf: "red".into(),
                    prefix: prefix.parse().unwrap(),
                    target,
                },
            })
            .unwrap();
    }
}

fn report(n: &LabNode) -> String {
    let drops = n
        .drop_stats()
        .map(|d| d.reasons.into_iter().filter(|(_, c)| *c > 0).collect::<Vec<_>>());
    let nhs = n.api().call::<serde_json::Value>(&Request::NextHops);
    let vifs = n
        .interfaces()
        .map(|v| v.into_iter().map(|i| (i.name, i.counters)).collect::<Vec<_>>());
    let arp =
        n.ns.exec("cat", &["/proc/net/arp"])
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    format!(
        "node {}: drops {drops:?}\nnexthops {nhs:?}\nvifs {vifs:?}\narp {arp:?}\nlog {}",
        n.ns.name(),
        n.log()
    )
}

#[test]
fn pods_on_two_nodes_talk_over_every_encapsulation() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let mut a = fabric_node(BIN, 1);
    let mut b = fabric_node(BIN, 2);
    a.join(&lan).unwrap();
    b.join(&lan).unwrap();
    a.start_vrouter().unwrap();
    b.start_vrouter().unwrap();
    a.add_pod("red", 0, 1, true).unwrap();
    b.add_pod("red", 0, 2, true).unwrap();
    for n in [&a, &b] {
        let _: serde_json::Value = n
            .api()
            .call(&Request::SetVrfVni {
                vrf: "red".into(),
                vni: 4100,
            })
            .unwrap();
    }
    for encap in [Encap::MplsOverUdp, Encap::MplsOverGre, Encap::Vxlan] {
        route_to(&a, &b, encap, 4100);
        route_to(&b, &a, encap, 4100);
        let (pa, pb) = (&a.pods[0], &b.pods[0]);
        for dst in [IpAddr::from(pb.ipv4), IpAddr::from(pb.ipv6)] {
            assert!(
                ping(pa, dst, 8),
                "{encap:?}: node 1 pod cannot ping node 2 pod at {dst}\n{}\n{}",
                report(&a),
                report(&b)
            );
        }
        assert!(ping(pb, pa.ipv4.into(), 3), "{encap:?}: back direction");
        let t = tcp_transfer(pa, pb, pb.ipv4.into(), 10_000_000).unwrap();
        assert!(t.intact && t.bytes == 10_000_000, "{encap:?}: TCP damaged: {t:?}");
    }
    let drops = b.drop_stats().unwrap();
    assert_eq!(
        drops.get("invalid_label") + drops.get("invalid_vni") + drops.get("bad_tunnel"),
        0,
        "{drops:?}"
    );
    // A label nobody owns is a counted drop on the receiving node.
    let pod = &b.pods[0];
    let _ = a.api().call::<serde_json::Value>(&Request::RemoveRoute {
        vrf: "red".into(),
        prefix: format!("{}/32", pod.ipv4).parse().unwrap(),
    });
    let target = RouteTarget::Tunnel {
        remote: std::net::Ipv4Addr::new(198, 18, 0, 2),
        label: 999,
        encaps: vec![Encap::MplsOverUdp],
        mac: None,
    };
    let _: serde_json::Value = a
        .api()
        .call(&Request::AddRoute {
            route: RouteSpec {
                vrf: "red".into(),
                prefix: format!("{}/32", pod.ipv4).parse().unwrap(),
                target,
            },
        })
        .unwrap();
    assert!(!ping(&a.pods[0], pod.ipv4.into(), 1));
    assert!(b.drop_stats().unwrap().get("invalid_label") > 0);
}

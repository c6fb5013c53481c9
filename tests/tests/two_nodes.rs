//! Two compute nodes on one fabric LAN, a pod on each in one VRF: ping (IPv4 and
//! IPv6) and a 10 MB TCP transfer cross the fabric with each of MPLS over UDP, MPLS
//! over GRE and VXLAN; unknown labels and VNIs are counted drops.

use control_client::{RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use std::net::IpAddr;
use system_tests::{fabric_host, fabric_node, route_to_pod, serial, set_vrf_vni, two_nodes};
use vrouter::api::Request;
use vrouter_lab::node::{FabricLan, LabNode};
use vrouter_lab::traffic::{ping, tcp_transfer, udp_datagram};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// Points `node`'s VRF red at `remote`'s first pod through a tunnel with `encap`.
fn route_to(node: &LabNode, remote: &LabNode, encap: Encap, vni: u32) {
    route_to_pod(node, remote, 0, encap, vni);
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
    let (a, b) = two_nodes(BIN, &lan);
    for n in [&a, &b] {
        set_vrf_vni(n, "red", 4100);
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
        // The pod's kernel cuts a 3000-byte datagram into 1500-byte fragments without
        // DF; with tunnel headers they exceed the fabric MTU, so the vrouter cuts again.
        assert!(
            udp_datagram(pa, pb, pb.ipv4.into(), 7100, 7101, 3000).unwrap(),
            "{encap:?}: large datagram lost\n{}",
            report(&a)
        );
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

#[test]
fn linux_kernel_vxlan_is_a_peer_in_both_directions() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let mut a = fabric_node(BIN, 1);
    a.join(&lan).unwrap();
    a.start_vrouter().unwrap();
    a.add_pod("red", 0, 1, true).unwrap();
    let pod = &a.pods[0];
    // The kernel end: a vxlan device (VNI 4100) towards node 1, holding 198.18.1.9.
    let peer = fabric_host(&lan, 9);
    peer.ip(&[
        "link",
        "add",
        "vxlan0",
        "type",
        "vxlan",
        "id",
        "4100",
        "local",
        "198.18.0.9",
        "remote",
        "198.18.0.1",
        "dstport",
        "4789",
        "dev",
        "eth0",
    ])
    .unwrap();
    peer.ip(&["addr", "add", "198.18.1.9/24", "dev", "vxlan0"]).unwrap();
    peer.ip(&["link", "set", "vxlan0", "up"]).unwrap();
    // The kernel reaches the pod through the vrouter's MAC (as an EVPN route would say).
    peer.ip(&[
        "neigh",
        "add",
        &pod.ipv4.to_string(),
        "lladdr",
        "00:00:5e:00:01:00",
        "dev",
        "vxlan0",
        "nud",
        "permanent",
    ])
    .unwrap();
    let vxlan_mac: String =
        String::from_utf8_lossy(&peer.exec("cat", &["/sys/class/net/vxlan0/address"]).unwrap().stdout)
            .trim()
            .to_string();
    let api = a.api();
    let _: serde_json::Value = api
        .call(&Request::SetVrfVni {
            vrf: "red".into(),
            vni: 4100,
        })
        .unwrap();
    let target = RouteTarget::Tunnel {
        remote: "198.18.0.9".parse().unwrap(),
        label: 4100,
        encaps: vec![Encap::Vxlan],
        mac: Some(vxlan_mac.parse().unwrap()),
    };
    let _: serde_json::Value = api
        .call(&Request::AddRoute {
            route: RouteSpec {
                vrf: "red".into(),
                prefix: "198.18.1.9/32".parse().unwrap(),
                target,
            },
        })
        .unwrap();
    // Kernel first: its echo request is decapsulated by the vrouter, the reply encapsulated.
    assert!(
        peer.succeeds("ping", &["-c", "1", "-w", "8", "-W", "1", "-q", &pod.ipv4.to_string()]),
        "kernel vxlan -> vrouter failed\n{}",
        report(&a)
    );
    // Vrouter first.
    assert!(
        ping(pod, "198.18.1.9".parse().unwrap(), 5),
        "vrouter -> kernel vxlan failed\n{}",
        report(&a)
    );
}

#[test]
fn mpls_over_udp_on_the_fabric_decodes_with_tshark() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (a, b) = two_nodes(BIN, &lan);
    route_to(&a, &b, Encap::MplsOverUdp, 0);
    route_to(&b, &a, Encap::MplsOverUdp, 0);
    assert!(ping(&a.pods[0], b.pods[0].ipv4.into(), 8), "{}", report(&a));
    let pcap = a.dir().join("fabric.pcap");
    let capture = lan
        .ns
        .command("tshark")
        .args([
            "-i",
            "br0",
            "-f",
            "udp dst port 6635",
            "-c",
            "4",
            "-a",
            "duration:15",
            "-w",
        ])
        .arg(&pcap)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut capture = capture;
    // Ping until the capture has its packets (bounded by the capture's own duration).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while capture.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        ping(&a.pods[0], b.pods[0].ipv4.into(), 1);
    }
    let _ = capture.kill();
    let _ = capture.wait();
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&pcap)
        .args([
            "-d",
            "udp.port==6635,mpls",
            "-T",
            "fields",
            "-e",
            "mpls.label",
            "-e",
            "mpls.bottom",
            "-e",
            "ip.src",
            "-e",
            "icmp.type",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let label = b
        .interfaces()
        .unwrap()
        .into_iter()
        .find(|i| i.name == b.pods[0].host_if)
        .unwrap()
        .label
        .expect("a pod has a label")
        .to_string();
    let decoded: Vec<&str> = text.lines().filter(|l| l.starts_with(&label)).collect();
    assert!(
        !decoded.is_empty(),
        "no MPLS label {label} decoded:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in decoded {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.get(1), Some(&"1"), "bottom of stack: {line}");
        // Outer source a node's fabric address, inner source its pod (requests and
        // replies both carry label 16: each pod is the first attached on its node).
        let ips = f.get(2).copied().unwrap_or_default();
        let pair = (ips.contains("198.18.0.1") && ips.contains("198.18.1.2"))
            || (ips.contains("198.18.0.2") && ips.contains("198.18.1.3"));
        assert!(pair, "outer and inner sources: {line}");
        assert!(
            f.get(3).is_some_and(|t| *t == "8" || *t == "0"),
            "inner ICMP echo: {line}"
        );
    }
}

//! Floating IPs end to end (issue: services/NAT, item 3): a pod in an isolated VRF
//! gets an address of the cluster VRF. Pods there reach it at that address (TCP data
//! intact, ping) and it reaches them from it (their kernels see the floating address
//! and answer it); without the floating IP the VRFs stay apart.

use std::net::IpAddr;
use system_tests::{node, serial};
use vrouter::api::{FloatingIpView, Request};
use vrouter::config::XdpMode;
use vrouter_lab::traffic::{ping, tcp_transfer};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const FLOATING: &str = "198.18.1.50";

#[test]
fn a_floating_ip_joins_an_isolated_pod_to_another_vrf_both_ways() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("cluster", 0, 1, true).unwrap();
    n.add_pod("isolated", 1, 1, true).unwrap();
    let (cluster, isolated) = (&n.pods[0], &n.pods[1]);
    let floating: IpAddr = FLOATING.parse().unwrap();
    let api = n.api();
    // Apart at first.
    assert!(!ping(cluster, isolated.ipv4.into(), 1));
    assert!(!ping(isolated, cluster.ipv4.into(), 1));
    let spec = control_client::FloatingIpSpec {
        name: "isolated/pod-1".into(),
        vrf: "cluster".into(),
        ip: floating,
        interface: isolated.host_if.clone(),
        egress_only: false,
    };
    let _: serde_json::Value = api.call(&Request::AddFloatingIp { spec }).unwrap();
    let view: Vec<FloatingIpView> = api.call(&Request::FloatingIps).unwrap();
    assert_eq!(view.len(), 1);
    assert_eq!(
        (view[0].pod_vrf.as_str(), view[0].pod_ip),
        ("isolated", isolated.ipv4.into())
    );
    // The cluster pod reaches the isolated one at the floating address (its kernel
    // resolves the address on its subnet: the vrouter answers ARP for it there).
    assert!(ping(cluster, floating, 3), "ping the floating address\n{}", n.log());
    let t = tcp_transfer(cluster, isolated, floating, 1 << 20).unwrap();
    assert!(t.intact, "{t:?}\n{}", n.log());
    // The isolated pod reaches the cluster pod from the floating address (the reply
    // comes back only because the cluster pod's kernel saw that address).
    assert!(
        ping(isolated, cluster.ipv4.into(), 3),
        "from the floating address\n{}",
        n.log()
    );
    let t = tcp_transfer(isolated, cluster, cluster.ipv4.into(), 1 << 20).unwrap();
    assert!(t.intact, "{t:?}\n{}", n.log());
    // Still apart by their own addresses.
    assert!(!ping(cluster, isolated.ipv4.into(), 1));
    // Removed: apart again, established flows included.
    let _: serde_json::Value = api
        .call(&Request::RemoveFloatingIp {
            name: "isolated/pod-1".into(),
        })
        .unwrap();
    assert!(!ping(cluster, floating, 1));
    assert!(!ping(isolated, cluster.ipv4.into(), 1));
}

#[test]
fn a_floating_ip_is_reached_from_another_node_by_the_route_its_node_advertises() {
    use std::time::{Duration, Instant};
    use vrouter_lab::node::FabricLan;
    const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");
    const PEER: &str = system_tests::CONTROL_NODE;
    let _machine = serial();
    let lan = FabricLan::new().expect("fabric LAN");
    let _peer = system_tests::control_node(&lan, LAB);
    let mut nodes: Vec<vrouter_lab::node::LabNode> = (1..=2u8)
        .map(|n| {
            let mut node = system_tests::peering_node(BIN, &lan, n, PEER);
            node.add_pod("cluster", 0, n, true).expect("adding a pod");
            node
        })
        .collect();
    nodes[0].add_pod("isolated", 1, 1, true).unwrap();
    let floating: IpAddr = FLOATING.parse().unwrap();
    let spec = control_client::FloatingIpSpec {
        name: "isolated/pod-1".into(),
        vrf: "cluster".into(),
        ip: floating,
        interface: nodes[0].pods[1].host_if.clone(),
        egress_only: false,
    };
    let _: serde_json::Value = nodes[0].api().call(&Request::AddFloatingIp { spec }).unwrap();
    let (isolated, remote) = (&nodes[0].pods[1], &nodes[1].pods[0]);
    // Node 2 learns the floating address (with the isolated pod's label) and reaches
    // it across the fabric; the isolated pod reaches node 2's pod from it.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !ping(remote, floating, 1) {
        assert!(
            Instant::now() < deadline,
            "never reached {floating} from node 2\n{}",
            nodes[0].log()
        );
    }
    let t = tcp_transfer(remote, isolated, floating, 1 << 20).unwrap();
    assert!(t.intact, "{t:?}");
    assert!(
        ping(isolated, remote.ipv4.into(), 3),
        "from the floating address across the fabric"
    );
    assert!(
        !ping(remote, isolated.ipv4.into(), 1),
        "its own address stays out of reach"
    );
}

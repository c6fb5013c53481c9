//! A clean restart keeps every port's vif and MPLS label, whatever order the ports
//! were attached in, so remote nodes reach the same pods by the labels they hold; and
//! a label delivers only what routes to its interface in that interface's VRF.

use control_client::{RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use system_tests::{fabric_node, serial};
use vrouter::api::Request;
use vrouter_lab::node::{FabricLan, LabNode};
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// (vif, label) of every pod port of `n`, by interface name.
fn identities(n: &LabNode) -> BTreeMap<String, (u32, u32)> {
    n.interfaces()
        .unwrap()
        .into_iter()
        .filter_map(|i| i.label.map(|l| (i.name, (i.vif, l))))
        .collect()
}

/// On `node`, routes `prefix` in `vrf` to `remote` with `label` (MPLS over UDP).
fn route(node: &LabNode, remote: &LabNode, vrf: &str, prefix: String, label: u32) {
    let target = RouteTarget::Tunnel {
        remote: remote.fabric_ip(),
        label,
        encaps: vec![Encap::MplsOverUdp],
        mac: None,
    };
    let route = RouteSpec {
        vrf: vrf.into(),
        prefix: prefix.parse().unwrap(),
        target,
    };
    let _: serde_json::Value = node.api().call(&Request::AddRoute { route }).unwrap();
}

#[test]
fn restart_keeps_vifs_and_labels_and_labels_stay_in_their_vrf() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let mut a = fabric_node(BIN, 1);
    let mut b = fabric_node(BIN, 2);
    for n in [&mut a, &mut b] {
        n.join(&lan).unwrap();
        n.start_vrouter().unwrap();
    }
    a.add_pod("red", 0, 1, true).unwrap();
    a.add_pod("blue", 1, 1, true).unwrap();
    // On node 2, vp1 and vp2 are red, vp3 blue; attached blue first, then in
    // reverse name order, so name order gives every port another vif.
    b.add_pod("red", 0, 2, false).unwrap();
    b.add_pod("red", 0, 3, false).unwrap();
    b.add_pod("blue", 1, 2, false).unwrap();
    for i in [2, 1, 0] {
        b.attach(i).unwrap();
    }
    let before = identities(&b);
    assert_eq!(before.len(), 3, "{before:?}");
    for pod in &b.pods {
        route(&a, &b, &pod.vrf, format!("{}/32", pod.ipv4), before[&pod.host_if].1);
    }
    let labels_a = identities(&a);
    for pod in &a.pods {
        route(&b, &a, &pod.vrf, format!("{}/32", pod.ipv4), labels_a[&pod.host_if].1);
    }
    let (red_a, blue_a) = (&a.pods[0], &a.pods[1]);
    let reach = |from: &vrouter_lab::node::Pod, to: Ipv4Addr| ping(from, IpAddr::V4(to), 8);
    for (from, to) in [(red_a, &b.pods[0]), (red_a, &b.pods[1]), (blue_a, &b.pods[2])] {
        assert!(
            reach(from, to.ipv4),
            "before restart: {} to {}\n{}",
            from.name,
            to.name,
            b.log()
        );
    }

    assert!(b.stop_vrouter().unwrap().success());
    b.start_vrouter().unwrap();
    assert_eq!(identities(&b), before, "vifs and labels after a clean restart");
    // Node 1 still holds the labels from before the restart: each reaches its pod.
    for (from, to) in [(red_a, &b.pods[0]), (red_a, &b.pods[1]), (blue_a, &b.pods[2])] {
        assert!(
            reach(from, to.ipv4),
            "after restart, by the old label: {} to {}\n{}",
            from.name,
            to.name,
            b.log()
        );
    }

    // A red destination sent with the blue pod's label is not delivered, and counted.
    let stray = Ipv4Addr::new(198, 18, 1, 9);
    route(&a, &b, "red", format!("{stray}/32"), before[&b.pods[2].host_if].1);
    let red_target = b.pods[1].ipv4;
    let _: serde_json::Value = a
        .api()
        .call(&Request::RemoveRoute {
            vrf: "red".into(),
            prefix: format!("{red_target}/32").parse().unwrap(),
        })
        .unwrap();
    route(&a, &b, "red", format!("{red_target}/32"), before[&b.pods[2].host_if].1);
    assert!(
        !ping(red_a, IpAddr::V4(red_target), 2),
        "a blue label delivered to a red pod"
    );
    assert!(!ping(red_a, IpAddr::V4(stray), 1));
    let mismatches = b.drop_stats().unwrap().get("label_mismatch");
    assert!(mismatches >= 2, "label_mismatch drops on node 2: {mismatches}");
}

//! Custom networks and app isolation end to end, from manifests to packets: the
//! translation of `k8s/scenarios/networks.yaml` places each pod in its network (a
//! namespace's network annotation, an app's `opencontrail.org/name` label, or the
//! cluster network); the CNI plugin attaches each pod on its node in that network;
//! every pod then reaches exactly the pods of its own network, on its node and across
//! the fabric (the lab's section does the same and prints it).

use std::path::Path;
use system_tests::{serial, two_started_nodes};
use vrouter_lab::cni::CniDriver;
use vrouter_lab::networks_section::place_and_probe;
use vrouter_lab::node::FabricLan;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const PLUGIN: &str = env!("CARGO_BIN_EXE_vrouter-cni-under-test");

#[test]
fn pods_reach_exactly_their_own_network_as_the_manifests_place_them() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (a, b) = two_started_nodes(BIN, &lan);
    let mut nodes = [a, b];
    let cni = CniDriver::new(Path::new(PLUGIN)).unwrap();
    let probes = place_and_probe(&mut nodes, &cni).unwrap();
    // Three networks of two pods: 30 ordered pairs, 6 within a network.
    assert_eq!(probes.len(), 30);
    assert_eq!(probes.iter().filter(|p| p.expected).count(), 6);
    let wrong: Vec<String> = probes
        .iter()
        .filter(|p| p.got != p.expected)
        .map(|p| format!("{} -> {}: expected {}, got {}", p.from, p.to, p.expected, p.got))
        .collect();
    assert!(
        wrong.is_empty(),
        "{}\nnode 1:\n{}\nnode 2:\n{}",
        wrong.join("\n"),
        nodes[0].log(),
        nodes[1].log()
    );
    for network in [
        "green-vn: custom network",
        "app-billing-vn: app isolation",
        "cluster-network: default",
    ] {
        assert!(
            probes.iter().any(|p| p.expected && p.from.contains(network)),
            "{network}"
        );
    }
}

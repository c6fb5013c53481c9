//! Custom networks and app isolation end to end, from manifests to packets: the
//! translation of `k8s/scenarios/networks.yaml` places each pod in its network (a
//! namespace's network annotation, an app's `opencontrail.org/name` label, or the
//! cluster network); the CNI plugin attaches each pod on its node in that network;
//! every pod then reaches exactly the pods of its own network, on its node and across
//! the fabric.

use nexthop::encap::Encap;
use std::net::IpAddr;
use std::path::Path;
use system_tests::{route_to_pod, serial, two_started_nodes};
use vrouter_k8s::{translate, Manifests, Settings};
use vrouter_lab::cni::CniDriver;
use vrouter_lab::node::FabricLan;
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const PLUGIN: &str = env!("CARGO_BIN_EXE_vrouter-cni-under-test");

#[test]
fn pods_reach_exactly_their_own_network_as_the_manifests_place_them() {
    let _machine = serial();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/scenarios/networks.yaml");
    let translation = translate(&Manifests::from_path(&scenario).unwrap(), &Settings::default());
    assert!(translation.warnings.is_empty(), "{:?}", translation.warnings);
    let lan = FabricLan::new().unwrap();
    let (mut a, mut b) = two_started_nodes(BIN, &lan);
    let cni = CniDriver::new(Path::new(PLUGIN)).unwrap();
    // Each pod attached through the plugin, on its node, in the network the
    // translation gives it, at its address (198.18.X.Y: the lab's VRF X-1, pod Y-1).
    let mut placed = Vec::new();
    for pod in &translation.pods {
        let Some(IpAddr::V4(ip)) = pod.ips.first().copied() else {
            panic!("{} has no IPv4 address", pod.name);
        };
        let [_, _, x, y] = ip.octets();
        let node = match pod.node.as_deref() {
            Some("node-1") => &mut a,
            Some("node-2") => &mut b,
            other => panic!("{} on {other:?}", pod.name),
        };
        cni.add_lab_pod(node, &pod.vrf, x - 1, y - 1).unwrap();
        let on_second = pod.node.as_deref() == Some("node-2");
        placed.push((pod, on_second, node.pods.len() - 1));
    }
    // What a control node would reflect: each node's pods routed on the other.
    for &(_, on_second, index) in &placed {
        let (here, there) = if on_second { (&a, &b) } else { (&b, &a) };
        route_to_pod(here, there, index, Encap::MplsOverUdp, 0);
    }
    let pod_of = |on_second: bool, index: usize| if on_second { &b.pods[index] } else { &a.pods[index] };
    let mut wrong = Vec::new();
    for &(from, from_second, from_index) in &placed {
        for &(to, _, _) in &placed {
            if std::ptr::eq(from, to) {
                continue;
            }
            let expected = from.vrf == to.vrf;
            let got = ping(pod_of(from_second, from_index), to.ips[0], if expected { 3 } else { 1 });
            if got != expected {
                wrong.push(format!(
                    "{} ({}: {}) -> {} ({}: {}): expected {expected}, got {got}",
                    from.name, from.vrf, from.why, to.name, to.vrf, to.why
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{}\nnode 1:\n{}\nnode 2:\n{}",
        wrong.join("\n"),
        a.log(),
        b.log()
    );
    // Three networks, two pods each: every pair within a network was tried both ways.
    let networks: std::collections::BTreeSet<&str> = placed.iter().map(|(p, _, _)| p.vrf.as_str()).collect();
    assert_eq!(
        networks.into_iter().collect::<Vec<_>>(),
        ["app-billing-vn", "cluster-network", "green-vn"]
    );
}

//! Custom networks and app isolation, from manifests to packets: the translation of
//! `k8s/scenarios/networks.yaml` places each pod in its network (a namespace's network
//! annotation, an app's `opencontrail.org/name` label, or the cluster network); the
//! CNI plugin attaches each on its node (`node-1`: the first node, `node-2`: the
//! second) in that network; every pair is pinged. The lab prints the outcome; a system
//! test asserts it.

use crate::cni::CniDriver;
use crate::node::LabNode;
use crate::traffic::ping;
use nexthop::encap::Encap;
use std::net::IpAddr;
use vrouter_k8s::{translate, Manifests, Settings};

/// One ping between two of the scenario's pods.
#[derive(Debug, Clone)]
pub struct NetworkProbe {
    /// `name (network: why)` of the sender.
    pub from: String,
    /// The same of the receiver.
    pub to: String,
    /// The networks are the same.
    pub expected: bool,
    /// A reply came.
    pub got: bool,
}

/// Places the scenario's pods on `nodes` through `cni`, routes each node's pods on the
/// other, and pings every pair.
pub fn place_and_probe(nodes: &mut [LabNode], cni: &CniDriver) -> anyhow::Result<Vec<NetworkProbe>> {
    let manifests = Manifests::from_path(&crate::k8s_section::scenario("networks.yaml"))?;
    let translation = translate(&manifests, &Settings::default());
    anyhow::ensure!(translation.warnings.is_empty(), "{:?}", translation.warnings);
    // (pod, its node, its index there); its address 198.18.X.Y is the lab's VRF X-1,
    // pod Y-1.
    let mut placed = Vec::new();
    for pod in &translation.pods {
        let Some(IpAddr::V4(ip)) = pod.ips.first().copied() else {
            anyhow::bail!("{} has no IPv4 address", pod.name);
        };
        let [_, _, x, y] = ip.octets();
        let k = match pod.node.as_deref() {
            Some("node-1") => 0,
            Some("node-2") => 1,
            other => anyhow::bail!("{} on {other:?}", pod.name),
        };
        cni.add_lab_pod(&mut nodes[k], &pod.vrf, x - 1, y - 1)?;
        placed.push((pod, k, nodes[k].pods.len() - 1));
    }
    for &(_, k, index) in &placed {
        nodes[1 - k].route_to(&nodes[k], index, Encap::MplsOverUdp, 0)?;
    }
    let label = |p: &vrouter_k8s::PodPlacement| format!("{} ({}: {})", p.name, p.vrf, p.why);
    let mut probes = Vec::new();
    for &(from, k, i) in &placed {
        for &(to, _, _) in &placed {
            if std::ptr::eq(from, to) {
                continue;
            }
            let expected = from.vrf == to.vrf;
            let got = ping(&nodes[k].pods[i], to.ips[0], if expected { 3 } else { 1 });
            probes.push(NetworkProbe {
                from: label(from),
                to: label(to),
                expected,
                got,
            });
        }
    }
    Ok(probes)
}

/// The lab's section: prints each probe; returns what went other than expected.
pub(crate) fn run(nodes: &mut [LabNode], cni: &CniDriver) -> anyhow::Result<Vec<String>> {
    println!("\n== custom networks and app isolation (k8s/scenarios/networks.yaml; pods attached through the CNI plugin in the networks the translation gives)");
    let probes = place_and_probe(nodes, cni)?;
    let mut wrong = Vec::new();
    for p in &probes {
        let mark = |b: bool| if b { "reaches" } else { "does not reach" };
        println!(
            "   {:<6} {} {} {}",
            if p.got == p.expected { "ok" } else { "WRONG" },
            p.from,
            mark(p.got),
            p.to
        );
        if p.got != p.expected {
            wrong.push(format!(
                "{} -> {}: expected {}, got {}",
                p.from, p.to, p.expected, p.got
            ));
        }
    }
    Ok(wrong)
}

//! The lab's CNI section: the pods the plugin attached pass CHECK, then DEL removes
//! each one's port and DEL again succeeds.

use crate::cni::{lab_container, with_prev_result, CniDriver};
use crate::node::LabNode;

/// The pods the CNI plugin attached: CHECK passes on each, then DEL removes each
/// one's port, and DEL again is fine.
pub(crate) fn run(cni: &CniDriver, nodes: &[LabNode]) -> anyhow::Result<Vec<String>> {
    println!("\n== CNI: CHECK, DEL and DEL again for the pods the plugin attached");
    let mut wrong = Vec::new();
    let (mut checked, mut removed) = (0, 0);
    for at in cni.lab_attachments() {
        let Some((k, node)) = nodes.iter().enumerate().find(|(_, n)| n.ns.name() == at.node) else {
            wrong.push(format!("CNI: no node {} for {}-{}", at.node, at.vrf, at.index));
            continue;
        };
        let (vrf, vrf_index, index) = (at.vrf.as_str(), at.vrf_index, at.index);
        let name = format!("{vrf}-{index}");
        let Some(pod) = node.pods.iter().find(|p| p.name == name) else {
            wrong.push(format!("CNI: no pod {name} on node {}", k + 1));
            continue;
        };
        let conf = cni.lab_pod_config(node, vrf, vrf_index, index);
        let container = lab_container(node, vrf, index);
        let prev = serde_json::json!({
            "interfaces": [{"name": pod.host_if}, {"name": "eth0", "mac": pod.mac.to_string()}],
            "ips": [{"address": format!("{}/24", pod.ipv4), "gateway": pod.gateway4.to_string(), "interface": 1},
                    {"address": format!("{}/64", pod.ipv6), "gateway": pod.gateway6.to_string(), "interface": 1}],
        });
        let check = cni.run("CHECK", &with_prev_result(&conf, &prev), &container, &pod.ns)?;
        if check.ok {
            checked += 1;
        } else {
            wrong.push(format!("CNI CHECK of {name}: {}", check.json));
        }
        let del = cni.run("DEL", &conf, &container, &pod.ns)?;
        let again = cni.run("DEL", &conf, &container, &pod.ns)?;
        let gone = !node.interfaces()?.iter().any(|i| i.name == pod.host_if);
        if del.ok && again.ok && gone {
            removed += 1;
        } else {
            wrong.push(format!(
                "CNI DEL of {name}: {} / again {} / port gone: {gone}",
                del.json, again.json
            ));
        }
    }
    let attached = cni.lab_attachments().len();
    println!("   CHECK passed for {checked} of {attached} pods; DEL removed {removed} ports, DEL again succeeded");
    if attached == 0 || checked != attached || removed != attached {
        wrong.push(format!(
            "CNI: {attached} attached, {checked} checked, {removed} removed"
        ));
    }
    Ok(wrong)
}

//! Service chains from manifests: a pod annotated `opencontrail.org/service-chain`
//! with `{"left": NETWORK, "right": NETWORK}` is a service instance (a packet filter,
//! a firewall) joining the two networks, Contrail's network-policy rule that applies
//! a service: traffic between them is steered through its interface in each.
//!
//! The instance has an interface in both networks, as a pod with several networks
//! has them (a delegating plugin such as Multus attaches the ones its
//! `k8s.v1.cni.cncf.io/networks` annotation names, each through this CNI plugin
//! with that network's configuration). Its addresses in each network are those the
//! standard `k8s.v1.cni.cncf.io/network-status` annotation reports for an entry of
//! that name (`NAME` or `NAMESPACE/NAME`), or the pod's own addresses for the
//! network it is placed in. `vrouter apply` finds the node's interfaces by network
//! and address and puts the chain, named `namespace/pod`, in force on the node
//! holding the instance.

use crate::pods::PodInfo;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The annotation that makes a pod a service instance.
pub const SERVICE_CHAIN: &str = "opencontrail.org/service-chain";
/// The annotation a delegating plugin reports a pod's interfaces in.
pub const NETWORK_STATUS: &str = "k8s.v1.cni.cncf.io/network-status";

/// A service chain to put in force where its instance runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainPlan {
    /// `namespace/pod` of the instance.
    pub name: String,
    /// The node it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its end in the left network: traffic from left to right enters here.
    pub left: ChainEnd,
    /// Its end in the right network.
    pub right: ChainEnd,
}

/// One end of a chain: the network (VRF) and the instance's addresses in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainEnd {
    /// The network.
    pub vrf: String,
    /// The instance's addresses there.
    pub ips: Vec<IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sides {
    left: String,
    right: String,
}

#[derive(Deserialize)]
struct Status {
    name: String,
    #[serde(default)]
    ips: Vec<String>,
}

/// The chains of the annotated pods; problems go to `warnings`.
pub fn chains(pods: &[PodInfo], warnings: &mut Vec<String>) -> Vec<ChainPlan> {
    let mut out = Vec::new();
    for pod in pods {
        let Some(value) = pod.annotations.get(SERVICE_CHAIN) else {
            continue;
        };
        let who = format!("pod {}/{}", pod.namespace, pod.name);
        let sides: Sides = match serde_json::from_str(value) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!("{who}: {SERVICE_CHAIN} {value:?} ignored: {e}"));
                continue;
            }
        };
        if sides.left == sides.right {
            warnings.push(format!(
                "{who}: {SERVICE_CHAIN} joins {:?} to itself: ignored",
                sides.left
            ));
            continue;
        }
        let status: Vec<Status> = match pod.annotations.get(NETWORK_STATUS).map(|v| serde_json::from_str(v)) {
            None => Vec::new(),
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                warnings.push(format!("{who}: {NETWORK_STATUS} ignored: {e}"));
                Vec::new()
            }
        };
        let end = |network: &str| -> ChainEnd {
            let named = |s: &&Status| s.name == network || s.name.rsplit('/').next() == Some(network);
            let mut ips: Vec<IpAddr> = status
                .iter()
                .filter(named)
                .flat_map(|s| s.ips.iter().filter_map(|ip| ip.parse().ok()))
                .collect();
            if ips.is_empty() && pod.vrf == network {
                ips = pod.ips.clone();
            }
            ips.sort();
            ips.dedup();
            ChainEnd {
                vrf: network.to_string(),
                ips,
            }
        };
        let (left, right) = (end(&sides.left), end(&sides.right));
        if let Some(missing) = [&left, &right].into_iter().find(|e| e.ips.is_empty()) {
            warnings.push(format!(
                "{who}: no address in network {:?} yet ({NETWORK_STATUS}): its chain waits",
                missing.vrf
            ));
            continue;
        }
        out.push(ChainPlan {
            name: format!("{}/{}", pod.namespace, pod.name),
            node: pod.node.clone(),
            left,
            right,
        });
    }
    out
}

//! The `policy` view and the policy side of the `flow` view: the verdict on a flow's
//! connection made again with the data plane's own check (the flow holds no rule
//! id; a policy change re-decides every flow, so the current policies are the ones
//! that decided it).

use super::Views;
use crate::packet::policy::verdict;
use flow_table::FlowKey;
use nexthop::policy::SideVerdict;
use nexthop::{Nat, NatSide, Snapshot};
use std::net::IpAddr;
use vrouter_api::{FlowPolicyView, PolicyView};

/// The policy verdict on the connection of entry `key` (`reverse`: a reply entry;
/// `translation`: how it is translated, with its pair's key for both ends), `None`
/// without policies.
pub(crate) fn flow_policy(
    snap: &Snapshot,
    key: &FlowKey,
    reverse: bool,
    translation: Option<(Nat, Option<FlowKey>)>,
) -> Option<FlowPolicyView> {
    let policies = &snap.policies;
    if policies.is_empty() {
        return None;
    }
    // The connection as its client opened it, delivered where it goes (both ends
    // translated: the forward entry's key, and the reply's turned round).
    let both = translation
        .filter(|(n, _)| n.side == NatSide::Both)
        .and_then(|(_, pair)| pair);
    let (pre, post) = match both {
        Some(pair) if reverse => (pair, key.reversed()),
        Some(pair) => (*key, pair.reversed()),
        None if reverse => (key.reversed(), key.reversed()),
        None => {
            let post = match translation.map(|(n, _)| n).filter(|n| n.side == NatSide::Destination) {
                Some(n) => match (key.src_addr(), snap.nat_target(n.target)) {
                    (IpAddr::V4(s), Some(IpAddr::V4(d))) => {
                        FlowKey::v4(key.vrf(), s, d, key.proto(), key.src_port(), n.port)
                    }
                    (IpAddr::V6(s), Some(IpAddr::V6(d))) => {
                        FlowKey::v6(key.vrf(), s, d, key.proto(), key.src_port(), n.port)
                    }
                    _ => *key,
                },
                None => *key,
            };
            (*key, post)
        }
    };
    let v = verdict(snap, &pre, &post);
    let side = |s: SideVerdict| match s {
        SideVerdict::Open => "open".to_string(),
        SideVerdict::Allowed(r) => format!("allowed by {} rule {}", policies.name(r.policy), r.rule),
        SideVerdict::Denied(p) => format!("denied by {} (no rule matches)", policies.name(p)),
    };
    Some(FlowPolicyView {
        allowed: v.allowed(),
        egress: side(v.egress),
        ingress: side(v.ingress),
    })
}

impl Views {
    /// The `policy` view: every policy, its local pods and its denials.
    pub fn policies(&self) -> Vec<PolicyView> {
        let snap = self.snapshot();
        let policies = &snap.policies;
        let mut local: Vec<Vec<String>> = vec![Vec::new(); policies.names.len()];
        for ((vrf, ip), pod) in &policies.pods {
            let vrf = snap.vrf(*vrf).map_or("?", |v| v.name.as_str());
            let sets = pod.ingress.iter().chain(pod.egress.iter());
            let mut ids: Vec<u32> = sets.flat_map(|s| s.isolated_by.iter().map(|p| p.0)).collect();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                if let Some(l) = local.get_mut(id as usize) {
                    l.push(format!("{vrf}/{ip}"));
                }
            }
        }
        policies
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let summary = policies.summaries.get(i).copied().unwrap_or_default();
                let mut local_pods = std::mem::take(&mut local[i]);
                local_pods.sort();
                PolicyView {
                    name: name.to_string(),
                    tier: if summary.network_tier {
                        control_client::PolicyTier::Network
                    } else {
                        control_client::PolicyTier::Pod
                    },
                    ingress_rules: summary.ingress_rules,
                    egress_rules: summary.egress_rules,
                    pods: summary.pods,
                    local_pods,
                    denied: policies
                        .denied
                        .get(i)
                        .map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed)),
                }
            })
            .collect()
    }
}

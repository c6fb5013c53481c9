//! The builder's side of network policy: the compiled policies of the last full
//! build, made again only when the policies or the local pods they select changed
//! (which renews the flow epoch, so every flow's verdict is made again on its next
//! packet: a revoked connection stops at once), and each policy's counter of
//! denied connections, kept across builds by name.

use super::SnapshotBuilder;
use crate::model::{DesiredState, PolicySpec};
use nexthop::policy::{PeerBlock, PodPolicy, PolicyId, PortMatch, ResolvedRule, RuleRef, RuleSet};
use nexthop::{FastMap, Policies, Snapshot, VrfId};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// What the compiled policies are made from: the policies' version and, per local
/// pod address, the policies selecting it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(in crate::model) struct PolicyInput {
    version: u64,
    selected: Vec<((VrfId, IpAddr), Vec<u32>)>,
    node: Vec<IpAddr>,
}

/// A policy's rules of one direction in the data plane's form.
fn resolved(id: PolicyId, rules: &[crate::model::PolicyRule]) -> Vec<ResolvedRule> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| ResolvedRule {
            rule: RuleRef {
                policy: id,
                rule: i.min(usize::from(u16::MAX)) as u16,
            },
            peers: r
                .peers
                .iter()
                .map(|p| PeerBlock {
                    net: p.cidr,
                    except: p.except.clone(),
                })
                .collect(),
            ports: r.ports.iter().map(|p| p.to_match()).collect::<Vec<PortMatch>>(),
        })
        .collect()
}

impl SnapshotBuilder {
    /// Puts the policies of `state` for its attached pods into `snap`, compiled anew
    /// only if they changed since the last full build.
    pub(in crate::model) fn finish_policies(&mut self, snap: &mut Snapshot, state: &DesiredState, generation: u64) {
        let ids: BTreeMap<&str, u32> = state
            .policies()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i as u32))
            .collect();
        let mut by_pod: BTreeMap<(&str, IpAddr), Vec<u32>> = BTreeMap::new();
        for p in state.policies() {
            for pod in &p.pods {
                by_pod
                    .entry((pod.vrf.as_str(), pod.ip))
                    .or_default()
                    .push(ids[p.name.as_str()]);
            }
        }
        let mut selected = Vec::new();
        let mut node = Vec::new();
        for iface in snap.interfaces.iter().flatten() {
            let addresses = [iface.ipv4.map(IpAddr::V4), iface.ipv6.map(IpAddr::V6)];
            if iface.kind == nexthop::InterfaceKind::Host {
                node.extend(addresses.into_iter().flatten());
                continue;
            }
            let Some(vrf) = snap.vrf(iface.vrf) else { continue };
            for ip in addresses.into_iter().flatten() {
                if let Some(policies) = by_pod.get(&(vrf.name.as_str(), ip)) {
                    selected.push(((iface.vrf, ip), policies.clone()));
                }
            }
        }
        if let Some(ip) = state.fabric_info().ip {
            node.push(IpAddr::V4(ip));
        }
        selected.sort();
        node.sort();
        node.dedup();
        let input = PolicyInput {
            version: state.policy_version(),
            selected,
            node,
        };
        if input != self.policy_input {
            let specs: Vec<&PolicySpec> = state.policies().collect();
            self.policies = Arc::new(self.compile_policies(&specs, &input));
            self.policy_input = input;
            self.flow_epoch = generation;
            snap.flow_epoch = generation;
        }
        snap.policies = Arc::clone(&self.policies);
    }

    fn compile_policies(&mut self, specs: &[&PolicySpec], input: &PolicyInput) -> Policies {
        self.policy_counters
            .retain(|name, _| specs.iter().any(|s| s.name == *name));
        let denied: Vec<Arc<AtomicU64>> = specs
            .iter()
            .map(|s| Arc::clone(self.policy_counters.entry(s.name.clone()).or_default()))
            .collect();
        // Pods selected by the same policies share one merged table per direction.
        type Merged = FastMap<Vec<u32>, Arc<RuleSet>>;
        let (mut ingress_sets, mut egress_sets): (Merged, Merged) = Default::default();
        let merged = |sets: &mut Merged, ids: Vec<u32>, egress: bool| -> Option<Arc<RuleSet>> {
            if ids.is_empty() {
                return None;
            }
            let set = sets.entry(ids.clone()).or_insert_with(|| {
                let rules: Vec<ResolvedRule> = ids
                    .iter()
                    .flat_map(|&i| {
                        let spec = specs[i as usize];
                        let list = if egress { &spec.egress } else { &spec.ingress };
                        resolved(PolicyId(i), list.as_deref().unwrap_or(&[]))
                    })
                    .collect();
                Arc::new(RuleSet::new(ids.iter().map(|&i| PolicyId(i)).collect(), &rules))
            });
            Some(Arc::clone(set))
        };
        let mut pods = FastMap::default();
        for (pod, ids) in &input.selected {
            // Per direction, one merged set per tier that isolates the pod that way.
            let of = |egress: bool, sets: &mut Merged| -> Vec<Arc<RuleSet>> {
                let mut by_tier: BTreeMap<crate::model::PolicyTier, Vec<u32>> = BTreeMap::new();
                for &i in ids {
                    let s = specs[i as usize];
                    let restricts = if egress { &s.egress } else { &s.ingress }.is_some();
                    if restricts {
                        by_tier.entry(s.tier).or_default().push(i);
                    }
                }
                by_tier
                    .into_values()
                    .filter_map(|ids| merged(sets, ids, egress))
                    .collect()
            };
            let policy = PodPolicy {
                ingress: of(false, &mut ingress_sets),
                egress: of(true, &mut egress_sets),
            };
            if !policy.is_open() {
                pods.insert(*pod, policy);
            }
        }
        Policies {
            names: specs.iter().map(|s| Arc::from(s.name.as_str())).collect(),
            denied,
            pods,
            node_addresses: input.node.clone(),
            summaries: specs
                .iter()
                .map(|s| nexthop::policy::PolicySummary {
                    ingress_rules: s.ingress.as_ref().map(Vec::len),
                    egress_rules: s.egress.as_ref().map(Vec::len),
                    pods: s.pods.len(),
                    network_tier: s.tier == crate::PolicyTier::Network,
                })
                .collect(),
        }
    }
}

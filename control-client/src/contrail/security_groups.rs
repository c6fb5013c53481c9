//! Security groups enforced as network policies, as Tungsten's agent enforces them:
//! each group a port of this node is in becomes one policy that selects the group's
//! ports here, with an ingress and an egress rule list (a group with no rule for a
//! direction denies that direction; a port in several groups gets what any of them
//! allows; a port in none, or with port security off, is not filtered).
//!
//! A rule's remote end is a prefix, anything, or a security group: a group stands for
//! the addresses that carry its id, the routes control nodes send with it in their
//! security group list and this node's own ports in it (what the agent matches a
//! flow's remote address against). A group with no known member adds nothing, so a
//! rule naming only such groups allows nothing yet; it does once a member's route
//! comes. What a policy cannot express (a source port range, a protocol other than
//! TCP, UDP, SCTP, ICMP and ICMPv6, a remote end that is a network) leaves the rule
//! out, reported: a group never allows more than it says.

use super::rules::{Endpoint, PortRange, Rule};
use super::{CompiledConfig, Uuid};
use crate::model::{PolicyPeer, PolicyPod, PolicyPort, PolicyRule, PolicySpec};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};

/// Where the policy of group `NAME` is named `PREFIX` + `NAME`.
pub const POLICY_PREFIX: &str = "config:sg:";

/// The addresses known to carry each security group id.
pub type GroupMembers = BTreeMap<u32, BTreeSet<IpNet>>;

/// The policies of the groups of the ports bound here, and why rules were left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupPolicies {
    /// By policy name.
    pub policies: BTreeMap<String, PolicySpec>,
    /// One line per rule (or part of one) left out.
    pub left_out: Vec<String>,
}

/// The policies for the groups of the ports in `bound` (UUIDs of this node's bound
/// ports), with `remote` the members routes taught (this node's own ports are added).
pub fn policies(compiled: &CompiledConfig, bound: &BTreeSet<Uuid>, remote: &GroupMembers) -> GroupPolicies {
    let mut members = remote.clone();
    for port in compiled.ports.values() {
        let addresses = port.addresses().map(IpNet::from);
        let addresses = addresses.chain(port.allowed_address_pairs.iter().copied());
        for address in addresses {
            for id in &port.security_group_ids {
                members.entry(*id).or_default().insert(address);
            }
        }
    }
    let mut pods: BTreeMap<&str, BTreeSet<PolicyPod>> = BTreeMap::new();
    for port in bound.iter().filter_map(|uuid| compiled.ports.get(uuid)) {
        for group in &port.security_groups {
            pods.entry(group.as_str()).or_default().extend(port.policy_pods());
        }
    }
    let mut out = GroupPolicies::default();
    for (group, selected) in pods {
        let name = format!("{POLICY_PREFIX}{group}");
        // A group whose object has not come (or lost its rules) allows nothing.
        let (own_id, rules) = compiled
            .security_groups
            .get(group)
            .map_or((None, &[][..]), |g| (g.id, g.rules.as_slice()));
        let resolve = Resolve {
            compiled,
            members: &members,
            own_id,
        };
        let (mut ingress, mut egress) = (Vec::new(), Vec::new());
        for (i, rule) in rules.iter().enumerate() {
            let local = |ends: &[Endpoint]| {
                ends.iter()
                    .any(|e| matches!(e, Endpoint::SecurityGroup(n) if n == "local"))
            };
            let (list, remote) = match (local(&rule.dst), local(&rule.src)) {
                (true, false) => (&mut ingress, &rule.src),
                (false, true) => (&mut egress, &rule.dst),
                _ => {
                    out.left_out.push(format!(
                        "{group} rule {i}: neither (or both) of its ends is the group itself"
                    ));
                    continue;
                }
            };
            match resolve.rule(rule, remote) {
                Ok(Some(r)) => list.push(r),
                Ok(None) => {}
                Err(why) => out.left_out.push(format!("{group} rule {i}: {why}")),
            }
        }
        let spec = PolicySpec {
            name: name.clone(),
            pods: selected.into_iter().collect(),
            ingress: Some(ingress),
            egress: Some(egress),
            tier: crate::model::PolicyTier::Pod,
        };
        out.policies.insert(name, spec);
    }
    out
}

/// Resolves one group's rules.
struct Resolve<'a> {
    compiled: &'a CompiledConfig,
    members: &'a GroupMembers,
    own_id: Option<u32>,
}

impl Resolve<'_> {
    /// The policy rule for `rule` whose remote end is `remote`: `None` if it allows
    /// no one now (its groups have no member), an error if a policy cannot say it.
    fn rule(&self, rule: &Rule, remote: &[Endpoint]) -> Result<Option<PolicyRule>, String> {
        if rule.src_ports.iter().any(|p| *p != PortRange::ANY) {
            return Err("a source port range (not enforced: left out)".into());
        }
        let family_ok =
            |net: &IpNet| !matches!((rule.ethertype, net), (Some(4), IpNet::V6(_)) | (Some(6), IpNet::V4(_)));
        let mut peers: BTreeSet<IpNet> = BTreeSet::new();
        let remote: &[Endpoint] = if remote.is_empty() { &[Endpoint::Any] } else { remote };
        for end in remote {
            match end {
                Endpoint::Any => {
                    peers.extend(["0.0.0.0/0", "::/0"].map(|n| n.parse::<IpNet>().expect("a prefix")));
                }
                Endpoint::Subnet(net) => {
                    peers.insert(*net);
                }
                Endpoint::SecurityGroup(name) => {
                    let id = match name.as_str() {
                        "local" => self.own_id,
                        name => self
                            .compiled
                            .security_group_ids
                            .get(name)
                            .copied()
                            .or_else(|| name.parse().ok()),
                    };
                    if let Some(found) = id.and_then(|id| self.members.get(&id)) {
                        peers.extend(found.iter().copied());
                    }
                }
                Endpoint::VirtualNetwork(n) => return Err(format!("remote end network {n} (left out)")),
                Endpoint::NetworkPolicy(n) => return Err(format!("remote end policy {n} (left out)")),
            }
        }
        let peers: Vec<PolicyPeer> = peers
            .into_iter()
            .filter(family_ok)
            .map(|cidr| PolicyPeer {
                cidr,
                except: Vec::new(),
            })
            .collect();
        if peers.is_empty() {
            return Ok(None);
        }
        let ports = ports(rule)?;
        Ok(Some(PolicyRule { peers, ports }))
    }
}

/// A rule's protocol and destination ports as policy ports (empty: everything).
fn ports(rule: &Rule) -> Result<Vec<PolicyPort>, String> {
    let ranges: Vec<PortRange> = rule
        .dst_ports
        .iter()
        .copied()
        .filter(|r| *r != PortRange::ANY)
        .collect();
    let every_port = ranges.is_empty();
    let Some(protocols) = super::rules::policy_protocols(rule.protocol, every_port)
        .map_err(|e| format!("{e} (not enforced: left out)"))?
    else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for protocol in protocols {
        if every_port {
            out.push(PolicyPort {
                protocol,
                port: None,
                end_port: None,
            });
            continue;
        }
        for r in &ranges {
            out.push(PolicyPort {
                protocol,
                port: Some(r.start),
                end_port: (r.end != r.start).then_some(r.end),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "security_groups_tests.rs"]
mod tests;

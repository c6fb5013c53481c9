//! Network policies in the desired state: Kubernetes NetworkPolicies with their
//! selectors already resolved to addresses (by the manifest translation, or by the
//! operator through the API). A policy names the pods it selects by VRF and address,
//! and per direction the rules that allow traffic; a direction without a rule list
//! is not isolated by it, an empty list denies everything that way.

use super::{DesiredState, L4Protocol, ModelError};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Policies one node holds at most.
pub const MAX_POLICIES: usize = 10_000;
/// Rules (both directions) one policy holds at most.
pub const MAX_POLICY_RULES: usize = 1_000;
/// Peers, their exceptions and ports one rule holds at most, and pods one policy
/// selects at most.
pub const MAX_POLICY_ITEMS: usize = 65_536;

/// A network policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Its name (`namespace/name`); adding one of the same name replaces it.
    pub name: String,
    /// The pods it selects.
    pub pods: Vec<PolicyPod>,
    /// Connections the selected pods may receive; `None`: it does not restrict them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<PolicyRule>>,
    /// Connections the selected pods may open; `None`: it does not restrict them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<PolicyRule>>,
    /// Its tier: a connection must be allowed by every tier that isolates the pod.
    #[serde(default, skip_serializing_if = "PolicyTier::is_pod")]
    pub tier: PolicyTier,
}

/// Which tier a policy is in. Within a tier policies add up (any allowing rule
/// allows); across tiers each must allow, as Tungsten's agent requires both a
/// port's security groups and its network's access control list to pass a flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyTier {
    /// The pods' own: Kubernetes NetworkPolicies, security groups (the default).
    #[default]
    Pod,
    /// A virtual network's: its access control list from the configuration.
    Network,
}

impl PolicyTier {
    /// Its name, as serialized (`pod`, `network`).
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyTier::Pod => "pod",
            PolicyTier::Network => "network",
        }
    }

    /// True for the default tier.
    pub fn is_pod(&self) -> bool {
        *self == PolicyTier::Pod
    }
}

/// A selected pod: one of its addresses in its VRF.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPod {
    /// The pod's VRF.
    pub vrf: String,
    /// Its address.
    pub ip: IpAddr,
}

/// One rule: traffic from (ingress) or to (egress) any of the peers, to any of the
/// ports, is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Peer address blocks (a pod is its address as a host prefix); empty: any peer.
    #[serde(default)]
    pub peers: Vec<PolicyPeer>,
    /// Destination ports; empty: every protocol and port.
    #[serde(default)]
    pub ports: Vec<PolicyPort>,
}

/// A peer block: a prefix, less the prefixes in `except`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPeer {
    /// The prefix.
    pub cidr: IpNet,
    /// Prefixes inside it that are not allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub except: Vec<IpNet>,
}

/// Destination ports of one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyPort {
    /// The protocol.
    pub protocol: L4Protocol,
    /// The port; `None`: every port of the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The last port of a range starting at `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<u16>,
}

impl PolicyPort {
    /// The data plane's form.
    pub fn to_match(self) -> nexthop::policy::PortMatch {
        let first = self.port.unwrap_or(0);
        nexthop::policy::PortMatch {
            proto: Some(self.protocol.number()),
            first,
            last: match self.port {
                None => u16::MAX,
                Some(p) => self.end_port.unwrap_or(p),
            },
        }
    }
}

impl PolicySpec {
    /// Why the policy cannot be, if it cannot.
    fn problem(&self) -> Option<String> {
        let name = &self.name;
        if name.is_empty() || name.len() > 253 || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Some(format!("name {name:?}: 1-253 characters, no whitespace"));
        }
        if self.pods.len() > MAX_POLICY_ITEMS {
            return Some(format!("selects {} pods, at most {MAX_POLICY_ITEMS}", self.pods.len()));
        }
        if let Some(pod) = self.pods.iter().find(|p| super::validate_vrf_name(&p.vrf).is_err()) {
            return Some(format!("pod {} in invalid VRF {:?}", pod.ip, pod.vrf));
        }
        let rules = self.ingress.iter().chain(self.egress.iter()).flatten();
        if rules.clone().count() > MAX_POLICY_RULES {
            return Some(format!("more than {MAX_POLICY_RULES} rules"));
        }
        for rule in rules {
            let excepts: usize = rule.peers.iter().map(|p| p.except.len()).sum();
            if rule.peers.len() + excepts + rule.ports.len() > MAX_POLICY_ITEMS {
                return Some(format!(
                    "a rule with more than {MAX_POLICY_ITEMS} peers, exceptions and ports"
                ));
            }
            for peer in &rule.peers {
                if let Some(e) = peer.except.iter().find(|e| !peer.cidr.contains(*e)) {
                    return Some(format!("except {e} is not inside {}", peer.cidr));
                }
            }
            for port in &rule.ports {
                let icmp = matches!(port.protocol, L4Protocol::Icmp | L4Protocol::Icmpv6);
                if icmp && (port.port.is_some() || port.end_port.is_some()) {
                    return Some("ICMP has no ports: give none".into());
                }
                match (port.port, port.end_port) {
                    (None, Some(_)) => return Some("endPort without port".into()),
                    (Some(p), Some(end)) if end < p => return Some(format!("endPort {end} below port {p}")),
                    _ => {}
                }
            }
        }
        None
    }
}

/// A policy version no state of this process had before.
pub(super) fn next_policy_version() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl DesiredState {
    /// Adds policy `spec`, or replaces the one of that name.
    pub fn add_policy(&mut self, spec: PolicySpec) -> Result<(), ModelError> {
        if let Some(why) = spec.problem() {
            return Err(ModelError::InvalidPolicy(why));
        }
        if !self.policies.contains_key(&spec.name) && self.policies.len() >= MAX_POLICIES {
            return Err(ModelError::InvalidPolicy(format!(
                "{MAX_POLICIES} policies exist already"
            )));
        }
        self.policies.insert(spec.name.clone(), spec);
        self.policy_version = next_policy_version();
        Ok(())
    }

    /// Removes policy `name`; returns what it was.
    pub fn remove_policy(&mut self, name: &str) -> Result<PolicySpec, ModelError> {
        let spec = self
            .policies
            .remove(name)
            .ok_or_else(|| ModelError::UnknownPolicy(name.to_string()))?;
        self.policy_version = next_policy_version();
        Ok(spec)
    }

    /// Names the policies' content: every change takes a number no other state of
    /// this process has, so equal versions mean equal policies (a clone), and the
    /// snapshot builder compiles policies again when it differs.
    pub(super) fn policy_version(&self) -> u64 {
        self.policy_version
    }

    /// The policies, by name.
    pub fn policies(&self) -> impl Iterator<Item = &PolicySpec> {
        self.policies.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InterfaceSpec, SnapshotBuilder};
    use nexthop::MacAddr;

    #[test]
    fn a_tier_is_shown_by_the_name_it_is_serialized_as() {
        for tier in [PolicyTier::Pod, PolicyTier::Network] {
            assert_eq!(serde_json::to_string(&tier).unwrap(), format!("\"{}\"", tier.as_str()));
        }
    }

    fn state(port: u16) -> DesiredState {
        let mut s = DesiredState::new(4);
        s.add_interface(InterfaceSpec {
            name: "a".into(),
            vrf: "red".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            ipv4: Some([198, 18, 1, 2].into()),
            ..InterfaceSpec::default()
        })
        .unwrap();
        s.add_policy(PolicySpec {
            name: "ns/p".into(),
            pods: vec![PolicyPod {
                vrf: "red".into(),
                ip: [198, 18, 1, 2].into(),
            }],
            ingress: Some(vec![PolicyRule {
                peers: Vec::new(),
                ports: vec![PolicyPort {
                    protocol: L4Protocol::Tcp,
                    port: Some(port),
                    end_port: None,
                }],
            }]),
            egress: None,
            tier: PolicyTier::Pod,
        })
        .unwrap();
        s
    }

    #[test]
    fn states_with_as_many_changes_but_other_policies_are_told_apart() {
        let (first, second) = (state(80), state(81));
        let mut builder = SnapshotBuilder::new(1);
        let one = builder.build(&first, MacAddr::default());
        let same = builder.build(&first.clone(), MacAddr::default());
        assert!(
            std::sync::Arc::ptr_eq(&one.policies, &same.policies),
            "a clone compiles nothing"
        );
        assert_eq!(same.flow_epoch, one.flow_epoch, "nor renews the flow epoch");
        let other = builder.build(&second, MacAddr::default());
        assert!(
            other.flow_epoch > one.flow_epoch,
            "another policy renews the flow epoch"
        );
        let a = (nexthop::VrfId(1), std::net::IpAddr::from([198, 18, 1, 2]));
        let set = &other.policies.pods[&a].ingress[0];
        assert!(set.allows([198, 18, 9, 9].into(), 6, 81).is_some());
        assert!(set.allows([198, 18, 9, 9].into(), 6, 80).is_none());
    }
}

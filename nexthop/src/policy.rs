//! Network policy as the data plane enforces it (Kubernetes NetworkPolicy semantics,
//! Contrail's stateful security groups): evaluated once per connection, at flow
//! setup, for the connection's direction; both entries of the flow carry the verdict,
//! so replies of an allowed connection always pass.
//!
//! Contract:
//! - A pod is isolated in a direction when at least one policy selects it for that
//!   direction; a pod selected by none allows everything in that direction.
//! - Policies come in tiers (the pods' own, Kubernetes NetworkPolicies and security
//!   groups; their virtual network's access control list). Within a tier, an
//!   isolated direction allows a connection when any rule of any policy selecting
//!   the pod matches the peer address and the (post-translation) destination port.
//!   A connection is allowed when every tier isolating the pod allows it (as
//!   Tungsten's agent requires both the security groups and the network's ACL);
//!   otherwise it is denied and the verdict names the first policy of the tier
//!   that denied.
//! - Egress is checked for the local pod that opens the connection, ingress for the
//!   local pod that receives it, each on its own node (a remote peer's side is
//!   checked by its node, when the packet passes its flow table).
//! - Connections from the node's own addresses to its pods are always allowed
//!   (kubelet probes), as kube-proxy-free data planes do.
//! - Matching is a longest-prefix lookup of the peer in a table merged from every
//!   rule of the pod's policies (with `except` prefixes folded in), then a scan of
//!   the few port matches stored at that prefix: never a scan of every rule.

use crate::{v4_key, v6_key, FastMap, LpmTable, VrfId};
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A policy's index in [`Policies::names`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(pub u32);

/// Which way a rule looks: at the connections a pod receives, or opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Connections to the pod.
    Ingress,
    /// Connections from the pod.
    Egress,
}

impl Direction {
    /// `ingress` or `egress`.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// One rule of one policy: the policy and the rule's index in its direction's list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleRef {
    /// The policy.
    pub policy: PolicyId,
    /// The rule's index (from 0) among the policy's rules of that direction.
    pub rule: u16,
}

/// The ports a rule allows: protocol (`None`: every protocol, every port) and an
/// inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMatch {
    /// IP protocol number; `None`: any (and any port).
    pub proto: Option<u8>,
    /// First port.
    pub first: u16,
    /// Last port.
    pub last: u16,
}

impl PortMatch {
    /// Every protocol and port.
    pub const ANY: PortMatch = PortMatch {
        proto: None,
        first: 0,
        last: u16::MAX,
    };

    /// True if a connection of protocol `proto` to `port` matches.
    #[inline]
    pub fn matches(&self, proto: u8, port: u16) -> bool {
        match self.proto {
            None => true,
            Some(p) => p == proto && (self.first..=self.last).contains(&port),
        }
    }
}

/// A peer block: a prefix less the prefixes in `except`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerBlock {
    /// The prefix.
    pub net: IpNet,
    /// Prefixes inside it that do not match.
    pub except: Vec<IpNet>,
}

/// A rule with its peers resolved to addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedRule {
    /// Which rule it is.
    pub rule: RuleRef,
    /// The peers it allows; empty: every address.
    pub peers: Vec<PeerBlock>,
    /// The ports it allows; empty: every protocol and port.
    pub ports: Vec<PortMatch>,
}

/// The rules of every policy that selects a pod in one direction, merged. Each
/// prefix holds the indexes of the rules whose peers cover it (not copies of their
/// ports), so the table grows with prefixes times covering rules.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// The policies that select the pod in this direction (it is isolated by them).
    pub isolated_by: Vec<PolicyId>,
    /// Each rule and its ports (empty: every protocol and port).
    rules: Vec<(RuleRef, Box<[PortMatch]>)>,
    v4: LpmTable<u32, Box<[u32]>>,
    v6: LpmTable<u128, Box<[u32]>>,
}

impl RuleSet {
    /// Merges `rules` (of the policies `isolated_by`) into one lookup table.
    pub fn new(isolated_by: Vec<PolicyId>, rules: &[ResolvedRule]) -> Self {
        // Every prefix a rule names (blocks and their exceptions), each with the
        // (rule, block) pairs that name it and whether as an exception.
        let mut named: FastMap<IpNet, Vec<(usize, usize, bool)>> = FastMap::default();
        let everything = [
            PeerBlock {
                net: IpNet::V4(Default::default()),
                except: Vec::new(),
            },
            PeerBlock {
                net: IpNet::V6(Default::default()),
                except: Vec::new(),
            },
        ];
        let blocks_of = |r: &ResolvedRule| -> Vec<PeerBlock> {
            if r.peers.is_empty() {
                everything.to_vec()
            } else {
                r.peers.clone()
            }
        };
        let blocks: Vec<Vec<PeerBlock>> = rules.iter().map(blocks_of).collect();
        for (r, bs) in blocks.iter().enumerate() {
            for (b, block) in bs.iter().enumerate() {
                named.entry(block.net.trunc()).or_default().push((r, b, false));
                for e in &block.except {
                    named.entry(e.trunc()).or_default().push((r, b, true));
                }
            }
        }
        let mut set = RuleSet {
            isolated_by,
            rules: rules
                .iter()
                .map(|r| (r.rule, r.ports.clone().into_boxed_slice()))
                .collect(),
            ..RuleSet::default()
        };
        // An address whose longest match is prefix P lies inside exactly the named
        // prefixes that contain P, so P's entry is decided by those alone.
        for prefix in named.keys() {
            let mut covered: FastMap<(usize, usize), (bool, bool)> = FastMap::default();
            for len in 0..=prefix.prefix_len() {
                let Ok(outer) = IpNet::new(prefix.addr(), len).map(|n| n.trunc()) else {
                    continue;
                };
                for &(r, b, except) in named.get(&outer).into_iter().flatten() {
                    let c = covered.entry((r, b)).or_default();
                    if except {
                        c.1 = true;
                    } else {
                        c.0 = true;
                    }
                }
            }
            let mut matching: Vec<u32> = covered
                .iter()
                .filter(|(_, (inside, excepted))| *inside && !*excepted)
                .map(|((r, _), _)| *r as u32)
                .collect();
            matching.sort_unstable();
            matching.dedup();
            let allowed = matching.into_boxed_slice();
            match prefix {
                IpNet::V4(n) => set.v4.insert(v4_key(n.addr()), n.prefix_len(), allowed),
                IpNet::V6(n) => set.v6.insert(v6_key(n.addr()), n.prefix_len(), allowed),
            };
        }
        set
    }

    /// The rule that allows a connection with peer `peer`, protocol `proto` and
    /// destination port `port`; `None`: denied.
    #[inline]
    pub fn allows(&self, peer: IpAddr, proto: u8, port: u16) -> Option<RuleRef> {
        let found = match peer {
            IpAddr::V4(a) => self.v4.lookup(v4_key(a)),
            IpAddr::V6(a) => self.v6.lookup(v6_key(a)),
        };
        found?.1.iter().find_map(|&i| {
            let (rule, ports) = self.rules.get(i as usize)?;
            (ports.is_empty() || ports.iter().any(|p| p.matches(proto, port))).then_some(*rule)
        })
    }

    /// Prefixes in the merged table (for sizing and views).
    pub fn prefixes(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// A local pod's policy: per direction, the merged rules of each tier isolating it
/// that way, in tier order (none: not isolated).
#[derive(Debug, Clone, Default)]
pub struct PodPolicy {
    /// Connections to the pod.
    pub ingress: Vec<Arc<RuleSet>>,
    /// Connections from the pod.
    pub egress: Vec<Arc<RuleSet>>,
}

impl PodPolicy {
    /// True if no tier isolates the pod either way.
    pub fn is_open(&self) -> bool {
        self.ingress.is_empty() && self.egress.is_empty()
    }
}

/// A connection as policy sees it: its source as the client sent it, its destination
/// after translation (a service's backend and target port, a floating IP's pod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// The VRF the source pod sent in.
    pub src_vrf: VrfId,
    /// The source address.
    pub src: IpAddr,
    /// The VRF the destination is delivered in.
    pub dst_vrf: VrfId,
    /// The destination address.
    pub dst: IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// Destination port (0 for protocols without ports).
    pub dst_port: u16,
}

/// What one direction of the check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SideVerdict {
    /// No policy applies: the pod is not local, not isolated that way, or the
    /// connection comes from the node.
    Open,
    /// Allowed by this rule (of the first tier isolating the pod).
    Allowed(RuleRef),
    /// Denied: no rule of the policies of a tier isolating the pod matches; the
    /// first of them.
    Denied(PolicyId),
}

/// The verdict on a connection: each side's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The source pod's egress side.
    pub egress: SideVerdict,
    /// The destination pod's ingress side.
    pub ingress: SideVerdict,
}

impl Verdict {
    /// Both sides open.
    pub const OPEN: Verdict = Verdict {
        egress: SideVerdict::Open,
        ingress: SideVerdict::Open,
    };

    /// True unless a side denied.
    #[inline]
    pub fn allowed(&self) -> bool {
        !matches!(self.egress, SideVerdict::Denied(_)) && !matches!(self.ingress, SideVerdict::Denied(_))
    }

    /// The policy that denied (egress first), with its direction.
    pub fn denied_by(&self) -> Option<(Direction, PolicyId)> {
        match (self.egress, self.ingress) {
            (SideVerdict::Denied(p), _) => Some((Direction::Egress, p)),
            (_, SideVerdict::Denied(p)) => Some((Direction::Ingress, p)),
            _ => None,
        }
    }
}

/// The policies of a snapshot: every local pod that some policy selects.
#[derive(Debug, Default)]
pub struct Policies {
    /// Policy names (`namespace/name`), by [`PolicyId`].
    pub names: Vec<Arc<str>>,
    /// Connections each policy denied (counted at flow setup), by [`PolicyId`];
    /// the control side carries them from one snapshot to the next.
    pub denied: Vec<Arc<AtomicU64>>,
    /// Selected local pods by VRF and address.
    pub pods: FastMap<(VrfId, IpAddr), PodPolicy>,
    /// The node's own addresses: connections from them are not checked.
    pub node_addresses: Vec<IpAddr>,
    /// What each policy is, for views, by [`PolicyId`].
    pub summaries: Vec<PolicySummary>,
}

/// A policy's size, for views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PolicySummary {
    /// Its ingress rules (`None`: it does not restrict ingress).
    pub ingress_rules: Option<usize>,
    /// Its egress rules.
    pub egress_rules: Option<usize>,
    /// The pods it selects in the whole cluster.
    pub pods: usize,
    /// A virtual network's access control list (a tier of its own, which a flow
    /// must pass beside the pods' policies), not a pod policy.
    pub network_tier: bool,
}

impl Policies {
    /// True when no local pod is selected (the common case: a flow setup pays one
    /// branch).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The name of policy `id`.
    pub fn name(&self, id: PolicyId) -> &str {
        self.names.get(id.0 as usize).map_or("?", |n| n)
    }

    /// The verdict on `c`.
    pub fn check(&self, c: &Connection) -> Verdict {
        if self.pods.is_empty() {
            return Verdict::OPEN;
        }
        let side = |tiers: Option<&Vec<Arc<RuleSet>>>, peer: IpAddr| {
            let mut verdict = SideVerdict::Open;
            for set in tiers.into_iter().flatten() {
                match set.allows(peer, c.proto, c.dst_port) {
                    Some(rule) if verdict == SideVerdict::Open => verdict = SideVerdict::Allowed(rule),
                    Some(_) => {}
                    None => {
                        return SideVerdict::Denied(set.isolated_by.first().copied().unwrap_or(PolicyId(0)));
                    }
                }
            }
            verdict
        };
        let egress = side(self.pods.get(&(c.src_vrf, c.src)).map(|p| &p.egress), c.dst);
        let ingress = if self.node_addresses.contains(&c.src) {
            SideVerdict::Open
        } else {
            side(self.pods.get(&(c.dst_vrf, c.dst)).map(|p| &p.ingress), c.src)
        };
        Verdict { egress, ingress }
    }

    /// Counts a connection denied by `policy`.
    pub fn count_denied(&self, policy: PolicyId) {
        if let Some(c) = self.denied.get(policy.0 as usize) {
            c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests;

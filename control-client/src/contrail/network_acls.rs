//! Virtual networks' access control lists enforced as network policies of the
//! network tier, as Tungsten's agent applies a network's list to its ports' flows
//! on top of their security groups (a flow must pass both).
//!
//! The list is what the schema transformer makes of the network policies attached
//! to the network: rules in order, the first that matches decides (pass or deny),
//! and a flow no rule matches is denied (the transformer ends the list with its
//! own catch-all). Each network with a list and a port bound here becomes one
//! policy, `config:vn:NETWORK`, selecting the network's bound ports both ways:
//!
//! - a rule's end that is this network (or `any`) is the local end: a rule whose
//!   source is local speaks for the connections the ports open (egress), one whose
//!   destination is local for those they receive (ingress); a `<>` rule speaks both
//!   ways, its ends and ports swapped for the second;
//! - the other end is addresses: a network stands for its subnets and its ports'
//!   addresses, a subnet for itself, `any` for everything;
//! - first match is turned into a sum of allows: a passing rule allows what it
//!   matches less everything earlier denying rules match (their prefixes become
//!   exceptions, their ports are cut out of its ports).
//!
//! Connections are stateful (replies of an allowed connection pass, as everywhere
//! in this data plane), so the swapped half of a `<>` passing rule with a
//! destination port, which in the agent admits the replies, has nothing left to
//! do. What a policy cannot express is left out and reported: a rule whose
//! connections are told apart by their source port, a local end given as a subnet
//! that holds only some of the ports, an end that is a security group or a policy,
//! a protocol other than TCP, UDP, SCTP, ICMP and ICMPv6 or ICMP type ranges. A
//! passing rule left out allows less; a denying rule left out is not enforced,
//! which the report says.

use super::rules::{Endpoint, PortRange, Rule, RuleAction};
use super::{CompiledConfig, Uuid};
use crate::model::{L4Protocol, PolicyPeer, PolicyPod, PolicyPort, PolicyRule, PolicySpec, PolicyTier};
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Where the policy of network `NAME` is named `PREFIX` + `NAME`.
pub const POLICY_PREFIX: &str = "config:vn:";

/// Pieces (a prefix with its exceptions, and ports) one direction's list may be
/// cut into at most: beyond, the list is left out whole (allowing nothing).
const MAX_PIECES: usize = 4096;

/// The policies of the networks of the ports bound here, and what was left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicies {
    /// By policy name.
    pub policies: BTreeMap<String, PolicySpec>,
    /// One line per rule (or half of one) left out.
    pub left_out: Vec<String>,
}

/// The policies for the networks of the ports in `bound` (UUIDs of this node's
/// bound ports) whose network has an access control list.
pub fn policies(compiled: &CompiledConfig, bound: &BTreeSet<Uuid>) -> NetworkPolicies {
    let mut pods: BTreeMap<&str, BTreeSet<PolicyPod>> = BTreeMap::new();
    for port in bound.iter().filter_map(|uuid| compiled.ports.get(uuid)) {
        let Some(network) = port.virtual_network.as_deref() else {
            continue;
        };
        if compiled.network_acls.contains_key(network) {
            pods.entry(network).or_default().extend(port.policy_pods());
        }
    }
    let mut out = NetworkPolicies::default();
    for (network, selected) in pods {
        let rules = &compiled.network_acls[network];
        let local = Local {
            network,
            addresses: selected.iter().map(|p| p.ip).collect(),
        };
        let mut list = |egress: bool| {
            let mut why = Vec::new();
            let pieces = first_match(compiled, &local, rules, egress, &mut why);
            out.left_out.extend(why.into_iter().map(|w| format!("{network} {w}")));
            pieces
        };
        let (ingress, egress) = (list(false), list(true));
        let name = format!("{POLICY_PREFIX}{network}");
        out.policies.insert(
            name.clone(),
            PolicySpec {
                name,
                pods: selected.into_iter().collect(),
                ingress: Some(ingress),
                egress: Some(egress),
                tier: PolicyTier::Network,
            },
        );
    }
    out
}

/// The network whose list it is, and its selected ports' addresses.
struct Local<'a> {
    network: &'a str,
    addresses: Vec<IpAddr>,
}

/// One way a rule can be read for one direction: its local and remote ends, the
/// ports the connection's destination must have and those its source must have.
struct Reading<'r> {
    local: &'r [Endpoint],
    remote: &'r [Endpoint],
    dst_ports: &'r [PortRange],
    src_ports: &'r [PortRange],
    swapped: bool,
}

/// The rule's readings for one direction: as written (its source the local end for
/// egress, its destination for ingress) and, for `<>`, swapped.
fn readings(rule: &Rule, egress: bool) -> Vec<Reading<'_>> {
    let (from, to) = (&rule.src[..], &rule.dst[..]);
    let read = |swapped: bool| {
        // Egress as written and ingress swapped have the rule's source local.
        let source_local = egress != swapped;
        let (local, remote) = if source_local { (from, to) } else { (to, from) };
        let (dst_ports, src_ports) = if swapped {
            (&rule.src_ports[..], &rule.dst_ports[..])
        } else {
            (&rule.dst_ports[..], &rule.src_ports[..])
        };
        Reading {
            local,
            remote,
            dst_ports,
            src_ports,
            swapped,
        }
    };
    let mut out = vec![read(false)];
    if rule.bidirectional {
        out.push(read(true));
    }
    out
}

/// The rules of one direction as a list of allows.
fn first_match(
    compiled: &CompiledConfig,
    local: &Local,
    rules: &[Rule],
    egress: bool,
    why: &mut Vec<String>,
) -> Vec<PolicyRule> {
    let direction = if egress { "egress" } else { "ingress" };
    let mut denied: Vec<(Vec<IpNet>, PortSet)> = Vec::new();
    let mut allowed: Vec<Piece> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        for reading in readings(rule, egress) {
            let half = if reading.swapped { " (swapped half)" } else { "" };
            let say = |what: &str| format!("rule {i}{half}, {direction}: {what} ({})", effect(rule));
            match applies(local, reading.local) {
                Applies::No => continue,
                Applies::Partly => {
                    why.push(say("its local end is a subnet holding only some of the ports"));
                    continue;
                }
                Applies::Yes => {}
            }
            if reading.src_ports.iter().any(|p| *p != PortRange::ANY) {
                // The swapped half of a passing rule with a port admits the replies,
                // which pass anyway.
                if !(reading.swapped && rule.action == RuleAction::Pass) {
                    why.push(say("it matches by source port"));
                }
                continue;
            }
            let resolved = peers(compiled, reading.remote, rule.ethertype)
                .and_then(|peers| Ok((peers, PortSet::of(rule.protocol, reading.dst_ports)?)));
            let (peers, ports) = match resolved {
                Ok(r) => r,
                Err(e) => {
                    why.push(say(&e));
                    continue;
                }
            };
            match rule.action {
                RuleAction::Deny => denied.push((peers, ports)),
                RuleAction::Pass => {
                    let mut pieces: Vec<Piece> = peers
                        .into_iter()
                        .map(|net| Piece {
                            net,
                            except: Vec::new(),
                            ports: ports.clone(),
                        })
                        .collect();
                    for (nets, ports) in &denied {
                        for net in nets {
                            pieces = pieces.into_iter().flat_map(|p| p.less(*net, ports)).collect();
                        }
                    }
                    if pieces.iter().any(|p| p.ports.narrowed) {
                        why.push(say(
                            "after a deny, protocols other than TCP, UDP, SCTP, ICMP and ICMPv6",
                        ));
                    }
                    allowed.extend(pieces);
                }
            }
            if allowed.len() > MAX_PIECES {
                why.push(format!(
                    "{direction}: more than {MAX_PIECES} address and port pieces (the list left out: nothing allowed)"
                ));
                return Vec::new();
            }
        }
    }
    rules_of(allowed)
}

/// What leaving rule `rule` out does.
fn effect(rule: &Rule) -> &'static str {
    match rule.action {
        RuleAction::Pass => "left out: allows less",
        RuleAction::Deny => "left out: this deny is not enforced",
    }
}

/// Whether a rule's local end covers the network's ports.
#[derive(Debug, PartialEq, Eq)]
enum Applies {
    Yes,
    No,
    Partly,
}

/// Whether `end` (a rule's local end) is the network `local`: `any`, its name, or
/// a subnet holding all its ports' addresses (none: it is not; some: partly).
fn applies(local: &Local, end: &[Endpoint]) -> Applies {
    if end.is_empty() {
        return Applies::Yes;
    }
    let mut partly = false;
    for e in end {
        match e {
            Endpoint::Any => return Applies::Yes,
            Endpoint::VirtualNetwork(n) if n == local.network || n == "local" => return Applies::Yes,
            Endpoint::Subnet(net) => {
                let inside = local.addresses.iter().filter(|a| net.contains(*a)).count();
                if inside == local.addresses.len() && inside > 0 {
                    return Applies::Yes;
                }
                partly |= inside > 0;
            }
            _ => {}
        }
    }
    if partly {
        Applies::Partly
    } else {
        Applies::No
    }
}

/// The prefixes a rule's remote end stands for (of the rule's family).
fn peers(compiled: &CompiledConfig, end: &[Endpoint], ethertype: Option<u8>) -> Result<Vec<IpNet>, String> {
    let mut nets: BTreeSet<IpNet> = BTreeSet::new();
    let any = [Endpoint::Any];
    for e in if end.is_empty() { &any[..] } else { end } {
        match e {
            Endpoint::Any => {
                nets.extend(["0.0.0.0/0", "::/0"].map(|n| n.parse::<IpNet>().expect("a prefix")));
            }
            Endpoint::Subnet(net) => {
                nets.insert(*net);
            }
            Endpoint::VirtualNetwork(n) => {
                nets.extend(compiled.network_subnets.get(n).into_iter().flatten().copied());
                let ports = compiled
                    .ports
                    .values()
                    .filter(|p| p.virtual_network.as_deref() == Some(n.as_str()));
                nets.extend(ports.flat_map(|p| p.addresses()).map(IpNet::from));
            }
            Endpoint::SecurityGroup(g) => return Err(format!("an end is security group {g}")),
            Endpoint::NetworkPolicy(p) => return Err(format!("an end is policy {p}")),
        }
    }
    // A host inside one of the network's subnets adds nothing.
    let all: Vec<IpNet> = nets.iter().copied().collect();
    nets.retain(|n| !all.iter().any(|o| o != n && o.contains(n)));
    Ok(nets
        .into_iter()
        .filter(|n| !matches!((ethertype, n), (Some(4), IpNet::V6(_)) | (Some(6), IpNet::V4(_))))
        .collect())
}

/// The protocols a policy port can name.
const PROTOCOLS: [L4Protocol; 5] = [
    L4Protocol::Tcp,
    L4Protocol::Udp,
    L4Protocol::Sctp,
    L4Protocol::Icmp,
    L4Protocol::Icmpv6,
];

/// Destination ports a connection may have: every protocol and port, or per
/// protocol inclusive ranges (an ICMP protocol's only range is "all").
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortSet {
    every: bool,
    ranges: BTreeMap<L4Protocol, Vec<(u16, u16)>>,
    /// Cut from "every protocol": the protocols a port cannot name were lost.
    narrowed: bool,
}

impl PortSet {
    const EVERYTHING: PortSet = PortSet {
        every: true,
        ranges: BTreeMap::new(),
        narrowed: false,
    };

    /// A rule's protocol and destination ports.
    fn of(protocol: Option<u8>, ports: &[PortRange]) -> Result<PortSet, String> {
        let ranges: Vec<(u16, u16)> = ports
            .iter()
            .filter(|r| **r != PortRange::ANY)
            .map(|r| (r.start, r.end))
            .collect();
        let every_port = ranges.is_empty();
        let Some(protocols) = super::rules::policy_protocols(protocol, every_port)? else {
            return Ok(PortSet::EVERYTHING);
        };
        let full = vec![(0, u16::MAX)];
        Ok(PortSet {
            every: false,
            ranges: protocols
                .into_iter()
                .map(|p| {
                    (
                        p,
                        if every_port {
                            full.clone()
                        } else {
                            normalized(ranges.clone())
                        },
                    )
                })
                .collect(),
            narrowed: false,
        })
    }

    /// True if no connection has ports in both.
    fn disjoint(&self, other: &PortSet) -> bool {
        if self.every || other.every {
            return false;
        }
        self.ranges.iter().all(|(p, mine)| {
            let theirs = other.ranges.get(p).map_or(&[][..], |v| v);
            mine.iter().all(|(a, b)| theirs.iter().all(|(c, d)| b < c || d < a))
        })
    }

    /// These ports less `other`'s.
    fn less(&self, other: &PortSet) -> PortSet {
        if other.every {
            return PortSet {
                every: false,
                ranges: BTreeMap::new(),
                narrowed: self.narrowed,
            };
        }
        let mine: BTreeMap<L4Protocol, Vec<(u16, u16)>> = if self.every {
            PROTOCOLS.iter().map(|p| (*p, vec![(0, u16::MAX)])).collect()
        } else {
            self.ranges.clone()
        };
        let ranges = mine
            .into_iter()
            .map(|(p, ranges)| {
                let cut = other.ranges.get(&p).map_or(&[][..], |v| v);
                (p, cut.iter().fold(ranges, |r, c| subtract(&r, *c)))
            })
            .filter(|(_, r)| !r.is_empty())
            .collect();
        PortSet {
            every: false,
            ranges,
            narrowed: self.narrowed || self.every,
        }
    }

    fn is_empty(&self) -> bool {
        !self.every && self.ranges.is_empty()
    }

    /// As policy ports (empty: every protocol and port).
    fn to_ports(&self) -> Vec<PolicyPort> {
        let mut out = Vec::new();
        for (protocol, ranges) in &self.ranges {
            for (first, last) in ranges {
                let all = (*first, *last) == (0, u16::MAX);
                out.push(PolicyPort {
                    protocol: *protocol,
                    port: (!all).then_some(*first),
                    end_port: (!all && last != first).then_some(*last),
                });
            }
        }
        out
    }
}

/// Sorted, overlapping and touching ranges merged.
fn normalized(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (a, b) in ranges {
        match out.last_mut() {
            Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// `ranges` less the range `cut`.
fn subtract(ranges: &[(u16, u16)], (c, d): (u16, u16)) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for &(a, b) in ranges {
        if b < c || d < a {
            out.push((a, b));
            continue;
        }
        if a < c {
            out.push((a, c - 1));
        }
        if d < b {
            out.push((d + 1, b));
        }
    }
    out
}

/// Allowed: a prefix less its exceptions, to some ports.
#[derive(Debug, Clone)]
struct Piece {
    net: IpNet,
    except: Vec<IpNet>,
    ports: PortSet,
}

impl Piece {
    /// This piece less what the denied prefix `net` with `ports` covers: none, one
    /// or two pieces.
    fn less(self, net: IpNet, ports: &PortSet) -> Vec<Piece> {
        let overlap = self.net.contains(&net) || net.contains(&self.net);
        if !overlap || self.ports.disjoint(ports) || self.except.iter().any(|e| e.contains(&net)) {
            return vec![self];
        }
        let rest = self.ports.less(ports);
        if net.contains(&self.net) {
            return if rest.is_empty() {
                Vec::new()
            } else {
                vec![Piece { ports: rest, ..self }]
            };
        }
        // The denied prefix lies inside: it becomes an exception of this piece, and
        // its own piece keeps the ports the deny leaves.
        let inner = Piece {
            net,
            except: self.except.iter().copied().filter(|e| net.contains(e)).collect(),
            ports: rest,
        };
        let mut outer = self;
        outer.except.retain(|e| !net.contains(e));
        outer.except.push(net);
        let mut out = vec![outer];
        if !inner.ports.is_empty() {
            out.push(inner);
        }
        out
    }
}

/// Pieces as policy rules: those with the same ports share one.
fn rules_of(pieces: Vec<Piece>) -> Vec<PolicyRule> {
    let mut by_ports: Vec<(PortSet, Vec<PolicyPeer>)> = Vec::new();
    for p in pieces {
        let key = PortSet {
            narrowed: false,
            ..p.ports
        };
        let peer = PolicyPeer {
            cidr: p.net,
            except: p.except,
        };
        match by_ports.iter_mut().find(|(k, _)| *k == key) {
            Some((_, peers)) => peers.push(peer),
            None => by_ports.push((key, vec![peer])),
        }
    }
    by_ports
        .into_iter()
        .map(|(ports, peers)| PolicyRule {
            peers,
            ports: ports.to_ports(),
        })
        .collect()
}

#[cfg(test)]
#[path = "network_acls_tests.rs"]
mod tests;

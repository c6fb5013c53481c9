//! Policy rules as the configuration carries them: a security group's entries
//! (`policy-rule`) and an access control list's (`acl-rule`), read into one typed
//! rule. What the data plane's policy stage enforces; here they are read and kept.

use crate::model::L4Protocol;
use crate::xmpp::Element;
use ipnet::IpNet;
use std::net::IpAddr;

/// What a rule does with the traffic it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    /// Allowed (every security group rule allows).
    Pass,
    /// Dropped.
    Deny,
}

/// One end of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Anything.
    Any,
    /// Addresses in a prefix.
    Subnet(IpNet),
    /// A virtual network (fully qualified name; `any`, `local`).
    VirtualNetwork(String),
    /// A security group (fully qualified name, or `local`: the group itself).
    SecurityGroup(String),
    /// A network policy.
    NetworkPolicy(String),
}

/// A port range (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub start: u16,
    /// Last port.
    pub end: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange { start: 0, end: 65535 };
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `<>`: both directions; `>`: from source to destination only.
    pub bidirectional: bool,
    /// IP protocol number; `None`: any.
    pub protocol: Option<u8>,
    /// IP version (4 or 6); `None`: both.
    pub ethertype: Option<u8>,
    /// Sources (any of them; none: any).
    pub src: Vec<Endpoint>,
    /// Source ports (any of them).
    pub src_ports: Vec<PortRange>,
    /// Destinations.
    pub dst: Vec<Endpoint>,
    /// Destination ports.
    pub dst_ports: Vec<PortRange>,
    /// What it does.
    pub action: RuleAction,
}

impl Rule {
    /// A security group rule as kube-manager and the API write one: one-way,
    /// allowing, with `local` (the group itself) as destination for `ingress` and
    /// as source otherwise, `remote` at the other end, any source port.
    pub fn security_group(ingress: bool, remote: Endpoint, protocol: Option<u8>, dst_ports: Vec<PortRange>) -> Rule {
        let local = Endpoint::SecurityGroup("local".into());
        let (src, dst) = if ingress { (remote, local) } else { (local, remote) };
        Rule::one_way(src, dst, protocol, dst_ports, RuleAction::Pass)
    }

    /// A one-way rule from `src` to `dst` (any source port; no destination port:
    /// any), both families.
    pub fn one_way(
        src: Endpoint,
        dst: Endpoint,
        protocol: Option<u8>,
        dst_ports: Vec<PortRange>,
        action: RuleAction,
    ) -> Rule {
        Rule {
            bidirectional: false,
            protocol,
            ethertype: None,
            src: vec![src],
            src_ports: vec![PortRange::ANY],
            dst: vec![dst],
            dst_ports: if dst_ports.is_empty() {
                vec![PortRange::ANY]
            } else {
                dst_ports
            },
            action,
        }
    }
}

/// The policy protocols a rule's `protocol` stands for when it names ports or not
/// (`every_port`): `None` for every protocol (no protocol and no port named); any
/// protocol with ports is the protocols that have ports. An error names what a
/// policy cannot match: another protocol, or ICMP's "ports" (type and code ranges).
pub(super) fn policy_protocols(protocol: Option<u8>, every_port: bool) -> Result<Option<Vec<L4Protocol>>, String> {
    Ok(Some(match protocol {
        None if every_port => return Ok(None),
        None => vec![L4Protocol::Tcp, L4Protocol::Udp, L4Protocol::Sctp],
        Some(6) => vec![L4Protocol::Tcp],
        Some(17) => vec![L4Protocol::Udp],
        Some(132) => vec![L4Protocol::Sctp],
        Some(1) if every_port => vec![L4Protocol::Icmp],
        Some(58) if every_port => vec![L4Protocol::Icmpv6],
        Some(1 | 58) => return Err("ICMP type/code ranges".into()),
        Some(other) => return Err(format!("protocol {other}")),
    }))
}

/// The rules of a `security-group-entries` element.
pub(super) fn security_group_rules(entries: &Element) -> Vec<Rule> {
    entries
        .children_named("policy-rule")
        .map(|r| Rule {
            bidirectional: r.child_text("direction") == Some("<>"),
            protocol: r.child_text("protocol").and_then(protocol),
            ethertype: r.child_text("ethertype").and_then(ethertype),
            src: r.children_named("src-addresses").map(endpoint).collect(),
            src_ports: r.children_named("src-ports").map(ports).collect(),
            dst: r.children_named("dst-addresses").map(endpoint).collect(),
            dst_ports: r.children_named("dst-ports").map(ports).collect(),
            action: RuleAction::Pass,
        })
        .collect()
}

/// The rules of an `access-control-list-entries` element. A dynamic list (the
/// policies with a timer) holds rules that decide nothing (the agent only mirrors
/// by them): none.
pub(super) fn acl_rules(entries: &Element) -> Vec<Rule> {
    if entries.child_text("dynamic").map(str::trim) == Some("true") {
        return Vec::new();
    }
    entries
        .children_named("acl-rule")
        .filter_map(|r| {
            let m = r.child("match-condition")?;
            let action = match r.child("action-list").and_then(|a| a.child_text("simple-action")) {
                Some("deny") => RuleAction::Deny,
                _ => RuleAction::Pass,
            };
            Some(Rule {
                bidirectional: r.child_text("direction") == Some("<>"),
                protocol: m.child_text("protocol").and_then(protocol),
                ethertype: m.child_text("ethertype").and_then(ethertype),
                src: m.child("src-address").map(endpoint).into_iter().collect(),
                src_ports: m.child("src-port").map(ports).into_iter().collect(),
                dst: m.child("dst-address").map(endpoint).into_iter().collect(),
                dst_ports: m.child("dst-port").map(ports).into_iter().collect(),
                action,
            })
        })
        .collect()
}

/// An `AddressType`: the first of subnet, virtual network, security group, network
/// policy that is set; none: any.
fn endpoint(a: &Element) -> Endpoint {
    let named = |n: &str| a.child_text(n).map(str::trim).filter(|t| !t.is_empty());
    if let Some(subnet) = a.child("subnet") {
        let addr: Option<IpAddr> = subnet.child_text("ip-prefix").and_then(|p| p.trim().parse().ok());
        let len: Option<u8> = subnet.child_text("ip-prefix-len").and_then(|l| l.trim().parse().ok());
        if let (Some(addr), Some(len)) = (addr, len) {
            if let Ok(net) = IpNet::new(addr, len) {
                return Endpoint::Subnet(net.trunc());
            }
        }
    }
    if let Some(vn) = named("virtual-network") {
        return match vn {
            "any" => Endpoint::Any,
            vn => Endpoint::VirtualNetwork(vn.to_string()),
        };
    }
    if let Some(sg) = named("security-group") {
        return Endpoint::SecurityGroup(sg.to_string());
    }
    if let Some(policy) = named("network-policy") {
        return Endpoint::NetworkPolicy(policy.to_string());
    }
    Endpoint::Any
}

/// A `PortType`: `-1` (or absent) is any.
fn ports(p: &Element) -> PortRange {
    let port = |n: &str| p.child_text(n).and_then(|t| t.trim().parse::<i32>().ok());
    match (port("start-port"), port("end-port")) {
        (Some(s), Some(e)) if (0..=65535).contains(&s) && (s..=65535).contains(&e) => PortRange {
            start: s as u16,
            end: e as u16,
        },
        _ => PortRange::ANY,
    }
}

fn protocol(text: &str) -> Option<u8> {
    match text.trim().to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "icmp" => Some(1),
        "icmp6" | "ipv6-icmp" => Some(58),
        "sctp" => Some(132),
        other => other.parse().ok(),
    }
}

fn ethertype(text: &str) -> Option<u8> {
    match text.trim() {
        "IPv4" => Some(4),
        "IPv6" => Some(6),
        _ => None,
    }
}

/// Writes rules back as the configuration carries them (for the lab's peer and the
/// tests): security group entries, or ACL entries.
pub(super) fn write(out: &mut String, rules: &[Rule], acl: bool) {
    use std::fmt::Write;
    for r in rules {
        let protocol = r.protocol.map_or("any".to_string(), |p| p.to_string());
        let direction = if r.bidirectional { "&lt;&gt;" } else { "&gt;" };
        let ethertype = match r.ethertype {
            Some(4) => "<ethertype>IPv4</ethertype>",
            Some(6) => "<ethertype>IPv6</ethertype>",
            _ => "",
        };
        if acl {
            let action = match r.action {
                RuleAction::Pass => "pass",
                RuleAction::Deny => "deny",
            };
            let _ = write!(out, "<acl-rule><match-condition><protocol>{protocol}</protocol>");
            list(out, "src-address", &r.src, &r.src_ports, "src-port");
            list(out, "dst-address", &r.dst, &r.dst_ports, "dst-port");
            let _ = write!(
                out,
                "{ethertype}</match-condition><action-list><simple-action>{action}</simple-action></action-list><direction>{direction}</direction></acl-rule>"
            );
        } else {
            let _ = write!(
                out,
                "<policy-rule><direction>{direction}</direction><protocol>{protocol}</protocol>"
            );
            list(out, "src-addresses", &r.src, &r.src_ports, "src-ports");
            list(out, "dst-addresses", &r.dst, &r.dst_ports, "dst-ports");
            let _ = write!(out, "{ethertype}</policy-rule>");
        }
    }
}

fn list(out: &mut String, name: &str, endpoints: &[Endpoint], ports: &[PortRange], ports_name: &str) {
    use std::fmt::Write;
    for e in endpoints {
        let inner = match e {
            Endpoint::Any => "<virtual-network>any</virtual-network>".to_string(),
            Endpoint::Subnet(net) => format!(
                "<subnet><ip-prefix>{}</ip-prefix><ip-prefix-len>{}</ip-prefix-len></subnet>",
                net.addr(),
                net.prefix_len()
            ),
            Endpoint::VirtualNetwork(n) => format!("<virtual-network>{}</virtual-network>", escape(n)),
            Endpoint::SecurityGroup(n) => format!("<security-group>{}</security-group>", escape(n)),
            Endpoint::NetworkPolicy(n) => format!("<network-policy>{}</network-policy>", escape(n)),
        };
        let _ = write!(out, "<{name}>{inner}</{name}>");
    }
    for p in ports {
        let _ = write!(
            out,
            "<{ports_name}><start-port>{}</start-port><end-port>{}</end-port></{ports_name}>",
            p.start, p.end
        );
    }
}

fn escape(text: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(text)
}

use super::*;
use crate::contrail::PortConfig;

const RED: &str = "default-domain:k8s:red";
const BLUE: &str = "default-domain:k8s:blue";
const GREEN: &str = "default-domain:k8s:green";

fn port(n: u8, network: &str) -> PortConfig {
    PortConfig {
        virtual_network: Some(network.into()),
        vrf: Some(format!("{network}:vrf")),
        ipv4: Some([198, 18, n, 2].into()),
        ..PortConfig::numbered(n)
    }
}

fn vn(name: &str) -> Endpoint {
    Endpoint::VirtualNetwork(name.into())
}

fn range(start: u16, end: u16) -> PortRange {
    PortRange { start, end }
}

fn acl(
    bidirectional: bool,
    src: Endpoint,
    dst: Endpoint,
    protocol: Option<u8>,
    dst_ports: &[(u16, u16)],
    action: RuleAction,
) -> Rule {
    let ports = dst_ports.iter().map(|(a, b)| range(*a, *b)).collect();
    Rule {
        bidirectional,
        ..Rule::one_way(src, dst, protocol, ports, action)
    }
}

/// What the schema transformer writes for red when a policy lets red reach blue on
/// TCP 80 both ways: the rule, red to itself, a deny copy of the rule's address
/// pair, and the final pass.
fn transformer_list() -> Vec<Rule> {
    vec![
        acl(true, vn(RED), vn(BLUE), Some(6), &[(80, 80)], RuleAction::Pass),
        acl(false, vn(RED), vn(RED), None, &[], RuleAction::Pass),
        acl(true, vn(RED), vn(BLUE), None, &[], RuleAction::Deny),
        acl(false, Endpoint::Any, Endpoint::Any, None, &[], RuleAction::Pass),
    ]
}

/// Ports 1 (red, bound), 2 (blue, bound), 3 (green, bound, no list); red is
/// 198.18.1.0/24 and holds 198.18.1.2, blue 198.18.2.0/24.
fn config(red: Vec<Rule>) -> (CompiledConfig, BTreeSet<Uuid>) {
    let mut c = CompiledConfig::default();
    for p in [port(1, RED), port(2, BLUE), port(3, GREEN)] {
        c.ports.insert(p.uuid, p);
    }
    c.network_subnets
        .insert(RED.into(), vec!["198.18.1.0/24".parse().unwrap()]);
    c.network_subnets
        .insert(BLUE.into(), vec!["198.18.2.0/24".parse().unwrap()]);
    c.network_acls.insert(RED.into(), red);
    let bound = c.ports.keys().copied().collect();
    (c, bound)
}

/// Allowed by the allow list `rules` (the policy's view): any rule with a peer
/// block holding `peer` and a port matching.
fn allows(rules: &[PolicyRule], peer: &str, proto: u8, port: u16) -> bool {
    let peer: IpAddr = peer.parse().unwrap();
    rules.iter().any(|r| {
        let peer_ok = r
            .peers
            .iter()
            .any(|p| p.cidr.contains(&peer) && !p.except.iter().any(|e| e.contains(&peer)));
        let port_ok = r.ports.is_empty() || r.ports.iter().any(|p| p.to_match().matches(proto, port));
        peer_ok && port_ok
    })
}

#[test]
fn a_network_with_a_list_selects_its_bound_ports_in_the_network_tier_and_others_are_open() {
    let (c, bound) = config(transformer_list());
    let out = policies(&c, &bound);
    assert_eq!(out.policies.len(), 1, "blue and green have no list: {out:?}");
    let p = &out.policies[&format!("{POLICY_PREFIX}{RED}")];
    assert_eq!(p.tier, PolicyTier::Network);
    assert_eq!(
        p.pods,
        vec![PolicyPod {
            vrf: format!("{RED}:vrf"),
            ip: [198, 18, 1, 2].into()
        }]
    );
    assert!(out.left_out.is_empty(), "{:?}", out.left_out);
    let unbound = policies(&c, &BTreeSet::from([Uuid::from_u128(2)]));
    assert!(unbound.policies.is_empty(), "no red port bound here: no policy");
}

#[test]
fn first_match_becomes_allows_less_the_earlier_denies() {
    let (c, bound) = config(transformer_list());
    let p = &policies(&c, &bound).policies[&format!("{POLICY_PREFIX}{RED}")];
    let (egress, ingress) = (p.egress.as_deref().unwrap(), p.ingress.as_deref().unwrap());
    assert!(allows(egress, "198.18.2.7", 6, 80), "red opens TCP 80 to blue");
    assert!(
        !allows(egress, "198.18.2.7", 6, 81),
        "the deny copy takes the rest of blue"
    );
    assert!(!allows(egress, "198.18.2.7", 17, 53));
    assert!(allows(egress, "198.18.1.9", 17, 53), "red to itself");
    assert!(allows(egress, "203.0.113.1", 6, 443), "the final pass: outside");
    assert!(allows(egress, "2001:db8::1", 6, 443));
    // Blue opening to red: the rule's swapped half is blue's port 80 as source
    // (replies, which pass anyway); blue's own connections meet the deny copy.
    assert!(!allows(ingress, "198.18.2.7", 6, 80), "blue may not open to red");
    assert!(!allows(ingress, "198.18.2.7", 6, 22));
    assert!(allows(ingress, "198.18.1.9", 6, 22), "red from itself");
    assert!(allows(ingress, "203.0.113.1", 6, 22), "the final pass: outside");
}

#[test]
fn a_deny_of_some_ports_inside_a_pass_prefix_cuts_those_ports_only() {
    let list = vec![
        acl(false, Endpoint::Any, vn(RED), Some(6), &[(22, 23)], RuleAction::Deny),
        acl(
            false,
            Endpoint::Subnet("198.18.2.128/25".parse().unwrap()),
            vn(RED),
            None,
            &[],
            RuleAction::Deny,
        ),
        acl(false, Endpoint::Any, vn(RED), None, &[], RuleAction::Pass),
    ];
    let (c, bound) = config(list);
    let out = policies(&c, &bound);
    let p = &out.policies[&format!("{POLICY_PREFIX}{RED}")];
    let ingress = p.ingress.as_deref().unwrap();
    assert!(!allows(ingress, "198.18.2.7", 6, 22));
    assert!(!allows(ingress, "198.18.2.7", 6, 23));
    assert!(allows(ingress, "198.18.2.7", 6, 21));
    assert!(allows(ingress, "198.18.2.7", 6, 24));
    assert!(allows(ingress, "198.18.2.7", 17, 22), "UDP 22 is not denied");
    assert!(allows(ingress, "198.18.2.7", 1, 0), "nor ICMP");
    assert!(!allows(ingress, "198.18.2.200", 17, 53), "the denied half of blue");
    assert!(allows(ingress, "198.18.2.100", 17, 53));
    assert!(
        out.left_out.iter().any(|w| w.contains("protocols other than")),
        "every protocol less TCP 22-23 loses the protocols a port cannot name: {:?}",
        out.left_out
    );
    // Egress: `any` as source is red too, so red reaches red (what it is
    // destination of), less TCP 22-23, and nothing else.
    let egress = p.egress.as_deref().unwrap();
    assert!(allows(egress, "198.18.1.9", 6, 80));
    assert!(!allows(egress, "198.18.1.9", 6, 22));
    assert!(
        !allows(egress, "198.18.2.7", 6, 80),
        "blue is no destination of any rule"
    );
}

#[test]
fn what_a_policy_cannot_say_is_reported_and_a_deny_left_out_says_so() {
    let mut by_source_port = acl(false, Endpoint::Any, vn(RED), Some(17), &[], RuleAction::Deny);
    by_source_port.src_ports = vec![range(53, 53)];
    let list = vec![
        by_source_port,
        acl(
            false,
            Endpoint::SecurityGroup("sg".into()),
            vn(RED),
            None,
            &[],
            RuleAction::Pass,
        ),
        acl(false, Endpoint::Any, vn(RED), Some(47), &[], RuleAction::Pass),
        acl(false, vn(GREEN), vn(BLUE), None, &[], RuleAction::Deny),
        acl(false, Endpoint::Any, vn(RED), Some(17), &[], RuleAction::Pass),
    ];
    let (c, bound) = config(list);
    let out = policies(&c, &bound);
    let said = out.left_out.join("\n");
    assert!(
        said.contains("rule 0, ingress: it matches by source port (left out: this deny is not enforced)"),
        "{said}"
    );
    assert!(
        said.contains("rule 1, ingress: an end is security group sg (left out: allows less)"),
        "{said}"
    );
    assert!(said.contains("rule 2, ingress: protocol 47"), "{said}");
    assert!(
        !said.contains("rule 3"),
        "a rule of other networks is not red's: {said}"
    );
    let p = &out.policies[&format!("{POLICY_PREFIX}{RED}")];
    assert!(allows(p.ingress.as_deref().unwrap(), "198.18.9.9", 17, 53));
    assert!(!allows(p.ingress.as_deref().unwrap(), "198.18.9.9", 6, 80));
}

#[test]
fn port_sets_subtract_as_ranges() {
    assert_eq!(subtract(&[(0, 100)], (10, 20)), vec![(0, 9), (21, 100)]);
    assert_eq!(subtract(&[(10, 20)], (0, 100)), vec![]);
    assert_eq!(subtract(&[(0, u16::MAX)], (0, 0)), vec![(1, u16::MAX)]);
    assert_eq!(
        subtract(&[(0, u16::MAX)], (u16::MAX, u16::MAX)),
        vec![(0, u16::MAX - 1)]
    );
    assert_eq!(
        normalized(vec![(5, 9), (1, 4), (20, 30), (25, 26)]),
        vec![(1, 9), (20, 30)]
    );
}

proptest::proptest! {
    /// The allow list gives, for any peer and port, what rule-by-rule first match
    /// over the list gives (for lists a policy can say: TCP or UDP rules, or any
    /// protocol without ports, peers inside one /24).
    #[test]
    fn allows_equal_first_match(
        raw in proptest::collection::vec(
            (0u8..4, 24u8..=28, 0u8..3, 0u16..6, 0u16..3, proptest::bool::ANY),
            0..7,
        ),
        probes in proptest::collection::vec((0u8..=255, 0u8..3, 0u16..10), 1..40),
    ) {
        let protocol = |p: u8| match p { 0 => None, 1 => Some(6), _ => Some(17) };
        let rules: Vec<Rule> = raw
            .iter()
            .map(|&(at, len, proto, first, width, pass)| {
                let net: IpNet = IpNet::new(IpAddr::from([198, 18, 2, at * 64]), len).unwrap().trunc();
                let ports: Vec<(u16, u16)> = if proto == 0 { vec![] } else { vec![(first, first + width)] };
                let action = if pass { RuleAction::Pass } else { RuleAction::Deny };
                acl(false, Endpoint::Subnet(net), vn(RED), protocol(proto), &ports, action)
            })
            .collect();
        let (c, bound) = config(rules.clone());
        let out = policies(&c, &bound);
        let ingress = out.policies[&format!("{POLICY_PREFIX}{RED}")].ingress.clone().unwrap();
        for (host, proto, port) in probes {
            let proto = [6u8, 17, 1][proto as usize];
            let port = if proto == 1 { 0 } else { port };
            let peer = IpAddr::from([198, 18, 2, host]);
            let first = rules.iter().find(|r| {
                let Endpoint::Subnet(net) = &r.src[0] else { unreachable!() };
                let port_ok = match r.protocol {
                    None => true,
                    Some(p) => p == proto && r.dst_ports.iter().any(|d| (d.start..=d.end).contains(&port)),
                };
                net.contains(&peer) && port_ok
            });
            let want = first.is_some_and(|r| r.action == RuleAction::Pass);
            proptest::prop_assert_eq!(allows(&ingress, &peer.to_string(), proto, port), want, "{} {} {}", peer, proto, port);
        }
    }
}

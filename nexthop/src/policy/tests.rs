use super::*;
use proptest::prelude::*;
use std::net::Ipv4Addr;

const TCP: u8 = 6;
const UDP: u8 = 17;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn rule(policy: u32, rule: u16, peers: Vec<PeerBlock>, ports: Vec<PortMatch>) -> ResolvedRule {
    ResolvedRule {
        rule: RuleRef {
            policy: PolicyId(policy),
            rule,
        },
        peers,
        ports,
    }
}

fn block(n: &str, except: &[&str]) -> PeerBlock {
    PeerBlock {
        net: net(n),
        except: except.iter().map(|e| net(e)).collect(),
    }
}

fn tcp(first: u16, last: u16) -> PortMatch {
    PortMatch {
        proto: Some(TCP),
        first,
        last,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn an_except_prefix_cuts_a_hole_that_another_rule_can_fill() {
    let set = RuleSet::new(
        vec![PolicyId(0), PolicyId(1)],
        &[
            rule(
                0,
                0,
                vec![block("198.18.0.0/16", &["198.18.5.0/24"])],
                vec![tcp(80, 80)],
            ),
            rule(1, 0, vec![block("198.18.5.7/32", &[])], vec![tcp(80, 90)]),
        ],
    );
    let r0 = Some(RuleRef {
        policy: PolicyId(0),
        rule: 0,
    });
    let r1 = Some(RuleRef {
        policy: PolicyId(1),
        rule: 0,
    });
    assert_eq!(set.allows(ip("198.18.1.1"), TCP, 80), r0);
    assert_eq!(set.allows(ip("198.18.1.1"), TCP, 81), None, "port outside the rule");
    assert_eq!(set.allows(ip("198.18.1.1"), UDP, 80), None, "protocol outside the rule");
    assert_eq!(set.allows(ip("198.18.5.1"), TCP, 80), None, "inside the except");
    assert_eq!(set.allows(ip("198.18.5.7"), TCP, 85), r1, "the other rule names it");
    assert_eq!(set.allows(ip("198.19.0.1"), TCP, 80), None, "outside the block");
    assert_eq!(set.allows(ip("2001:db8::1"), TCP, 80), None, "another family");
}

#[test]
fn a_rule_without_peers_or_ports_allows_everything_of_both_families() {
    let set = RuleSet::new(vec![PolicyId(3)], &[rule(3, 2, Vec::new(), Vec::new())]);
    let want = Some(RuleRef {
        policy: PolicyId(3),
        rule: 2,
    });
    assert_eq!(set.allows(ip("203.0.113.9"), 1, 0), want);
    assert_eq!(set.allows(ip("2001:db8::9"), UDP, 53), want);
    let none = RuleSet::new(vec![PolicyId(3)], &[]);
    assert_eq!(none.allows(ip("203.0.113.9"), TCP, 80), None, "no rule: default deny");
}

fn policies(pod: (VrfId, IpAddr), ingress: Option<RuleSet>, egress: Option<RuleSet>) -> Policies {
    let mut p = Policies {
        names: vec!["ns/a".into(), "ns/b".into()],
        denied: vec![Arc::default(), Arc::default()],
        node_addresses: vec![ip("198.18.255.1")],
        ..Policies::default()
    };
    p.pods.insert(
        pod,
        PodPolicy {
            ingress: ingress.map(Arc::new).into_iter().collect(),
            egress: egress.map(Arc::new).into_iter().collect(),
        },
    );
    p
}

fn conn(src: &str, dst: &str, port: u16) -> Connection {
    Connection {
        src_vrf: VrfId(1),
        src: ip(src),
        dst_vrf: VrfId(1),
        dst: ip(dst),
        proto: TCP,
        dst_port: port,
    }
}

#[test]
fn each_side_is_checked_on_its_own_pod_and_the_node_is_exempt_from_ingress() {
    let pod = (VrfId(1), ip("198.18.0.2"));
    let allow_from_3 = RuleSet::new(
        vec![PolicyId(0)],
        &[rule(0, 0, vec![block("198.18.0.3/32", &[])], vec![tcp(80, 80)])],
    );
    let p = policies(pod, Some(allow_from_3), Some(RuleSet::new(vec![PolicyId(1)], &[])));
    let v = p.check(&conn("198.18.0.3", "198.18.0.2", 80));
    assert!(v.allowed());
    assert!(matches!(v.ingress, SideVerdict::Allowed(_)));
    assert_eq!(v.egress, SideVerdict::Open, "the source pod is not selected");
    let v = p.check(&conn("198.18.0.4", "198.18.0.2", 80));
    assert_eq!(v.denied_by(), Some((Direction::Ingress, PolicyId(0))));
    let v = p.check(&conn("198.18.0.2", "198.18.0.3", 80));
    assert_eq!(
        v.denied_by(),
        Some((Direction::Egress, PolicyId(1))),
        "empty egress list: deny"
    );
    assert!(
        p.check(&conn("198.18.255.1", "198.18.0.2", 8080)).allowed(),
        "the node probes its pods"
    );
    let other_vrf = Connection {
        dst_vrf: VrfId(2),
        ..conn("198.18.0.4", "198.18.0.2", 80)
    };
    assert!(
        p.check(&other_vrf).allowed(),
        "the same address in another VRF is another pod"
    );
}

#[test]
fn a_connection_passes_only_if_every_tier_isolating_the_pod_allows_it() {
    let pod = (VrfId(1), ip("198.18.0.2"));
    // Tier one (the pod's groups): TCP 80 and 22 from anywhere. Tier two (its
    // network's list): anything from 198.18.0.0/24 but 198.18.0.66.
    let groups = RuleSet::new(vec![PolicyId(0)], &[rule(0, 0, vec![], vec![tcp(80, 80), tcp(22, 22)])]);
    let network = RuleSet::new(
        vec![PolicyId(1)],
        &[rule(1, 0, vec![block("198.18.0.0/24", &["198.18.0.66/32"])], vec![])],
    );
    let mut p = policies(pod, Some(groups), None);
    p.pods.get_mut(&pod).unwrap().ingress.push(Arc::new(network));
    let v = p.check(&conn("198.18.0.3", "198.18.0.2", 80));
    assert_eq!(
        v.ingress,
        SideVerdict::Allowed(RuleRef {
            policy: PolicyId(0),
            rule: 0
        }),
        "both allow: the first tier's rule is named"
    );
    assert_eq!(
        p.check(&conn("198.18.0.3", "198.18.0.2", 8080)).denied_by(),
        Some((Direction::Ingress, PolicyId(0))),
        "the groups deny what the network allows"
    );
    assert_eq!(
        p.check(&conn("198.18.0.66", "198.18.0.2", 80)).denied_by(),
        Some((Direction::Ingress, PolicyId(1))),
        "the network denies what the groups allow"
    );
    assert_eq!(
        p.check(&conn("198.18.1.3", "198.18.0.2", 22)).denied_by(),
        Some((Direction::Ingress, PolicyId(1)))
    );
}

/// The reference: rules checked one by one, the first that matches wins.
fn oracle(rules: &[ResolvedRule], peer: IpAddr, proto: u8, port: u16) -> Option<RuleRef> {
    rules
        .iter()
        .find(|r| {
            let peer_ok = r.peers.is_empty()
                || r.peers
                    .iter()
                    .any(|b| b.net.contains(&peer) && !b.except.iter().any(|e| e.contains(&peer)));
            let port_ok = r.ports.is_empty() || r.ports.iter().any(|p| p.matches(proto, port));
            peer_ok && port_ok
        })
        .map(|r| r.rule)
}

fn small_net() -> impl Strategy<Value = IpNet> {
    (0u32..64, 24u8..=32).prop_map(|(a, len)| {
        IpNet::V4(
            ipnet::Ipv4Net::new(Ipv4Addr::from(0xc612_0000 | (a << 2)), len)
                .unwrap()
                .trunc(),
        )
    })
}

proptest! {
    #[test]
    fn merged_table_matches_rule_by_rule_evaluation(
        raw in proptest::collection::vec(
            (proptest::collection::vec((small_net(), proptest::collection::vec(small_net(), 0..3)), 0..3),
             proptest::collection::vec((prop_oneof![Just(None), Just(Some(TCP)), Just(Some(UDP))], 0u16..8, 0u16..4), 0..3)),
            0..8),
        probes in proptest::collection::vec((0u32..300, prop_oneof![Just(TCP), Just(UDP), Just(1u8)], 0u16..12), 1..40),
    ) {
        let rules: Vec<ResolvedRule> = raw.into_iter().enumerate().map(|(i, (peers, ports))| rule(
            0,
            i as u16,
            peers.into_iter().map(|(net, except)| PeerBlock { net, except: except.into_iter().filter(|e| net.contains(e)).collect() }).collect(),
            ports.into_iter().map(|(proto, first, width)| PortMatch { proto, first, last: first + width }).collect(),
        )).collect();
        let set = RuleSet::new(vec![PolicyId(0)], &rules);
        for (a, proto, port) in probes {
            let peer = IpAddr::V4(Ipv4Addr::from(0xc612_0000 | a));
            prop_assert_eq!(set.allows(peer, proto, port), oracle(&rules, peer, proto, port), "{} {} {}", peer, proto, port);
        }
    }
}

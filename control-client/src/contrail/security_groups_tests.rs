use super::*;
use crate::contrail::{PortConfig, SecurityGroupProps};
use crate::model::L4Protocol;

const WEB: &str = "default-domain:k8s-default:web";
const CLIENT: &str = "default-domain:k8s-default:client";

fn port(n: u8, groups: &[(&str, u32)]) -> PortConfig {
    PortConfig {
        name: format!("default-domain:k8s-default:pod-{n}"),
        virtual_network: Some("default-domain:k8s-default:cluster-network".into()),
        vrf: Some("cluster".into()),
        ipv4: Some([198, 18, 1, n].into()),
        ipv6: Some(format!("2001:2::{n}").parse().unwrap()),
        security_groups: groups.iter().map(|(g, _)| g.to_string()).collect(),
        security_group_ids: groups.iter().map(|(_, id)| *id).collect(),
        ..PortConfig::numbered(n)
    }
}

fn rule(ingress: bool, remote: Endpoint, protocol: Option<u8>, dst_ports: &[(u16, u16)]) -> Rule {
    let ports = dst_ports.iter().map(|(start, end)| PortRange {
        start: *start,
        end: *end,
    });
    Rule::security_group(ingress, remote, protocol, ports.collect())
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn peers(rule: &PolicyRule) -> Vec<String> {
    rule.peers.iter().map(|p| p.cidr.to_string()).collect()
}

/// Ports 1 and 2 (web, bound here), port 3 (client, not bound here: configured on
/// this node but not attached); web allows TCP 80 and 8000-8080 from client and
/// anything out; client allows nothing in.
fn config() -> CompiledConfig {
    let mut c = CompiledConfig::default();
    for p in [port(1, &[(WEB, 10)]), port(2, &[(WEB, 10)]), port(3, &[(CLIENT, 11)])] {
        c.ports.insert(p.uuid, p);
    }
    c.security_groups.insert(
        WEB.into(),
        SecurityGroupProps {
            id: Some(10),
            rules: vec![
                rule(
                    true,
                    Endpoint::SecurityGroup(CLIENT.into()),
                    Some(6),
                    &[(80, 80), (8000, 8080)],
                ),
                rule(false, Endpoint::Any, None, &[]),
            ],
        },
    );
    c.security_groups.insert(
        CLIENT.into(),
        SecurityGroupProps {
            id: Some(11),
            rules: Vec::new(),
        },
    );
    c.security_group_ids = [(WEB.to_string(), 10), (CLIENT.to_string(), 11)].into();
    c
}

fn bound(ports: &[u8]) -> BTreeSet<Uuid> {
    ports.iter().map(|n| Uuid::from_u128(u128::from(*n))).collect()
}

#[test]
fn a_group_becomes_a_policy_over_its_bound_ports_with_members_from_ports_and_routes() {
    let remote: GroupMembers = [(11, [net("198.19.0.7/32")].into()), (99, [net("198.19.0.9/32")].into())].into();
    let out = policies(&config(), &bound(&[1, 2, 3]), &remote);
    assert!(out.left_out.is_empty(), "{:?}", out.left_out);
    let web = &out.policies[&format!("{POLICY_PREFIX}{WEB}")];
    let pods: Vec<String> = web.pods.iter().map(|p| format!("{}/{}", p.vrf, p.ip)).collect();
    assert_eq!(
        pods,
        [
            "cluster/198.18.1.1",
            "cluster/198.18.1.2",
            "cluster/2001:2::1",
            "cluster/2001:2::2"
        ]
    );
    let ingress = web.ingress.as_ref().unwrap();
    assert_eq!(ingress.len(), 1);
    // Client's members: its port here (both addresses) and the route's address;
    // group 99's member is no one's peer.
    assert_eq!(peers(&ingress[0]), ["198.18.1.3/32", "198.19.0.7/32", "2001:2::3/128"]);
    let ports: Vec<(L4Protocol, Option<u16>, Option<u16>)> = ingress[0]
        .ports
        .iter()
        .map(|p| (p.protocol, p.port, p.end_port))
        .collect();
    assert_eq!(
        ports,
        [
            (L4Protocol::Tcp, Some(80), None),
            (L4Protocol::Tcp, Some(8000), Some(8080))
        ]
    );
    let egress = web.egress.as_ref().unwrap();
    assert_eq!(peers(&egress[0]), ["0.0.0.0/0", "::/0"]);
    assert!(egress[0].ports.is_empty(), "every protocol and port");
    // A group without rules denies both ways (an empty list, not no list).
    let client = &out.policies[&format!("{POLICY_PREFIX}{CLIENT}")];
    assert_eq!(
        (client.ingress.as_deref(), client.egress.as_deref()),
        (Some(&[][..]), Some(&[][..]))
    );
}

#[test]
fn only_bound_ports_are_selected_and_a_group_without_members_allows_no_one() {
    let mut c = config();
    // Client's only port is gone: web's rule from client allows no one (it must not
    // turn into "any peer").
    c.ports.remove(&Uuid::from_u128(3));
    let out = policies(&c, &bound(&[1]), &GroupMembers::new());
    let web = &out.policies[&format!("{POLICY_PREFIX}{WEB}")];
    assert_eq!(web.pods.len(), 2, "port 1's two addresses: {:?}", web.pods);
    assert!(web.ingress.as_ref().unwrap().is_empty(), "{web:?}");
    assert_eq!(
        out.policies.len(),
        1,
        "client selects no bound port: {:?}",
        out.policies.keys()
    );
    // Its member's route comes: allowed again.
    let remote: GroupMembers = [(11, [net("198.19.0.7/32")].into())].into();
    let out = policies(&c, &bound(&[1]), &remote);
    let ingress = out.policies[&format!("{POLICY_PREFIX}{WEB}")].ingress.clone().unwrap();
    assert_eq!(peers(&ingress[0]), ["198.19.0.7/32"]);
}

#[test]
fn what_a_policy_cannot_say_is_left_out_never_widened() {
    let mut c = config();
    let mut source_ports = rule(true, Endpoint::Any, Some(17), &[(53, 53)]);
    source_ports.src_ports = vec![PortRange { start: 1024, end: 2048 }];
    let mut v4_only = rule(true, Endpoint::Any, Some(1), &[]);
    v4_only.ethertype = Some(4);
    let rules = vec![
        source_ports,
        rule(true, Endpoint::Any, Some(47), &[]),
        rule(true, Endpoint::VirtualNetwork("default-domain:a:b".into()), None, &[]),
        rule(true, Endpoint::Any, Some(1), &[(8, 8)]),
        Rule {
            dst: vec![Endpoint::Any],
            ..rule(true, Endpoint::Any, None, &[])
        },
        v4_only,
        rule(true, Endpoint::Subnet(net("198.19.4.0/24")), None, &[(443, 443)]),
        rule(true, Endpoint::SecurityGroup(WEB.into()), Some(58), &[]),
    ];
    c.security_groups.get_mut(WEB).unwrap().rules = rules;
    let out = policies(&c, &bound(&[1]), &GroupMembers::new());
    assert_eq!(out.left_out.len(), 5, "{:#?}", out.left_out);
    let ingress = out.policies[&format!("{POLICY_PREFIX}{WEB}")].ingress.clone().unwrap();
    type Summary = (Vec<String>, Vec<(L4Protocol, Option<u16>)>);
    let summary: Vec<Summary> = ingress
        .iter()
        .map(|r| (peers(r), r.ports.iter().map(|p| (p.protocol, p.port)).collect()))
        .collect();
    assert_eq!(
        summary,
        [
            // IPv4 ICMP from anywhere: no IPv6 peer.
            (vec!["0.0.0.0/0".to_string()], vec![(L4Protocol::Icmp, None)]),
            // Any protocol to port 443: the protocols with ports.
            (
                vec!["198.19.4.0/24".to_string()],
                vec![
                    (L4Protocol::Tcp, Some(443)),
                    (L4Protocol::Udp, Some(443)),
                    (L4Protocol::Sctp, Some(443))
                ]
            ),
            // From the group itself: its members (ports 1 and 2, both families).
            (
                ["198.18.1.1/32", "198.18.1.2/32", "2001:2::1/128", "2001:2::2/128"]
                    .map(String::from)
                    .to_vec(),
                vec![(L4Protocol::Icmpv6, None)]
            ),
        ]
    );
}

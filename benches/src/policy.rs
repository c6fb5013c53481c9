//! Inputs of the policy benchmarks: a node whose two pods are selected by network
//! policies with many rules (as a busy cluster's policies resolve to thousands of
//! pod addresses), and frames between them from many sources.

use control_client::{DesiredState, L4Protocol, PolicyPeer, PolicyPod, PolicyPort, PolicyRule, PolicySpec};
use etherparse::PacketBuilder;
use std::net::{IpAddr, Ipv4Addr};

/// Rules per policy.
const RULES_PER_POLICY: u32 = 100;

/// Pods a (198.18.1.2, which may send from all of 198.18.1.0/24, as a load
/// generator pod would be allowed) and b (198.18.1.3) in VRF red, with `rules`
/// policy rules in policies of 100 rules, half selecting a for egress and half b
/// for ingress, each rule a distinct pod address in 198.19.0.0/16 and a TCP port;
/// and one more policy on each that allows UDP 5000 between 198.18.1.0/24 and b.
/// With `version` other than 0 every rule's port moves (a policy change).
pub fn policy_state(rules: u32, version: u16) -> DesiredState {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    for (name, last) in [("a", 2u8), ("b", 3u8)] {
        s.add_interface(control_client::InterfaceSpec {
            name: name.into(),
            vrf: "red".into(),
            mac: nexthop::MacAddr([2, 0, 0, 0, 0, last]),
            ipv4: Some(Ipv4Addr::new(198, 18, 1, last)),
            gateway4: Some(Ipv4Addr::new(198, 18, 1, 1)),
            allowed_address_pairs: if last == 2 {
                vec!["198.18.1.0/24".parse().expect("prefix")]
            } else {
                Vec::new()
            },
            ..control_client::InterfaceSpec::default()
        })
        .expect("valid pod");
    }
    let pod = |last: u8| PolicyPod {
        vrf: "red".into(),
        ip: IpAddr::V4(Ipv4Addr::new(198, 18, 1, last)),
    };
    let port = |protocol, port: u16| PolicyPort {
        protocol,
        port: Some(port),
        end_port: None,
    };
    let peer = |net: &str| PolicyPeer {
        cidr: net.parse().expect("prefix"),
        except: Vec::new(),
    };
    for p in 0..rules.div_ceil(RULES_PER_POLICY) {
        let list: Vec<PolicyRule> = (0..RULES_PER_POLICY.min(rules - p * RULES_PER_POLICY))
            .map(|r| {
                let n = p * RULES_PER_POLICY + r;
                PolicyRule {
                    peers: vec![peer(&format!("198.19.{}.{}/32", n / 256, n % 256))],
                    ports: vec![port(L4Protocol::Tcp, 1000 + (n % 1000) as u16 + version)],
                }
            })
            .collect();
        let egress = p % 2 == 0;
        s.add_policy(PolicySpec {
            name: format!("bench/p{p}"),
            pods: vec![pod(if egress { 2 } else { 3 })],
            ingress: (!egress).then(|| list.clone()),
            egress: egress.then_some(list),
            tier: Default::default(),
        })
        .expect("valid policy");
    }
    let allow = vec![PolicyRule {
        peers: vec![peer("198.18.1.0/24")],
        ports: vec![port(L4Protocol::Udp, 5000)],
    }];
    s.add_policy(PolicySpec {
        name: "bench/a-out".into(),
        pods: vec![pod(2)],
        ingress: None,
        egress: Some(allow.clone()),
        tier: Default::default(),
    })
    .expect("valid policy");
    s.add_policy(PolicySpec {
        name: "bench/b-in".into(),
        pods: vec![pod(3)],
        ingress: Some(allow),
        egress: None,
        tier: Default::default(),
    })
    .expect("valid policy");
    s
}

/// A 64-byte UDP frame to pod b, port 5000, from `src` (pod a's subnet) and
/// `src_port`.
pub fn frame_from(src: Ipv4Addr, src_port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], crate::ROUTER)
        .ipv4(src.octets(), [198, 18, 1, 3], 64)
        .udp(src_port, 5000)
        .write(&mut out, &[0u8; 18])
        .expect("in-memory write");
    out
}

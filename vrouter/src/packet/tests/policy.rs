//! Network policy at flow setup: a selected pod receives (ingress) and opens
//! (egress) only what a rule allows, replies of an allowed connection pass, a policy
//! change re-decides open connections on their next packet (either direction), a
//! service's connection is judged by its backend and target port, and denials are
//! counted per policy.

use super::*;
use control_client::{L4Protocol, PolicyPeer, PolicyPod, PolicyPort, PolicyRule, PolicySpec};
use std::net::IpAddr;
use std::sync::atomic::Ordering;

const SVC4: [u8; 4] = [198, 18, 100, 10];
const MAC_D: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0d];
const D4: [u8; 4] = [198, 18, 1, 4];

fn pod(ip: [u8; 4]) -> PolicyPod {
    PolicyPod {
        vrf: "red".into(),
        ip: IpAddr::from(ip),
    }
}

fn from(peers: &[&str], ports: &[(L4Protocol, u16, Option<u16>)]) -> PolicyRule {
    PolicyRule {
        peers: peers
            .iter()
            .map(|p| PolicyPeer {
                cidr: p.parse().unwrap(),
                except: Vec::new(),
            })
            .collect(),
        ports: ports
            .iter()
            .map(|&(protocol, port, end_port)| PolicyPort {
                protocol,
                port: Some(port),
                end_port,
            })
            .collect(),
    }
}

/// Pod b takes TCP 9376-9380 from pod a only.
fn b_from_a_only() -> PolicySpec {
    PolicySpec {
        name: "default/b-from-a".into(),
        pods: vec![pod(B4)],
        ingress: Some(vec![from(&["198.18.1.2/32"], &[(L4Protocol::Tcp, 9376, Some(9380))])]),
        egress: None,
        tier: Default::default(),
    }
}

/// Red: pods a, b, d; a service on 198.18.100.10:80 -> b:9376.
fn red() -> DesiredState {
    let mut s = state();
    s.add_interface(InterfaceSpec {
        name: "d".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_D),
        ipv4: Some(D4.into()),
        gateway4: Some(GW4.into()),
        ..InterfaceSpec::default()
    })
    .unwrap();
    s.add_service(super::web_service("default/web", SVC4, B4)).unwrap();
    s
}

#[test]
fn a_selected_pod_receives_only_what_a_rule_allows_and_answers_it() {
    let mut s = red();
    s.add_policy(b_from_a_only()).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let d = snap.interface_by_name("d").unwrap().vif;
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, B4, (40000, 9377), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)), "a -> b inside the port range");
    let (v, _) = run_in(&snap, Vif(2), &tcp4(MAC_B, ROUTER, B4, A4, (9377, 40000), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)), "b's reply passes");
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, B4, (40001, 9381), 64), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::Policy), "a port outside the rule");
    let (v, _) = run_in(&snap, d, &tcp4(MAC_D, ROUTER, D4, B4, (40000, 9377), 64), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::Policy), "d is no peer of the rule");
    let (v, _) = run_in(&snap, d, &tcp4(MAC_D, ROUTER, D4, B4, (40000, 9377), 64), &mut ctx);
    assert_eq!(
        v,
        Verdict::Drop(DropReason::Policy),
        "the denied flow is cached as a drop"
    );
    let (v, _) = run_in(&snap, Vif(2), &tcp4(MAC_B, ROUTER, B4, D4, (9377, 40000), 64), &mut ctx);
    assert_eq!(
        v,
        Verdict::Drop(DropReason::Policy),
        "nor does the denied flow's other way pass"
    );
    let (v, _) = run_in(&snap, Vif(2), &tcp4(MAC_B, ROUTER, B4, D4, (5555, 22), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(d), "b is not isolated for egress");
    let (v, _) = run_in(&snap, d, &tcp4(MAC_D, ROUTER, D4, A4, (40000, 22), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)), "a pod no policy selects takes anything");
    assert_eq!(
        snap.policies.denied[0].load(Ordering::Relaxed),
        2,
        "two connections denied (the cached drop is not a new one)"
    );
}

#[test]
fn a_policy_change_stops_an_open_connection_in_both_directions_and_lets_it_go_again() {
    let mut s = red();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let open = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let d = open.interface_by_name("d").unwrap().vif;
    let to_b = tcp4(MAC_D, ROUTER, D4, B4, (40000, 9377), 64);
    let from_b = tcp4(MAC_B, ROUTER, B4, D4, (9377, 40000), 64);
    assert_eq!(run_in(&open, d, &to_b, &mut ctx).0, Verdict::Transmit(Vif(2)));
    assert_eq!(run_in(&open, Vif(2), &from_b, &mut ctx).0, Verdict::Transmit(d));
    s.add_policy(b_from_a_only()).unwrap();
    let revoked = builder.build(&s, MacAddr(ROUTER));
    // The server's side first: its reply entry is decided again too.
    assert_eq!(
        run_in(&revoked, Vif(2), &from_b, &mut ctx).0,
        Verdict::Drop(DropReason::Policy)
    );
    assert_eq!(
        run_in(&revoked, d, &to_b, &mut ctx).0,
        Verdict::Drop(DropReason::Policy)
    );
    // The revocation counts once for the policy, when the opening side's entry is
    // decided again; the dropped flow's next packets do not count again.
    assert_eq!(revoked.policies.denied[0].load(Ordering::Relaxed), 1);
    assert_eq!(
        run_in(&revoked, d, &to_b, &mut ctx).0,
        Verdict::Drop(DropReason::Policy)
    );
    assert_eq!(revoked.policies.denied[0].load(Ordering::Relaxed), 1);
    // An unrelated connection is untouched by the change.
    let a_to_d = tcp4(MAC_A, ROUTER, A4, D4, (1, 2), 64);
    assert_eq!(run_in(&revoked, Vif(1), &a_to_d, &mut ctx).0, Verdict::Transmit(d));
    s.remove_policy("default/b-from-a").unwrap();
    let restored = builder.build(&s, MacAddr(ROUTER));
    assert_eq!(run_in(&restored, d, &to_b, &mut ctx).0, Verdict::Transmit(Vif(2)));
    assert_eq!(run_in(&restored, Vif(2), &from_b, &mut ctx).0, Verdict::Transmit(d));
    assert!(matches!(
        s.remove_policy("default/b-from-a"),
        Err(control_client::ModelError::UnknownPolicy(_))
    ));
}

#[test]
fn a_service_connection_is_judged_by_its_backend_and_target_port() {
    let mut s = red();
    s.add_policy(b_from_a_only()).unwrap();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let d = snap.interface_by_name("d").unwrap().vif;
    let mut ctx = PipelineContext::default();
    let (v, out) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(
        v,
        Verdict::Transmit(Vif(2)),
        "a reaches the service: port 9376 after translation"
    );
    assert_eq!(out, tcp4(ROUTER, MAC_B, A4, B4, (40000, 9376), 63));
    let (v, _) = run_in(&snap, d, &tcp4(MAC_D, ROUTER, D4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::Policy), "d is denied by b's ingress");
    // A policy that allows the service port (80), not the target port, denies:
    // Kubernetes judges the translated connection.
    let mut by_service_port = b_from_a_only();
    by_service_port.ingress = Some(vec![from(&["198.18.1.0/24"], &[(L4Protocol::Tcp, 80, None)])]);
    s.add_policy(by_service_port).unwrap();
    let changed = builder.build(&s, MacAddr(ROUTER));
    let (v, _) = run_in(
        &changed,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 80), 64),
        &mut ctx,
    );
    assert_eq!(
        v,
        Verdict::Drop(DropReason::Policy),
        "the open service connection stops"
    );
    let (v, _) = run_in(
        &changed,
        Vif(2),
        &tcp4(MAC_B, ROUTER, B4, A4, (9376, 40000), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::Policy), "and its replies");
    // Allowed again: the next packet sets the connection up anew, translated.
    s.remove_policy("default/b-from-a").unwrap();
    let open = builder.build(&s, MacAddr(ROUTER));
    let (v, out) = run_in(&open, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, tcp4(ROUTER, MAC_B, A4, B4, (40000, 9376), 63));
}

#[test]
fn egress_rules_limit_what_a_pod_opens_and_bad_policies_are_refused() {
    let mut s = red();
    s.add_policy(PolicySpec {
        name: "default/a-out".into(),
        pods: vec![pod(A4)],
        ingress: None,
        egress: Some(vec![PolicyRule {
            peers: vec![PolicyPeer {
                cidr: "198.18.1.0/24".parse().unwrap(),
                except: vec!["198.18.1.4/32".parse().unwrap()],
            }],
            ports: Vec::new(),
        }]),
        tier: Default::default(),
    })
    .unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let d = snap.interface_by_name("d").unwrap().vif;
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, B4, 64, b"x"), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)), "inside the block");
    let (v, _) = run_in(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, D4, 64, b"x"), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::Policy), "the except");
    let (v, _) = run_in(&snap, d, &udp4(MAC_D, ROUTER, D4, A4, 64, b"x"), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)), "a is not isolated for ingress");
    let bad = |p: PolicySpec| assert!(s.clone().add_policy(p.clone()).is_err(), "{p:?}");
    let mut outside = b_from_a_only();
    outside.ingress = Some(vec![PolicyRule {
        peers: vec![PolicyPeer {
            cidr: "198.18.1.0/24".parse().unwrap(),
            except: vec!["198.18.2.0/24".parse().unwrap()],
        }],
        ports: Vec::new(),
    }]);
    bad(outside);
    let mut reversed = b_from_a_only();
    reversed.ingress = Some(vec![from(&[], &[(L4Protocol::Tcp, 90, Some(80))])]);
    bad(reversed);
    bad(PolicySpec {
        name: "with space".into(),
        ..b_from_a_only()
    });
}

#[test]
fn a_floating_ip_connection_is_judged_at_its_pod_and_revoked_from_either_side() {
    // Pod c (blue) has floating address 198.18.1.50 in red; a (red) reaches c through it.
    const FIP4: [u8; 4] = [198, 18, 1, 50];
    let mut s = red();
    s.add_floating_ip(control_client::FloatingIpSpec {
        name: "c".into(),
        vrf: "red".into(),
        ip: IpAddr::from(FIP4),
        interface: "c".into(),
        egress_only: false,
    })
    .unwrap();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let open = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let to_c = tcp4(MAC_A, ROUTER, A4, FIP4, (40000, 22), 64);
    let from_c = tcp4(MAC_C, ROUTER, C4, A4, (22, 40000), 64);
    assert_eq!(run_in(&open, Vif(1), &to_c, &mut ctx).0, Verdict::Transmit(Vif(3)));
    assert_eq!(run_in(&open, Vif(3), &from_c, &mut ctx).0, Verdict::Transmit(Vif(1)));
    // c now takes nothing: the open connection stops on c's side first.
    s.add_policy(PolicySpec {
        name: "blue/c-closed".into(),
        pods: vec![PolicyPod {
            vrf: "blue".into(),
            ip: IpAddr::from(C4),
        }],
        ingress: Some(Vec::new()),
        egress: None,
        tier: Default::default(),
    })
    .unwrap();
    let closed = builder.build(&s, MacAddr(ROUTER));
    assert_eq!(
        run_in(&closed, Vif(3), &from_c, &mut ctx).0,
        Verdict::Drop(DropReason::Policy)
    );
    assert_eq!(
        run_in(&closed, Vif(1), &to_c, &mut ctx).0,
        Verdict::Drop(DropReason::Policy)
    );
    // c's own connections out through the floating address are not ingress.
    let out = tcp4(MAC_C, ROUTER, C4, A4, (41000, 80), 64);
    assert_eq!(run_in(&closed, Vif(3), &out, &mut ctx).0, Verdict::Transmit(Vif(1)));
}

#[test]
fn fragments_icmp_errors_and_a_pod_reaching_itself_are_not_denied() {
    let mut s = red();
    s.add_policy(b_from_a_only()).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let d = snap.interface_by_name("d").unwrap().vif;
    let mut ctx = PipelineContext::default();
    // A later fragment of a UDP datagram to b (offset 1480, no UDP header).
    let mut fragment = Vec::new();
    PacketBuilder::ethernet2(MAC_D, ROUTER)
        .ip(etherparse::IpHeaders::Ipv4(
            {
                let mut h = etherparse::Ipv4Header::new(8, 64, etherparse::IpNumber::UDP, D4, B4).unwrap();
                h.fragment_offset = etherparse::IpFragOffset::try_new(185).unwrap();
                h
            },
            Default::default(),
        ))
        .write(&mut fragment, etherparse::IpNumber::UDP, &[7u8; 8])
        .unwrap();
    assert_eq!(run_in(&snap, d, &fragment, &mut ctx).0, Verdict::Transmit(Vif(2)));
    // A destination unreachable (fragmentation needed) to b, from d.
    let mut error = Vec::new();
    PacketBuilder::ethernet2(MAC_D, ROUTER)
        .ipv4(D4, B4, 64)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded { next_hop_mtu: 1400 },
        ))
        .write(&mut error, &[0u8; 28])
        .unwrap();
    assert_eq!(run_in(&snap, d, &error, &mut ctx).0, Verdict::Transmit(Vif(2)));
    // b reaches its own service (it is the backend: a hairpin), though its ingress
    // takes only a.
    let (v, _) = run_in(&snap, Vif(2), &tcp4(MAC_B, ROUTER, B4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
}

#[test]
fn sctp_connections_are_matched_by_their_ports() {
    let mut s = red();
    let mut diameter = b_from_a_only();
    diameter.ingress = Some(vec![from(&["198.18.1.2/32"], &[(L4Protocol::Sctp, 3868, None)])]);
    s.add_policy(diameter).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let sctp = |dst_port: u16| {
        let mut common = vec![0x0b, 0x84, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 1, 0, 0, 4];
        common[2..4].copy_from_slice(&dst_port.to_be_bytes());
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, ROUTER)
            .ipv4(A4, B4, 64)
            .write(&mut out, etherparse::IpNumber(132), &common)
            .unwrap();
        out
    };
    assert_eq!(
        run_in(&snap, Vif(1), &sctp(3868), &mut ctx).0,
        Verdict::Transmit(Vif(2))
    );
    assert_eq!(
        run_in(&snap, Vif(1), &sctp(3869), &mut ctx).0,
        Verdict::Drop(DropReason::Policy)
    );
    // Services do not translate SCTP yet: refused, not half-done.
    let mut svc = s.services().next().unwrap().clone();
    svc.ports[0].protocol = L4Protocol::Sctp;
    assert!(matches!(
        s.add_service(svc),
        Err(control_client::ModelError::InvalidService(_))
    ));
}

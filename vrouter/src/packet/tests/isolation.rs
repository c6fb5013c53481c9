//! An isolated namespace's pod (c, VRF blue) with an egress-only floating address in
//! the cluster network (red): it reaches red from that address, red cannot reach it
//! there (nor at its own address), and red reaches it only through a service whose
//! backend is that floating address (the seed's rules b, c and e), translated straight
//! to the pod and back, also after its flows are decided again.

use super::web_service as service;
use super::*;
use control_client::{FloatingIpSpec, L4Protocol};
use std::net::IpAddr;

const FIP4: [u8; 4] = [198, 18, 1, 50];
const SVC4: [u8; 4] = [198, 18, 100, 10];
/// A cluster-network service (`default/web`), backed by pod b.
const WEB4: [u8; 4] = [198, 18, 100, 20];

fn isolated() -> DesiredState {
    let mut s = state();
    s.add_floating_ip(FloatingIpSpec {
        name: "c".into(),
        vrf: "red".into(),
        ip: IpAddr::from(FIP4),
        interface: "c".into(),
        egress_only: true,
    })
    .unwrap();
    s.add_service(service("iso/web", SVC4, FIP4)).unwrap();
    s
}

/// [`isolated`], with the cluster network's service `default/web` (backend b).
fn isolated_with_web() -> DesiredState {
    let mut s = isolated();
    s.add_service(service("default/web", WEB4, B4)).unwrap();
    s
}

#[test]
fn an_isolated_pod_reaches_out_but_is_reached_only_through_its_service() {
    let mut s = isolated();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    // Rule b: neither its floating address nor its own address takes connections from red.
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, FIP4, (40000, 22), 64), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, C4, (40000, 22), 64), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
    // Its service's target port on the floating address is open (the service's node
    // translates to the floating address when the pod is on another node).
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, FIP4, (40002, 9376), 64),
        &mut ctx,
    );
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(3)),
            tcp4(ROUTER, MAC_C, A4, C4, (40002, 9376), 63)
        )
    );
    // Rule c: c reaches a from its floating address, and a's reply comes back to c.
    let (v, out) = run_in(&snap, Vif(3), &tcp4(MAC_C, ROUTER, C4, A4, (41000, 22), 64), &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(1)),
            tcp4(ROUTER, MAC_A, FIP4, A4, (41000, 22), 63)
        )
    );
    let (v, out) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, FIP4, (22, 41000), 64), &mut ctx);
    assert_eq!(
        (v, out),
        (Verdict::Transmit(Vif(3)), tcp4(ROUTER, MAC_C, A4, C4, (22, 41000), 63))
    );
    // Rule e: a reaches c through the service: straight to c's own address and target
    // port, the reply from the service's address and port.
    let to_service = tcp4(MAC_A, ROUTER, A4, SVC4, (40001, 80), 64);
    let reply = tcp4(MAC_C, ROUTER, C4, A4, (9376, 40001), 64);
    let (v, out) = run_in(&snap, Vif(1), &to_service, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(3)),
            tcp4(ROUTER, MAC_C, A4, C4, (40001, 9376), 63)
        )
    );
    let (v, out) = run_in(&snap, Vif(3), &reply, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(1)),
            tcp4(ROUTER, MAC_A, SVC4, A4, (80, 40001), 63)
        )
    );
    // Another service comes (every flow is decided again): the connection goes on, the
    // reply first.
    s.add_service(service("iso/other", [198, 18, 100, 11], FIP4)).unwrap();
    let again = builder.build(&s, MacAddr(ROUTER));
    assert!(again.flow_epoch > snap.flow_epoch);
    let (v, out) = run_in(&again, Vif(3), &reply, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(1)),
            tcp4(ROUTER, MAC_A, SVC4, A4, (80, 40001), 63)
        )
    );
    let (v, out) = run_in(&again, Vif(1), &to_service, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(3)),
            tcp4(ROUTER, MAC_C, A4, C4, (40001, 9376), 63)
        )
    );
}

/// Rule d: the isolated pod reaches a cluster-network service whose backend is a
/// cluster-network pod (b) from its floating address, both ends translated, and the
/// reply comes back from the service; its own namespace's service (whose backend is
/// itself) it reaches from its own address. Both go on after every flow is decided
/// again, the reply first.
#[test]
fn an_isolated_pod_reaches_every_service() {
    let mut s = isolated_with_web();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let to_web = tcp4(MAC_C, ROUTER, C4, WEB4, (42000, 80), 64);
    let translated = tcp4(ROUTER, MAC_B, FIP4, B4, (42000, 9376), 63);
    let reply = tcp4(MAC_B, ROUTER, B4, FIP4, (9376, 42000), 64);
    let reply_translated = tcp4(ROUTER, MAC_C, WEB4, C4, (80, 42000), 63);
    let to_own = tcp4(MAC_C, ROUTER, C4, SVC4, (42001, 80), 64);
    let own_translated = tcp4(ROUTER, MAC_C, C4, C4, (42001, 9376), 63);
    let own_reply = tcp4(MAC_C, ROUTER, C4, C4, (9376, 42001), 64);
    let own_reply_translated = tcp4(ROUTER, MAC_C, SVC4, C4, (80, 42001), 63);
    for snap in [&snap, &snap] {
        assert_eq!(
            run_in(snap, Vif(3), &to_web, &mut ctx),
            (Verdict::Transmit(Vif(2)), translated.clone())
        );
        assert_eq!(
            run_in(snap, Vif(2), &reply, &mut ctx),
            (Verdict::Transmit(Vif(3)), reply_translated.clone())
        );
        assert_eq!(
            run_in(snap, Vif(3), &to_own, &mut ctx),
            (Verdict::Transmit(Vif(3)), own_translated.clone())
        );
        assert_eq!(
            run_in(snap, Vif(3), &own_reply, &mut ctx),
            (Verdict::Transmit(Vif(3)), own_reply_translated.clone())
        );
    }
    // UDP too (its checksum kept right), as a DNS lookup would go.
    let mut udp_service = service("default/dns", [198, 18, 100, 53], B4);
    udp_service.ports[0].protocol = L4Protocol::Udp;
    s.add_service(udp_service).unwrap();
    let again = builder.build(&s, MacAddr(ROUTER));
    assert!(again.flow_epoch > snap.flow_epoch);
    let question = super::services::udp4p(MAC_C, ROUTER, C4, [198, 18, 100, 53], (43000, 80), 64);
    assert_eq!(
        run_in(&again, Vif(3), &question, &mut ctx),
        (
            Verdict::Transmit(Vif(2)),
            super::services::udp4p(ROUTER, MAC_B, FIP4, B4, (43000, 9376), 63)
        )
    );
    let answer = super::services::udp4p(MAC_B, ROUTER, B4, FIP4, (9376, 43000), 64);
    assert_eq!(
        run_in(&again, Vif(2), &answer, &mut ctx),
        (
            Verdict::Transmit(Vif(3)),
            super::services::udp4p(ROUTER, MAC_C, [198, 18, 100, 53], C4, (80, 43000), 63)
        )
    );
    // Decided again (the reply first): the same translations.
    assert_eq!(
        run_in(&again, Vif(2), &reply, &mut ctx),
        (Verdict::Transmit(Vif(3)), reply_translated)
    );
    assert_eq!(
        run_in(&again, Vif(3), &to_web, &mut ctx),
        (Verdict::Transmit(Vif(2)), translated)
    );
    assert_eq!(
        run_in(&again, Vif(3), &own_reply, &mut ctx),
        (Verdict::Transmit(Vif(3)), own_reply_translated)
    );
    assert_eq!(
        run_in(&again, Vif(3), &to_own, &mut ctx),
        (Verdict::Transmit(Vif(3)), own_translated)
    );
    // Not the other way round: b cannot open a connection to c's floating address.
    let (v, _) = run_in(
        &again,
        Vif(2),
        &tcp4(MAC_B, ROUTER, B4, FIP4, (9376, 44000), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
}

/// Rule d's connections keep their backend when their service gains one: those to a
/// cluster-network service (both ends translated) and those to the pod's own
/// namespace's service (only the destination), decided again after the change,
/// while new connections spread over both backends.
#[test]
fn an_isolated_pods_connections_keep_their_backend_when_a_backend_is_added() {
    let mut s = isolated_with_web();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let to = |dst: [u8; 4], sport: u16| tcp4(MAC_C, ROUTER, C4, dst, (sport, 80), 64);
    let open = 42000..42016;
    for sport in open.clone() {
        assert_eq!(
            run_in(&snap, Vif(3), &to(WEB4, sport), &mut ctx).0,
            Verdict::Transmit(Vif(2))
        );
        assert_eq!(
            run_in(&snap, Vif(3), &to(SVC4, sport), &mut ctx).0,
            Verdict::Transmit(Vif(3))
        );
    }
    // Both services gain pod a (red) as a backend.
    for (name, ip, first) in [("default/web", WEB4, B4), ("iso/web", SVC4, FIP4)] {
        let mut grown = service(name, ip, first);
        grown.backends.push(IpAddr::from(A4));
        s.add_service(grown).unwrap();
    }
    let again = builder.build(&s, MacAddr(ROUTER));
    assert!(again.flow_epoch > snap.flow_epoch);
    for sport in open {
        assert_eq!(
            run_in(&again, Vif(3), &to(WEB4, sport), &mut ctx),
            (
                Verdict::Transmit(Vif(2)),
                tcp4(ROUTER, MAC_B, FIP4, B4, (sport, 9376), 63)
            ),
            "the connection from port {sport} to default/web changed backend"
        );
        assert_eq!(
            run_in(&again, Vif(3), &to(SVC4, sport), &mut ctx),
            (
                Verdict::Transmit(Vif(3)),
                tcp4(ROUTER, MAC_C, C4, C4, (sport, 9376), 63)
            ),
            "the connection from port {sport} to iso/web changed backend"
        );
    }
    let mut new = Vec::new();
    for sport in 43000..43032 {
        new.push(run_in(&again, Vif(3), &to(WEB4, sport), &mut ctx).0);
        new.push(run_in(&again, Vif(3), &to(SVC4, sport), &mut ctx).0);
    }
    for vif in [Vif(1), Vif(2), Vif(3)] {
        assert!(
            new.contains(&Verdict::Transmit(vif)),
            "no new connection reached {vif:?}: {new:?}"
        );
    }
}

/// An ICMP error about a rule-d connection (the backend's port unreachable, to the
/// floating address) reaches the pod about what it sent: from the service's address,
/// quoting its own packet to the service, with no flow of its own.
#[test]
fn an_error_about_a_both_ends_connection_reaches_the_pod_about_what_it_sent() {
    const DNS4: [u8; 4] = [198, 18, 100, 53];
    use super::services::{port_unreachable4, udp4p};
    let mut s = isolated_with_web();
    let mut dns = service("default/dns", DNS4, B4);
    dns.ports[0].protocol = L4Protocol::Udp;
    s.add_service(dns).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let question = udp4p(MAC_C, ROUTER, C4, DNS4, (43000, 80), 64);
    let seen_by_b = udp4p(ROUTER, MAC_B, FIP4, B4, (43000, 9376), 63);
    assert_eq!(
        run_in(&snap, Vif(3), &question, &mut ctx),
        (Verdict::Transmit(Vif(2)), seen_by_b.clone())
    );
    let flows = ctx.flows.table.stats().active;
    let error = port_unreachable4(MAC_B, ROUTER, B4, FIP4, 64, &seen_by_b);
    let sent_by_c = udp4p(MAC_C, ROUTER, C4, DNS4, (43000, 80), 63);
    assert_eq!(
        run_in(&snap, Vif(2), &error, &mut ctx),
        (
            Verdict::Transmit(Vif(3)),
            port_unreachable4(ROUTER, MAC_C, DNS4, C4, 63, &sent_by_c)
        )
    );
    assert_eq!(ctx.flows.table.stats().active, flows, "no flow for the error");
}

/// The same error from a backend on another node: it arrives through the tunnel
/// with the pod's label, to the floating address, and reaches the pod rewritten.
#[test]
fn an_error_from_another_node_about_a_both_ends_connection_reaches_the_pod() {
    const DNS4: [u8; 4] = [198, 18, 100, 53];
    const REMOTE_B4: [u8; 4] = [198, 18, 1, 77];
    use super::services::{port_unreachable4, udp4p};
    let mut s = isolated();
    s.set_fabric_info(nexthop::FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: MacAddr([2, 0, 0, 0, 0, 0xf1]),
        mtu: 1500,
    });
    let node2: std::net::Ipv4Addr = [198, 18, 0, 2].into();
    s.set_neighbor(node2, MacAddr([2, 0, 0, 0, 0, 0xf2]));
    s.add_route(control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.18.1.77/32".parse().unwrap(),
        target: control_client::RouteTarget::Tunnel {
            remote: node2,
            label: 40,
            encaps: vec![nexthop::encap::Encap::MplsOverUdp],
            mac: None,
        },
    })
    .unwrap();
    let mut dns = service("default/dns", DNS4, REMOTE_B4);
    dns.ports[0].protocol = L4Protocol::Udp;
    s.add_service(dns).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let question = udp4p(MAC_C, ROUTER, C4, DNS4, (43000, 80), 64);
    assert_eq!(run_in(&snap, Vif(3), &question, &mut ctx).0, Verdict::Transmit(Vif(0)));
    let seen_by_b = udp4p(ROUTER, ROUTER, FIP4, REMOTE_B4, (43000, 9376), 63);
    let error = port_unreachable4(ROUTER, ROUTER, REMOTE_B4, FIP4, 64, &seen_by_b);
    let label = snap.interface(Vif(3)).and_then(|i| i.label).expect("pod c has a label");
    let sent_by_c = udp4p(MAC_C, ROUTER, C4, DNS4, (43000, 80), 63);
    assert_eq!(
        run_in(&snap, Vif(0), &super::tunnel::from_node_2(label, &error), &mut ctx),
        (
            Verdict::Transmit(Vif(3)),
            port_unreachable4(ROUTER, MAC_C, DNS4, C4, 64, &sent_by_c)
        )
    );
}

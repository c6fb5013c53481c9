//! Services: a flow to a service address and port is translated to one backend
//! (destination NAT), its replies back to the service (source NAT), with exact bytes
//! (every checksum right); a service without backends refuses; a backend removed
//! moves only its own flows, on their next packet, and one added takes new flows only; client-address
//! affinity keeps a client's connections on one backend.

use super::*;
use control_client::{L4Protocol, ServicePort, ServiceSpec};
use std::net::IpAddr;

pub(super) const SVC4: [u8; 4] = [198, 18, 100, 10];
pub(super) const SVC6: &str = "2001:2:0:100::10";
const MAC_D: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0d];
pub(super) const D4: [u8; 4] = [198, 18, 1, 4];

fn service(backends: &[IpAddr], ip: IpAddr) -> ServiceSpec {
    ServiceSpec {
        name: format!("default/web-{}", if ip.is_ipv4() { 4 } else { 6 }),
        vrf: "red".into(),
        ip,
        ports: vec![
            ServicePort {
                protocol: L4Protocol::Tcp,
                port: 80,
                target_port: 9376,
                node_port: None,
            },
            ServicePort {
                protocol: L4Protocol::Udp,
                port: 53,
                target_port: 5353,
                node_port: None,
            },
        ],
        backends: backends.to_vec(),
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
    }
}

/// Pods a, b (and d) in red, c in blue; services on 198.18.100.10 and
/// 2001:2:0:100::10 with pod b (and d) as backends.
pub(super) fn with_services(backends4: &[[u8; 4]], with_d: bool) -> (DesiredState, Snapshot) {
    let mut s = state();
    if with_d {
        s.add_interface(InterfaceSpec {
            name: "d".into(),
            vrf: "red".into(),
            mac: MacAddr(MAC_D),
            ipv4: Some(D4.into()),
            gateway4: Some(GW4.into()),
            ..InterfaceSpec::default()
        })
        .unwrap();
    }
    let b4: Vec<IpAddr> = backends4.iter().map(|a| IpAddr::from(*a)).collect();
    s.add_service(service(&b4, IpAddr::from(SVC4))).unwrap();
    let b6: Vec<IpAddr> = vec!["2001:2:0:1::3".parse().unwrap()];
    s.add_service(service(&b6, SVC6.parse().unwrap())).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    (s, snap)
}

pub(super) fn udp4p(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ports: (u16, u16),
    ttl: u8,
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(ports.0, ports.1)
        .write(&mut out, b"query")
        .unwrap();
    out
}

pub(super) fn udp6p(src_mac: [u8; 6], dst_mac: [u8; 6], src: &str, dst: &str, ports: (u16, u16), hops: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(v6(src), v6(dst), hops)
        .udp(ports.0, ports.1)
        .write(&mut out, b"query6")
        .unwrap();
    out
}

#[test]
fn tcp_to_a_service_is_translated_to_its_backend_and_back_exactly() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    let (v, out) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(
        out,
        tcp4(ROUTER, MAC_B, A4, B4, (40000, 9376), 63),
        "to the backend's target port"
    );
    // The backend's reply comes back from the service.
    let (v, out) = run_in(&snap, Vif(2), &tcp4(MAC_B, ROUTER, B4, A4, (9376, 40000), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(
        out,
        tcp4(ROUTER, MAC_A, SVC4, A4, (80, 40000), 63),
        "from the service's port"
    );
    // The flow's next packet takes the cached translation, same bytes.
    let (_, again) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(again, tcp4(ROUTER, MAC_B, A4, B4, (40000, 9376), 63));
}

#[test]
fn udp_v4_and_v6_are_translated_with_their_checksums() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    let (v, out) = run_in(&snap, Vif(1), &udp4p(MAC_A, ROUTER, A4, SVC4, (5000, 53), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, udp4p(ROUTER, MAC_B, A4, B4, (5000, 5353), 63));
    let (_, out) = run_in(&snap, Vif(2), &udp4p(MAC_B, ROUTER, B4, A4, (5353, 5000), 64), &mut ctx);
    assert_eq!(out, udp4p(ROUTER, MAC_A, SVC4, A4, (53, 5000), 63));
    // IPv4 UDP without a checksum keeps going without one.
    let mut bare = udp4p(MAC_A, ROUTER, A4, SVC4, (5001, 53), 64);
    bare[ETH_LEN + 20 + 6..ETH_LEN + 20 + 8].copy_from_slice(&[0, 0]);
    let (_, out) = run_in(&snap, Vif(1), &bare, &mut ctx);
    assert_eq!(out[ETH_LEN + 20 + 2..ETH_LEN + 20 + 4], 5353u16.to_be_bytes());
    assert_eq!(out[ETH_LEN + 20 + 6..ETH_LEN + 20 + 8], [0, 0]);
    // IPv6.
    let (a6, b6) = ("2001:2:0:1::2", "2001:2:0:1::3");
    let (v, out) = run_in(&snap, Vif(1), &udp6p(MAC_A, ROUTER, a6, SVC6, (5000, 53), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, udp6p(ROUTER, MAC_B, a6, b6, (5000, 5353), 63));
    let (_, out) = run_in(&snap, Vif(2), &udp6p(MAC_B, ROUTER, b6, a6, (5353, 5000), 64), &mut ctx);
    assert_eq!(out, udp6p(ROUTER, MAC_A, SVC6, a6, (53, 5000), 63));
}

#[test]
fn a_service_without_backends_refuses_and_other_ports_are_not_its() {
    let (_, snap) = with_services(&[], false);
    let mut ctx = PipelineContext::default();
    let (v, out) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(v, Verdict::DropWithError(DropReason::ServiceNoBackend));
    assert_eq!((out[ETH_LEN + 20], out[ETH_LEN + 21]), (3, 3), "port unreachable");
    assert_eq!(&out[0..6], &MAC_A);
    // A port the service does not have is routed as any address is (no route).
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 81), 64), &mut ctx);
    assert_eq!(v, Verdict::DropWithError(DropReason::NoRoute));
    // Another VRF does not see it.
    let (v, _) = run_in(&snap, Vif(3), &tcp4(MAC_C, ROUTER, C4, SVC4, (40000, 80), 64), &mut ctx);
    assert_ne!(v.drop_reason(), Some(DropReason::ServiceNoBackend));
}

#[test]
fn a_removed_backend_moves_only_its_own_flows_on_their_next_packet() {
    let (mut s, _) = with_services(&[B4, D4], true);
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let d = snap.interface_by_name("d").unwrap().vif;
    let send = |snap: &Snapshot, ctx: &mut PipelineContext, port: u16| {
        run_in(snap, Vif(1), &udp4p(MAC_A, ROUTER, A4, SVC4, (port, 53), 64), ctx).0
    };
    let before: Vec<Verdict> = (2000..2200).map(|p| send(&snap, &mut ctx, p)).collect();
    let on_b = before.iter().filter(|v| **v == Verdict::Transmit(Vif(2))).count();
    assert!((60..140).contains(&on_b), "{on_b} of 200 flows on b");
    assert!(before
        .iter()
        .all(|v| [Verdict::Transmit(Vif(2)), Verdict::Transmit(d)].contains(v)));
    let red = s.vrf_id("red").unwrap();
    // A flow's entry, and the packets it counted (a flow made anew starts again).
    let entry = |ctx: &PipelineContext, port: u16| {
        let key = flow_table::FlowKey::v4(red.0, A4.into(), SVC4.into(), 17, port, 53);
        let f = ctx.flows.table.lookup(&key, key.hash()).expect("the flow's entry");
        (f.index, ctx.flows.table.activity(f.index).packets)
    };
    // Backend b goes (pod b still there, no longer a backend).
    s.add_service(service(&[IpAddr::from(D4)], IpAddr::from(SVC4))).unwrap();
    let snap = builder.build(&s, MacAddr(ROUTER));
    for (i, port) in (2000..2200).enumerate() {
        assert_eq!(send(&snap, &mut ctx, port), Verdict::Transmit(d), "every flow on d now");
        let (_, packets) = entry(&ctx, port);
        if before[i] == Verdict::Transmit(d) {
            assert_eq!(packets, 2, "a flow on d was made anew");
        } else {
            assert_eq!(packets, 1, "a flow on b kept its entry");
        }
    }
    // b's flows were made anew: one pair per flow, none left over.
    assert_eq!(ctx.flows.table.stats().active, 2 * 200);
}

#[test]
fn a_backend_added_takes_new_flows_only() {
    let (mut s, _) = with_services(&[B4], true);
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let d = snap.interface_by_name("d").unwrap().vif;
    let send = |snap: &Snapshot, ctx: &mut PipelineContext, port: u16| {
        run_in(snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (port, 80), 64), ctx).0
    };
    for port in 3000..3200 {
        assert_eq!(
            send(&snap, &mut ctx, port),
            Verdict::Transmit(Vif(2)),
            "b is the only backend"
        );
    }
    // Backend d joins: every open connection stays on b, about half the new ones go to d.
    s.add_service(service(&[IpAddr::from(B4), IpAddr::from(D4)], IpAddr::from(SVC4)))
        .unwrap();
    let snap = builder.build(&s, MacAddr(ROUTER));
    for port in 3000..3200 {
        assert_eq!(
            send(&snap, &mut ctx, port),
            Verdict::Transmit(Vif(2)),
            "port {port} moved"
        );
    }
    let on_d = (4000..4200)
        .filter(|p| send(&snap, &mut ctx, *p) == Verdict::Transmit(d))
        .count();
    assert!((60..140).contains(&on_d), "{on_d} of 200 new flows on d");
    assert_eq!(ctx.flows.table.stats().active, 2 * 400, "no flow made twice");
}

#[test]
fn client_address_affinity_keeps_a_client_on_one_backend_until_it_goes() {
    let (mut s, _) = with_services(&[B4, D4], true);
    let mut sticky = service(&[IpAddr::from(B4), IpAddr::from(D4)], IpAddr::from(SVC4));
    sticky.affinity_timeout_secs = Some(10_800);
    s.add_service(sticky.clone()).unwrap();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let send = |snap: &Snapshot, ctx: &mut PipelineContext, port: u16| {
        run_in(snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (port, 80), 64), ctx).0
    };
    let first = send(&snap, &mut ctx, 5000);
    for port in 5001..5100 {
        assert_eq!(send(&snap, &mut ctx, port), first, "connection from port {port} moved");
    }
    assert_eq!(ctx.flows.affinity.records(), 1);
    // Its backend goes: the client's connections go to the other one, and stay there.
    let d = snap.interface_by_name("d").unwrap().vif;
    let (gone, other) = if first == Verdict::Transmit(d) {
        (D4, Verdict::Transmit(Vif(2)))
    } else {
        (B4, Verdict::Transmit(d))
    };
    sticky.backends.retain(|b| *b != IpAddr::from(gone));
    s.add_service(sticky).unwrap();
    let snap = builder.build(&s, MacAddr(ROUTER));
    for port in 6000..6050 {
        assert_eq!(send(&snap, &mut ctx, port), other, "port {port}");
    }
}

#[test]
fn a_pod_reaches_itself_through_its_service() {
    // Pod a is the only backend: its own connection to the service comes back to it
    // from the service's address (its kernel would drop its own address as a source).
    let (_, snap) = with_services(&[A4], false);
    let mut ctx = PipelineContext::default();
    let (v, out) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, SVC4, (40000, 80), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(
        out,
        tcp4(ROUTER, MAC_A, SVC4, A4, (40000, 9376), 63),
        "back from the service"
    );
    // Its server's answer goes to the service's address and comes back to the client
    // from the service's port.
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, SVC4, (9376, 40000), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(out, tcp4(ROUTER, MAC_A, SVC4, A4, (80, 40000), 63));
    // UDP too, with its checksum.
    let (v, out) = run_in(&snap, Vif(1), &udp4p(MAC_A, ROUTER, A4, SVC4, (5000, 53), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(out, udp4p(ROUTER, MAC_A, SVC4, A4, (5000, 5353), 63));
    // After a change elsewhere (the flow epoch renewed), the reply still finds the pod.
    let (mut s, _) = with_services(&[A4], false);
    let mut other = service(&[IpAddr::from(B4)], "198.18.100.20".parse().unwrap());
    other.name = "default/other".into();
    s.add_service(other).unwrap();
    let snap = s.build(2, MacAddr(ROUTER));
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, SVC4, (9376, 40000), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(out, tcp4(ROUTER, MAC_A, SVC4, A4, (80, 40000), 63));
}

/// An ICMP port unreachable from `from` (at `src_mac`, `src`) to `to`, quoting the
/// first 28 (IPv4) bytes of `quoted` (a whole frame).
pub(super) fn port_unreachable4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    quoted: &[u8],
) -> Vec<u8> {
    port_unreachable4_quoting((src_mac, dst_mac), src, dst, ttl, &quoted[ETH_LEN..ETH_LEN + 28])
}

/// An ICMP port unreachable from `src` to `dst` quoting `quote` (IP bytes) as given.
pub(super) fn port_unreachable4_quoting(
    macs: ([u8; 6], [u8; 6]),
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    quote: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src, dst, ttl)
        .icmpv4(Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut out, quote)
        .unwrap();
    out
}

#[test]
fn an_icmp_error_from_a_backend_reaches_the_client_about_the_service() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(&snap, Vif(1), &udp4p(MAC_A, ROUTER, A4, SVC4, (5000, 53), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    // The backend has nothing on its target port: it answers about the packet it saw.
    let seen_by_b = udp4p(ROUTER, MAC_B, A4, B4, (5000, 5353), 63);
    let error = port_unreachable4(MAC_B, ROUTER, B4, A4, 64, &seen_by_b);
    let (v, out) = run_in(&snap, Vif(2), &error, &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    // The client gets it from the service, about the packet it sent (to the
    // service's port), every checksum right (the quoted UDP one included).
    let sent_by_a = udp4p(ROUTER, MAC_B, A4, SVC4, (5000, 53), 63);
    assert_eq!(out, port_unreachable4(ROUTER, MAC_A, SVC4, A4, 63, &sent_by_a));
    // An error about a flow nobody translated is left alone.
    let plain = udp4p(ROUTER, MAC_B, A4, B4, (5001, 7), 63);
    let error = port_unreachable4(MAC_B, ROUTER, B4, A4, 64, &plain);
    let (_, out) = run_in(&snap, Vif(2), &error, &mut ctx);
    assert_eq!(out, port_unreachable4(ROUTER, MAC_A, B4, A4, 63, &plain));
}

#[test]
fn an_icmpv6_error_from_a_backend_reaches_the_client_about_the_service() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    let (a6, b6) = ("2001:2:0:1::2", "2001:2:0:1::3");
    let (v, _) = run_in(&snap, Vif(1), &udp6p(MAC_A, ROUTER, a6, SVC6, (5000, 53), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    let unreachable = |src_mac, dst_mac, src: &str, dst: &str, hops, quoted: &[u8]| {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv6(v6(src), v6(dst), hops)
            .icmpv6(Icmpv6Type::DestinationUnreachable(
                etherparse::icmpv6::DestUnreachableCode::Port,
            ))
            .write(&mut out, &quoted[ETH_LEN..ETH_LEN + 48])
            .unwrap();
        out
    };
    let seen_by_b = udp6p(ROUTER, MAC_B, a6, b6, (5000, 5353), 63);
    let (v, out) = run_in(
        &snap,
        Vif(2),
        &unreachable(MAC_B, ROUTER, b6, a6, 64, &seen_by_b),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    let sent_by_a = udp6p(ROUTER, MAC_B, a6, SVC6, (5000, 53), 63);
    assert_eq!(out, unreachable(ROUTER, MAC_A, SVC6, a6, 63, &sent_by_a));
}

#[test]
fn an_icmp_error_from_a_backend_on_another_node_reaches_the_client_about_the_service() {
    // Backend b is on node 2, behind a tunnel.
    let mut s = super::tunnel::tunnel_state(1500, None);
    s.add_service(service(&[IpAddr::from(B4)], IpAddr::from(SVC4))).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(&snap, Vif(1), &udp4p(MAC_A, ROUTER, A4, SVC4, (5000, 53), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(0)), "to node 2");
    // Node 2's backend answers port unreachable about what it saw, by a's label.
    let seen_by_b = udp4p(ROUTER, MAC_B, A4, B4, (5000, 5353), 63);
    let error = port_unreachable4(MAC_B, ROUTER, B4, A4, 60, &seen_by_b);
    let label = snap.interface(Vif(1)).and_then(|i| i.label).expect("a has a label");
    let (v, out) = run_in(&snap, Vif(0), &super::tunnel::from_node_2(label, &error), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    let sent_by_a = udp4p(ROUTER, MAC_B, A4, SVC4, (5000, 53), 63);
    assert_eq!(out, port_unreachable4(ROUTER, MAC_A, SVC4, A4, 60, &sent_by_a));
}

/// The resolver's A and AAAA queries leave one socket at the same moment: the first
/// two packets of one new UDP flow, which two workers may set up at once. Both must
/// be forwarded, to the same backend with the same bytes (a data plane whose
/// connection tracking drops the loser gives the five-second DNS timeouts).
#[test]
fn two_workers_racing_on_one_new_flow_make_the_same_decision() {
    let (_, snap) = with_services(&[B4, D4], true);
    let flows = std::sync::Arc::new(crate::flows::Flows::new(
        &crate::flows::FlowConfig {
            entries: 1 << 14,
            ..Default::default()
        },
        16,
    ));
    const FLOWS: u16 = 2000;
    let barrier = std::sync::Barrier::new(2);
    let outputs: Vec<Vec<(Verdict, Vec<u8>)>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (snap, barrier) = (&snap, &barrier);
                let mut ctx = PipelineContext::new(std::sync::Arc::clone(&flows));
                s.spawn(move || {
                    (0..FLOWS)
                        .map(|i| {
                            let query = udp4p(MAC_A, ROUTER, A4, SVC4, (20_000 + i, 53), 64);
                            barrier.wait();
                            run_in(snap, Vif(1), &query, &mut ctx)
                        })
                        .collect()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut backends = std::collections::BTreeSet::new();
    for (i, (first, second)) in outputs[0].iter().zip(&outputs[1]).enumerate() {
        assert!(matches!(first.0, Verdict::Transmit(_)), "flow {i}: {:?}", first.0);
        assert_eq!(first, second, "flow {i}: the two workers decided differently");
        backends.insert(format!("{:?}", first.0));
    }
    assert_eq!(backends.len(), 2, "the flows spread over both backends");
    assert_eq!(flows.table.stats().created, 2 * u64::from(FLOWS), "one pair per flow");
}

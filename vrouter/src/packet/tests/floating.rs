//! Floating IPs: pod c (VRF blue) has floating address 198.18.1.50 in VRF red. Traffic
//! to the floating address from red reaches c translated, c's replies leave from it;
//! c reaching red (where blue has no route) leaves from it too, and the replies come
//! back to c; exact bytes, every checksum right; the floating address is routed and
//! answered for in red; nothing else crosses between the VRFs.

use super::*;
use control_client::FloatingIpSpec;

const FIP4: [u8; 4] = [198, 18, 1, 50];
const FIP6: &str = "2001:2:0:1::50";

fn with_floating_ips() -> (DesiredState, Snapshot) {
    let mut s = state();
    for (name, ip) in [("c-4", IpAddr::from(FIP4)), ("c-6", FIP6.parse().unwrap())] {
        s.add_floating_ip(FloatingIpSpec {
            name: name.into(),
            vrf: "red".into(),
            ip,
            interface: "c".into(),
            egress_only: false,
        })
        .unwrap();
    }
    let snap = s.build(1, MacAddr(ROUTER));
    (s, snap)
}

use std::net::IpAddr;

pub(super) fn ping4(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ident: u16,
    ttl: u8,
    reply: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(src, dst, ttl);
    let b = if reply {
        b.icmpv4_echo_reply(ident, 1)
    } else {
        b.icmpv4_echo_request(ident, 1)
    };
    b.write(&mut out, b"ping").unwrap();
    out
}

#[test]
fn traffic_to_a_floating_ip_reaches_its_pod_and_replies_leave_from_it() {
    let (_, snap) = with_floating_ips();
    let mut ctx = PipelineContext::default();
    // a (red) -> the floating address: delivered to c (blue) as to c's own address.
    let (v, out) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, FIP4, (40000, 22), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(3)));
    assert_eq!(out, tcp4(ROUTER, MAC_C, A4, C4, (40000, 22), 63));
    // c's reply (blue has no route to a) leaves from the floating address, to a.
    let (v, out) = run_in(&snap, Vif(3), &tcp4(MAC_C, ROUTER, C4, A4, (22, 40000), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(out, tcp4(ROUTER, MAC_A, FIP4, A4, (22, 40000), 63));
    // Ping (the echo identifier kept) and IPv6 UDP, both ways.
    let (v, out) = run_in(&snap, Vif(1), &ping4(MAC_A, ROUTER, A4, FIP4, 9, 64, false), &mut ctx);
    assert_eq!(
        (v, out),
        (Verdict::Transmit(Vif(3)), ping4(ROUTER, MAC_C, A4, C4, 9, 63, false))
    );
    let (v, out) = run_in(&snap, Vif(3), &ping4(MAC_C, ROUTER, C4, A4, 9, 64, true), &mut ctx);
    assert_eq!(
        (v, out),
        (Verdict::Transmit(Vif(1)), ping4(ROUTER, MAC_A, FIP4, A4, 9, 63, true))
    );
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &udp6(MAC_A, ROUTER, "2001:2:0:1::2", FIP6, 64, b"six"),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(3)));
    assert_eq!(out, udp6(ROUTER, MAC_C, "2001:2:0:1::2", "2001:2:0:2::2", 63, b"six"));
}

#[test]
fn a_pod_reaches_the_floating_vrf_from_its_floating_ip_and_gets_replies() {
    let (_, snap) = with_floating_ips();
    let mut ctx = PipelineContext::default();
    // c -> b: blue has no route to b, red has b's /32: out from the floating address.
    let (v, out) = run_in(&snap, Vif(3), &tcp4(MAC_C, ROUTER, C4, B4, (33000, 80), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, tcp4(ROUTER, MAC_B, FIP4, B4, (33000, 80), 63));
    let (v, out) = run_in(&snap, Vif(2), &tcp4(MAC_B, ROUTER, B4, FIP4, (80, 33000), 64), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(3)));
    assert_eq!(out, tcp4(ROUTER, MAC_C, B4, C4, (80, 33000), 63));
    // The flows are in the table translated: the forward entry in blue, the reverse
    // in red.
    let udp = udp4(MAC_C, ROUTER, C4, B4, 64, b"x");
    let (v, out) = run_in(&snap, Vif(3), &udp, &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, udp4(ROUTER, MAC_B, FIP4, B4, 63, b"x"));
}

#[test]
fn without_the_floating_ip_nothing_crosses_and_its_address_is_answered_only_where_it_is() {
    let (mut s, snap) = with_floating_ips();
    // The floating address is routed in red only.
    assert!(snap.route4(snap.vrf_by_name("red").unwrap().id, FIP4.into()).is_some());
    assert!(snap.route4(snap.vrf_by_name("blue").unwrap().id, FIP4.into()).is_none());
    // a cannot reach c's own address (another VRF), floating IP or not.
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, C4, (40001, 22), 64), &mut ctx);
    assert!(matches!(v, Verdict::Drop(_) | Verdict::DropWithError(_)), "{v:?}");
    // Removed: the floating address routes nowhere, and a new snapshot renews the
    // flow epoch so that a cached translation is not used.
    s.remove_floating_ip("c-4").unwrap();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let before = builder.build(&with_floating_ips().0, MacAddr(ROUTER));
    let after = builder.build(&s, MacAddr(ROUTER));
    assert!(after.flow_epoch > before.flow_epoch);
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(
        &after,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, FIP4, (40002, 22), 64),
        &mut ctx,
    );
    assert_ne!(v, Verdict::Transmit(Vif(3)));
}

#[test]
fn a_floating_flows_reply_keeps_its_translation_when_decisions_are_made_again() {
    let (mut s, _) = with_floating_ips();
    // A client network behind b in red, and the same prefix discarded in blue: the
    // reply's destination matches as long a prefix in either VRF, so only the kept
    // translation says where it goes.
    const CLIENT: [u8; 4] = [198, 19, 0, 5];
    let route = |vrf: &str, target| control_client::RouteSpec {
        vrf: vrf.into(),
        prefix: "198.19.0.0/16".parse().unwrap(),
        target,
    };
    s.add_route(route(
        "red",
        control_client::RouteTarget::Interface { name: "b".into() },
    ))
    .unwrap();
    s.add_route(route("blue", control_client::RouteTarget::Discard))
        .unwrap();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let first = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(
        &first,
        Vif(2),
        &tcp4(MAC_B, ROUTER, CLIENT, FIP4, (40000, 22), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(3)));
    // Something unrelated renews every decision (a floating IP of another pod).
    s.add_floating_ip(FloatingIpSpec {
        name: "b-4".into(),
        vrf: "blue".into(),
        ip: IpAddr::from([198, 18, 2, 60]),
        interface: "b".into(),
        egress_only: false,
    })
    .unwrap();
    let second = builder.build(&s, MacAddr(ROUTER));
    assert!(second.flow_epoch > first.flow_epoch);
    // c's reply hits its reverse entry first: still from the floating address, to b.
    let (v, out) = run_in(
        &second,
        Vif(3),
        &tcp4(MAC_C, ROUTER, C4, CLIENT, (22, 40000), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, tcp4(ROUTER, MAC_B, FIP4, CLIENT, (22, 40000), 63));
}

#[test]
fn a_flow_to_an_address_that_becomes_a_floating_ip_is_translated_from_then_on() {
    let mut s = state();
    s.add_route(control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.18.1.50/32".parse().unwrap(),
        target: control_client::RouteTarget::Interface { name: "b".into() },
    })
    .unwrap();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let before = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let (v, _) = run_in(
        &before,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, FIP4, (40000, 22), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(2)), "routed to b at first");
    s.remove_route("red", "198.18.1.50/32".parse().unwrap()).unwrap();
    s.add_floating_ip(FloatingIpSpec {
        name: "c-4".into(),
        vrf: "red".into(),
        ip: IpAddr::from(FIP4),
        interface: "c".into(),
        egress_only: false,
    })
    .unwrap();
    let after = builder.build(&s, MacAddr(ROUTER));
    let (v, out) = run_in(
        &after,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, FIP4, (40000, 22), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(3)));
    assert_eq!(out, tcp4(ROUTER, MAC_C, A4, C4, (40000, 22), 63));
}

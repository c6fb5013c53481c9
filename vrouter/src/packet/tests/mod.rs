//! Pipeline tests over an in-memory buffer: exact bytes out for every answer and
//! rewrite, counted drops for malformed frames.

use super::*;
use control_client::{DesiredState, InterfaceSpec};
use etherparse::{IcmpEchoHeader, Icmpv4Type, Icmpv6Type, PacketBuilder};
use nexthop::MacAddr;
use proptest::prelude::*;

const ROUTER: [u8; 6] = [0x00, 0x00, 0x5e, 0x00, 0x01, 0x00];
const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const MAC_C: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0c];
const A4: [u8; 4] = [198, 18, 1, 2];
const B4: [u8; 4] = [198, 18, 1, 3];
const C4: [u8; 4] = [198, 18, 2, 2];
const GW4: [u8; 4] = [198, 18, 1, 1];
const HEADROOM: usize = 256;

fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>().unwrap().octets()
}

/// Pods a and b in VRF red (vifs 1, 2), pod c in VRF blue (vif 3).
fn snapshot() -> Snapshot {
    state().build(1, MacAddr(ROUTER))
}

/// The desired state [`snapshot`] is built from.
fn state() -> DesiredState {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    let pod = |name: &str, vrf: &str, mac: [u8; 6], ip4: [u8; 4], ip6: &str, gw4: [u8; 4], gw6: &str| InterfaceSpec {
        name: name.into(),
        vrf: vrf.into(),
        mac: MacAddr(mac),
        ipv4: Some(ip4.into()),
        ipv6: Some(ip6.parse().unwrap()),
        gateway4: Some(gw4.into()),
        gateway6: Some(gw6.parse().unwrap()),
        allowed_address_pairs: Vec::new(),
        mtu: None,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    };
    s.add_interface(pod("a", "red", MAC_A, A4, "2001:2:0:1::2", GW4, "2001:2:0:1::1"))
        .unwrap();
    s.add_interface(pod("b", "red", MAC_B, B4, "2001:2:0:1::3", GW4, "2001:2:0:1::1"))
        .unwrap();
    s.add_interface(pod(
        "c",
        "blue",
        MAC_C,
        C4,
        "2001:2:0:2::2",
        [198, 18, 2, 1],
        "2001:2:0:2::1",
    ))
    .unwrap();
    s
}

/// A TCP SYN with a small payload, as the NAT tests send it.
/// Pods `a` and `b` of [`state`] in `s` given MTUs, by name.
fn set_mtus(s: &mut DesiredState, mtus: &[(&str, u16)]) {
    for &(name, mtu) in mtus {
        let (mac, ip, v6) = match name {
            "a" => (MAC_A, A4, "2001:2:0:1::2"),
            "b" => (MAC_B, B4, "2001:2:0:1::3"),
            _ => panic!("no pod {name} in the test state"),
        };
        s.remove_interface(name).unwrap();
        s.add_interface(InterfaceSpec {
            name: name.into(),
            vrf: "red".into(),
            mac: MacAddr(mac),
            ipv4: Some(ip.into()),
            ipv6: Some(v6.parse().unwrap()),
            gateway4: Some(GW4.into()),
            gateway6: Some("2001:2:0:1::1".parse().unwrap()),
            mtu: Some(mtu),
            ..InterfaceSpec::default()
        })
        .unwrap();
    }
}

fn tcp4(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ports: (u16, u16), ttl: u8) -> Vec<u8> {
    tcp4_flagged(src_mac, dst_mac, (src, dst), ports, ttl, "S", b"hello")
}

/// A TCP segment of `flags` ("S": a SYN, "F": a FIN with an ACK, else an ACK)
/// carrying `payload`.
fn tcp4_flagged(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    (src, dst): ([u8; 4], [u8; 4]),
    ports: (u16, u16),
    ttl: u8,
    flags: &str,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::new();
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .tcp(ports.0, ports.1, 1000, 64_000);
    let b = match flags {
        "S" => b.syn(),
        "F" => b.fin().ack(1),
        _ => b.ack(1),
    };
    b.write(&mut out, payload).unwrap();
    out
}

/// Service `name` in red at `ip`, TCP port 80 to `backend`'s 9376.
fn web_service(name: &str, ip: [u8; 4], backend: [u8; 4]) -> control_client::ServiceSpec {
    control_client::ServiceSpec {
        name: name.into(),
        vrf: "red".into(),
        ip: std::net::IpAddr::from(ip),
        ports: vec![control_client::ServicePort {
            protocol: control_client::L4Protocol::Tcp,
            port: 80,
            target_port: 9376,
            node_port: None,
        }],
        backends: vec![std::net::IpAddr::from(backend)],
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
    }
}

/// Runs one frame through the pipeline; returns the verdict and the bytes out.
fn run(snap: &Snapshot, vif: Vif, frame: &[u8]) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; 4096];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(&mut buf, HEADROOM, frame.len()).unwrap();
    let mut ctx = PipelineContext::default();
    let v = process(snap, vif, &mut pkt, &mut ctx);
    (v, pkt.data().to_vec())
}

fn udp4(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src, dst, ttl)
        .udp(4000, 5000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

fn udp6(src_mac: [u8; 6], dst_mac: [u8; 6], src: &str, dst: &str, hops: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv6(v6(src), v6(dst), hops)
        .udp(4000, 5000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

#[test]
fn arp_request_for_gateway_gets_exact_reply() {
    let snap = snapshot();
    #[rustfmt::skip]
    let request = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x0a, 0x08, 0x06,
        0, 1, 8, 0, 6, 4, 0, 1,
        0x02, 0, 0, 0, 0, 0x0a, 198, 18, 1, 2,
        0, 0, 0, 0, 0, 0, 198, 18, 1, 1,
        // Ethernet padding to 60 bytes is dropped from the reply.
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    #[rustfmt::skip]
    let reply = [
        0x02, 0, 0, 0, 0, 0x0a, 0x00, 0x00, 0x5e, 0x00, 0x01, 0x00, 0x08, 0x06,
        0, 1, 8, 0, 6, 4, 0, 2,
        0x00, 0x00, 0x5e, 0x00, 0x01, 0x00, 198, 18, 1, 1,
        0x02, 0, 0, 0, 0, 0x0a, 198, 18, 1, 2,
    ];
    assert_eq!(
        run(&snap, Vif(1), &request),
        (Verdict::Transmit(Vif(1)), reply.to_vec())
    );
    // A pod in the same VRF is answered with the router MAC as well.
    let mut for_b = request;
    for_b[38..42].copy_from_slice(&B4);
    let (v, out) = run(&snap, Vif(1), &for_b);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(&out[28..32], &B4);
    assert_eq!(&out[22..28], &ROUTER);
    // A pod in another VRF, an unknown address and the sender's own address are not.
    let mut for_c = request;
    for_c[38..42].copy_from_slice(&C4);
    assert_eq!(run(&snap, Vif(1), &for_c).0, Verdict::Drop(DropReason::OtherVrf));
    let mut unknown = request;
    unknown[38..42].copy_from_slice(&[198, 18, 9, 9]);
    assert_eq!(
        run(&snap, Vif(1), &unknown).0,
        Verdict::Drop(DropReason::NeighborUnknown)
    );
    let mut own = request;
    own[38..42].copy_from_slice(&A4);
    assert_eq!(run(&snap, Vif(1), &own).0, Verdict::Drop(DropReason::SelfSolicitation));
    let mut bad = request;
    bad[16] = 0x86;
    assert_eq!(run(&snap, Vif(1), &bad).0, Verdict::Drop(DropReason::InvalidArp));
    assert_eq!(
        run(&snap, Vif(1), &request[..40]).0,
        Verdict::Drop(DropReason::Truncated)
    );
}

#[test]
fn routed_ipv4_rewrites_macs_ttl_and_checksum() {
    let snap = snapshot();
    let input = udp4(MAC_A, ROUTER, A4, B4, 64, b"hello, pod b");
    let (v, out) = run(&snap, Vif(1), &input);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    // Expected: built independently with TTL 63 and MACs router -> b.
    let expected = udp4(ROUTER, MAC_B, A4, B4, 63, b"hello, pod b");
    assert_eq!(out, expected);
}

#[test]
fn routed_ipv6_rewrites_macs_and_hop_limit() {
    let snap = snapshot();
    let input = udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:1::3", 64, b"v6 payload");
    let (v, out) = run(&snap, Vif(1), &input);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(
        out,
        udp6(ROUTER, MAC_B, "2001:2:0:1::2", "2001:2:0:1::3", 63, b"v6 payload")
    );
}

#[test]
fn ttl_expiry_sends_exact_time_exceeded() {
    let snap = snapshot();
    let input = udp4(MAC_A, ROUTER, A4, B4, 1, b"expiring");
    let (v, out) = run(&snap, Vif(1), &input);
    assert_eq!(v, Verdict::DropWithError(DropReason::TtlExceeded));
    // ICMP time exceeded from the gateway, quoting the whole (short) original packet.
    let quoted = &input[ETH_LEN..];
    let b = PacketBuilder::ethernet2(ROUTER, MAC_A)
        .ipv4(GW4, A4, 64)
        .icmpv4(Icmpv4Type::TimeExceeded(
            etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
        ));
    let mut expected = Vec::new();
    b.write(&mut expected, quoted).unwrap();
    // etherparse sets DF by default; the vrouter sends errors without it.
    expected[ETH_LEN + 6] = 0;
    let c = checksum::checksum(&{
        let mut h = expected[ETH_LEN..ETH_LEN + 20].to_vec();
        h[10] = 0;
        h[11] = 0;
        h
    });
    expected[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(out, expected);
}

#[test]
fn hop_limit_expiry_sends_icmpv6_time_exceeded() {
    let snap = snapshot();
    let input = udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:1::3", 1, b"expiring");
    let (v, out) = run(&snap, Vif(1), &input);
    assert_eq!(v, Verdict::DropWithError(DropReason::TtlExceeded));
    let b = PacketBuilder::ethernet2(ROUTER, MAC_A)
        .ipv6(v6("2001:2:0:1::1"), v6("2001:2:0:1::2"), 64)
        .icmpv6(Icmpv6Type::TimeExceeded(
            etherparse::icmpv6::TimeExceededCode::HopLimitExceeded,
        ));
    let mut expected = Vec::new();
    b.write(&mut expected, &input[ETH_LEN..]).unwrap();
    assert_eq!(out, expected);
}

#[test]
fn no_route_sends_unreachable_but_other_vrf_is_silent() {
    let snap = snapshot();
    let (v, out) = run(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, [198, 18, 200, 1], 64, b"x"));
    assert_eq!(v, Verdict::DropWithError(DropReason::NoRoute));
    assert_eq!(out[ETH_LEN + 20], 3, "ICMP destination unreachable");
    assert_eq!(&out[ETH_LEN + 16..ETH_LEN + 20], &A4);
    let (v, _) = run(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, C4, 64, b"x"));
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
    let (v, _) = run(
        &snap,
        Vif(1),
        &udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:2::2", 64, b"x"),
    );
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
    let (v, out) = run(
        &snap,
        Vif(1),
        &udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:9::9", 64, b"x"),
    );
    assert_eq!(v, Verdict::DropWithError(DropReason::NoRoute));
    assert_eq!(out[ETH_LEN + 40], 1, "ICMPv6 destination unreachable");
}

#[test]
fn gateway_answers_ping_v4_and_v6() {
    let snap = snapshot();
    let echo = IcmpEchoHeader { id: 7, seq: 3 };
    let mut req = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv4(A4, GW4, 64)
        .icmpv4_echo_request(7, 3)
        .write(&mut req, b"ping!")
        .unwrap();
    let mut want = Vec::new();
    PacketBuilder::ethernet2(ROUTER, MAC_A)
        .ipv4(GW4, A4, 64)
        .icmpv4(Icmpv4Type::EchoReply(echo))
        .write(&mut want, b"ping!")
        .unwrap();
    let (v, out) = run(&snap, Vif(1), &req);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    // Identification and flags are echoed from the request; compare the rest exactly.
    assert_eq!(out[..ETH_LEN + 4], want[..ETH_LEN + 4]);
    assert_eq!(out[ETH_LEN + 8..ETH_LEN + 10], want[ETH_LEN + 8..ETH_LEN + 10]);
    assert_eq!(out[ETH_LEN + 12..], want[ETH_LEN + 12..]);
    assert_eq!(checksum::checksum(&out[ETH_LEN..ETH_LEN + 20]), 0);

    let mut req6 = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv6(v6("2001:2:0:1::2"), v6("2001:2:0:1::1"), 64)
        .icmpv6_echo_request(7, 3)
        .write(&mut req6, b"ping6")
        .unwrap();
    let mut want6 = Vec::new();
    PacketBuilder::ethernet2(ROUTER, MAC_A)
        .ipv6(v6("2001:2:0:1::1"), v6("2001:2:0:1::2"), 64)
        .icmpv6(Icmpv6Type::EchoReply(echo))
        .write(&mut want6, b"ping6")
        .unwrap();
    assert_eq!(run(&snap, Vif(1), &req6), (Verdict::Transmit(Vif(1)), want6));
    // TCP to the gateway is not served.
    let mut tcp = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv4(A4, GW4, 64)
        .tcp(1, 2, 3, 100)
        .write(&mut tcp, &[])
        .unwrap();
    assert_eq!(run(&snap, Vif(1), &tcp).0, Verdict::Drop(DropReason::NoLocalService));
}

#[test]
fn neighbor_solicitation_gets_exact_advertisement() {
    let snap = snapshot();
    let sol = |target: &str| {
        let t = v6(target);
        let mut body = vec![0u8; 4];
        body.extend_from_slice(&t);
        body.extend_from_slice(&[1, 1]);
        body.extend_from_slice(&MAC_A);
        let snm = {
            let mut a = v6("ff02::1:ff00:0");
            a[13..16].copy_from_slice(&t[13..16]);
            a
        };
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, [0x33, 0x33, 0xff, t[13], t[14], t[15]])
            .ipv6(v6("fe80::a"), snm, 255)
            .icmpv6(Icmpv6Type::Unknown {
                type_u8: 135,
                code_u8: 0,
                bytes5to8: [0; 4],
            })
            .write(&mut out, &body[4..])
            .unwrap();
        out
    };
    let (v, out) = run(&snap, Vif(1), &sol("2001:2:0:1::1"));
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    let mut body = v6("2001:2:0:1::1").to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&ROUTER);
    let mut want = Vec::new();
    PacketBuilder::ethernet2(ROUTER, MAC_A)
        .ipv6(v6("2001:2:0:1::1"), v6("fe80::a"), 255)
        .icmpv6(Icmpv6Type::Unknown {
            type_u8: 136,
            code_u8: 0,
            bytes5to8: [0xe0, 0, 0, 0],
        })
        .write(&mut want, &body)
        .unwrap();
    assert_eq!(out, want);
    // For a pod: no router flag.
    let (v, out) = run(&snap, Vif(1), &sol("2001:2:0:1::3"));
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(out[L4_OFF + 4], 0x60);
    assert_eq!(
        run(&snap, Vif(1), &sol("2001:2:0:1::2")).0,
        Verdict::Drop(DropReason::SelfSolicitation)
    );
    assert_eq!(
        run(&snap, Vif(1), &sol("2001:2:0:2::2")).0,
        Verdict::Drop(DropReason::OtherVrf)
    );
    let mut corrupt = sol("2001:2:0:1::1");
    let n = corrupt.len();
    corrupt[n - 1] ^= 0xff;
    assert_eq!(run(&snap, Vif(1), &corrupt).0, Verdict::Drop(DropReason::BadChecksum));
}

const L4_OFF: usize = ETH_LEN + 40;

#[test]
fn malformed_frames_are_counted_drops() {
    let snap = snapshot();
    let good = udp4(MAC_A, ROUTER, A4, B4, 64, b"payload");
    let cases: Vec<(&str, Vec<u8>, DropReason)> = vec![
        ("runt ethernet", good[..10].to_vec(), DropReason::Truncated),
        (
            "truncated ip header",
            good[..ETH_LEN + 12].to_vec(),
            DropReason::Truncated,
        ),
        (
            "ihl 4",
            {
                let mut f = good.clone();
                f[ETH_LEN] = 0x44;
                f
            },
            DropReason::BadIpHeader,
        ),
        (
            "version 5",
            {
                let mut f = good.clone();
                f[ETH_LEN] = 0x55;
                f
            },
            DropReason::BadIpHeader,
        ),
        (
            "total length beyond frame",
            {
                let mut f = good.clone();
                f[ETH_LEN + 2] = 0x05;
                f
            },
            DropReason::Truncated,
        ),
        (
            "total length below ihl",
            {
                let mut f = good.clone();
                f[ETH_LEN + 2] = 0;
                f[ETH_LEN + 3] = 10;
                f
            },
            DropReason::BadIpHeader,
        ),
        (
            "ihl beyond total",
            {
                let mut f = good.clone();
                f[ETH_LEN] = 0x4f;
                f
            },
            DropReason::BadIpHeader,
        ),
        (
            "bad checksum",
            {
                let mut f = good.clone();
                f[ETH_LEN + 10] ^= 1;
                f
            },
            DropReason::BadChecksum,
        ),
        (
            "foreign dest mac",
            {
                let mut f = good.clone();
                f[0..6].copy_from_slice(&MAC_C);
                f
            },
            DropReason::WrongDestMac,
        ),
        (
            // A tag on a port with no VLAN sub-interfaces names nothing.
            "vlan tag",
            {
                let mut f = good.clone();
                f[12] = 0x81;
                f[13] = 0;
                f
            },
            DropReason::UnknownVlan,
        ),
        (
            "broadcast ip",
            udp4(MAC_A, [0xff; 6], A4, [255; 4], 64, b"x"),
            DropReason::Multicast,
        ),
        (
            "truncated ipv6",
            udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:1::3", 64, b"x")[..ETH_LEN + 30].to_vec(),
            DropReason::Truncated,
        ),
        (
            "ipv6 payload length beyond frame",
            {
                let mut f = udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:1::3", 64, b"x");
                f[ETH_LEN + 4] = 9;
                f
            },
            DropReason::Truncated,
        ),
        (
            "ipv6 bad version",
            {
                let mut f = udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:1::3", 64, b"x");
                f[ETH_LEN] = 0x40;
                f
            },
            DropReason::BadIpHeader,
        ),
    ];
    for (name, frame, reason) in cases {
        assert_eq!(run(&snap, Vif(1), &frame).0.drop_reason(), Some(reason), "{name}");
    }
    // Unknown vif (removed interface).
    assert_eq!(run(&snap, Vif(9), &good).0, Verdict::Drop(DropReason::InvalidInterface));
}

proptest! {
    /// Any bytes, on any interface, with any headroom: a verdict, never a panic, and
    /// the output stays inside the buffer.
    #[test]
    fn arbitrary_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..200), vif in 0u32..5, headroom in 0usize..64, eth in 0usize..4) {
        let snap = snapshot();
        let mut frame = frame;
        // Steer a good share of cases past the Ethernet checks.
        if frame.len() >= 14 && eth > 0 {
            frame[0..6].copy_from_slice(&ROUTER);
            let t: u16 = [ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6][eth - 1];
            frame[12..14].copy_from_slice(&t.to_be_bytes());
            if frame.len() > 14 { frame[14] = if eth == 3 { 0x60 } else { 0x45 }; }
        }
        let mut buf = vec![0u8; headroom + frame.len() + 64];
        buf[headroom..headroom + frame.len()].copy_from_slice(&frame);
        let mut pkt = PacketBuf::new(&mut buf, headroom, frame.len()).unwrap();
        let _ = process(&snap, Vif(vif), &mut pkt, &mut PipelineContext::default());
        prop_assert!(pkt.start() + pkt.len() <= headroom + frame.len() + 64);
    }
}

fn run_in(snap: &Snapshot, vif: Vif, frame: &[u8], ctx: &mut PipelineContext) -> (Verdict, Vec<u8>) {
    let mut buf = vec![0u8; 4096];
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(&mut buf, HEADROOM, frame.len()).unwrap();
    let v = process(snap, vif, &mut pkt, ctx);
    (v, pkt.data().to_vec())
}

/// The two fragments of Ethernet and IPv4 frame `frame` (no IP options) with IP
/// identification `ident`, the first carrying `first_len` bytes of its payload (a
/// multiple of 8).
fn fragmented(frame: &[u8], ident: u16, first_len: usize) -> (Vec<u8>, Vec<u8>) {
    let header = ETH_LEN + 20;
    let make = |part: &[u8], offset: usize, more: bool| {
        let mut out = frame[..header].to_vec();
        out.extend_from_slice(part);
        let mut ip = wire::ipv4::Packet::new_unchecked(&mut out[ETH_LEN..]);
        ip.set_total_len((20 + part.len()) as u16);
        ip.set_ident(ident);
        ip.set_fragment(more, offset);
        ip.fill_checksum();
        out
    };
    let payload = &frame[header..];
    (
        make(&payload[..first_len], 0, true),
        make(&payload[first_len..], first_len, false),
    )
}

mod chains;
mod floating;
mod flows;
mod fragments;
mod fragments6;
mod frames;
mod isolation;
mod mtu;
mod nat_checksums;
mod nat_clash;
mod nat_offload;
mod node_ports;
mod policy;
mod services;
mod snat_icmp;
mod spoofing;
mod tunnel;
mod vlan;
mod vrf_reuse;

//! A packet larger than the egress pod's MTU is not sent to be dropped silently by
//! the receiving kernel: IPv4 with DF and IPv6 get the ICMP error with the MTU (back
//! through the tunnel when it came from another node), IPv4 without DF is a counted
//! `mtu` drop.

use super::tunnel::{from_node_2, tunnel_snapshot_with};
use super::*;
use std::net::IpAddr;

/// Pods a and b in VRF red, b with MTU 1400.
fn small_mtu_snapshot() -> Snapshot {
    let mut s = state();
    set_mtus(&mut s, &[("b", 1400)]);
    s.build(1, MacAddr(ROUTER))
}

#[test]
fn too_big_for_the_egress_pod_is_answered_or_counted() {
    let snap = small_mtu_snapshot();
    let b = snap.interface_by_name("b").unwrap().vif;
    // 1400 bytes of IP fit exactly.
    let fits = udp4(MAC_A, ROUTER, A4, B4, 64, &[0u8; 1400 - 28]);
    assert_eq!(run(&snap, Vif(1), &fits).0, Verdict::Transmit(b));
    // DF set (as the builder writes it): fragmentation needed, next-hop MTU 1400.
    let mut big = udp4(MAC_A, ROUTER, A4, B4, 64, &[0u8; 1401 - 28]);
    assert_ne!(big[ETH_LEN + 6] & 0x40, 0);
    let (v, out) = run(&snap, Vif(1), &big);
    assert_eq!(v, Verdict::DropWithError(DropReason::Mtu));
    assert_eq!((out[ETH_LEN + 20], out[ETH_LEN + 21]), (3, 4));
    assert_eq!(u16::from_be_bytes([out[ETH_LEN + 26], out[ETH_LEN + 27]]), 1400);
    assert_eq!(&out[0..6], &MAC_A, "back to the sender");
    // Without DF (header checksum fixed): a counted drop.
    big[ETH_LEN + 6] &= !0x40;
    big[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&big[ETH_LEN..ETH_LEN + 20]);
    big[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        run(&snap, Vif(1), &big).0,
        Verdict::Drop(DropReason::Mtu),
        "no DF: counted"
    );
    let big6 = udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:1::3", 64, &[0u8; 1401 - 48]);
    let (v, out) = run(&snap, Vif(1), &big6);
    assert_eq!(v, Verdict::DropWithError(DropReason::Mtu));
    assert_eq!(out[ETH_LEN + 40], 2, "packet too big");
    assert_eq!(
        u32::from_be_bytes(out[ETH_LEN + 44..ETH_LEN + 48].try_into().unwrap()),
        1400
    );
}

/// The ICMP error in `out`, a frame the vrouter sends back to node 2 through the
/// tunnel: its inner IP packet, after checking the outer headers.
fn error_through_tunnel(out: &[u8]) -> Vec<u8> {
    let d = nexthop::encap::parse(out).expect("an encapsulated error");
    assert_eq!(
        (d.encap, d.label, d.src, d.dst),
        (
            nexthop::encap::Encap::MplsOverUdp,
            40,
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into()
        ),
        "back to node 2 by the label it advertised for the sender"
    );
    assert_eq!(&out[0..6], &[2, 0, 0, 0, 0, 0xf2], "to the fabric neighbour");
    out[d.payload..d.payload + d.payload_len].to_vec()
}

#[test]
fn too_big_from_the_fabric_for_the_pod_is_answered_through_the_tunnel() {
    // Jumbo frames on the fabric, pod a at 1400: node 2's pod may send more than fits.
    let snap = tunnel_snapshot_with(9000, Some(1400));
    let label = snap.interface(Vif(1)).and_then(|i| i.label).unwrap();
    let fits = udp4(MAC_B, ROUTER, B4, A4, 63, &[7u8; 1400 - 28]);
    let (v, out) = run(&snap, Vif(0), &from_node_2(label, &fits));
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(&out[ETH_LEN..], &fits[ETH_LEN..], "delivered unchanged");

    // IPv4 with DF: fragmentation needed (MTU 1400) from pod a's gateway to the sender,
    // quoting its header, encapsulated back to node 2.
    let big = udp4(MAC_B, ROUTER, B4, A4, 63, &[7u8; 1401 - 28]);
    let (v, out) = run(&snap, Vif(0), &from_node_2(label, &big));
    assert_eq!(v, Verdict::DropWithError(DropReason::Mtu));
    let error = error_through_tunnel(&out);
    let ip = etherparse::Ipv4HeaderSlice::from_slice(&error).unwrap();
    assert_eq!((ip.source(), ip.destination(), ip.protocol().0), (GW4, B4, 1));
    let icmp = &error[20..];
    assert_eq!((icmp[0], icmp[1]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([icmp[6], icmp[7]]), 1400);
    assert_eq!(&icmp[8..28], &big[ETH_LEN..ETH_LEN + 20], "the sender's header quoted");

    // Without DF: a counted drop, nothing sent.
    let mut no_df = big.clone();
    no_df[ETH_LEN + 6] &= !0x40;
    no_df[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&no_df[ETH_LEN..ETH_LEN + 20]);
    no_df[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(
        run(&snap, Vif(0), &from_node_2(label, &no_df)).0,
        Verdict::Drop(DropReason::Mtu)
    );

    // IPv6: packet too big, back through the tunnel.
    let big6 = udp6(MAC_B, ROUTER, "2001:2:0:1::3", "2001:2:0:1::2", 63, &[7u8; 1401 - 48]);
    let (v, out) = run(&snap, Vif(0), &from_node_2(label, &big6));
    assert_eq!(v, Verdict::DropWithError(DropReason::Mtu));
    let error = error_through_tunnel(&out);
    let ip = etherparse::Ipv6HeaderSlice::from_slice(&error).unwrap();
    assert_eq!(ip.source(), v6("2001:2:0:1::1"));
    assert_eq!(ip.destination(), v6("2001:2:0:1::3"));
    assert_eq!(
        (error[40], u32::from_be_bytes(error[44..48].try_into().unwrap())),
        (2, 1400)
    );
}

/// A UDP datagram with `len` bytes of payload (DF set, as the builder writes it).
fn datagram(src_mac: [u8; 6], src: IpAddr, dst: IpAddr, ports: (u16, u16), len: usize) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(src_mac, ROUTER);
    let builder = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => builder.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d)) => builder.ipv6(s.octets(), d.octets(), 64),
        _ => unreachable!("one family"),
    };
    let mut out = Vec::new();
    builder.udp(ports.0, ports.1).write(&mut out, &vec![7; len]).unwrap();
    out
}

/// The quoted packet's addresses and ports in an ICMP error of `family`'s frame.
fn quoted(error: &[u8], v4: bool) -> (IpAddr, IpAddr, u16, u16) {
    let at = ETH_LEN + if v4 { 20 } else { 40 } + 8;
    let q = &error[at..];
    let (src, dst, l4): (IpAddr, IpAddr, usize) = if v4 {
        assert_eq!(checksum::checksum(&q[..20]), 0, "the quoted header's checksum");
        let a = |i: usize| IpAddr::from(<[u8; 4]>::try_from(&q[i..i + 4]).unwrap());
        (a(12), a(16), 20)
    } else {
        let a = |i: usize| IpAddr::from(<[u8; 16]>::try_from(&q[i..i + 16]).unwrap());
        (a(8), a(24), 40)
    };
    let port = |i: usize| u16::from_be_bytes([q[l4 + i], q[l4 + i + 1]]);
    (src, dst, port(0), port(2))
}

#[test]
fn an_error_about_a_translated_packet_quotes_it_as_sent_and_goes_to_its_sender() {
    // Pods a and b with MTU 1400, b the backend of the services on port 53 (5353).
    let (mut s, _) = super::services::with_services(&[B4], false);
    set_mtus(&mut s, &[("a", 1400), ("b", 1400)]);
    let snap = s.build(2, MacAddr(ROUTER));
    let vif = |name: &str| snap.interface_by_name(name).unwrap().vif;
    let (a, b) = (vif("a"), vif("b"));
    let mut ctx = PipelineContext::default();
    let cases: [(IpAddr, IpAddr, IpAddr, usize); 2] = [
        (A4.into(), B4.into(), super::services::SVC4.into(), 28),
        (
            "2001:2:0:1::2".parse().unwrap(),
            "2001:2:0:1::3".parse().unwrap(),
            super::services::SVC6.parse().unwrap(),
            48,
        ),
    ];
    for (client, backend, service, headers) in cases {
        let v4 = client.is_ipv4();
        // The flow to the service, set up by a datagram that fits.
        let fits = datagram(MAC_A, client, service, (40_000, 53), 100);
        assert_eq!(run_in(&snap, a, &fits, &mut ctx).0, Verdict::Transmit(b));
        // Too big for the backend: the error goes back to the client about the
        // service's address and port, not the backend's.
        let big = datagram(MAC_A, client, service, (40_000, 53), 1401 - headers);
        let (verdict, error) = run_in(&snap, a, &big, &mut ctx);
        assert_eq!(verdict, Verdict::DropWithError(DropReason::Mtu), "{service}");
        assert_eq!(&error[..6], &MAC_A);
        assert_eq!(quoted(&error, v4), (client, service, 40_000, 53), "{service}");
        // The backend's reply too big for the client (its source becomes the
        // service's): the error goes to the backend, about what it sent.
        let reply = datagram(MAC_B, backend, client, (5353, 40_000), 1401 - headers);
        let (verdict, error) = run_in(&snap, b, &reply, &mut ctx);
        assert_eq!(verdict, Verdict::DropWithError(DropReason::Mtu), "{service}");
        assert_eq!(&error[..6], &MAC_B);
        let to = if v4 {
            IpAddr::from(<[u8; 4]>::try_from(&error[ETH_LEN + 16..ETH_LEN + 20]).unwrap())
        } else {
            IpAddr::from(<[u8; 16]>::try_from(&error[ETH_LEN + 24..ETH_LEN + 40]).unwrap())
        };
        assert_eq!(to, backend, "the error is addressed to the backend");
        assert_eq!(quoted(&error, v4), (backend, client, 5353, 40_000), "{service}");
    }
}

//! A packet larger than the egress pod's MTU is not sent to be dropped silently by
//! the receiving kernel: IPv4 with DF and IPv6 get the ICMP error with the MTU (back
//! through the tunnel when it came from another node), IPv4 without DF is a counted
//! `mtu` drop.

use super::tunnel::{from_node_2, tunnel_snapshot_with};
use super::*;

/// Pods a and b in VRF red, b with MTU 1400.
fn small_mtu_snapshot() -> Snapshot {
    let mut s = state();
    s.remove_interface("b").unwrap();
    s.add_interface(InterfaceSpec {
        name: "b".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_B),
        ipv4: Some(B4.into()),
        ipv6: Some("2001:2:0:1::3".parse().unwrap()),
        gateway4: Some(GW4.into()),
        gateway6: Some("2001:2:0:1::1".parse().unwrap()),
        mtu: Some(1400),
        ..InterfaceSpec::default()
    })
    .unwrap();
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

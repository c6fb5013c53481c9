//! A packet larger than the egress pod's MTU is not sent to be dropped silently by
//! the receiving kernel: IPv4 with DF and IPv6 get the ICMP error with the MTU, IPv4
//! without DF is a counted `mtu` drop.

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

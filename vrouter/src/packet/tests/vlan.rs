//! VLAN sub-interfaces (nested mode): a pod behind a tag on a VM's port is a port of
//! its own, in its own VRF, reached tagged on the parent.

use super::tunnel::from_node_2;
use super::*;

const MAC_VM: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0f];

/// Port "vm" (a VM's tap, VRF vms), its sub-interface "vm.100" (pod a, VLAN 100, VRF
/// red), and pod b in red on a port of its own; the fabric at 198.18.0.1.
fn nested() -> (DesiredState, Snapshot) {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    s.set_fabric_info(nexthop::FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: MacAddr([2, 0, 0, 0, 0, 0xf1]),
        mtu: 1500,
    });
    s.add_interface(InterfaceSpec {
        name: "vm".into(),
        vrf: "vms".into(),
        mac: MacAddr(MAC_VM),
        ipv4: Some([198, 18, 9, 2].into()),
        gateway4: Some([198, 18, 9, 1].into()),
        ..InterfaceSpec::default()
    })
    .unwrap();
    s.add_interface(InterfaceSpec {
        name: "vm.100".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_A),
        ipv4: Some(A4.into()),
        gateway4: Some(GW4.into()),
        vlan: Some(control_client::VlanSpec {
            parent: "vm".into(),
            id: 100,
        }),
        ..InterfaceSpec::default()
    })
    .unwrap();
    s.add_interface(InterfaceSpec {
        name: "b".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_B),
        ipv4: Some(B4.into()),
        gateway4: Some(GW4.into()),
        ..InterfaceSpec::default()
    })
    .unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    (s, snap)
}

fn tagged(vlan: u16, untagged: &[u8]) -> Vec<u8> {
    let mut out = untagged[..12].to_vec();
    out.extend([0x81, 0x00]);
    out.extend(vlan.to_be_bytes());
    out.extend(&untagged[12..]);
    out
}

fn vif(snap: &Snapshot, name: &str) -> Vif {
    snap.interface_by_name(name).unwrap().vif
}

#[test]
fn a_tagged_frame_is_its_sub_interfaces_and_answers_leave_tagged() {
    let (_, snap) = nested();
    let (vm, b) = (vif(&snap, "vm"), vif(&snap, "b"));
    // Pod a (VLAN 100 on the VM's port) to pod b: routed in red, untagged to b.
    let from_a = udp4(MAC_A, ROUTER, A4, B4, 64, b"nested");
    let (v, out) = run(&snap, vm, &tagged(100, &from_a));
    assert_eq!(v, Verdict::Transmit(b));
    let mut want = udp4(ROUTER, MAC_B, A4, B4, 63, b"nested");
    want[0..6].copy_from_slice(&MAC_B);
    want[6..12].copy_from_slice(&ROUTER);
    assert_eq!(out[..12], want[..12]);
    assert_eq!(out[12..14], [0x08, 0x00], "untagged");
    assert_eq!(out[ETH_LEN + 8], 63, "TTL");
    // Pod b to pod a: tagged 100 out of the VM's port, to a's MAC.
    let (v, out) = run(&snap, b, &udp4(MAC_B, ROUTER, B4, A4, 64, b"back"));
    assert_eq!(v, Verdict::Transmit(vm));
    assert_eq!(out[..6], MAC_A);
    assert_eq!(out[12..18], [0x81, 0x00, 0, 100, 0x08, 0x00], "tag 100, then IPv4");
    assert_eq!(&out[18 + 20 + 8..], b"back");
    // ARP for a's gateway: the reply goes back tagged.
    let arp = {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_A, [0xff; 6])
            .arp(
                etherparse::ArpPacket::new(
                    etherparse::ArpHardwareId::ETHERNET,
                    etherparse::EtherType::IPV4,
                    etherparse::ArpOperation::REQUEST,
                    &MAC_A,
                    &A4,
                    &[0; 6],
                    &GW4,
                )
                .unwrap(),
            )
            .write(&mut f)
            .unwrap();
        f
    };
    let (v, out) = run(&snap, vm, &tagged(100, &arp));
    assert_eq!(v, Verdict::Transmit(vm));
    assert_eq!(out[12..18], [0x81, 0x00, 0, 100, 0x08, 0x06], "tagged ARP reply");
    assert_eq!(out[18 + 7], 2, "a reply");
    // TTL expired in a's packet: the ICMP error goes back tagged.
    let (v, out) = run(&snap, vm, &tagged(100, &udp4(MAC_A, ROUTER, A4, B4, 1, b"ttl")));
    assert_eq!(v, Verdict::DropWithError(DropReason::TtlExceeded));
    assert_eq!(out[12..18], [0x81, 0x00, 0, 100, 0x08, 0x00]);
    assert_eq!(out[18 + 20], 11, "time exceeded");
}

#[test]
fn the_parent_keeps_its_own_untagged_traffic_and_tags_are_checked() {
    let (_, snap) = nested();
    let vm = vif(&snap, "vm");
    // The VM itself, untagged, in its own VRF: its gateway answers its ping.
    let ping = {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(MAC_VM, ROUTER)
            .ipv4([198, 18, 9, 2], [198, 18, 9, 1], 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut f, b"vm")
            .unwrap();
        f
    };
    let (v, out) = run(&snap, vm, &ping);
    assert_eq!(v, Verdict::Transmit(vm));
    assert_eq!(out[12..14], [0x08, 0x00], "untagged answer");
    // An unknown tag, a tag inside a tag, and a's frame with another pod's MAC.
    let from_a = udp4(MAC_A, ROUTER, A4, B4, 64, b"x");
    assert_eq!(
        run(&snap, vm, &tagged(200, &from_a)).0,
        Verdict::Drop(DropReason::UnknownVlan)
    );
    assert_eq!(
        run(&snap, vm, &tagged(100, &tagged(100, &from_a))).0,
        Verdict::Drop(DropReason::UnknownVlan)
    );
    let spoofed = udp4(MAC_B, ROUTER, A4, B4, 64, b"x");
    assert_eq!(
        run(&snap, vm, &tagged(100, &spoofed)).0,
        Verdict::Drop(DropReason::SourceMismatch)
    );
    // A tagged frame on a port without sub-interfaces names nothing.
    let b = vif(&snap, "b");
    let from_b = udp4(MAC_B, ROUTER, B4, A4, 64, b"x");
    assert_eq!(
        run(&snap, b, &tagged(100, &from_b)).0,
        Verdict::Drop(DropReason::UnknownVlan)
    );
    // Truncated tag.
    assert_eq!(
        run(&snap, vm, &tagged(100, &from_a)[..15]).0,
        Verdict::Drop(DropReason::Truncated)
    );
}

#[test]
fn a_packet_from_another_node_for_the_sub_interface_leaves_tagged() {
    let (s, snap) = nested();
    let label = s.port_identity("vm.100").unwrap().label;
    let inner = udp4(MAC_C, ROUTER, C4, A4, 60, b"from node 2");
    let (v, out) = run(&snap, Vif(0), &from_node_2(label, &inner));
    assert_eq!(v, Verdict::Transmit(vif(&snap, "vm")));
    assert_eq!(out[..6], MAC_A);
    assert_eq!(out[12..18], [0x81, 0x00, 0, 100, 0x08, 0x00]);
    assert_eq!(&out[18..], &inner[ETH_LEN..]);
}

#[test]
fn sub_interfaces_are_checked_and_go_before_their_parent() {
    let (mut s, _) = nested();
    let sub = |name: &str, parent: &str, id: u16| InterfaceSpec {
        name: name.into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_C),
        vlan: Some(control_client::VlanSpec {
            parent: parent.into(),
            id,
        }),
        ..InterfaceSpec::default()
    };
    use control_client::ModelError;
    let invalid = |r: Result<Vif, ModelError>| matches!(r, Err(ModelError::InvalidVlan(_)));
    assert!(invalid(s.add_interface(sub("vm.101", "nope", 101))), "unknown parent");
    assert!(invalid(s.add_interface(sub("vm.dup", "vm", 100))), "tag taken");
    assert!(invalid(s.add_interface(sub("vm.0", "vm", 0))), "VLAN 0");
    assert!(invalid(s.add_interface(sub("vm.4095", "vm", 4095))), "VLAN 4095");
    assert!(
        invalid(s.add_interface(sub("nest", "vm.100", 5))),
        "a sub-interface of a sub-interface"
    );
    assert!(matches!(s.remove_interface("vm"), Err(ModelError::ParentInUse { .. })));
    s.remove_interface("vm.100").unwrap();
    s.remove_interface("vm").unwrap();
    assert!(s.build(2, MacAddr(ROUTER)).subinterfaces.is_empty());
}

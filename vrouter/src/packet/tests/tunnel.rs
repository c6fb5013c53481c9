//! Encapsulation, decapsulation, MTU handling and fragmentation in the pipeline.

use super::*;

/// A snapshot where pod b's addresses are behind an MPLSoUDP tunnel to 198.18.0.2.
fn tunnel_snapshot(mtu: u16) -> Snapshot {
    tunnel_snapshot_with(mtu, None)
}

/// [`tunnel_snapshot`] with a fabric MTU of `mtu` and pod a's MTU `pod_mtu`.
pub(super) fn tunnel_snapshot_with(mtu: u16, pod_mtu: Option<u16>) -> Snapshot {
    tunnel_state(mtu, pod_mtu).build(1, MacAddr(ROUTER))
}

/// The desired state [`tunnel_snapshot_with`] builds: pod a, node 2's pod b behind
/// a tunnel.
pub(super) fn tunnel_state(mtu: u16, pod_mtu: Option<u16>) -> DesiredState {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    s.set_fabric_info(nexthop::FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: MacAddr([2, 0, 0, 0, 0, 0xf1]),
        mtu,
    });
    s.add_interface(InterfaceSpec {
        name: "a".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_A),
        ipv4: Some(A4.into()),
        ipv6: Some("2001:2:0:1::2".parse().unwrap()),
        gateway4: Some(GW4.into()),
        gateway6: Some("2001:2:0:1::1".parse().unwrap()),
        allowed_address_pairs: Vec::new(),
        mtu: pod_mtu,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    })
    .unwrap();
    let remote: std::net::Ipv4Addr = [198, 18, 0, 2].into();
    s.set_neighbor(remote, MacAddr([2, 0, 0, 0, 0, 0xf2]));
    for prefix in ["198.18.1.3/32", "2001:2:0:1::3/128"] {
        let target = control_client::RouteTarget::Tunnel {
            remote,
            label: 40,
            encaps: vec![nexthop::encap::Encap::MplsOverUdp],
            mac: None,
        };
        s.add_route(control_client::RouteSpec {
            vrf: "red".into(),
            prefix: prefix.parse().unwrap(),
            target,
        })
        .unwrap();
    }
    s
}

#[test]
fn tunnel_route_encapsulates_exactly() {
    let snap = tunnel_snapshot(1500);
    let (v, out) = run(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, B4, 64, b"to node 2"));
    assert_eq!(v, Verdict::Transmit(Vif(0)), "out of the fabric");
    let inner = &udp4(MAC_A, ROUTER, A4, B4, 63, b"to node 2")[ETH_LEN..];
    let d = nexthop::encap::parse(&out).unwrap();
    assert_eq!(
        (d.encap, d.label, d.src, d.dst),
        (
            nexthop::encap::Encap::MplsOverUdp,
            40,
            [198, 18, 0, 1].into(),
            [198, 18, 0, 2].into()
        )
    );
    assert_eq!(&out[d.payload..], inner, "inner packet with TTL decremented");
    assert_eq!(&out[0..12], &[2, 0, 0, 0, 0, 0xf2, 2, 0, 0, 0, 0, 0xf1]);
    let port = u16::from_be_bytes([out[34], out[35]]);
    assert!(port >= 49152, "entropy source port {port}");
}

#[test]
fn fabric_frames_are_decapsulated_to_the_pod_by_label() {
    let snap = tunnel_snapshot(1500);
    let inner = udp4(MAC_A, ROUTER, B4, A4, 60, b"from node 2");
    let label = snap.interface(Vif(1)).and_then(|i| i.label).expect("pod a has a label");
    let outer = outer_from_node_2(nexthop::encap::Encap::MplsOverGre, label);
    let frame = outer.frame(&inner[ETH_LEN..]);
    let (v, out) = run(&snap, Vif(0), &frame);
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    let mut want = inner.clone();
    want[0..6].copy_from_slice(&MAC_A);
    want[6..12].copy_from_slice(&ROUTER);
    assert_eq!(out, want);
    // Unknown label, and a tunnel for another node.
    let mut unknown = frame.clone();
    unknown[14 + 24 + 1] ^= 0x10;
    assert_eq!(run(&snap, Vif(0), &unknown).0, Verdict::Drop(DropReason::InvalidLabel));
    let other = nexthop::encap::Outer {
        dst: [198, 18, 0, 7].into(),
        ..outer
    };
    let elsewhere = other.frame(&inner[ETH_LEN..]);
    assert_eq!(run(&snap, Vif(0), &elsewhere).0, Verdict::Drop(DropReason::BadTunnel));
}

/// `inner` (an Ethernet frame) as it arrives from 198.18.0.2 over MPLS over UDP
/// with `label`.
pub(super) fn from_node_2(label: u32, inner: &[u8]) -> Vec<u8> {
    outer_from_node_2(nexthop::encap::Encap::MplsOverUdp, label).frame(&inner[ETH_LEN..])
}

/// The outer headers of a packet from node 2 (198.18.0.2) to this node (198.18.0.1).
fn outer_from_node_2(encap: nexthop::encap::Encap, label: u32) -> nexthop::encap::Outer {
    nexthop::encap::Outer {
        encap,
        src_mac: [2, 0, 0, 0, 0, 0xf2],
        dst_mac: [2, 0, 0, 0, 0, 0xf1],
        src: [198, 18, 0, 2].into(),
        dst: [198, 18, 0, 1].into(),
        label,
        entropy: 50000,
        ttl: 60,
    }
}

#[test]
fn a_label_delivers_only_what_routes_to_its_interface_in_its_vrf() {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    s.set_fabric_info(nexthop::FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: MacAddr([2, 0, 0, 0, 0, 0xf1]),
        mtu: 1500,
    });
    let pod = |name: &str, vrf: &str, mac: [u8; 6], ip: [u8; 4]| InterfaceSpec {
        name: name.into(),
        vrf: vrf.into(),
        mac: MacAddr(mac),
        ipv4: Some(ip.into()),
        ipv6: None,
        gateway4: Some(GW4.into()),
        gateway6: None,
        allowed_address_pairs: Vec::new(),
        mtu: None,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    };
    // Blue first, then two red pods: blue's label must not reach red, nor red's blue.
    s.add_interface(pod("blue1", "blue", [2, 0, 0, 0, 2, 2], [198, 18, 2, 2]))
        .unwrap();
    s.add_interface(pod("red1", "red", MAC_A, A4)).unwrap();
    s.add_interface(pod("red2", "red", MAC_B, B4)).unwrap();
    let label = |name: &str| s.port_identity(name).unwrap().label;
    let snap = s.build(1, MacAddr(ROUTER));
    let to = |dst: [u8; 4]| udp4([2, 0, 0, 0, 0, 0xee], ROUTER, [198, 18, 9, 9], dst, 60, b"x");
    assert_eq!(
        run(&snap, Vif(0), &from_node_2(label("red1"), &to(A4))).0,
        Verdict::Transmit(Vif(2))
    );
    for (by, dst) in [
        ("blue1", A4),
        ("blue1", B4),
        ("red1", [198, 18, 2, 2]),
        ("red1", B4),
        ("red2", [198, 18, 7, 7]),
    ] {
        let (v, _) = run(&snap, Vif(0), &from_node_2(label(by), &to(dst)));
        assert_eq!(v, Verdict::Drop(DropReason::LabelMismatch), "label of {by} to {dst:?}");
    }
}

#[test]
fn too_big_for_the_tunnel_gets_icmp_and_syn_mss_is_clamped() {
    let snap = tunnel_snapshot(1400);
    // 1400-byte fabric MTU, 32 bytes of MPLSoUDP: 1368 bytes of inner packet fit.
    let mut big = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv4(A4, B4, 64)
        .udp(1, 2)
        .write(&mut big, &[0u8; 1400])
        .unwrap();
    let (v, out) = run(&snap, Vif(1), &big);
    assert_eq!(v, Verdict::DropWithError(DropReason::Mtu));
    assert_eq!((out[ETH_LEN + 20], out[ETH_LEN + 21]), (3, 4), "fragmentation needed");
    assert_eq!(u16::from_be_bytes([out[ETH_LEN + 26], out[ETH_LEN + 27]]), 1368);
    let mut big6 = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv6(v6("2001:2:0:1::2"), v6("2001:2:0:1::3"), 64)
        .udp(1, 2)
        .write(&mut big6, &[0u8; 1400])
        .unwrap();
    let (v, out) = run(&snap, Vif(1), &big6);
    assert_eq!(v, Verdict::DropWithError(DropReason::Mtu));
    assert_eq!(out[ETH_LEN + 40], 2, "packet too big");
    assert_eq!(
        u32::from_be_bytes(out[ETH_LEN + 44..ETH_LEN + 48].try_into().unwrap()),
        1368
    );
    // A SYN announcing MSS 1460 leaves with 1368 - 20 - 20 = 1328, checksum still right.
    let mut syn = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv4(A4, B4, 64)
        .tcp(40000, 80, 1, 64240)
        .syn()
        .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
        .unwrap()
        .write(&mut syn, &[])
        .unwrap();
    let (v, out) = run(&snap, Vif(1), &syn);
    assert_eq!(v, Verdict::Transmit(Vif(0)));
    let d = nexthop::encap::parse(&out).unwrap();
    let inner = etherparse::SlicedPacket::from_ip(&out[d.payload..]).unwrap();
    let Some(etherparse::TransportSlice::Tcp(tcp)) = inner.transport else {
        panic!()
    };
    assert!(tcp
        .options_iterator()
        .any(|o| matches!(o, Ok(etherparse::TcpOptionElement::MaximumSegmentSize(1328)))));
    let etherparse::NetSlice::Ipv4(ip) = inner.net.unwrap() else {
        panic!()
    };
    assert_eq!(
        tcp.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
            .unwrap(),
        tcp.checksum()
    );
}

#[test]
fn oversized_packets_without_df_are_fragmented_then_encapsulated() {
    let snap = tunnel_snapshot(1400);
    let payload: Vec<u8> = (0..2000u32).map(|i| i as u8).collect();
    let mut big = udp4(MAC_A, ROUTER, A4, B4, 64, &payload);
    // Clear DF (etherparse sets it) and fix the header checksum.
    big[ETH_LEN + 6] = 0;
    big[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&big[ETH_LEN..ETH_LEN + 20]);
    big[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c.to_be_bytes());
    let mut ctx = PipelineContext::default();
    let (v, routed) = run_in(&snap, Vif(1), &big, &mut ctx);
    let Verdict::Fragment(nh) = v else {
        panic!("a fragmentation verdict, not {v:?}");
    };
    let plan = fragment_plan(&snap, Vif(1), nh, &routed, usize::MAX).expect("a fragmentation plan");
    assert_eq!(plan.count, 2, "2008 bytes of UDP in 1368-byte inner packets");
    // A fragment's frame capped below the MTU (the chunk it is built in): more of them.
    let small = fragment_plan(&snap, Vif(1), nh, &routed, 700).expect("a plan for 700-byte frames");
    assert_eq!(
        small.count, 4,
        "2008 bytes in inner packets of at most 700 - 14 (Ethernet) - 32 (outer IP, UDP, MPLS) bytes"
    );
    let mut reassembled = Vec::new();
    for i in 0..plan.count {
        let mut buf = vec![0u8; 4096];
        let mut pkt = PacketBuf::new(&mut buf, HEADROOM, 0).unwrap();
        assert!(build_fragment(&snap, &plan, &routed, i, &mut pkt));
        let out = pkt.data().to_vec();
        assert!(
            out.len() - 14 <= 1400,
            "outer packet of {} bytes exceeds the MTU",
            out.len() - 14
        );
        let d = nexthop::encap::parse(&out).unwrap();
        let ip = &out[d.payload..d.payload + d.payload_len];
        assert_eq!(checksum::checksum(&ip[..20]), 0, "fragment header checksum");
        assert_eq!(ip[8], 63, "TTL decremented once");
        let flags_offset = u16::from_be_bytes([ip[6], ip[7]]);
        let more = flags_offset & 0x2000 != 0;
        assert_eq!(more, i + 1 < plan.count, "MF on all but the last");
        assert_eq!(
            usize::from(flags_offset & 0x1fff) * 8,
            reassembled.len(),
            "offset of fragment {i}"
        );
        assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
        reassembled.extend_from_slice(&ip[20..]);
    }
    assert_eq!(
        reassembled,
        big[ETH_LEN + 20..].to_vec(),
        "fragments reassemble to the original UDP datagram"
    );
    // Out-of-range fragment indexes build nothing.
    let mut buf = vec![0u8; 4096];
    let mut pkt = PacketBuf::new(&mut buf, HEADROOM, 0).unwrap();
    assert!(!build_fragment(&snap, &plan, &routed, plan.count, &mut pkt));
}

#[test]
fn packets_from_the_fabric_go_through_the_flow_table_and_arrive_unchanged() {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    s.set_fabric_info(nexthop::FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: MacAddr([2, 0, 0, 0, 0, 0xf1]),
        mtu: 1500,
    });
    s.add_interface(InterfaceSpec {
        name: "a".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_A),
        ipv4: Some(A4.into()),
        gateway4: Some(GW4.into()),
        ..InterfaceSpec::default()
    })
    .unwrap();
    s.set_vrf_vni("red", 4100).unwrap();
    // Pod b lives on node 2: replies go back through a tunnel.
    let remote: std::net::Ipv4Addr = [198, 18, 0, 2].into();
    s.set_neighbor(remote, MacAddr([2, 0, 0, 0, 0, 0xf2]));
    let target = control_client::RouteTarget::Tunnel {
        remote,
        label: 40,
        encaps: vec![nexthop::encap::Encap::MplsOverUdp],
        mac: None,
    };
    s.add_route(control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.18.1.3/32".parse().unwrap(),
        target,
    })
    .unwrap();
    let label = s.port_identity("a").unwrap().label;
    let red = s.vrf_id("red").unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    use nexthop::encap::Encap;
    for (encap, id) in [
        (Encap::MplsOverUdp, label),
        (Encap::MplsOverGre, label),
        (Encap::Vxlan, 4100),
    ] {
        let mut ctx = PipelineContext::default();
        let inner = udp4([2, 0, 0, 0, 0, 0xee], ROUTER, B4, A4, 60, b"from node 2");
        let outer = outer_from_node_2(encap, id);
        let payload = if encap == Encap::Vxlan {
            &inner[..]
        } else {
            &inner[ETH_LEN..]
        };
        let frame = outer.frame(payload);
        let (v, out) = run_in(&snap, Vif(0), &frame, &mut ctx);
        assert_eq!(v, Verdict::Transmit(Vif(1)), "{encap:?}");
        let mut want = inner.clone();
        want[0..6].copy_from_slice(&MAC_A);
        want[6..12].copy_from_slice(&ROUTER);
        assert_eq!(out, want, "{encap:?}: the same bytes as before flows");
        // The receiving node holds the flow, both directions, owned by the fabric.
        let key = flow_table::FlowKey::v4(red.0, B4.into(), A4.into(), 17, 4000, 5000);
        let f = ctx
            .flows
            .table
            .lookup(&key, key.hash())
            .expect("a flow entry on the receiving node");
        assert_eq!(f.value.owner, 0, "{encap:?}");
        assert!(f.reverse.is_some(), "{encap:?}");
        // Pod a's reply hits the reverse entry and leaves through the tunnel.
        let mut reply = Vec::new();
        PacketBuilder::ethernet2(MAC_A, ROUTER)
            .ipv4(A4, B4, 64)
            .udp(5000, 4000)
            .write(&mut reply, b"reply")
            .unwrap();
        let (v, _) = run_in(&snap, Vif(1), &reply, &mut ctx);
        assert_eq!(v, Verdict::Transmit(Vif(0)), "{encap:?}: reply to node 2");
        assert_eq!(
            ctx.flows.table.stats().created,
            2,
            "{encap:?}: no new flow for the reply"
        );
    }
}

//! Anti-spoofing: a pod sends from its own MAC and addresses, or from an allowed
//! address pair; everything else is dropped and counted as `source_mismatch`.

use super::*;

#[test]
fn spoofed_and_martian_sources_from_a_pod_are_dropped() {
    let snap = snapshot();
    let mismatch = Verdict::Drop(DropReason::SourceMismatch);
    // Its own address and MAC pass (to pod b, vif 2).
    assert_eq!(
        run(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, B4, 64, b"own")).0,
        Verdict::Transmit(Vif(2))
    );
    for (name, src) in [
        ("another VRF's pod", C4),
        ("a pod of its own VRF", B4),
        ("loopback", [127, 0, 0, 1]),
        ("broadcast", [255, 255, 255, 255]),
        ("unspecified", [0, 0, 0, 0]),
        ("multicast", [224, 0, 0, 1]),
        ("its gateway", GW4),
        ("an unrelated address", [198, 19, 7, 7]),
    ] {
        let (v, _) = run(&snap, Vif(1), &udp4(MAC_A, ROUTER, src, B4, 64, b"spoofed"));
        assert_eq!(v, mismatch, "{name}");
    }
    let (v, _) = run(&snap, Vif(1), &udp4([2, 0, 0, 0, 0, 0x77], ROUTER, A4, B4, 64, b"mac"));
    assert_eq!(v, mismatch, "a foreign source MAC");
    let arp_from_other_mac = {
        let mut f = udp4(MAC_B, ROUTER, A4, B4, 64, b"");
        f[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
        f
    };
    assert_eq!(
        run(&snap, Vif(1), &arp_from_other_mac).0,
        mismatch,
        "ARP from another pod's MAC"
    );
    let own6 = udp6(MAC_A, ROUTER, "2001:2:0:1::2", "2001:2:0:1::3", 64, b"own");
    assert_eq!(run(&snap, Vif(1), &own6).0, Verdict::Transmit(Vif(2)));
    for src in ["2001:2:0:2::2", "::1", "2001:2:0:1::1", "fe80::1", "2001:db8::9"] {
        let (v, _) = run(&snap, Vif(1), &udp6(MAC_A, ROUTER, src, "2001:2:0:1::3", 64, b"x"));
        assert_eq!(v, mismatch, "IPv6 source {src}");
    }
}

#[test]
fn allowed_address_pairs_widen_the_sources_but_never_to_martians() {
    let mut s = state();
    s.remove_interface("a").unwrap();
    s.add_interface(InterfaceSpec {
        name: "a".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_A),
        ipv4: Some(A4.into()),
        ipv6: Some("2001:2:0:1::2".parse().unwrap()),
        gateway4: Some(GW4.into()),
        gateway6: Some("2001:2:0:1::1".parse().unwrap()),
        allowed_address_pairs: vec!["198.18.1.0/24".parse().unwrap(), "0.0.0.0/0".parse().unwrap()],
        mtu: None,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    })
    .unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let vif = snap.interface_by_name("a").unwrap().vif;
    let b = snap.interface_by_name("b").unwrap().vif;
    for src in [[198, 18, 1, 200], [198, 19, 7, 7]] {
        let (v, _) = run(&snap, vif, &udp4(MAC_A, ROUTER, src, B4, 64, b"allowed"));
        assert_eq!(v, Verdict::Transmit(b), "{src:?}");
    }
    for src in [GW4, [127, 0, 0, 1], [255, 255, 255, 255], [0, 0, 0, 0]] {
        let (v, _) = run(&snap, vif, &udp4(MAC_A, ROUTER, src, B4, 64, b"martian"));
        assert_eq!(v, Verdict::Drop(DropReason::SourceMismatch), "{src:?}");
    }
}

#[test]
fn pods_cannot_own_martian_addresses() {
    let mut s = DesiredState::new(8);
    for ip in ["127.0.0.2", "0.0.0.0", "224.0.0.5", "255.255.255.255", "169.254.0.1"] {
        let spec = InterfaceSpec {
            name: "x".into(),
            vrf: "red".into(),
            mac: MacAddr(MAC_A),
            ipv4: Some(ip.parse().unwrap()),
            ..InterfaceSpec::default()
        };
        assert!(
            matches!(
                s.add_interface(spec),
                Err(control_client::ModelError::InvalidPodAddress(_))
            ),
            "{ip}"
        );
    }
    let spec = InterfaceSpec {
        name: "x".into(),
        vrf: "red".into(),
        mac: MacAddr(MAC_A),
        allowed_address_pairs: vec!["127.0.0.0/8".parse().unwrap()],
        mtu: None,
        ..InterfaceSpec::default()
    };
    assert!(s.add_interface(spec).is_err());
}

#[test]
fn a_prefix_the_vrf_routes_to_a_pod_is_a_source_it_may_use() {
    let mut s = state();
    s.add_route(control_client::RouteSpec {
        vrf: "red".into(),
        prefix: "198.19.5.0/24".parse().unwrap(),
        target: control_client::RouteTarget::Interface { name: "a".into() },
    })
    .unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let service = [198, 19, 5, 5];
    let (v, _) = run(&snap, Vif(1), &udp4(MAC_A, ROUTER, service, B4, 64, b"reply"));
    assert_eq!(
        v,
        Verdict::Transmit(Vif(2)),
        "pod a answers from the prefix routed to it"
    );
    let (v, _) = run(&snap, Vif(2), &udp4(MAC_B, ROUTER, service, A4, 64, b"spoof"));
    assert_eq!(
        v,
        Verdict::Drop(DropReason::SourceMismatch),
        "pod b may not use a's prefix"
    );
}

#[test]
fn an_arp_flood_from_one_port_is_policed_and_other_ports_are_answered() {
    let snap = snapshot();
    let mut ctx = PipelineContext {
        exceptions: ExceptionPolicer::new(16, 100),
        ..PipelineContext::default()
    };
    ctx.exceptions.refill(std::time::Instant::now());
    #[rustfmt::skip]
    let request = |mac: [u8; 6], ip: [u8; 4]| -> Vec<u8> {
        let mut f = vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
        f.extend_from_slice(&mac);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&GW4);
        f
    };
    let flood = request(MAC_A, A4);
    let answered = (0..1000)
        .filter(|_| matches!(run_in(&snap, Vif(1), &flood, &mut ctx).0, Verdict::Transmit(Vif(1))))
        .count();
    assert_eq!(answered, 100, "the burst is answered, the rest policed");
    let (v, _) = run_in(&snap, Vif(1), &flood, &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::ExceptionRate));
    let (v, _) = run_in(&snap, Vif(2), &request(MAC_B, B4), &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)), "another pod's ARP is still answered");
}

use super::*;

fn pod(name: &str, vrf: &str, last: u8) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        vrf: vrf.into(),
        mac: MacAddr([2, 0, 0, 0, 0, last]),
        ipv4: Some(Ipv4Addr::new(198, 18, 1, last)),
        ipv6: Some(format!("2001:2::{last}").parse().unwrap()),
        gateway4: Some(Ipv4Addr::new(198, 18, 1, 1)),
        gateway6: Some("2001:2::1".parse().unwrap()),
        allowed_address_pairs: Vec::new(),
        mtu: None,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    }
}

#[test]
fn builds_host_and_gateway_routes_per_vrf() {
    let mut s = DesiredState::new(16);
    s.set_fabric("eth0");
    assert_eq!(s.add_interface(pod("a", "red", 2)).unwrap(), Vif(1));
    assert_eq!(s.add_interface(pod("b", "red", 3)).unwrap(), Vif(2));
    assert_eq!(s.add_interface(pod("c", "blue", 2)).unwrap(), Vif(3));
    let snap = s.build(7, MacAddr([0, 0, 0x5e, 0, 1, 0]));
    assert_eq!(snap.generation, 7);
    let red = snap.vrf_by_name("red").unwrap().id;
    let blue = snap.vrf_by_name("blue").unwrap().id;
    assert_ne!(red, blue);
    assert_eq!(
        snap.route4(red, Ipv4Addr::new(198, 18, 1, 3)),
        Some(&NextHop::Interface {
            vif: Vif(2),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 3])
        })
    );
    // The same address in another VRF is another pod.
    assert_eq!(
        snap.route4(blue, Ipv4Addr::new(198, 18, 1, 2)),
        Some(&NextHop::Interface {
            vif: Vif(3),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2])
        })
    );
    assert_eq!(snap.route4(blue, Ipv4Addr::new(198, 18, 1, 3)), None);
    assert_eq!(snap.route6(red, "2001:2::1".parse().unwrap()), Some(&NextHop::Receive));
    assert_eq!(snap.interface(Vif(0)).unwrap().kind, InterfaceKind::Fabric);
}

#[test]
fn rejects_conflicts_and_keeps_state() {
    let mut s = DesiredState::new(3);
    s.add_interface(pod("a", "red", 2)).unwrap();
    let err = s.add_interface(pod("b", "red", 2)).unwrap_err();
    assert!(matches!(err, ModelError::AddressInUse { .. }), "{err}");
    assert!(matches!(
        s.add_interface(pod("a", "blue", 9)),
        Err(ModelError::DuplicateInterface(_))
    ));
    assert!(matches!(
        s.add_interface(pod("has space", "red", 9)),
        Err(ModelError::InvalidInterfaceName(_))
    ));
    assert!(matches!(
        s.add_interface(pod("x", FABRIC_VRF, 9)),
        Err(ModelError::InvalidVrfName(_))
    ));
    s.add_interface(pod("b", "red", 3)).unwrap();
    assert!(matches!(
        s.add_interface(pod("c", "red", 4)),
        Err(ModelError::TooManyInterfaces(3))
    ));
    s.add_route(RouteSpec {
        vrf: "red".into(),
        prefix: "198.19.0.0/16".parse().unwrap(),
        target: RouteTarget::Interface { name: "b".into() },
    })
    .unwrap();
    assert!(matches!(
        s.remove_interface("b"),
        Err(ModelError::InterfaceInUse { count: 1, .. })
    ));
    s.remove_route("red", "198.19.5.0/16".parse().unwrap()).unwrap();
    let (vif, _) = s.remove_interface("b").unwrap();
    assert_eq!(vif, Vif(2));
    assert_eq!(s.add_interface(pod("c", "red", 4)).unwrap(), Vif(2));
}

#[test]
fn route_targets_must_exist_in_the_route_vrf() {
    let mut s = DesiredState::new(8);
    s.add_interface(pod("a", "red", 2)).unwrap();
    s.add_interface(pod("b", "blue", 2)).unwrap();
    let r = |vrf: &str, t: RouteTarget| RouteSpec {
        vrf: vrf.into(),
        prefix: "0.0.0.0/0".parse().unwrap(),
        target: t,
    };
    assert!(matches!(
        s.add_route(r("green", RouteTarget::Discard)),
        Err(ModelError::UnknownVrf(_))
    ));
    assert!(matches!(
        s.add_route(r("red", RouteTarget::Interface { name: "b".into() })),
        Err(ModelError::InterfaceInOtherVrf { .. })
    ));
    s.add_route(r("red", RouteTarget::Discard)).unwrap();
    assert!(matches!(
        s.add_route(r("red", RouteTarget::Discard)),
        Err(ModelError::DuplicateRoute { .. })
    ));
    let snap = s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]));
    let red = snap.vrf_by_name("red").unwrap().id;
    assert_eq!(snap.route4(red, Ipv4Addr::new(198, 19, 9, 9)), Some(&NextHop::Discard));
}

#[test]
fn tunnels_ecmp_labels_and_vnis() {
    let mut s = DesiredState::new(8);
    s.add_interface(pod("a", "red", 2)).unwrap();
    s.set_vrf_vni("red", 100).unwrap();
    assert!(s.set_vrf_vni("nope", 101).is_err());
    assert!(s.set_vrf_vni("red", 1 << 24).is_err());
    let remote = Ipv4Addr::new(198, 18, 0, 2);
    let tunnel = |label, encaps: Vec<Encap>| RouteTarget::Tunnel {
        remote,
        label,
        encaps,
        mac: None,
    };
    let route = |prefix: &str, target| RouteSpec {
        vrf: "red".into(),
        prefix: prefix.parse().unwrap(),
        target,
    };
    s.add_route(route(
        "198.18.9.0/24",
        tunnel(17, vec![Encap::MplsOverGre, Encap::MplsOverUdp]),
    ))
    .unwrap();
    s.add_route(route("198.18.10.0/24", tunnel(100, vec![Encap::Vxlan])))
        .unwrap();
    let err = s
        .add_route(route("198.18.11.0/24", tunnel(3, vec![Encap::MplsOverUdp])))
        .unwrap_err();
    assert!(matches!(err, ModelError::InvalidTarget(_)), "{err}");
    let ecmp = RouteTarget::Ecmp {
        members: vec![
            RouteTarget::Interface { name: "a".into() },
            tunnel(18, vec![Encap::MplsOverUdp]),
        ],
    };
    s.add_route(route("198.19.0.1/32", ecmp)).unwrap();
    assert!(matches!(
        s.remove_interface("a"),
        Err(ModelError::InterfaceInUse { count: 1, .. })
    ));
    assert!(s.set_neighbor(remote, MacAddr([2, 0, 0, 0, 0, 0xbb])));
    assert_eq!(s.tunnel_endpoints(), vec![remote]);
    let snap = s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]));
    let red = snap.vrf_by_name("red").unwrap().id;
    assert_eq!(snap.vxlan.get(&100), Some(&red));
    assert_eq!(
        snap.nexthops[snap.mpls.get(&s.port_identity("a").unwrap().label).unwrap().index()],
        NextHop::Interface {
            vif: Vif(1),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 2])
        }
    );
    match snap.route4(red, Ipv4Addr::new(198, 18, 9, 1)) {
        Some(NextHop::Tunnel {
            encap,
            label: 17,
            outer_mac,
            ..
        }) => {
            assert_eq!(
                *encap,
                Encap::MplsOverUdp,
                "first of the priority list the route offers"
            );
            assert_eq!(*outer_mac, MacAddr([2, 0, 0, 0, 0, 0xbb]));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        snap.route4(red, Ipv4Addr::new(198, 18, 10, 1)),
        Some(NextHop::Tunnel {
            encap: Encap::Vxlan,
            ..
        })
    ));
    let Some(NextHop::Composite { id }) = snap.route4(red, Ipv4Addr::new(198, 19, 0, 1)) else {
        panic!()
    };
    assert_eq!(snap.composites[*id as usize].members.len(), 2);
}

#[test]
fn spec_round_trips_through_json() {
    let spec = pod("a", "red", 2);
    let text = serde_json::to_string(&spec).unwrap();
    assert_eq!(serde_json::from_str::<InterfaceSpec>(&text).unwrap(), spec);
    assert!(
        serde_json::from_str::<InterfaceSpec>(r#"{"name":"a","vrf":"r","mac":"02:00:00:00:00:01","bogus":1}"#).is_err()
    );
}

//! A chain in force routes each network's prefixes into the instance's interface in
//! the other, lets a network's own routes win, accepts any source on the instance's
//! interfaces, and cuts the path when it or its instance goes.

use super::super::*;

const MAC: MacAddr = MacAddr([0, 0, 0x5e, 0, 1, 0]);

fn port(name: &str, vrf: &str, net: u8, last: u8) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        vrf: vrf.into(),
        mac: MacAddr([2, 0, 0, 0, net, last]),
        ipv4: Some(Ipv4Addr::new(198, 18, net, last)),
        ipv6: None,
        gateway4: Some(Ipv4Addr::new(198, 18, net, 1)),
        gateway6: None,
        allowed_address_pairs: Vec::new(),
        mtu: None,
        vlan: None,
        security_groups: Vec::new(),
        local_preference: None,
    }
}

fn chain() -> ServiceChainSpec {
    ServiceChainSpec {
        name: "filter".into(),
        left_interface: "fw-left".into(),
        right_interface: "fw-right".into(),
    }
}

/// Pods a (red) and c (blue), the instance's interfaces, a red route to a tunnel
/// and a blue route of blue's own for a prefix red also has.
fn networks() -> DesiredState {
    let mut s = DesiredState::new(16);
    s.set_fabric("eth0");
    s.add_interface(port("a", "red", 1, 2)).unwrap();
    s.add_interface(port("c", "blue", 2, 2)).unwrap();
    s.add_interface(port("fw-left", "red", 1, 250)).unwrap();
    s.add_interface(port("fw-right", "blue", 2, 250)).unwrap();
    let tunnel = RouteTarget::Tunnel {
        remote: Ipv4Addr::new(198, 19, 0, 2),
        label: 20,
        encaps: vec![Encap::MplsOverUdp],
        mac: None,
    };
    for vrf in ["red", "blue"] {
        s.add_route(RouteSpec {
            vrf: vrf.into(),
            prefix: "198.18.9.0/24".parse().unwrap(),
            target: tunnel.clone(),
        })
        .unwrap();
    }
    s.add_route(RouteSpec {
        vrf: "red".into(),
        prefix: "198.18.8.0/24".parse().unwrap(),
        target: tunnel,
    })
    .unwrap();
    s
}

fn via(snap: &Snapshot, vrf: &str, dst: [u8; 4]) -> Option<NextHop> {
    snap.route4(snap.vrf_by_name(vrf)?.id, dst.into()).cloned()
}

/// The MAC of the port at `198.18.NET.LAST`.
fn mac(net: u8, last: u8) -> Option<MacAddr> {
    Some(MacAddr([2, 0, 0, 0, net, last]))
}

/// The MAC an interface next hop delivers to (its vif depends on attach order).
fn mac_of(nh: Option<NextHop>) -> Option<MacAddr> {
    match nh? {
        NextHop::Interface { dst_mac, .. } => Some(dst_mac),
        _ => None,
    }
}

#[test]
fn a_chain_routes_each_network_into_the_instance_on_its_side() {
    let mut s = networks();
    let before = s.build(1, MAC);
    assert_eq!(via(&before, "red", [198, 18, 2, 2]), None, "networks start apart");
    s.add_service_chain(chain()).unwrap();
    let snap = s.build(2, MAC);
    // Red reaches blue's pod through the instance's left interface, blue reaches
    // red's pod and red's routes through its right one.
    let left = mac(1, 250);
    let right = mac(2, 250);
    assert_eq!(mac_of(via(&snap, "red", [198, 18, 2, 2])), left);
    assert_eq!(mac_of(via(&snap, "blue", [198, 18, 1, 2])), right);
    assert_eq!(mac_of(via(&snap, "blue", [198, 18, 8, 7])), right);
    // A network's own route wins; the instance's own addresses are not offered.
    assert!(matches!(
        via(&snap, "blue", [198, 18, 9, 7]),
        Some(NextHop::Tunnel { .. })
    ));
    assert_eq!(via(&snap, "red", [198, 18, 2, 250]), None);
    // Pods' own routes are untouched.
    assert_eq!(mac_of(via(&snap, "red", [198, 18, 1, 2])), mac(1, 2));
    // The instance's interfaces take any source; a pod's only its own.
    let source_ok = |name: &str, src: [u8; 4]| {
        snap.interfaces
            .iter()
            .flatten()
            .find(|i| i.name == name)
            .is_some_and(|i| i.allowed_sources.iter().any(|p| p.contains(&IpAddr::from(src))))
    };
    assert!(source_ok("fw-right", [198, 18, 1, 2]));
    assert!(source_ok("fw-left", [198, 18, 2, 2]));
    assert!(!source_ok("a", [198, 18, 2, 2]));
    // A chain not in force (an interface detached) lends its other interface no
    // sources.
    let mut dormant = s.clone();
    dormant.remove_interface("fw-left").unwrap();
    let dormant_snap = dormant.build(3, MAC);
    let right = dormant_snap
        .interfaces
        .iter()
        .flatten()
        .find(|i| i.name == "fw-right")
        .unwrap();
    assert!(!right
        .allowed_sources
        .iter()
        .any(|p| p.contains(&IpAddr::from([198, 18, 1, 2]))));
    // The chain removed, or its instance's interface detached: apart again.
    let mut cut = s.clone();
    cut.remove_service_chain("filter").unwrap();
    assert_eq!(via(&cut.build(3, MAC), "red", [198, 18, 2, 2]), None);
    s.remove_interface("fw-right").unwrap();
    assert_eq!(via(&s.build(3, MAC), "red", [198, 18, 2, 2]), None);
}

#[test]
fn a_route_change_in_a_chained_network_reaches_the_other() {
    let mut s = networks();
    s.add_service_chain(chain()).unwrap();
    let mut builder = SnapshotBuilder::new(1);
    let snap = builder.build(&s, MAC);
    s.add_route(RouteSpec {
        vrf: "red".into(),
        prefix: "198.18.7.0/24".parse().unwrap(),
        target: RouteTarget::Discard,
    })
    .unwrap();
    // Not patched in red alone: blue gains the prefix too.
    assert!(builder
        .patch_route(&s, "red", "198.18.7.0/24".parse().unwrap(), &snap)
        .is_none());
    let next = builder.build(&s, MAC);
    assert_eq!(mac_of(via(&next, "blue", [198, 18, 7, 1])), mac(2, 250));
}

#[test]
fn a_chain_that_cannot_be_is_refused_and_changes_nothing() {
    let mut s = networks();
    let same_vrf = ServiceChainSpec {
        right_interface: "a".into(),
        ..chain()
    };
    let same_interface = ServiceChainSpec {
        right_interface: "fw-left".into(),
        ..chain()
    };
    let nameless = ServiceChainSpec {
        name: String::new(),
        ..chain()
    };
    for bad in [same_vrf, same_interface, nameless] {
        assert!(matches!(
            s.add_service_chain(bad),
            Err(ModelError::InvalidServiceChain(_))
        ));
    }
    s.add_service_chain(chain()).unwrap();
    let shared = ServiceChainSpec {
        name: "other".into(),
        ..chain()
    };
    assert!(matches!(
        s.add_service_chain(shared),
        Err(ModelError::InvalidServiceChain(_))
    ));
    assert_eq!(s.service_chains().count(), 1);
    assert!(matches!(
        s.remove_service_chain("nope"),
        Err(ModelError::UnknownServiceChain(_))
    ));
}

/// A tunnel to node `last` of the fabric.
fn to_node(last: u8) -> RouteTarget {
    RouteTarget::Tunnel {
        remote: Ipv4Addr::new(198, 19, 0, last),
        label: 30,
        encaps: vec![Encap::MplsOverUdp],
        mac: None,
    }
}

#[test]
fn routes_leaked_from_elsewhere_neither_win_over_the_chain_nor_are_leaked_on() {
    let mut s = networks();
    s.add_service_chain(chain()).unwrap();
    let learn = |s: &mut DesiredState, vrf: &str, prefix: &str, leaked: bool| {
        let route = RouteSpec {
            vrf: vrf.into(),
            prefix: prefix.parse().unwrap(),
            target: to_node(3),
        };
        if leaked {
            s.learn_leaked_route(learned::PeerId(0), route).unwrap();
        } else {
            s.learn_route(learned::PeerId(0), route).unwrap();
        }
    };
    // Another node's instance of the same chain leaked blue's pod into red, and a
    // third network's prefix into blue (another chain's); blue learned a pod of its
    // own on another node.
    learn(&mut s, "red", "198.18.2.2/32", true);
    learn(&mut s, "blue", "198.18.7.0/24", true);
    learn(&mut s, "blue", "198.18.2.3/32", false);
    let snap = s.build(1, MAC);
    // This node's instance keeps its own path (the other's would make it withdraw
    // its route, and the other then its own: both would flap).
    assert_eq!(mac_of(via(&snap, "red", [198, 18, 2, 2])), mac(1, 250));
    // Blue's own learned pod is leaked into red; what blue learned leaked from a
    // third network is not (no chain of chains), and still forwards in blue.
    assert_eq!(mac_of(via(&snap, "red", [198, 18, 2, 3])), mac(1, 250));
    assert_eq!(via(&snap, "red", [198, 18, 7, 1]), None);
    assert!(matches!(
        via(&snap, "blue", [198, 18, 7, 1]),
        Some(NextHop::Tunnel { .. })
    ));
    let chain = &snap.service_chains[0];
    assert!(!chain.leaked.0.contains(&"198.18.7.0/24".parse().unwrap()), "{chain:?}");
    // Learned again as the network's own, it wins as any own route does.
    learn(&mut s, "red", "198.18.2.2/32", false);
    let snap = s.build(2, MAC);
    assert!(matches!(
        via(&snap, "red", [198, 18, 2, 2]),
        Some(NextHop::Tunnel { .. })
    ));
    // The mark is the path's: control node 0's path is leaked, node 1's is red's
    // own. The lowest node's path is in effect: node 0's, then node 1's once node
    // 0 forgets it, and then red's own route wins over the chain.
    let red_y: IpNet = "198.18.2.2/32".parse().unwrap();
    learn(&mut s, "red", "198.18.2.2/32", true);
    s.learn_route(
        learned::PeerId(1),
        RouteSpec {
            vrf: "red".into(),
            prefix: red_y,
            target: to_node(4),
        },
    )
    .unwrap();
    assert!(leaked_in_effect(&s, red_y));
    assert!(s.forget_route(learned::PeerId(0), "red", red_y));
    assert!(!leaked_in_effect(&s, red_y), "node 1's own path is in effect");
    let snap = s.build(3, MAC);
    assert!(matches!(
        via(&snap, "red", [198, 18, 2, 2]),
        Some(NextHop::Tunnel { .. })
    ));
}

/// True if red's route in effect for `prefix` is a learned one leaked from another
/// network.
fn leaked_in_effect(s: &DesiredState, prefix: IpNet) -> bool {
    s.learned_in_effect("red", prefix).is_some_and(|(_, leaked)| leaked)
}

#[test]
fn the_chains_own_routes_sent_back_by_a_control_node_do_not_stop_it() {
    // A real control node sends a node its own paths too: blue's pod leaked into
    // red comes back as red's route into the instance's left interface (this
    // node's address and the interface's label), red's pod in blue into its right.
    let mut s = networks();
    s.add_service_chain(chain()).unwrap();
    let first = s.build(1, MAC);
    for (vrf, prefix, interface) in [
        ("red", "198.18.2.2/32", "fw-left"),
        ("blue", "198.18.1.2/32", "fw-right"),
    ] {
        let back = RouteSpec {
            vrf: vrf.into(),
            prefix: prefix.parse().unwrap(),
            target: RouteTarget::Interface { name: interface.into() },
        };
        s.learn_route(learned::PeerId(0), back).unwrap();
    }
    let again = s.build(2, MAC);
    assert_eq!(first.service_chains[0].leaked, again.service_chains[0].leaked);
    assert!(again.service_chains[0]
        .leaked
        .0
        .contains(&"198.18.2.2/32".parse().unwrap()));
    assert!(again.service_chains[0]
        .leaked
        .1
        .contains(&"198.18.1.2/32".parse().unwrap()));
    assert_eq!(mac_of(via(&again, "red", [198, 18, 2, 2])), mac(1, 250));
    // Nor are they offered to the other side as the network's own routes.
    assert!(!again.service_chains[0]
        .leaked
        .1
        .contains(&"198.18.2.2/32".parse().unwrap()));
}

#[test]
fn two_chains_joining_the_same_networks_leak_each_prefix_once() {
    let mut s = networks();
    s.add_interface(port("fw2-left", "red", 1, 240)).unwrap();
    s.add_interface(port("fw2-right", "blue", 2, 240)).unwrap();
    s.add_service_chain(chain()).unwrap();
    s.add_service_chain(ServiceChainSpec {
        name: "second".into(),
        left_interface: "fw2-left".into(),
        right_interface: "fw2-right".into(),
    })
    .unwrap();
    let snap = s.build(1, MAC);
    let by_name = |n: &str| snap.service_chains.iter().find(|c| c.name == n).unwrap();
    let y: IpNet = "198.18.2.2/32".parse().unwrap();
    // "filter" comes first by name: it takes blue's pod in red, "second" does not.
    assert!(by_name("filter").leaked.0.contains(&y));
    assert!(!by_name("second").leaked.0.contains(&y));
    assert_eq!(mac_of(via(&snap, "red", [198, 18, 2, 2])), mac(1, 250));
    let advertised = crate::xmpp::agent::Advertised::of(&snap);
    let of_y: Vec<_> = advertised
        .routes
        .iter()
        .filter(|r| r.vrf == "red" && r.prefix == y)
        .collect();
    assert_eq!(of_y.len(), 1, "{of_y:?}");
    // The first one gone, the second takes it.
    s.remove_service_chain("filter").unwrap();
    let snap = s.build(2, MAC);
    assert_eq!(mac_of(via(&snap, "red", [198, 18, 2, 2])), mac(1, 240));
}

#[test]
fn a_chain_keeps_a_prefix_its_own_advertisement_routes_when_an_earlier_chain_comes() {
    // "second" alone leaks blue's pod into red; the control node sends its route
    // back (into fw2-left). Then "filter", first by name, comes: the route in
    // effect is second's own, so filter declines the prefix and second keeps it
    // (it used to be blocked by filter's claim, withdraw, and come back later).
    let mut s = networks();
    s.add_interface(port("fw2-left", "red", 1, 240)).unwrap();
    s.add_interface(port("fw2-right", "blue", 2, 240)).unwrap();
    s.add_service_chain(ServiceChainSpec {
        name: "second".into(),
        left_interface: "fw2-left".into(),
        right_interface: "fw2-right".into(),
    })
    .unwrap();
    let y: IpNet = "198.18.2.2/32".parse().unwrap();
    assert!(s.build(1, MAC).service_chains[0].leaked.0.contains(&y));
    let back = RouteSpec {
        vrf: "red".into(),
        prefix: y,
        target: RouteTarget::Interface {
            name: "fw2-left".into(),
        },
    };
    s.learn_route(learned::PeerId(0), back).unwrap();
    s.add_service_chain(chain()).unwrap();
    let snap = s.build(2, MAC);
    let by_name = |n: &str| snap.service_chains.iter().find(|c| c.name == n).unwrap();
    assert!(!by_name("filter").leaked.0.contains(&y));
    assert!(by_name("second").leaked.0.contains(&y), "second keeps what it routes");
    assert_eq!(mac_of(via(&snap, "red", [198, 18, 2, 2])), mac(1, 240));
    let advertised = crate::xmpp::agent::Advertised::of(&snap);
    assert_eq!(
        advertised
            .routes
            .iter()
            .filter(|r| r.vrf == "red" && r.prefix == y)
            .count(),
        1
    );
}

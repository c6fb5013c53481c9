//! What the vrouter says, compared element by element with the real agent's publish
//! (capture 07) and tf-controller's associate fixture; and what it says as pods come
//! and go.

use super::*;
use crate::xmpp::Element;
use crate::{DesiredState, InterfaceSpec};
use nexthop::MacAddr;

fn snapshot(pods: &[(&str, &str, u8, bool)]) -> Snapshot {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    for (name, vrf, last, v6) in pods {
        s.add_interface(InterfaceSpec {
            name: (*name).into(),
            vrf: (*vrf).into(),
            mac: MacAddr([2, 0, 0, 0, 0, *last]),
            ipv4: Some(Ipv4Addr::new(198, 18, 1, *last)),
            ipv6: v6.then(|| format!("2001:db8::{last}").parse().unwrap()),
            ..InterfaceSpec::default()
        })
        .unwrap();
    }
    s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]))
}

const FABRIC: Ipv4Addr = Ipv4Addr::new(10, 43, 91, 10);
const VRF: &str = "default-domain:demo:private:private";

fn path<'a>(e: &'a Element, names: &[&str]) -> &'a Element {
    names.iter().fold(e, |at, n| {
        at.child(n).unwrap_or_else(|| panic!("no {n} in {}", at.name))
    })
}

#[test]
fn a_local_route_is_published_as_the_agent_publishes_it_then_associated() {
    let snap = snapshot(&[("vp1", VRF, 4, false)]);
    let now = Advertised::of(&snap);
    assert_eq!(now.vrfs.get(VRF), Some(&1));
    let mut speaker = Speaker::new("os2", FABRIC, &[Encap::MplsOverGre, Encap::MplsOverUdp]);
    let said = speaker.update(&now);
    assert_eq!(said.len(), 3, "subscribe, publish, associate: {said:?}");
    let ours = Element::parse(&said[1]).unwrap();
    let theirs = Element::parse(include_str!(
        "../../../testdata/xmpp/07_agent_route_publish_inet_2015_elided.xml"
    ))
    .unwrap();
    for e in [&ours, &theirs] {
        assert_eq!((e.name.as_str(), e.attr("type")), ("iq", Some("set")));
        assert_eq!(e.attr("to"), Some("network-control@contrailsystems.com/bgp-peer"));
        let entry = path(e, &["pubsub", "publish", "item", "entry"]);
        let nlri = entry.child("nlri").unwrap();
        assert_eq!((nlri.child_text("af"), nlri.child_text("safi")), (Some("1"), Some("1")));
        let nh = path(entry, &["next-hops", "next-hop"]);
        let encaps: Vec<&str> = nh
            .child("tunnel-encapsulation-list")
            .unwrap()
            .children_named("tunnel-encapsulation")
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(encaps, ["gre", "udp"]);
        assert_eq!(nh.child_text("address"), Some("10.43.91.10"));
    }
    // The capture's own values, where ours are ours: the address is the pod's, the
    // label the interface's; the node names the VRF.
    let entry = path(&ours, &["pubsub", "publish", "item", "entry"]);
    assert_eq!(path(entry, &["nlri"]).child_text("address"), Some("198.18.1.4/32"));
    let label = snap.interface_by_name("vp1").unwrap().label.unwrap().to_string();
    assert_eq!(
        path(entry, &["next-hops", "next-hop"]).child_text("label"),
        Some(label.as_str())
    );
    assert_eq!(entry.child_text("virtual-network"), Some("default-domain:demo:private"));
    let node = path(&ours, &["pubsub", "publish"]).attr("node").unwrap();
    assert_eq!(node, format!("1/1/{VRF}/198.18.1.4/32"));
    // The associate, as tf-controller's fixture writes it.
    let fixture = include_str!("../../../testdata/xmpp/tf-controller_src_bgp_testdata_pubsub_pub.xml.stream");
    let second = &fixture[fixture.rfind("<iq").unwrap()..];
    let theirs = Element::parse(second).unwrap();
    let ours = Element::parse(&said[2]).unwrap();
    for (e, vrf) in [(&theirs, "blue"), (&ours, VRF)] {
        let collection = path(e, &["pubsub", "collection"]);
        assert_eq!(collection.attr("node"), Some(vrf));
        assert!(collection.child("associate").and_then(|a| a.attr("node")).is_some());
    }
}

#[test]
fn pods_coming_and_going_subscribe_publish_dissociate_and_unsubscribe() {
    let mut speaker = Speaker::new("node-1", FABRIC, &[Encap::MplsOverUdp]);
    let both = Advertised::of(&snapshot(&[("a", "red", 2, true), ("b", "blue", 3, false)]));
    let said = speaker.update(&both);
    let kinds = |said: &[String]| -> Vec<String> {
        said.iter()
            .map(|s| {
                let e = Element::parse(s).unwrap();
                let p = e.child("pubsub").unwrap();
                let first = &p.children[0];
                match first.children.first() {
                    Some(inner) if first.name == "collection" => inner.name.clone(),
                    _ => first.name.clone(),
                }
            })
            .collect()
    };
    assert_eq!(
        kinds(&said),
        [
            "subscribe",
            "subscribe",
            "publish",
            "associate",
            "publish",
            "associate",
            "publish",
            "associate"
        ]
    );
    assert!(speaker.update(&both).is_empty(), "nothing new, nothing said");
    // Blue's pod goes: its route is withdrawn, then blue is unsubscribed.
    let red_only = Advertised::of(&snapshot(&[("a", "red", 2, true)]));
    assert_eq!(kinds(&speaker.update(&red_only)), ["dissociate", "unsubscribe"]);
    // A new channel starts over.
    speaker.reset();
    assert_eq!(kinds(&speaker.update(&red_only)).len(), 5);
}

/// A snapshot with one pod in `VRF`, which has VNI 5001.
fn vxlan_snapshot() -> Snapshot {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    s.add_interface(InterfaceSpec {
        name: "vp1".into(),
        vrf: VRF.into(),
        mac: MacAddr([2, 0, 0, 0, 0, 4]),
        ipv4: Some(Ipv4Addr::new(198, 18, 1, 4)),
        ..InterfaceSpec::default()
    })
    .unwrap();
    s.set_vrf_vni(VRF, 5001).unwrap();
    s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]))
}

#[test]
fn a_pod_in_a_vxlan_vrf_is_also_published_as_an_evpn_route_as_the_agent_does() {
    let now = Advertised::of(&vxlan_snapshot());
    let mut speaker = Speaker::new("os2", FABRIC, &[Encap::MplsOverUdp]);
    let said = speaker.update(&now);
    assert_eq!(
        said.len(),
        5,
        "subscribe, inet publish + associate, EVPN publish + associate: {said:?}"
    );
    let publish = Element::parse(&said[3]).unwrap();
    assert!(publish.attr("id").unwrap().starts_with("pubsub_l2"));
    let op = path(&publish, &["pubsub", "publish"]);
    // The agent's node: no VRF, no ethernet tag.
    assert_eq!(op.attr("node"), Some("25/242/02:00:00:00:00:04,198.18.1.4/32"));
    let entry = path(op, &["item", "entry"]);
    let nlri = entry.child("nlri").unwrap();
    assert_eq!(nlri.child_text("af"), Some("25"));
    assert_eq!(nlri.child_text("safi"), Some("242"));
    assert_eq!(nlri.child_text("ethernet-tag"), Some("5001"));
    assert_eq!(nlri.child_text("mac"), Some("02:00:00:00:00:04"));
    assert_eq!(nlri.child_text("address"), Some("198.18.1.4/32"));
    let nh = path(entry, &["next-hops", "next-hop"]);
    assert_eq!(nh.child_text("address"), Some("10.43.91.10"));
    assert_eq!(nh.child_text("label"), Some("5001"), "the VNI");
    let encaps: Vec<&str> = nh
        .child("tunnel-encapsulation-list")
        .unwrap()
        .children_named("tunnel-encapsulation")
        .map(|t| t.text.as_str())
        .collect();
    assert_eq!(encaps, ["vxlan"]);
    assert!(entry.child("virtual-network").is_none(), "the agent sends none");
    let associate = Element::parse(&said[4]).unwrap();
    assert!(associate.attr("id").unwrap().starts_with("collection_l2"));
    let collection = path(&associate, &["pubsub", "collection"]);
    assert_eq!(collection.attr("node"), Some(VRF));
    assert_eq!(
        collection.child("associate").and_then(|a| a.attr("node")),
        op.attr("node")
    );
    // The pod goes: both routes are dissociated, then the VRF unsubscribed.
    let gone = speaker.update(&Advertised::default());
    assert_eq!(gone.len(), 3, "{gone:?}");
    assert!(gone[1].contains("dissociate node=\"25/242/02:00:00:00:00:04,198.18.1.4/32\""));
}

#[test]
fn a_pods_security_groups_go_out_with_its_route() {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    s.add_interface(InterfaceSpec {
        name: "vp1".into(),
        vrf: VRF.into(),
        mac: MacAddr([2, 0, 0, 0, 0, 4]),
        ipv4: Some(Ipv4Addr::new(198, 18, 1, 4)),
        security_groups: vec![8_000_002, 8_000_007],
        ..InterfaceSpec::default()
    })
    .unwrap();
    let snap = s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]));
    let said = Speaker::new("os2", FABRIC, &[Encap::MplsOverUdp]).update(&Advertised::of(&snap));
    let publish = Element::parse(&said[1]).unwrap();
    let entry = path(&publish, &["pubsub", "publish", "item", "entry"]);
    let groups: Vec<&str> = entry
        .child("security-group-list")
        .unwrap()
        .children_named("security-group")
        .map(|g| g.text.as_str())
        .collect();
    assert_eq!(groups, ["8000002", "8000007"]);
}

/// A node with a service instance between red (left) and blue (right), a red pod,
/// and a blue address learned from another node.
fn chained_state() -> DesiredState {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    let pods = [
        ("left", "red", [198, 18, 1, 251]),
        ("right", "blue", [198, 18, 2, 251]),
        ("client", "red", [198, 18, 1, 2]),
    ];
    for (i, (name, vrf, ip)) in pods.into_iter().enumerate() {
        s.add_interface(InterfaceSpec {
            name: name.into(),
            vrf: vrf.into(),
            mac: MacAddr([2, 0, 0, 0, 0, i as u8 + 1]),
            ipv4: Some(Ipv4Addr::from(ip)),
            ..InterfaceSpec::default()
        })
        .unwrap();
    }
    let remote = crate::RouteSpec {
        vrf: "blue".into(),
        prefix: "198.18.2.2/32".parse().unwrap(),
        target: crate::RouteTarget::Tunnel {
            remote: Ipv4Addr::new(198, 18, 0, 2),
            label: 40,
            encaps: vec![Encap::MplsOverUdp],
            mac: None,
        },
    };
    s.learn_route(crate::PeerId(0), remote).unwrap();
    s.add_service_chain(crate::ServiceChainSpec {
        name: "filter".into(),
        left_interface: "left".into(),
        right_interface: "right".into(),
    })
    .unwrap();
    s
}

#[test]
fn a_service_chains_leaked_prefixes_go_out_with_the_instances_labels_and_their_origin_network() {
    let mut state = chained_state();
    let snap = state.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]));
    let label = |name: &str| snap.interface_by_name(name).unwrap().label.unwrap();
    let now = Advertised::of(&snap);
    let leaked: Vec<(&str, String, u32, Option<&str>)> = now
        .routes
        .iter()
        .filter(|r| r.leaked_from.is_some())
        .map(|r| (r.vrf.as_str(), r.prefix.to_string(), r.label, r.leaked_from.as_deref()))
        .collect();
    // Blue's remote pod is reached in red through the instance's left interface,
    // red's pod in blue through its right one; the instance's own addresses are not
    // leaked, and every pod keeps its own route.
    assert_eq!(
        leaked,
        [
            ("blue", "198.18.1.2/32".to_string(), label("right"), Some("red")),
            ("red", "198.18.2.2/32".to_string(), label("left"), Some("blue")),
        ]
    );
    let own = |vrf: &str, prefix: &str| {
        now.routes
            .iter()
            .filter(|r| r.vrf == vrf && r.prefix.to_string() == prefix)
            .map(|r| (r.label, r.leaked_from.is_some()))
            .collect::<Vec<_>>()
    };
    assert_eq!(own("red", "198.18.1.2/32"), [(label("client"), false)]);
    assert_eq!(own("red", "198.18.1.251/32"), [(label("left"), false)]);

    // Published with the origin's network, as a re-originated route is.
    let mut speaker = Speaker::new("node-1", FABRIC, &[Encap::MplsOverUdp]);
    let said = speaker.update(&now);
    let publish = said
        .iter()
        .map(|s| Element::parse(s).unwrap())
        .find(|e| {
            e.child("pubsub")
                .and_then(|p| p.child("publish"))
                .and_then(|p| p.attr("node"))
                == Some("1/1/red/198.18.2.2/32")
        })
        .expect("the leaked route is published");
    let entry = path(&publish, &["pubsub", "publish", "item", "entry"]);
    assert_eq!(entry.child_text("virtual-network"), Some("blue"));
    assert_eq!(
        path(entry, &["next-hops", "next-hop"]).child_text("label"),
        Some(label("left").to_string().as_str())
    );

    // The chain gone, its routes are withdrawn and the pods' stay.
    state.remove_service_chain("filter").unwrap();
    let said = speaker.update(&Advertised::of(&state.build(2, MacAddr([0, 0, 0x5e, 0, 1, 0]))));
    let withdrawn: Vec<&str> = said
        .iter()
        .filter_map(|s| s.split("<dissociate node=\"").nth(1)?.split('"').next())
        .collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert_eq!(withdrawn, ["1/1/blue/198.18.1.2/32", "1/1/red/198.18.2.2/32"]);
}

//! ECMP over three members (one local pod, two remote nodes): 1000 flows spread
//! within 20 % of even, each flow stays on its member, and removing a member moves
//! only the flows it had.

use control_client::{RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use std::collections::HashMap;
use system_tests::{fabric_host, fabric_node, serial};
use vrouter::api::{FlowActionView, FlowFilter, FlowView, Request};
use vrouter_lab::node::FabricLan;
use vrouter_lab::traffic::udp_spray_from;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const SERVICE: &str = "198.19.0.1";

fn members(remotes: &[(u8, u32)]) -> RouteTarget {
    let mut m = vec![RouteTarget::Interface { name: "vp2".into() }];
    m.extend(remotes.iter().map(|(last, label)| RouteTarget::Tunnel {
        remote: [198, 18, 0, *last].into(),
        label: *label,
        encaps: vec![Encap::MplsOverUdp],
        mac: None,
    }));
    RouteTarget::Ecmp { members: m }
}

/// Sprays the service's flows, then maps source port -> member of every flow to it.
/// A publication between the spray's last packet and the reading (the fabric
/// neighbour's MAC resolving, which changes the tunnel next hop) leaves flows stale:
/// their cached next hop is the old one until their next packet, so spray again.
fn placement(node: &vrouter_lab::node::LabNode, spray: &dyn Fn() -> u32) -> HashMap<(u16, u16), serde_json::Value> {
    let filter = FlowFilter {
        dst: Some(SERVICE.parse().unwrap()),
        ..Default::default()
    };
    let mut flows: Vec<FlowView> = Vec::new();
    for _ in 0..5 {
        assert!(spray() > 0, "nothing sent");
        flows = node
            .api()
            .call(&Request::Flows {
                filter: filter.clone(),
                limit: 10_000,
                from_index: 0,
            })
            .unwrap();
        if flows.iter().all(|f| !f.stale) {
            break;
        }
    }
    // A member is named by what it is, from the flow view itself (one snapshot): its
    // remote and label, or its interface (the next hop id changes with the outer MAC).
    flows
        .iter()
        .map(|f| {
            let what = match &f.action {
                FlowActionView::ToTunnel { remote, label, .. } => serde_json::json!({"remote": remote, "label": label}),
                FlowActionView::ToInterface { vif, .. } => serde_json::json!({"vif": vif}),
                other => panic!("an ECMP member is a tunnel or an interface, not {other:?}: {f:?}"),
            };
            ((f.src_port, f.dst_port), what)
        })
        .collect()
}

#[test]
fn ecmp_spreads_sticks_and_moves_only_removed_members_flows() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let _h2 = fabric_host(&lan, 2);
    let _h3 = fabric_host(&lan, 3);
    let mut a = fabric_node(BIN, 1);
    a.join(&lan).unwrap();
    a.start_vrouter().unwrap();
    a.add_pod("red", 0, 1, true).unwrap();
    a.add_pod("red", 0, 2, true).unwrap();
    let api = a.api();
    let prefix = format!("{SERVICE}/32").parse().unwrap();
    let _: serde_json::Value = api
        .call(&Request::AddRoute {
            route: RouteSpec {
                vrf: "red".into(),
                prefix,
                target: members(&[(2, 40), (3, 41)]),
            },
        })
        .unwrap();
    let client = &a.pods[0];
    // 1000 flows: one destination port, source ports 20000..21000.
    let spray = |pps| udp_spray_from(client, SERVICE.parse().unwrap(), 1000, pps, 20_000).unwrap();
    // Destination ports vary inside the spray; repeat with the same source sockets.
    let first = placement(&a, &|| spray(5_000));
    assert!(first.len() >= 990, "only {} flows", first.len());
    let mut per_member: HashMap<String, usize> = HashMap::new();
    for member in first.values() {
        *per_member.entry(member.to_string()).or_default() += 1;
    }
    assert_eq!(per_member.len(), 3, "{per_member:?}");
    let even = first.len() as f64 / 3.0;
    for (nh, n) in &per_member {
        assert!(
            (*n as f64 - even).abs() <= 0.2 * even,
            "member {nh} has {n} of {} flows",
            first.len()
        );
    }
    let again = placement(&a, &|| spray(5_000));
    // The first spray may have lost a few packets (so `again` can hold more flows);
    // every flow of the first must still be there, on the same member.
    let changed = first.iter().filter(|(k, v)| again.get(*k) != Some(*v)).count();
    assert!(
        again.len() >= first.len(),
        "flows vanished: {} then {}",
        first.len(),
        again.len()
    );
    assert_eq!(changed, 0, "flows changed member without any change of members");
    // Remove the member behind 198.18.0.3.
    let _: serde_json::Value = api
        .call(&Request::RemoveRoute {
            vrf: "red".into(),
            prefix,
        })
        .unwrap();
    let _: serde_json::Value = api
        .call(&Request::AddRoute {
            route: RouteSpec {
                vrf: "red".into(),
                prefix,
                target: members(&[(2, 40)]),
            },
        })
        .unwrap();
    let after = placement(&a, &|| spray(5_000));
    let gone = |m: &serde_json::Value| m["remote"] == "198.18.0.3";
    let mut moved = 0;
    for (flow, before) in &first {
        let Some(now) = after.get(flow) else { continue };
        assert!(!gone(now), "flow {flow:?} still on the removed member");
        if gone(before) {
            moved += 1;
        } else {
            assert!(
                before == now,
                "flow {flow:?} of a surviving member moved from {before} to {now}"
            );
        }
    }
    assert!(moved > 0 && moved < first.len() / 2, "moved {moved} of {}", first.len());
}

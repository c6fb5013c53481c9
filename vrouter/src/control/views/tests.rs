//! The `rt` view is bounded per answer and pages through any table completely.

use super::*;
use crate::flows::FlowConfig;
use control_client::{DesiredState, InterfaceSpec, RouteSpec, RouteTarget, SnapshotBuilder};
use nexthop::MacAddr;

/// Views over a node with `per_vrf` IPv4 and 100 IPv6 routes in each of VRFs red and
/// blue, and what the snapshot lists.
fn views(per_vrf: u32) -> (Views, Vec<(String, IpNet)>) {
    let mut state = DesiredState::new(16);
    state.set_fabric("fabric0");
    for (i, vrf) in ["red", "blue"].into_iter().enumerate() {
        state
            .add_interface(InterfaceSpec {
                name: format!("p{i}"),
                vrf: vrf.into(),
                mac: MacAddr([2, 0, 0, 0, 0, 2 + i as u8]),
                ..InterfaceSpec::default()
            })
            .unwrap();
        let v4 = (0..per_vrf).map(|n| format!("{}/32", Ipv4Addr::from(0xc612_0000 + n)));
        let v6 = (0..100u32).map(|n| format!("2001:db8::{n:x}/128"));
        for prefix in v4.chain(v6) {
            let route = RouteSpec {
                vrf: vrf.into(),
                prefix: prefix.parse().unwrap(),
                target: RouteTarget::Discard,
            };
            state.add_route(route).unwrap();
        }
    }
    let snap = SnapshotBuilder::new(1).build(&state, MacAddr([0, 0, 0x5e, 0, 1, 0]));
    let listed = snap
        .vrfs
        .iter()
        .flat_map(|v| {
            let v4 =
                v.v4.entries()
                    .into_iter()
                    .map(|(k, l, _)| IpNet::from(Ipv4Net::new(Ipv4Addr::from(k), l).unwrap()));
            let v6 =
                v.v6.entries()
                    .into_iter()
                    .map(|(k, l, _)| IpNet::from(Ipv6Net::new(Ipv6Addr::from(k), l).unwrap()));
            v4.chain(v6).map(|p| (v.name.clone(), p)).collect::<Vec<_>>()
        })
        .collect();
    let flows = Arc::new(Flows::new(&FlowConfig::default(), 16));
    (
        Views::new(SnapshotPublisher::new(snap), Vec::new(), flows, vec![1]),
        listed,
    )
}

fn cursor(r: &RouteView) -> RouteCursor {
    RouteCursor {
        vrf: r.vrf.clone(),
        prefix: r.prefix,
    }
}

#[test]
fn route_pages_are_bounded_and_cover_every_route_once_in_order() {
    let (views, listed) = views(12_000);
    assert_eq!(listed.len(), 2 * 12_100);
    // A huge limit is capped.
    let first = views.routes(None, 100_000_000, None).unwrap();
    assert_eq!(first.len(), MAX_ROUTES_PER_ANSWER);
    let mut pages = vec![first];
    while let Some(last) = pages.last().and_then(|p| p.last()) {
        let next = views.routes(None, 100_000_000, Some(&cursor(last))).unwrap();
        assert!(pages.len() < 10, "paging does not end");
        pages.push(next);
    }
    let got: Vec<(String, IpNet)> = pages.into_iter().flatten().map(|r| (r.vrf, r.prefix)).collect();
    assert_eq!(got, listed, "every route once, in listing order");
    // One VRF, small pages, with a cursor whose route is gone: continues after it.
    let red = views.routes(Some("red"), 3, None).unwrap();
    assert!(red.iter().all(|r| r.vrf == "red") && red.len() == 3);
    let gone = RouteCursor {
        vrf: "red".into(),
        prefix: "198.18.0.1/32".parse().unwrap(),
    };
    let after_gone = views.routes(Some("red"), 2, Some(&gone)).unwrap();
    assert_eq!(after_gone[0].prefix.to_string(), "198.18.0.2/32");
    let v6_start = RouteCursor {
        vrf: "blue".into(),
        prefix: "198.18.46.223/32".parse().unwrap(),
    };
    let crossing = views.routes(None, 2, Some(&v6_start)).unwrap();
    assert_eq!(
        crossing[0].prefix.to_string(),
        "2001:db8::/128",
        "IPv4 ends, IPv6 follows"
    );
}

#[test]
fn a_page_of_a_vrf_that_is_gone_is_not_found() {
    let (views, _) = views(10);
    let stale = RouteCursor {
        vrf: "green".into(),
        prefix: "198.18.0.1/32".parse().unwrap(),
    };
    let err = views.routes(None, 10, Some(&stale)).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("list again"), "{}", err.message);
    assert_eq!(
        views.routes(Some("green"), 10, None).unwrap_err().code,
        ErrorCode::NotFound
    );
}

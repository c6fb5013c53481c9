//! Restoring the state directory: what cannot be applied is kept, not lost.

use super::*;
use crate::control::task::{spawn, Change};
use crate::control::views::Views;
use crate::flows::{FlowConfig, Flows};
use control_client::{RouteTarget, SnapshotBuilder};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug)]
struct NoPorts;

impl Ports for NoPorts {
    fn add_port(&mut self, _vif: Vif, ifname: &str) -> anyhow::Result<()> {
        anyhow::bail!("interface {ifname} not found")
    }
    fn remove_port(&mut self, _vif: Vif) {}
    fn shutdown(&mut self) {}
}

fn route(prefix: &str, target: RouteTarget) -> RouteSpec {
    RouteSpec {
        vrf: "red".into(),
        prefix: prefix.parse().unwrap(),
        target,
    }
}

#[test]
fn routes_that_cannot_be_applied_stay_recorded_across_unrelated_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    // Before the restart: pod "gone" (whose veth is missing now) and five routes,
    // one of them to that pod; tables.routes is now 3.
    let pod = InterfaceSpec {
        name: "gone".into(),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 0, 2]),
        ipv4: Some([198, 18, 1, 2].into()),
        ..InterfaceSpec::default()
    };
    store.save_port(&pod, PortIdentity { vif: Vif(1), label: 16 }).unwrap();
    let mut routes: Vec<RouteSpec> = (1..=4)
        .map(|i| route(&format!("198.19.{i}.0/24"), RouteTarget::Discard))
        .collect();
    routes.push(route("198.20.0.0/16", RouteTarget::Interface { name: "gone".into() }));
    store.save_routes(&routes).unwrap();
    drop(store);

    let store = StateStore::open(dir.path()).unwrap();
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    let mut builder = SnapshotBuilder::new(1);
    let mac = MacAddr([0, 0, 0x5e, 0, 1, 0]);
    let publisher = SnapshotPublisher::new(builder.build(&model, mac));
    let views = Views::new(
        publisher.clone(),
        Vec::new(),
        Arc::new(Flows::new(&FlowConfig::default(), 16)),
        vec![],
    );
    let control = Control::new(ControlSetup {
        model,
        builder,
        router_mac: mac,
        publisher,
        ports: Box::new(NoPorts),
        store,
        max_routes: 3,
        host: None,
    });
    let task = spawn(control, Duration::from_secs(60), views.ready_flag()).unwrap();
    let handle = task.handle();
    // The red VRF exists only through the missing pod: nothing can be applied; an
    // unrelated change must not erase what is recorded.
    let e = handle
        .apply_blocking(Change::RemoveRoute {
            vrf: "red".into(),
            prefix: "198.19.1.0/24".parse().unwrap(),
        })
        .unwrap();
    assert_eq!(e, serde_json::Value::Null, "a pending route can be removed");
    let status = views.answer(&vrouter_api::Request::Status).unwrap();
    assert_eq!(status["ready"], true);
    task.shutdown();
    let store = StateStore::open(dir.path()).unwrap();
    let kept = store.load_routes().routes;
    assert_eq!(kept.len(), 4, "{kept:?}");
    assert!(kept.iter().any(|r| r.prefix.to_string() == "198.20.0.0/16"));
    let (ports, _) = store.load_ports();
    assert_eq!(ports.len(), 1, "the missing pod's record is kept");
    assert_eq!(ports[0].identity, Some(PortIdentity { vif: Vif(1), label: 16 }));
}

#[test]
fn restore_applies_no_more_than_tables_routes() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    // The VRF exists through an attached pod (added directly to the model).
    model
        .add_interface(InterfaceSpec {
            name: "p".into(),
            vrf: "red".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            ..InterfaceSpec::default()
        })
        .unwrap();
    let routes: Vec<RouteSpec> = (1..=5)
        .map(|i| route(&format!("198.19.{i}.0/24"), RouteTarget::Discard))
        .collect();
    store.save_routes(&routes).unwrap();
    let (mut control, publisher) = restored_from(model, store, 3);
    let red = publisher.load_full().vrf_by_name("red").unwrap().v4.entries().len();
    assert_eq!(red, 3, "tables.routes holds at restore");
    assert_eq!(control.pending_routes.len(), 2, "the rest stay recorded");
    assert!(matches!(
        control.add_route(route("198.19.9.0/24", RouteTarget::Discard)),
        Err(ControlError::RouteTableFull(3))
    ));
}

#[test]
fn a_port_in_use_is_refused_whole_and_keeps_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = StateStore::open(dir.path()).unwrap();
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    let (mut control, _publisher) = Control::detached(model, store, 1000);
    let pod = |name: &str, last: u8, vlan: Option<control_client::VlanSpec>| InterfaceSpec {
        name: name.into(),
        vrf: "red".into(),
        mac: MacAddr([2, 0, 0, 0, 0, last]),
        ipv4: Some([198, 18, 1, last].into()),
        vlan,
        ..InterfaceSpec::default()
    };
    control.add_interface(pod("vm", 2, None)).unwrap();
    let vlan = control_client::VlanSpec {
        parent: "vm".into(),
        id: 100,
    };
    control.add_interface(pod("vm.100", 3, Some(vlan))).unwrap();
    control.add_interface(pod("b", 4, None)).unwrap();
    control
        .add_route(route("198.19.0.0/16", RouteTarget::Interface { name: "b".into() }))
        .unwrap();
    // A route uses b, a sub-interface rides on vm: both refused, and both still
    // attached and recorded (a restart brings them back).
    for name in ["b", "vm"] {
        let refused = ApiError::from(control.remove_interface(name).unwrap_err());
        assert_eq!(refused.code, ErrorCode::InUse, "{name}: {refused:?}");
        assert!(control.model.port_identity(name).is_some(), "{name} detached");
        assert!(control.store.has_port(name), "{name}'s record deleted");
    }
    // In order, they go.
    control.remove_interface("vm.100").unwrap();
    control.remove_interface("vm").unwrap();
    assert!(!control.store.has_port("vm"));
}

/// A control side over state directory `dir`, restored from it.
fn restored(dir: &std::path::Path) -> Control {
    let mut model = DesiredState::new(16);
    model.set_fabric("fabric0");
    restored_from(model, StateStore::open(dir).unwrap(), 100).0
}

/// A control side starting from `model`, restored from `store`, holding at most
/// `max_routes` routes; with the publisher its snapshots go to.
fn restored_from(model: DesiredState, store: StateStore, max_routes: usize) -> (Control, SnapshotPublisher) {
    let mut builder = SnapshotBuilder::new(1);
    let mac = MacAddr([0, 0, 0x5e, 0, 1, 0]);
    let publisher = SnapshotPublisher::new(builder.build(&model, mac));
    let mut control = Control::new(ControlSetup {
        model,
        builder,
        router_mac: mac,
        publisher: publisher.clone(),
        ports: Box::new(NoPorts),
        store,
        max_routes,
        host: None,
    });
    control.restore();
    (control, publisher)
}

#[test]
fn network_policies_survive_a_restart_and_a_refused_set_changes_nothing() {
    use control_client::{PolicyPod, PolicySpec};
    let dir = tempfile::tempdir().unwrap();
    let policy = |name: &str, vrf: &str| PolicySpec {
        name: name.into(),
        pods: vec![PolicyPod {
            vrf: vrf.into(),
            ip: [198, 18, 1, 2].into(),
        }],
        ingress: Some(Vec::new()),
        egress: None,
        tier: Default::default(),
    };
    let mut control = restored(dir.path());
    control
        .set_policies(vec![policy("shop/deny", "red"), policy("shop/other", "red")], &[])
        .unwrap();
    control.remove_policy("shop/other").unwrap();
    // One bad policy in a set: none of it is applied or recorded.
    let refused = control.set_policies(
        vec![policy("shop/new", "red"), policy("shop/bad", "")],
        &["shop/deny".into()],
    );
    assert!(refused.is_err());
    let names = |c: &Control| c.model.policies().map(|p| p.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&control), ["shop/deny"]);
    drop(control);
    let control = restored(dir.path());
    assert_eq!(names(&control), ["shop/deny"], "restored from policies.json");
}

//! Fuzzes the local API's request decoder and what a decoded change does to the
//! desired state: any line is decoded; a change is applied to a model (with its
//! validation) and the snapshot is built. Nothing may panic, and a refused change
//! leaves the model as it was.
#![no_main]

use control_client::DesiredState;
use libfuzzer_sys::fuzz_target;
use nexthop::MacAddr;
use std::cell::RefCell;
use vrouter::api::Request;
use vrouter::control::task::Change;

thread_local! {
    static MODEL: RefCell<DesiredState> = RefCell::new({
        let mut s = DesiredState::new(64);
        s.set_fabric("fabric0");
        s
    });
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = serde_json::from_slice::<Request>(data) else { return };
    // What decodes also encodes, and decodes to the same request.
    let text = serde_json::to_string(&request).unwrap();
    let again: Request = serde_json::from_str(&text).unwrap();
    assert_eq!(serde_json::to_string(&again).unwrap(), text);
    let Some(change) = Change::from_request(request) else { return };
    MODEL.with(|m| {
        let mut m = m.borrow_mut();
        let before = format!("{:?}", *m);
        let result = match change {
            Change::AddInterface(spec) => m.add_interface(spec).map(|_| ()),
            Change::RemoveInterface(name) => m.remove_interface(&name).map(|_| ()),
            Change::AddRoute(route) => m.add_route(route),
            Change::RemoveRoute { vrf, prefix } => m.remove_route(&vrf, prefix).map(|_| ()),
            Change::SetVrfVni { vrf, vni } => m.set_vrf_vni(&vrf, vni),
            Change::AddService(spec) => m.add_service(spec),
            Change::RemoveService(name) => m.remove_service(&name).map(|_| ()),
            Change::AddFloatingIp(spec) => m.add_floating_ip(spec),
            Change::RemoveFloatingIp(name) => m.remove_floating_ip(&name).map(|_| ()),
            Change::AddServiceChain(spec) => m.add_service_chain(spec),
            Change::RemoveServiceChain(name) => m.remove_service_chain(&name).map(|_| ()),
            Change::AddIngress(spec) => m.add_ingress(spec),
            Change::RemoveIngress(name) => m.remove_ingress(&name).map(|_| ()),
            Change::AddPolicy(spec) => m.add_policy(spec),
            Change::RemovePolicy(name) => m.remove_policy(&name).map(|_| ()),
            // All or nothing, as the control side applies it.
            Change::SetPolicies(specs, remove) => {
                let mut next = m.clone();
                for name in &remove {
                    let _ = next.remove_policy(name);
                }
                let result = specs.into_iter().try_for_each(|spec| next.add_policy(spec));
                if result.is_ok() {
                    *m = next;
                }
                result
            }
            // A binding lives on the control side, not in the model.
            Change::BindPort(_) => return,
            // Control-node and prober changes: no API request makes them.
            Change::BackendHealth { .. }
            | Change::PeerUp(_)
            | Change::PeerDown(_)
            | Change::PeerSynced(_)
            | Change::RouteUpdate { .. }
            | Change::ConfigServer(_)
            | Change::Config { .. } => return,
        };
        if result.is_err() {
            assert_eq!(format!("{:?}", *m), before, "a refused change altered the model");
        }
        let _ = m.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]));
    });
});

//! VRF ids across namespace churn: more VRF names than 16 bits can number come and
//! go, ids are reused, and a flow of a deleted VRF never applies in the VRF that
//! takes its id.

use super::*;
use control_client::SnapshotBuilder;
use nexthop::VrfId;

fn pod(name: &str, vrf: &str, mac: [u8; 6], ip: [u8; 4]) -> InterfaceSpec {
    InterfaceSpec {
        name: name.into(),
        vrf: vrf.into(),
        mac: MacAddr(mac),
        ipv4: Some(ip.into()),
        gateway4: Some(GW4.into()),
        ..InterfaceSpec::default()
    }
}

#[test]
fn more_than_65536_vrfs_come_and_go_and_stay_isolated() {
    let mut s = DesiredState::new(16);
    s.set_fabric("fabric0");
    let mut builder = SnapshotBuilder::new(1);
    s.add_interface(pod("a", "red", MAC_A, A4)).unwrap();
    s.add_interface(pod("b", "red", MAC_B, B4)).unwrap();
    let red = s.vrf_id("red").unwrap();
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let frame = udp4(MAC_A, ROUTER, A4, B4, 64, b"red");
    assert_eq!(run_in(&snap, Vif(1), &frame, &mut ctx).0, Verdict::Transmit(Vif(2)));

    // A long-lived cluster: 65,600 namespaces, each with a pod, created and deleted.
    // Every 4096th also has a second pod, and its first pod's packet to the second
    // makes a flow; the next namespace gets the same VRF id and vif, and the same
    // packet there finds no such pod (the old flow does not apply).
    const Y4: [u8; 4] = [198, 18, 2, 3];
    let to_y = udp4(MAC_C, ROUTER, C4, Y4, 64, b"to y");
    let mut checked = 0;
    let mut flow_of_the_previous_vrf: Option<(VrfId, Vif)> = None;
    for i in 0..65_600u32 {
        let vrf = format!("ns{i}-vn");
        s.add_interface(pod("x", &vrf, MAC_C, C4)).unwrap();
        assert!(s.vrf_count() <= 3, "VRF {vrf} not freed");
        let x = s.port_identity("x").unwrap().vif;
        if let Some((id, y)) = flow_of_the_previous_vrf.take() {
            assert_eq!(s.vrf_id(&vrf), Some(id), "the freed id is reused");
            let snap = builder.build(&s, MacAddr(ROUTER));
            let (v, _) = run_in(&snap, x, &to_y, &mut ctx);
            assert_ne!(v, Verdict::Transmit(y), "{vrf} used the flow of the VRF before it");
            assert_eq!(v.drop_reason(), Some(DropReason::NoRoute), "{vrf}");
            checked += 1;
        }
        if i % 4096 == 0 {
            s.add_interface(pod("y", &vrf, MAC_B, Y4)).unwrap();
            let y = s.port_identity("y").unwrap().vif;
            let snap = builder.build(&s, MacAddr(ROUTER));
            assert_eq!(run_in(&snap, x, &to_y, &mut ctx).0, Verdict::Transmit(y));
            s.remove_interface("y").unwrap();
            flow_of_the_previous_vrf = s.vrf_id(&vrf).map(|id| (id, y));
        }
        s.remove_interface("x").unwrap();
    }
    assert_eq!(checked, 17);
    s.remove_interface("a").unwrap();
    s.remove_interface("b").unwrap();
    assert_eq!(s.vrf_id("red"), None, "red is gone with its last interface");
    // Blue takes red's id; green has b's address and MAC. Pod c sends what a sent.
    s.add_interface(pod("c", "blue", MAC_A, A4)).unwrap();
    s.add_interface(pod("d", "green", MAC_B, B4)).unwrap();
    assert_eq!(s.vrf_id("blue"), Some(red), "the lowest free id is reused");
    let snap = builder.build(&s, MacAddr(ROUTER));
    assert!(snap.vrfs.len() <= 3, "{} VRF slots after churn", snap.vrfs.len());
    let (v, _) = run_in(&snap, Vif(1), &frame, &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf), "red's flow applied in blue");
}

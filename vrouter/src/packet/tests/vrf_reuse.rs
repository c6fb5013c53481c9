//! VRF ids across namespace churn: more VRF names than 16 bits can number come and
//! go, ids are reused, and a flow of a deleted VRF never applies in the VRF that
//! takes its id.

use super::*;
use control_client::SnapshotBuilder;

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
    for i in 0..65_600u32 {
        let vrf = format!("ns{i}-vn");
        s.add_interface(pod("x", &vrf, MAC_C, C4)).unwrap();
        assert!(s.vrf_count() <= 3, "VRF {vrf} not freed");
        s.remove_interface("x").unwrap();
    }
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

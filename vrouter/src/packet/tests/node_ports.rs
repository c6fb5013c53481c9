//! The node's own interface and what outside the cluster reaches: a node port on the
//! fabric address and an external IP go to the service's backend (exact bytes both
//! ways; replies leave through the node's interface for its kernel to route), the
//! node's kernel reaches pods and services, and nothing else on the fabric gets in.

use super::*;
use control_client::{L4Protocol, ServicePort, ServiceSpec};

const FABRIC_IP: [u8; 4] = [198, 18, 0, 1];
const FABRIC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xf1];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x4f];
const CLIENT: [u8; 4] = [198, 18, 0, 9];
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
const SVC4: [u8; 4] = [198, 18, 100, 10];
const EXTERNAL: [u8; 4] = [198, 19, 0, 10];

/// Pods a, b (red) and c (blue), the node's interface in red, a service in red
/// with node port 30080 and an external IP, backend b.
fn with_node() -> (Snapshot, Vif) {
    let mut s = state();
    s.set_fabric_info(nexthop::FabricInfo {
        ip: Some(FABRIC_IP.into()),
        mac: MacAddr(FABRIC_MAC),
        mtu: 1500,
    });
    s.set_host_interface("vhost0-vr");
    s.add_interface(InterfaceSpec {
        name: "vhost0-vr".into(),
        vrf: "red".into(),
        mac: MacAddr(HOST_MAC),
        ipv4: Some(FABRIC_IP.into()),
        ..InterfaceSpec::default()
    })
    .unwrap();
    s.add_service(ServiceSpec {
        name: "default/web".into(),
        vrf: "red".into(),
        ip: SVC4.into(),
        ports: vec![ServicePort {
            protocol: L4Protocol::Tcp,
            port: 80,
            target_port: 9376,
            node_port: Some(30080),
        }],
        backends: vec![B4.into()],
        affinity_timeout_secs: None,
        external_ips: vec![EXTERNAL.into()],
    })
    .unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let host = snap.interface_by_name("vhost0-vr").unwrap().vif;
    assert_eq!(snap.interface(host).unwrap().kind, nexthop::InterfaceKind::Host);
    (snap, host)
}

#[test]
fn a_node_port_and_an_external_ip_reach_the_backend_and_replies_leave_through_the_node() {
    let (snap, host) = with_node();
    let mut ctx = PipelineContext::default();
    for (address, port) in [(FABRIC_IP, 30080), (EXTERNAL, 80)] {
        let sport = 40_000 + port / 10;
        let (v, out) = run_in(
            &snap,
            Vif(0),
            &tcp4(CLIENT_MAC, FABRIC_MAC, CLIENT, address, (sport, port), 64),
            &mut ctx,
        );
        assert_eq!(v, Verdict::Transmit(Vif(2)), "{address:?}:{port}");
        assert_eq!(out, tcp4(ROUTER, MAC_B, CLIENT, B4, (sport, 9376), 63));
        // The backend's reply: from the address and port the client reached, to the
        // node's kernel, which routes it to the client.
        let (v, out) = run_in(
            &snap,
            Vif(2),
            &tcp4(MAC_B, ROUTER, B4, CLIENT, (9376, sport), 64),
            &mut ctx,
        );
        assert_eq!(v, Verdict::Transmit(host));
        assert_eq!(out, tcp4(ROUTER, HOST_MAC, address, CLIENT, (port, sport), 63));
        // The client's next packet takes the same flow.
        let (v, _) = run_in(
            &snap,
            Vif(0),
            &tcp4(CLIENT_MAC, FABRIC_MAC, CLIENT, address, (sport, port), 64),
            &mut ctx,
        );
        assert_eq!(v, Verdict::Transmit(Vif(2)));
    }
}

#[test]
fn nothing_else_on_the_fabric_gets_in() {
    let (snap, _) = with_node();
    let mut ctx = PipelineContext::default();
    for (dst, port) in [(FABRIC_IP, 22), (B4, 9376), (SVC4, 80), (EXTERNAL, 443)] {
        let (v, _) = run_in(
            &snap,
            Vif(0),
            &tcp4(CLIENT_MAC, FABRIC_MAC, CLIENT, dst, (40_000, port), 64),
            &mut ctx,
        );
        assert_eq!(v, Verdict::Drop(DropReason::FabricUnclaimed), "{dst:?}:{port}");
    }
    // Without a node interface nothing native is taken either.
    let (v, _) = run(
        &snapshot(),
        Vif(0),
        &tcp4(CLIENT_MAC, FABRIC_MAC, CLIENT, FABRIC_IP, (40_000, 30080), 64),
    );
    assert_eq!(v, Verdict::Drop(DropReason::BadTunnel));
}

#[test]
fn the_node_reaches_pods_and_services_and_pods_reach_the_node() {
    let (snap, host) = with_node();
    let mut ctx = PipelineContext::default();
    // The kernel to pod b, and back.
    let (v, out) = run_in(
        &snap,
        host,
        &tcp4(HOST_MAC, ROUTER, FABRIC_IP, B4, (50_000, 9376), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, tcp4(ROUTER, MAC_B, FABRIC_IP, B4, (50_000, 9376), 63));
    let (v, out) = run_in(
        &snap,
        Vif(2),
        &tcp4(MAC_B, ROUTER, B4, FABRIC_IP, (9376, 50_000), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(host));
    assert_eq!(out, tcp4(ROUTER, HOST_MAC, B4, FABRIC_IP, (9376, 50_000), 63));
    // The kernel to the service's cluster IP (a kubelet probe through it).
    let (v, out) = run_in(
        &snap,
        host,
        &tcp4(HOST_MAC, ROUTER, FABRIC_IP, SVC4, (50_001, 80), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(out, tcp4(ROUTER, MAC_B, FABRIC_IP, B4, (50_001, 9376), 63));
    // Pod a to the node's address.
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, FABRIC_IP, (40_000, 10_250), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(host));
    assert_eq!(out, tcp4(ROUTER, HOST_MAC, A4, FABRIC_IP, (40_000, 10_250), 63));
    // The node's interface sends from the node's address only, and reaches no
    // other VRF.
    let (v, _) = run_in(
        &snap,
        host,
        &tcp4(HOST_MAC, ROUTER, CLIENT, B4, (50_002, 9376), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::SourceMismatch));
    let (v, _) = run_in(
        &snap,
        host,
        &tcp4(HOST_MAC, ROUTER, FABRIC_IP, C4, (50_003, 80), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
}

//! The node's own interface and what outside the cluster reaches: a node port on the
//! fabric address and an external IP go to the service's backend (exact bytes both
//! ways; replies leave through the node's interface for its kernel to route), the
//! node's kernel reaches pods and services, and nothing else on the fabric gets in;
//! pods reach outside the cluster through fabric source NAT.

use super::*;
use control_client::{L4Protocol, ServicePort, ServiceSpec};

pub(super) const FABRIC_IP: [u8; 4] = [198, 18, 0, 1];
pub(super) const FABRIC_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0xf1];
pub(super) const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x4f];
pub(super) const CLIENT: [u8; 4] = [198, 18, 0, 9];
pub(super) const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x99];
const SVC4: [u8; 4] = [198, 18, 100, 10];
const EXTERNAL: [u8; 4] = [198, 19, 0, 10];

/// Pods a, b (red) and c (blue), the node's interface in red, a service in red
/// with node port 30080 and an external IP, backend b; fabric source NAT for red
/// with TCP ports 57000-57049.
pub(super) fn with_node() -> (Snapshot, Vif) {
    let mut s = state();
    s.set_snat(
        "red",
        nexthop::SnatRanges {
            tcp: nexthop::PortRange {
                first: 57_000,
                last: 57_049,
            },
            udp: nexthop::PortRange {
                first: 61_000,
                last: 61_049,
            },
            icmp: nexthop::PortRange {
                first: 63_000,
                last: 63_049,
            },
        },
    );
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
        health_check: None,
        load_balancer: false,
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
    // A source outside the cluster is no pod's, not the node's, not martian; the
    // frame is for the fabric interface's MAC.
    for src in [A4, FABRIC_IP, [127, 0, 0, 1]] {
        let (v, _) = run_in(
            &snap,
            Vif(0),
            &tcp4(CLIENT_MAC, FABRIC_MAC, src, FABRIC_IP, (40_000, 30080), 64),
            &mut ctx,
        );
        assert_eq!(v, Verdict::Drop(DropReason::SourceMismatch), "{src:?}");
    }
    let (v, _) = run_in(
        &snap,
        Vif(0),
        &tcp4(
            CLIENT_MAC,
            [2, 0, 0, 0, 0, 0x77],
            CLIENT,
            FABRIC_IP,
            (40_000, 30080),
            64,
        ),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::WrongDestMac));
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

pub(super) const OUTSIDE: [u8; 4] = [198, 19, 200, 7];

/// The source port of a frame.
fn sport(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[ETH_LEN + 20], frame[ETH_LEN + 21]])
}

#[test]
fn pods_reach_outside_from_the_node_address_and_replies_come_back() {
    let (snap, host) = with_node();
    let mut ctx = PipelineContext::default();
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, OUTSIDE, (40_000, 443), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(host));
    let port = sport(&out);
    assert!((57_000..=57_049).contains(&port), "{port}");
    assert_eq!(out, tcp4(ROUTER, HOST_MAC, FABRIC_IP, OUTSIDE, (port, 443), 63));
    // The reply on the fabric, to the node's address and that port, reaches the pod.
    let (v, out) = run_in(
        &snap,
        Vif(0),
        &tcp4(CLIENT_MAC, FABRIC_MAC, OUTSIDE, FABRIC_IP, (443, port), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(Vif(1)));
    assert_eq!(out, tcp4(ROUTER, MAC_A, OUTSIDE, A4, (443, 40_000), 63));
    // A port nobody took is not the vrouter's.
    let (v, _) = run_in(
        &snap,
        Vif(0),
        &tcp4(
            CLIENT_MAC,
            FABRIC_MAC,
            OUTSIDE,
            FABRIC_IP,
            (443, if port == 57_000 { 57_001 } else { 57_000 }),
            64,
        ),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::FabricUnclaimed));
}

#[test]
fn source_nat_ports_are_unique_per_destination_and_run_out_counted() {
    let (snap, host) = with_node();
    let mut ctx = PipelineContext::default();
    let mut ports = std::collections::BTreeSet::new();
    // 50 ports: 50 connections to one destination (from two pods, one of them with
    // the other's source port) get one each; the next is refused and counted.
    let (v, out) = run_in(
        &snap,
        Vif(2),
        &tcp4(MAC_B, ROUTER, B4, OUTSIDE, (41_000, 443), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(host));
    ports.insert(sport(&out));
    for i in 0..49u16 {
        let (v, out) = run_in(
            &snap,
            Vif(1),
            &tcp4(MAC_A, ROUTER, A4, OUTSIDE, (41_000 + i, 443), 64),
            &mut ctx,
        );
        assert_eq!(v, Verdict::Transmit(host), "connection {i}");
        assert!(ports.insert(sport(&out)), "port {} given twice", sport(&out));
    }
    let (v, _) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, OUTSIDE, (42_000, 443), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Drop(DropReason::SnatExhausted));
    assert_eq!(ctx.flows.snat_exhausted.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Another destination port is another reply key: the ports serve it again.
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, OUTSIDE, (42_000, 80), 64),
        &mut ctx,
    );
    assert_eq!(v, Verdict::Transmit(host));
    assert!((57_000..=57_049).contains(&sport(&out)));
}

//! An isolated namespace's pod (c, VRF blue) with an egress-only floating address in
//! the cluster network (red): it reaches red from that address, red cannot reach it
//! there (nor at its own address), and red reaches it only through a service whose
//! backend is that floating address (the seed's rules b, c and e), translated straight
//! to the pod and back, also after its flows are decided again.

use super::*;
use control_client::{FloatingIpSpec, L4Protocol, ServicePort, ServiceSpec};
use std::net::IpAddr;

const FIP4: [u8; 4] = [198, 18, 1, 50];
const SVC4: [u8; 4] = [198, 18, 100, 10];

fn service(name: &str, ip: [u8; 4], backend: [u8; 4]) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        vrf: "red".into(),
        ip: IpAddr::from(ip),
        ports: vec![ServicePort {
            protocol: L4Protocol::Tcp,
            port: 80,
            target_port: 9376,
            node_port: None,
        }],
        backends: vec![IpAddr::from(backend)],
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
    }
}

fn isolated() -> DesiredState {
    let mut s = state();
    s.add_floating_ip(FloatingIpSpec {
        name: "c".into(),
        vrf: "red".into(),
        ip: IpAddr::from(FIP4),
        interface: "c".into(),
        egress_only: true,
    })
    .unwrap();
    s.add_service(service("iso/web", SVC4, FIP4)).unwrap();
    s
}

#[test]
fn an_isolated_pod_reaches_out_but_is_reached_only_through_its_service() {
    let mut s = isolated();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let snap = builder.build(&s, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    // Rule b: neither its floating address nor its own address takes connections from red.
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, FIP4, (40000, 22), 64), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
    let (v, _) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, C4, (40000, 22), 64), &mut ctx);
    assert_eq!(v, Verdict::Drop(DropReason::OtherVrf));
    // Its service's target port on the floating address is open (the service's node
    // translates to the floating address when the pod is on another node).
    let (v, out) = run_in(
        &snap,
        Vif(1),
        &tcp4(MAC_A, ROUTER, A4, FIP4, (40002, 9376), 64),
        &mut ctx,
    );
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(3)),
            tcp4(ROUTER, MAC_C, A4, C4, (40002, 9376), 63)
        )
    );
    // Rule c: c reaches a from its floating address, and a's reply comes back to c.
    let (v, out) = run_in(&snap, Vif(3), &tcp4(MAC_C, ROUTER, C4, A4, (41000, 22), 64), &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(1)),
            tcp4(ROUTER, MAC_A, FIP4, A4, (41000, 22), 63)
        )
    );
    let (v, out) = run_in(&snap, Vif(1), &tcp4(MAC_A, ROUTER, A4, FIP4, (22, 41000), 64), &mut ctx);
    assert_eq!(
        (v, out),
        (Verdict::Transmit(Vif(3)), tcp4(ROUTER, MAC_C, A4, C4, (22, 41000), 63))
    );
    // Rule e: a reaches c through the service: straight to c's own address and target
    // port, the reply from the service's address and port.
    let to_service = tcp4(MAC_A, ROUTER, A4, SVC4, (40001, 80), 64);
    let reply = tcp4(MAC_C, ROUTER, C4, A4, (9376, 40001), 64);
    let (v, out) = run_in(&snap, Vif(1), &to_service, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(3)),
            tcp4(ROUTER, MAC_C, A4, C4, (40001, 9376), 63)
        )
    );
    let (v, out) = run_in(&snap, Vif(3), &reply, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(1)),
            tcp4(ROUTER, MAC_A, SVC4, A4, (80, 40001), 63)
        )
    );
    // Another service comes (every flow is decided again): the connection goes on, the
    // reply first.
    s.add_service(service("iso/other", [198, 18, 100, 11], FIP4)).unwrap();
    let again = builder.build(&s, MacAddr(ROUTER));
    assert!(again.flow_epoch > snap.flow_epoch);
    let (v, out) = run_in(&again, Vif(3), &reply, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(1)),
            tcp4(ROUTER, MAC_A, SVC4, A4, (80, 40001), 63)
        )
    );
    let (v, out) = run_in(&again, Vif(1), &to_service, &mut ctx);
    assert_eq!(
        (v, out),
        (
            Verdict::Transmit(Vif(3)),
            tcp4(ROUTER, MAC_C, A4, C4, (40001, 9376), 63)
        )
    );
}

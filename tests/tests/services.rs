//! Services as native load balancers, end to end: pods on a node reach a service
//! address, the vrouter translates each connection to a backend and its replies back
//! (TCP with data checked, UDP), a pod reaches itself through its own service, a
//! service without backends refuses connections at once, and a backend change takes
//! new connections to the new backend.

use control_client::{L4Protocol, ServicePort, ServiceSpec};
use std::net::IpAddr;
use system_tests::{node, serial};
use vrouter::api::{Request, ServiceView};
use vrouter::config::XdpMode;
use vrouter_lab::traffic::{tcp_transfer, udp_probe};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const SERVICE: &str = "198.18.100.10";

fn spec(backends: &[IpAddr]) -> ServiceSpec {
    let port = |protocol, port| ServicePort {
        protocol,
        port,
        target_port: port,
    };
    ServiceSpec {
        name: "default/web".into(),
        vrf: "red".into(),
        ip: SERVICE.parse().unwrap(),
        ports: vec![port(L4Protocol::Tcp, 5201), port(L4Protocol::Udp, 5300)],
        backends: backends.to_vec(),
    }
}

#[test]
fn a_service_translates_connections_to_its_backend_and_refuses_without_one() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    for i in 1..=3 {
        n.add_pod("red", 0, i, true).unwrap();
    }
    let (a, b, d) = (&n.pods[0], &n.pods[1], &n.pods[2]);
    let api = n.api();
    let set = |backends: &[IpAddr]| {
        api.call::<serde_json::Value>(&Request::AddService { spec: spec(backends) })
            .unwrap();
    };
    set(&[b.ipv4.into()]);
    let service: IpAddr = SERVICE.parse().unwrap();
    // TCP: 2 MB from pod a to the service, received intact by pod b (the backend),
    // its acknowledgement back from the service's address.
    let t = tcp_transfer(a, b, service, 2 << 20).unwrap();
    assert!(t.intact, "{t:?}\n{}", n.log());
    assert!(udp_probe(a, b, service, 40_000, 5300).unwrap(), "UDP to the service");
    // The flow view shows the translation.
    let flows: Vec<vrouter::api::FlowView> = api
        .call(&Request::Flows {
            filter: vrouter::api::FlowFilter {
                dst: Some(service),
                ..Default::default()
            },
            limit: 100,
            from_index: 0,
        })
        .unwrap();
    assert!(
        flows.iter().any(|f| f
            .nat
            .as_ref()
            .is_some_and(|t| t.destination && t.ip == IpAddr::from(b.ipv4))),
        "{flows:?}"
    );
    // The service view counts the connections and what they carried.
    let list: Vec<ServiceView> = api.call(&Request::Services).unwrap();
    let tcp = list.iter().find(|s| s.proto == 6).unwrap();
    assert!(tcp.flows >= 1 && tcp.bytes >= 2 << 20, "{tcp:?}");
    let udp = list.iter().find(|s| s.proto == 17).unwrap();
    assert!(udp.flows >= 1 && udp.packets >= 2, "{udp:?}");
    // Hairpin: pod a as the only backend reaches itself through the service.
    set(&[a.ipv4.into()]);
    let t = tcp_transfer(a, a, service, 1 << 20).unwrap();
    assert!(t.intact, "a pod through its own service: {t:?}\n{}", n.log());
    // No backends: a connection is refused at once (ICMP port unreachable), counted.
    set(&[]);
    let out =
        a.ns.command("timeout")
            .args(["5", "bash", "-c", &format!("echo > /dev/tcp/{SERVICE}/5201")])
            .output()
            .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("refused"), "{err}");
    assert!(n.drop_stats().unwrap().get("service_no_backend") > 0);
    // Another backend: new connections go to it.
    set(&[d.ipv4.into()]);
    let t = tcp_transfer(a, d, service, 1 << 20).unwrap();
    assert!(t.intact, "{t:?}");
    let list: Vec<ServiceView> = api.call(&Request::Services).unwrap();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(list
        .iter()
        .all(|s| s.backends == [IpAddr::from(d.ipv4)] && s.name == "default/web"));
    // Recorded: a restart brings the service back.
    n.stop_vrouter().unwrap();
    n.start_vrouter().unwrap();
    let t = tcp_transfer(&n.pods[0], &n.pods[2], service, 1 << 20).unwrap();
    assert!(t.intact, "after a restart: {t:?}");
}

//! Services as native load balancers, end to end: pods on a node reach a service
//! address, the vrouter translates each connection to a backend and its replies back
//! (TCP with data checked, UDP), a pod reaches itself through its own service, a
//! service without backends refuses connections at once, and a backend change takes
//! new connections to the new backend. With backends on two nodes: several ports
//! (port and target port different), 1000 connections spread evenly, each connection
//! stays on its backend when backends go or come, and a UDP flow to a removed backend
//! is answered by another on its next datagram; with client-address affinity one
//! client's connections all go to one backend.

use control_client::{L4Protocol, ServicePort, ServiceSpec};
use nexthop::encap::Encap;
use std::net::IpAddr;
use system_tests::{fabric_node, node, route_to_pod, serial};
use vrouter::api::{Request, ServiceView};
use vrouter::config::XdpMode;
use vrouter_lab::backends::{ask, ask_udp, ask_udp_sized, tcp_sessions, tcp_spread, udp_client, NamedServers};
use vrouter_lab::node::FabricLan;
use vrouter_lab::traffic::{tcp_transfer, udp_probe};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const SERVICE: &str = "198.18.100.10";

fn spec(backends: &[IpAddr]) -> ServiceSpec {
    let port = |protocol, port| ServicePort {
        protocol,
        port,
        target_port: port,
        node_port: None,
    };
    ServiceSpec {
        name: "default/web".into(),
        vrf: "red".into(),
        ip: SERVICE.parse().unwrap(),
        ports: vec![port(L4Protocol::Tcp, 5201), port(L4Protocol::Udp, 5300)],
        backends: backends.to_vec(),
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
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

#[test]
fn a_service_spreads_over_backends_on_two_nodes_and_keeps_each_connection() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (mut a, mut b) = (fabric_node(BIN, 1), fabric_node(BIN, 2));
    for n in [&mut a, &mut b] {
        n.join(&lan).unwrap();
        n.start_vrouter().unwrap();
    }
    // The client (red-1) and two backends on node 1, two backends on node 2 and a
    // third pod there that becomes a backend later.
    for i in 1..=3 {
        a.add_pod("red", 0, i, true).unwrap();
    }
    for i in 4..=6 {
        b.add_pod("red", 0, i, true).unwrap();
    }
    for pod in 0..3 {
        route_to_pod(&a, &b, pod, Encap::MplsOverUdp, 0);
    }
    route_to_pod(&b, &a, 0, Encap::MplsOverUdp, 0);
    let backends: Vec<&vrouter_lab::node::Pod> = a.pods[1..].iter().chain(&b.pods[..2]).collect();
    let newcomer = &b.pods[2];
    let _servers: Vec<NamedServers> = backends
        .iter()
        .chain([&newcomer])
        .map(|p| NamedServers::start(&p.ns, &p.name, &[9376, 9377], &[5301]).unwrap())
        .collect();
    let api = a.api();
    let set_with = |pods: &[&vrouter_lab::node::Pod], affinity_timeout_secs: Option<u32>| {
        let port = |protocol, port, target_port| ServicePort {
            protocol,
            port,
            target_port,
            node_port: None,
        };
        let spec = ServiceSpec {
            name: "default/spread".into(),
            vrf: "red".into(),
            ip: SERVICE.parse().unwrap(),
            ports: vec![
                port(L4Protocol::Tcp, 80, 9376),
                port(L4Protocol::Tcp, 443, 9377),
                port(L4Protocol::Udp, 5300, 5301),
            ],
            backends: pods.iter().map(|p| IpAddr::from(p.ipv4)).collect(),
            affinity_timeout_secs,
            external_ips: Vec::new(),
            health_check: None,
            load_balancer: false,
        };
        api.call::<serde_json::Value>(&Request::AddService { spec }).unwrap();
    };
    let set = |pods: &[&vrouter_lab::node::Pod]| set_with(pods, None);
    set(&backends);
    let service: IpAddr = SERVICE.parse().unwrap();
    let client = &a.pods[0];
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());
    // 1000 connections: every backend, on both nodes, within 20 % of an even share.
    let spread = tcp_spread(&client.ns, service, 80, 1000).unwrap();
    assert_eq!(spread.failed, 0, "{spread:?}\n{}", logs());
    assert_eq!(spread.by_backend.len(), 4, "{spread:?}");
    assert!(spread.worst_deviation(4) <= 0.2, "{spread:?}");
    // The second port (another target port) and the UDP port answer from every backend.
    let second = tcp_spread(&client.ns, service, 443, 200).unwrap();
    assert_eq!((second.failed, second.by_backend.len()), (0, 4), "{second:?}");
    let mut by_udp = std::collections::BTreeSet::new();
    for src_port in 42_000..42_100 {
        let socket = udp_client(&client.ns, src_port).unwrap();
        by_udp.insert(ask_udp(&socket, service, 5300).unwrap());
    }
    assert_eq!(by_udp.len(), 4, "{by_udp:?}");
    // Datagrams of 3000 bytes go both ways in fragments (the pods' MTU is 1500, and
    // the fabric's cuts those again for the tunnel): each fragment follows its
    // datagram's translation and backend, so every answer comes back whole.
    let mut by_big_udp = std::collections::BTreeSet::new();
    for src_port in 42_100..42_140 {
        let socket = udp_client(&client.ns, src_port).unwrap();
        let answer = ask_udp_sized(&socket, service, 5300, 3000);
        by_big_udp.insert(answer.unwrap_or_else(|e| panic!("port {src_port}: {e:#}\n{}", logs())));
    }
    assert_eq!(by_big_udp.len(), 4, "{by_big_udp:?}");
    // Open connections, each on one backend.
    let mut sessions = tcp_sessions(&client.ns, service, 80, 40).unwrap();
    let first: Vec<String> = sessions.iter_mut().map(|s| ask(s).unwrap()).collect();
    let removed = backends[3].name.clone();
    assert!(first.contains(&removed), "no session on {removed}: {first:?}");
    // Scaling down: the removed backend's connections go, every other stays where it was,
    // no new connection reaches the removed backend.
    set(&backends[..3]);
    for (s, was) in sessions.iter_mut().zip(&first) {
        let now = ask(s);
        if *was == removed {
            assert!(now.as_ref().map_or(true, |n| *n != removed), "{now:?}");
        } else {
            assert_eq!(now.as_ref().ok(), Some(was), "a connection moved off {was}");
        }
    }
    let after = tcp_spread(&client.ns, service, 80, 300).unwrap();
    assert_eq!(after.failed, 0, "{after:?}");
    assert!(!after.by_backend.contains_key(&removed), "{after:?}");
    // Scaling up with a new backend: it takes new connections, and every connection
    // still open stays on its backend.
    let mut grown = backends[..3].to_vec();
    grown.push(newcomer);
    set(&grown);
    let grown_spread = tcp_spread(&client.ns, service, 80, 200).unwrap();
    assert!(grown_spread.by_backend.contains_key(&newcomer.name), "{grown_spread:?}");
    for (s, was) in sessions.iter_mut().zip(&first).filter(|(_, was)| **was != removed) {
        assert_eq!(
            ask(s).ok().as_ref(),
            Some(was),
            "a connection moved when a backend came"
        );
    }
    // UDP: a flow whose backend goes is answered by another on its next datagram.
    let socket = udp_client(&client.ns, 43_000).unwrap();
    let before = ask_udp(&socket, service, 5300).unwrap();
    let rest: Vec<&vrouter_lab::node::Pod> = backends.iter().copied().filter(|p| p.name != before).collect();
    set(&rest);
    let next = ask_udp(&socket, service, 5300).unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    assert_ne!(next, before, "the UDP flow stayed on its removed backend");
    // sessionAffinity ClientIP: every connection of the client goes to one backend.
    set_with(&backends, Some(600));
    let sticky = tcp_spread(&client.ns, service, 80, 50).unwrap();
    assert_eq!((sticky.failed, sticky.by_backend.len()), (0, 1), "{sticky:?}");
}

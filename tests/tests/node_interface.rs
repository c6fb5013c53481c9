//! The node's own interface (`[host]`, Tungsten's vhost0) and what outside the
//! cluster reaches: the node's kernel reaches a pod and a service address, a pod
//! reaches the node; a host on the fabric reaches a node port (TCP and UDP) and an
//! external IP and a LoadBalancer's address from the pool, spread over the backends, while the node's own traffic keeps working;
//! a node port removed is the kernel's again; pods reach a host outside the cluster
//! through fabric source NAT, many connections at once, each its own port; a backend
//! that stops answering its health check is taken out within the check's time, and
//! put back when it answers again (TCP and ping checks). With two nodes and a control node, a node reaches
//! the other node's pod through the tunnel (the node's interface is advertised like a
//! pod's), and probes a backend there. The node's interface goes with the
//! vrouter and comes back with it.

use control_client::{L4Protocol, ServicePort, ServiceSpec};
use std::net::IpAddr;
use std::time::Duration;
use system_tests::{fabric_host, fabric_node, serial, wait_for};
use vrouter::api::Request;
use vrouter_lab::backends::{
    ask, ask_udp, ask_udp_sized, quick_tcp_check, tcp_sessions, tcp_spread, udp_client, NamedServers,
};
use vrouter_lab::node::{FabricLan, LabNode};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const SERVICE: &str = "198.18.100.10";
const EXTERNAL: &str = "198.19.0.10";

/// Node 1 on `lan` with its node interface in red (pods and the service range routed
/// through it), running, with pods red-1, red-2, red-3.
fn node_with_host(lan: &FabricLan) -> LabNode {
    let mut n = fabric_node(BIN, 1);
    n.add_config(
        "[host]\nvrf = \"red\"\nroutes = [\"198.18.1.0/24\", \"198.18.100.0/24\"]\nload_balancer_pool = [\"198.19.1.0/24\"]\n",
    );
    n.join(lan).unwrap();
    n.start_vrouter().unwrap();
    for i in 1..=3 {
        n.add_pod("red", 0, i, true).unwrap();
    }
    n
}

/// What the node did: its log, drops, flows and interface counters.
fn report(n: &LabNode) -> String {
    let flows: Result<serde_json::Value, _> = n.api().call(&Request::Flows {
        filter: Default::default(),
        limit: 50,
        from_index: 0,
    });
    let ifs = n
        .interfaces()
        .map(|v| v.into_iter().map(|i| (i.name, i.counters)).collect::<Vec<_>>());
    let drops = n
        .drop_stats()
        .map(|d| d.reasons.into_iter().filter(|(_, c)| *c > 0).collect::<Vec<_>>());
    format!("{}\ndrops {drops:?}\nflows {flows:?}\ninterfaces {ifs:?}", n.log())
}

/// The service: TCP 80 -> 9376 and UDP 5300 -> 5301 on `backends`, with node ports
/// 30080 and 30053 if `node_ports`, and the external IP.
fn web_service(backends: &[IpAddr], node_ports: bool) -> ServiceSpec {
    let port = |protocol, port, target_port, node_port| ServicePort {
        protocol,
        port,
        target_port,
        node_port: node_ports.then_some(node_port),
    };
    ServiceSpec {
        name: "default/web".into(),
        vrf: "red".into(),
        ip: SERVICE.parse().unwrap(),
        ports: vec![
            port(L4Protocol::Tcp, 80, 9376, 30080),
            port(L4Protocol::Udp, 5300, 5301, 30053),
        ],
        backends: backends.to_vec(),
        affinity_timeout_secs: None,
        external_ips: vec![EXTERNAL.parse().unwrap()],
        health_check: None,
        load_balancer: false,
    }
}

fn apply(n: &LabNode, spec: ServiceSpec) {
    n.api()
        .call::<serde_json::Value>(&Request::AddService { spec })
        .unwrap();
}

fn set_service(n: &LabNode, backends: &[IpAddr], node_ports: bool) {
    apply(n, web_service(backends, node_ports));
}

/// The backends the service's TCP port has taken out now.
fn down(n: &LabNode) -> Vec<IpAddr> {
    let list: Vec<vrouter::api::ServiceView> = n.api().call(&Request::Services).unwrap();
    list.into_iter()
        .find(|s| s.proto == 6 && s.port == 80)
        .map(|s| s.down)
        .unwrap_or_default()
}

#[test]
fn the_node_reaches_pods_and_services_and_pods_reach_the_node() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let n = node_with_host(&lan);
    let (a, b) = (&n.pods[0], &n.pods[1]);
    set_service(&n, &[b.ipv4.into()], false);
    let _backend = NamedServers::start(&b.ns, &b.name, &[9376], &[]).unwrap();
    let _kubelet = NamedServers::start(&n.ns, "node", &[10250], &[]).unwrap();
    let logs = || report(&n);
    // The node's kernel: a pod (ping and TCP) and the service's cluster IP.
    assert!(
        n.ns.succeeds("ping", &["-c", "1", "-W", "2", &b.ipv4.to_string()]),
        "{}",
        logs()
    );
    let direct = tcp_spread(&n.ns, b.ipv4.into(), 9376, 5).unwrap();
    assert_eq!(direct.by_backend.get("red-2"), Some(&5), "{direct:?}\n{}", logs());
    let through = tcp_spread(&n.ns, SERVICE.parse().unwrap(), 80, 5).unwrap();
    assert_eq!(through.by_backend.get("red-2"), Some(&5), "{through:?}");
    // A pod reaches the node (its kubelet, say) at the node's fabric address.
    let to_node = tcp_spread(&a.ns, n.fabric_ip().into(), 10250, 5).unwrap();
    assert_eq!(to_node.by_backend.get("node"), Some(&5), "{to_node:?}\n{}", logs());
    // The interface is the node's: the API does not detach it.
    let refused = n.api().call::<serde_json::Value>(&Request::RemoveInterface {
        name: "vhost0-vr".into(),
    });
    assert!(refused.is_err(), "{refused:?}");
    // It goes with the vrouter, and comes back with it.
    let mut n = n;
    n.stop_vrouter().unwrap();
    assert!(!n.ns.succeeds("ip", &["link", "show", "vhost0"]), "vhost0 left behind");
    n.start_vrouter().unwrap();
    let again = tcp_spread(&n.ns, SERVICE.parse().unwrap(), 80, 2).unwrap();
    assert_eq!(
        again.by_backend.get("red-2"),
        Some(&2),
        "after a restart: {again:?}\n{}",
        report(&n)
    );
}

#[test]
fn a_node_port_and_an_external_ip_are_reached_from_outside_the_cluster() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let n = node_with_host(&lan);
    let outside = fabric_host(&lan, 9);
    // The fabric routes the external IP to the node (as a BGP speaker or the SDN
    // gateway would).
    outside
        .ip(&[
            "route",
            "add",
            &format!("{EXTERNAL}/32"),
            "via",
            &n.fabric_ip().to_string(),
        ])
        .unwrap();
    let backends = &n.pods[1..];
    let _servers: Vec<NamedServers> = backends
        .iter()
        .map(|p| NamedServers::start(&p.ns, &p.name, &[9376], &[5301]).unwrap())
        .collect();
    set_service(
        &n,
        &backends.iter().map(|p| IpAddr::from(p.ipv4)).collect::<Vec<_>>(),
        true,
    );
    let node_ip: IpAddr = n.fabric_ip().into();
    let logs = || report(&n);
    let by_node_port = tcp_spread(&outside, node_ip, 30080, 60).unwrap();
    assert_eq!(by_node_port.failed, 0, "{by_node_port:?}\n{}", logs());
    assert_eq!(by_node_port.by_backend.len(), 2, "{by_node_port:?}");
    let by_external = tcp_spread(&outside, EXTERNAL.parse().unwrap(), 80, 60).unwrap();
    assert_eq!(by_external.failed, 0, "{by_external:?}\n{}", logs());
    assert_eq!(by_external.by_backend.len(), 2, "{by_external:?}");
    let socket = udp_client(&outside, 41_000).unwrap();
    let answer = ask_udp(&socket, node_ip, 30053).unwrap_or_else(|e| panic!("{e:#}\n{}", logs()));
    assert!(answer.starts_with("red-"), "{answer}");
    // The node's own traffic still goes to its kernel.
    assert!(outside.succeeds("ping", &["-c", "1", "-W", "2", &node_ip.to_string()]));
    // Without node ports the port is the kernel's again: it refuses the connection.
    set_service(
        &n,
        &backends.iter().map(|p| IpAddr::from(p.ipv4)).collect::<Vec<_>>(),
        false,
    );
    let refused = tcp_spread(&outside, node_ip, 30080, 1).unwrap();
    assert_eq!(refused.failed, 1, "{refused:?}");
    assert!(
        refused.first_error.as_deref().is_some_and(|e| e.contains("refused")),
        "the kernel answers, not a timeout: {refused:?}"
    );
    let still = tcp_spread(&outside, EXTERNAL.parse().unwrap(), 80, 5).unwrap();
    assert_eq!(still.failed, 0, "the external IP stays: {still:?}");
    // A LoadBalancer service gets its address from the pool, which the fabric routes
    // to the node, and is reached there.
    outside
        .ip(&["route", "add", "198.19.1.0/24", "via", &n.fabric_ip().to_string()])
        .unwrap();
    let mut lb = web_service(
        &backends.iter().map(|p| IpAddr::from(p.ipv4)).collect::<Vec<_>>(),
        false,
    );
    lb.name = "default/lb".into();
    lb.ip = "198.18.100.20".parse().unwrap();
    lb.external_ips.clear();
    lb.load_balancer = true;
    apply(&n, lb);
    let list: Vec<vrouter::api::ServiceView> = n.api().call(&Request::Services).unwrap();
    let mut given: Vec<IpAddr> = list
        .iter()
        .filter(|s| s.name == "default/lb" && s.proto == 6)
        .map(|s| s.ip)
        .collect();
    given.sort();
    assert_eq!(
        given,
        [
            "198.18.100.20".parse::<IpAddr>().unwrap(),
            "198.19.1.1".parse().unwrap()
        ]
    );
    let by_lb = tcp_spread(&outside, given[1], 80, 20).unwrap();
    assert_eq!((by_lb.failed, by_lb.by_backend.len()), (0, 2), "{by_lb:?}\n{}", logs());
}

#[test]
fn pods_reach_a_host_outside_the_cluster_through_source_nat() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let n = node_with_host(&lan);
    let outside = fabric_host(&lan, 9);
    let _server = NamedServers::start(&outside, "outside", &[8080], &[5301]).unwrap();
    let far: IpAddr = "198.18.0.9".parse().unwrap();
    // 100 connections open at once from each of two pods (the same source ports
    // among them, quite likely), every one answered.
    let mut sessions = Vec::new();
    for pod in &n.pods[..2] {
        sessions.extend(tcp_sessions(&pod.ns, far, 8080, 100).unwrap_or_else(|e| panic!("{e:#}\n{}", report(&n))));
    }
    for s in &mut sessions {
        assert_eq!(ask(s).unwrap(), "outside");
    }
    // The host sees them all from the node's address, each from its own port of the
    // range.
    let ss = outside
        .exec("ss", &["-Htn", "state", "established", "( sport = :8080 )"])
        .unwrap();
    let peers: Vec<String> = String::from_utf8_lossy(&ss.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    let ports: std::collections::BTreeSet<u16> = peers
        .iter()
        .map(|p| {
            let (addr, port) = p.rsplit_once(':').unwrap();
            assert_eq!(addr, n.fabric_ip().to_string(), "{p}");
            port.parse().unwrap()
        })
        .collect();
    assert_eq!((peers.len(), ports.len()), (200, 200), "{peers:?}");
    assert!(ports.iter().all(|p| (57_000..=60_999).contains(p)), "{ports:?}");
    // The snat view counts them.
    let view: vrouter::api::SnatView = n.api().call(&Request::Snat).unwrap();
    let tcp = view.tcp.clone().unwrap();
    assert_eq!(
        (tcp.connections, tcp.ports_in_use, tcp.busiest_destination),
        (200, 200, 200),
        "{view:?}"
    );
    assert_eq!((view.address, view.exhausted), (Some(n.fabric_ip()), 0));
    drop(sessions);
    // UDP too.
    let socket = udp_client(&n.pods[0].ns, 42_000).unwrap();
    assert_eq!(
        ask_udp(&socket, far, 5301).unwrap_or_else(|e| panic!("{e:#}\n{}", report(&n))),
        "outside"
    );
    // Datagrams larger than the MTU: the pod's fragments leave translated, and the
    // host's fragmented answer is steered to the vrouter fragment by fragment (only
    // the first carries the port) and reaches the pod whole.
    for size in [3000, 8000] {
        assert_eq!(
            ask_udp_sized(&socket, far, 5301, size).unwrap_or_else(|e| panic!("{size} bytes: {e:#}\n{}", report(&n))),
            "outside"
        );
    }
    // Each datagram went in 3 and 6 fragments each way: the later ones followed.
    let stats: vrouter::api::FlowStatsView = n.api().call(&Request::FlowStats).unwrap();
    assert!(stats.fragments.followed >= 2 * (2 + 5), "{stats:?}");
    // A port the host does not serve: its port unreachable, about the translated
    // datagram, reaches the pod's socket about the datagram it sent.
    let refused = udp_client(&n.pods[0].ns, 42_001).unwrap();
    refused.connect((far, 5999)).unwrap();
    refused.send(b"who").unwrap();
    let answer = refused.recv(&mut [0u8; 64]);
    assert_eq!(
        answer.as_ref().map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{answer:?}\n{}",
        report(&n)
    );
    // Pods ping outside the cluster (ICMP echo, its identifier translated), and the
    // node still pings with an identifier of the range (the reply no pod awaits is
    // handed to its kernel).
    let far_text = far.to_string();
    for pod in &n.pods[..2] {
        let ping = pod.ns.exec("ping", &["-c", "2", "-i", "0.2", "-W", "2", &far_text]);
        assert!(ping.is_ok(), "{}: {ping:?}\n{}", pod.name, report(&n));
    }
    let view: vrouter::api::SnatView = n.api().call(&Request::Snat).unwrap();
    assert_eq!(view.icmp.as_ref().map(|i| i.connections), Some(2), "{view:?}");
    let own =
        n.ns.exec("ping", &["-c", "2", "-i", "0.2", "-W", "2", "-e", "62000", &far_text]);
    assert!(own.is_ok(), "the node's own ping: {own:?}\n{}", report(&n));
}

#[test]
fn a_backend_that_stops_answering_is_taken_out_and_put_back() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let n = node_with_host(&lan);
    let (b, c) = (&n.pods[1], &n.pods[2]);
    let start = |p: &vrouter_lab::node::Pod| NamedServers::start(&p.ns, &p.name, &[9376], &[]).unwrap();
    let _b_server = start(b);
    let c_server = start(c);
    let mut spec = web_service(&[b.ipv4.into(), c.ipv4.into()], false);
    // Probed every second, one second to answer, out after two failures in a row.
    spec.health_check = Some(quick_tcp_check());
    apply(&n, spec);
    let client = &n.pods[0];
    let service: IpAddr = SERVICE.parse().unwrap();
    let both = tcp_spread(&client.ns, service, 80, 40).unwrap();
    assert_eq!((both.failed, both.by_backend.len()), (0, 2), "{both:?}");
    // c's server stops: out within two intervals and a timeout (and a little for the
    // probes' phase), then no connection goes there.
    drop(c_server);
    let c_ip = IpAddr::from(c.ipv4);
    let taken_out = wait_for(Duration::from_secs(15), || down(&n).contains(&c_ip));
    let taken_out = taken_out.unwrap_or_else(|| panic!("never taken out\n{}", report(&n)));
    eprintln!("backend taken out {taken_out:?} after its server stopped");
    // Two intervals and a timeout make 3 s; a loaded machine gets some slack.
    assert!(taken_out < Duration::from_secs(8), "taken out after {taken_out:?}");
    let only_b = tcp_spread(&client.ns, service, 80, 40).unwrap();
    assert_eq!(only_b.failed, 0, "{only_b:?}");
    assert_eq!(only_b.by_backend.keys().collect::<Vec<_>>(), ["red-2"], "{only_b:?}");
    // It answers again: back within an interval or two.
    let _c_server = start(c);
    let back = wait_for(Duration::from_secs(10), || down(&n).is_empty());
    assert!(back.is_some(), "never put back\n{}", report(&n));
    let again = tcp_spread(&client.ns, service, 80, 40).unwrap();
    assert_eq!((again.failed, again.by_backend.len()), (0, 2), "{again:?}");
}

#[test]
fn a_node_reaches_and_probes_a_pod_on_another_node() {
    const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");
    const PEER: &str = system_tests::CONTROL_NODE;
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let _peer = system_tests::control_node(&lan, LAB);
    let nodes: Vec<LabNode> = (1..=2u8)
        .map(|k| {
            let mut n = fabric_node(BIN, k);
            n.add_config(&format!(
                "[host]\nvrf = \"red\"\nroutes = [\"198.18.1.0/24\", \"198.18.100.0/24\"]\n[xmpp]\nservers = [\"{PEER}\"]\nhost = \"node-{k}\"\n"
            ));
            n.join(&lan).unwrap();
            n.start_vrouter().unwrap();
            n.add_pod("red", 0, k, true).unwrap();
            n
        })
        .collect();
    let remote = &nodes[1].pods[0];
    let server = NamedServers::start(&remote.ns, &remote.name, &[9376], &[]).unwrap();
    // Node 1's kernel reaches the pod on node 2 once the routes are learned (both
    // ways: node 2 learns node 1's address from its node interface's route).
    let reached = wait_for(Duration::from_secs(40), || {
        tcp_spread(&nodes[0].ns, remote.ipv4.into(), 9376, 1).is_ok_and(|s| s.failed == 0)
    });
    assert!(
        reached.is_some(),
        "node 1 never reached 2:{}\n{}\n{}",
        remote.name,
        report(&nodes[0]),
        report(&nodes[1])
    );
    // A service on node 1 whose only backend is that pod, probed from node 1.
    let mut spec = web_service(&[remote.ipv4.into()], false);
    spec.external_ips.clear();
    // Probed every second, one second to answer, out after two failures in a row.
    spec.health_check = Some(quick_tcp_check());
    apply(&nodes[0], spec);
    let through = tcp_spread(&nodes[0].pods[0].ns, SERVICE.parse().unwrap(), 80, 10).unwrap();
    assert_eq!(through.by_backend.get(&remote.name), Some(&10), "{through:?}");
    // Its probes arrive (three more connections than the service's ten) and it stays in.
    let before = server.accepted();
    let probed = wait_for(Duration::from_secs(15), || server.accepted() >= before + 3);
    assert!(
        probed.is_some(),
        "no probes reached the remote backend\n{}",
        report(&nodes[0])
    );
    assert!(
        down(&nodes[0]).is_empty(),
        "the remote backend answers its probes\n{}",
        report(&nodes[0])
    );
    drop(server);
    let out = wait_for(Duration::from_secs(15), || {
        down(&nodes[0]) == [IpAddr::from(remote.ipv4)]
    });
    assert!(
        out.is_some(),
        "the remote backend was never taken out\n{}",
        report(&nodes[0])
    );
}

#[test]
fn a_backend_that_stops_answering_pings_is_taken_out_and_put_back() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let n = node_with_host(&lan);
    let (b, c) = (&n.pods[1], &n.pods[2]);
    let mut spec = web_service(&[b.ipv4.into(), c.ipv4.into()], false);
    spec.health_check = Some(control_client::HealthCheck {
        kind: control_client::HealthCheckKind::Icmp,
        ..quick_tcp_check()
    });
    apply(&n, spec);
    let c_ip = IpAddr::from(c.ipv4);
    let ignore = |on: bool| {
        let value = format!("net.ipv4.icmp_echo_ignore_all={}", u8::from(on));
        assert!(c.ns.succeeds("sysctl", &["-qw", &value]));
    };
    ignore(true);
    let out = wait_for(Duration::from_secs(15), || down(&n) == [c_ip]);
    assert!(
        out.is_some(),
        "a backend that ignores pings was never taken out\n{}",
        report(&n)
    );
    assert!(!down(&n).contains(&IpAddr::from(b.ipv4)), "the one that answers stays");
    ignore(false);
    let back = wait_for(Duration::from_secs(15), || down(&n).is_empty());
    assert!(back.is_some(), "never put back\n{}", report(&n));
}

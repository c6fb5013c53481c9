//! The lab's services section: on node 1 (whose node interface is in red), a service
//! over red pods on both nodes takes 1000 connections (the spread printed), a node
//! port is reached from a host outside the cluster, a red pod reaches that host
//! through fabric source NAT, the node reaches pods and the service, and a backend
//! whose server stops is taken out by its health check.

use super::backends::{tcp_spread, NamedServers, Spread};
use super::mark;
use super::node::{FabricLan, LabNode, Pod};
use control_client::{L4Protocol, ServicePort, ServiceSpec};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use vrouter::api::Request;

/// The service address.
const SERVICE: &str = "198.18.100.10";
/// The node-port service's address.
const NODE_PORT_SERVICE: &str = "198.18.100.11";

/// The `[host]` section the lab's nodes get.
pub(super) const HOST_CONFIG: &str = "[host]\nvrf = \"red\"\nroutes = [\"198.18.1.0/24\", \"198.18.100.0/24\"]\n";

fn service(name: &str, ip: &str, backends: &[&Pod], node_port: Option<u16>) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        vrf: "red".into(),
        ip: ip.parse().expect("an address"),
        ports: vec![ServicePort {
            protocol: L4Protocol::Tcp,
            port: 80,
            target_port: 9376,
            node_port,
        }],
        backends: backends.iter().map(|p| IpAddr::from(p.ipv4)).collect(),
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: Some(super::backends::quick_tcp_check()),
        load_balancer: false,
    }
}

fn spread_line(s: &Spread) -> String {
    let parts: Vec<String> = s.by_backend.iter().map(|(b, n)| format!("{b} {n}")).collect();
    format!("{} (failed {})", parts.join(", "), s.failed)
}

/// Runs the section; returns what went other than expected.
pub(super) fn run(nodes: &[LabNode], lan: &FabricLan) -> anyhow::Result<Vec<String>> {
    let mut wrong = Vec::new();
    let mut check = |what: String, ok: bool| {
        println!("   {what}: {}", mark(ok));
        if !ok {
            wrong.push(format!("services: {what}"));
        }
    };
    let red: Vec<&Pod> = nodes
        .iter()
        .flat_map(|n| n.pods.iter().filter(|p| p.vrf == "red"))
        .collect();
    let local: Vec<&Pod> = nodes[0].pods.iter().filter(|p| p.vrf == "red").collect();
    let servers = red
        .iter()
        .map(|p| NamedServers::start(&p.ns, &p.name, &[9376], &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let api = nodes[0].api();
    let _: serde_json::Value = api.call(&Request::AddService {
        spec: service("default/web", SERVICE, &red, None),
    })?;
    println!("\n== services on node 1: {SERVICE}:80 -> :9376 on every red pod (both nodes), health-checked");
    let client = local[0];
    let spread = tcp_spread(&client.ns, SERVICE.parse()?, 80, 1000)?;
    let even = spread.worst_deviation(red.len());
    println!("   1000 connections from 1:{}: {}", client.name, spread_line(&spread));
    check(
        format!(
            "every backend within 20 % of an even share (worst {:.0} %)",
            even * 100.0
        ),
        spread.failed == 0 && even <= 0.2,
    );
    // The node itself: a pod on the other node and the service, through vhost0.
    let remote = red.iter().find(|p| !local.iter().any(|l| l.name == p.name)).copied();
    if let Some(remote) = remote {
        let s = tcp_spread(&nodes[0].ns, remote.ipv4.into(), 9376, 3)?;
        check(
            format!("node 1 -> 2:{} (its node interface, the tunnel)", remote.name),
            s.failed == 0,
        );
    }
    let s = tcp_spread(&nodes[0].ns, SERVICE.parse()?, 80, 3)?;
    if let Some(e) = &s.first_error {
        // Seen once in a lab run (1 of 3 failed), never in the system test: the
        // error says which step failed.
        println!("   node 1 -> {SERVICE}:80: {} of 3 failed, first: {e}", s.failed);
    }
    check(
        format!("node 1 -> {SERVICE}:80 (the service from the node)"),
        s.failed == 0,
    );
    // From outside: a host on the fabric reaches a node port of node 1 (its own pods
    // behind it), and a red pod reaches that host through source NAT.
    let outside = lan.add_host(9)?;
    let _: serde_json::Value = api.call(&Request::AddService {
        spec: service("default/node-port", NODE_PORT_SERVICE, &local, Some(30080)),
    })?;
    let node_ip: IpAddr = nodes[0].fabric_ip().into();
    let s = tcp_spread(&outside, node_ip, 30080, 100)?;
    println!(
        "   100 connections from outside to {node_ip}:30080: {}",
        spread_line(&s)
    );
    check(
        "a node port from outside the cluster".into(),
        s.failed == 0 && s.by_backend.len() == local.len(),
    );
    let outside_server = NamedServers::start(&outside, "outside", &[8080], &[])?;
    let s = tcp_spread(&client.ns, "198.18.0.9".parse()?, 8080, 20)?;
    let snat: vrouter::api::SnatView = api.call(&Request::Snat)?;
    println!(
        "   1:{} -> outside 198.18.0.9:8080 from {} (source NAT), 20 connections: {}",
        client.name,
        snat.address.map_or("?".into(), |a| a.to_string()),
        spread_line(&s)
    );
    let from_node = snat.address == Some(nodes[0].fabric_ip());
    check(
        "a host outside the cluster through source NAT, from the node's address".into(),
        s.failed == 0 && from_node,
    );
    drop(outside_server);
    // Health: a local backend's server stops; its check takes it out.
    let victim = local.last().copied().expect("a red pod on node 1");
    let index = red.iter().position(|p| p.name == victim.name).expect("a backend");
    let mut servers = servers;
    drop(servers.remove(index));
    let stopped = Instant::now();
    let mut taken_out = None;
    while stopped.elapsed() < Duration::from_secs(15) {
        let list: Vec<vrouter::api::ServiceView> = api.call(&Request::Services)?;
        if list
            .iter()
            .any(|s| s.name == "default/web" && s.down.contains(&IpAddr::from(victim.ipv4)))
        {
            taken_out = Some(stopped.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check(
        format!(
            "1:{}'s server stopped: taken out by its health check ({})",
            victim.name,
            taken_out.map_or("never".into(), |t| format!("after {:.1} s", t.as_secs_f64()))
        ),
        taken_out.is_some(),
    );
    let s = tcp_spread(&client.ns, SERVICE.parse()?, 80, 100)?;
    println!("   100 connections then: {}", spread_line(&s));
    check(
        "none to the stopped backend".into(),
        s.failed == 0 && !s.by_backend.contains_key(&victim.name),
    );
    Ok(wrong)
}

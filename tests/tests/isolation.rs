//! Namespace isolation end to end (the seed's section 3.2 and its checks): two
//! nodes, client pods in the cluster network and secret pods in an isolated
//! namespace's network, built from `k8s/scenarios/isolation.yaml` with
//! `vrouter apply --floating-pool`. Pods reach each other across nodes (9.2); nothing
//! outside the isolated namespace reaches its pods, at their addresses or at their
//! floating addresses (9.5, rule b); they reach each other (rule a) and the other
//! namespaces' pods from their floating addresses (9.6, rule c), and a service of the
//! cluster network, on their node and across the fabric (rule d); the others reach
//! them through their service, on both nodes (rule e).

use control_client::{RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use std::net::IpAddr;
use std::path::Path;
use system_tests::{route_to_pod, serial, two_started_nodes};
use vrouter::api::{FloatingIpView, Request};
use vrouter_lab::backends::{spawn_ask, tcp_spread, NamedServers};
use vrouter_lab::k8s_section;
use vrouter_lab::node::{FabricLan, LabNode, Pod};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const POOL: &str = "198.18.254.0/24";
const SERVICE: &str = "198.18.100.20";
/// The cluster network's service (its backend: client-1, port 8080).
const CLUSTER_SERVICE: &str = "198.18.100.21";

fn apply(node: &LabNode) {
    k8s_section::apply(
        Path::new(BIN),
        node,
        "isolation.yaml",
        &["--prune", "--floating-pool", POOL],
    )
    .unwrap();
}

/// Routes `node`'s cluster network to the floating address `fip` of `remote`'s pod
/// `pod` (what the control node would reflect from the pod's node).
fn route_to_floating(node: &LabNode, remote: &LabNode, pod: usize, fip: IpAddr) {
    let label = remote
        .interfaces()
        .unwrap()
        .into_iter()
        .find(|i| i.name == remote.pods[pod].host_if)
        .and_then(|i| i.label)
        .unwrap();
    let route = RouteSpec {
        vrf: "cluster-network".into(),
        prefix: fip.into(),
        target: RouteTarget::Tunnel {
            remote: remote.fabric_ip(),
            label,
            encaps: vec![Encap::MplsOverUdp],
            mac: None,
        },
    };
    let _: serde_json::Value = node.api().call(&Request::AddRoute { route }).unwrap();
}

#[test]
fn an_isolated_namespace_is_reached_only_through_its_services_and_reaches_out() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (mut a, mut b) = two_started_nodes(BIN, &lan);
    // client-1 198.18.1.2 and secret-1 198.18.2.2 on node 1; client-2 198.18.1.3 and
    // secret-2 198.18.2.3 on node 2.
    a.add_pod("cluster-network", 0, 1, true).unwrap();
    a.add_pod("iso-vn", 1, 1, true).unwrap();
    b.add_pod("cluster-network", 0, 2, true).unwrap();
    b.add_pod("iso-vn", 1, 2, true).unwrap();
    for pod in 0..2 {
        route_to_pod(&a, &b, pod, Encap::MplsOverUdp, 0);
        route_to_pod(&b, &a, pod, Encap::MplsOverUdp, 0);
    }
    apply(&a);
    apply(&b);
    let fip = |n: &LabNode| -> IpAddr {
        let list: Vec<FloatingIpView> = n.api().call(&Request::FloatingIps).unwrap();
        assert_eq!(list.len(), 1, "one isolated pod per node: {list:?}");
        assert!(list[0].name.starts_with("iso/secret-"));
        list[0].ip
    };
    let (fip1, fip2) = (fip(&a), fip(&b));
    route_to_floating(&a, &b, 1, fip2);
    route_to_floating(&b, &a, 1, fip1);
    let (client1, secret1, client2, secret2): (&Pod, &Pod, &Pod, &Pod) =
        (&a.pods[0], &a.pods[1], &b.pods[0], &b.pods[1]);
    let names = [
        (client1, "client-1"),
        (secret1, "secret-1"),
        (client2, "client-2"),
        (secret2, "secret-2"),
    ];
    let _servers: Vec<NamedServers> = names
        .iter()
        .map(|(p, name)| NamedServers::start(&p.ns, name, &[22, 8080, 9376], &[]).unwrap())
        .collect();
    let ip = |p: &Pod| IpAddr::from(p.ipv4);
    let checks = [
        (
            "9.2: client-1 reaches client-2",
            client1,
            ip(client2),
            22,
            Some("client-2"),
        ),
        ("9.5: client-1 cannot reach secret-1", client1, ip(secret1), 22, None),
        ("9.5: client-2 cannot reach secret-1", client2, ip(secret1), 22, None),
        (
            "rule b: client-1 cannot reach secret-1's floating IP",
            client1,
            fip1,
            22,
            None,
        ),
        (
            "rule b: client-1 cannot reach secret-2's floating IP",
            client1,
            fip2,
            22,
            None,
        ),
        (
            "rule a: secret-1 reaches secret-2",
            secret1,
            ip(secret2),
            22,
            Some("secret-2"),
        ),
        (
            "9.6: secret-1 reaches client-1",
            secret1,
            ip(client1),
            22,
            Some("client-1"),
        ),
        (
            "9.6: secret-1 reaches client-2",
            secret1,
            ip(client2),
            22,
            Some("client-2"),
        ),
        (
            "9.6: secret-2 reaches client-1",
            secret2,
            ip(client1),
            22,
            Some("client-1"),
        ),
    ];
    let probes: Vec<_> = checks
        .iter()
        .map(|(_, from, dst, port, _)| spawn_ask(&from.ns, *dst, *port, false))
        .collect();
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());
    let mut wrong = Vec::new();
    for (probe, (what, _, _, _, want)) in probes.into_iter().zip(checks.iter()) {
        let got = probe.join().unwrap();
        let ok = match want {
            Some(name) => got.as_deref().ok() == Some(*name),
            None => got.is_err(),
        };
        if !ok {
            wrong.push(format!("{what}: got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), logs());
    // Rule e: both nodes' clients reach both secret pods through the service.
    let service: IpAddr = SERVICE.parse().unwrap();
    for client in [client1, client2] {
        let spread = tcp_spread(&client.ns, service, 80, 60).unwrap();
        assert_eq!(spread.failed, 0, "{spread:?}\n{}", logs());
        assert_eq!(spread.by_backend.len(), 2, "{spread:?}");
    }
    // Rule d: both secret pods reach the cluster network's service (its backend on
    // node 1: from secret-1 on its node, from secret-2 across the fabric), from their
    // floating addresses, and the replies come back from the service's address.
    let cluster_service: IpAddr = CLUSTER_SERVICE.parse().unwrap();
    for secret in [secret1, secret2] {
        let spread = tcp_spread(&secret.ns, cluster_service, 80, 20).unwrap();
        assert_eq!(
            spread.failed,
            0,
            "rule d from {}: {spread:?}\n{}",
            secret.ns.name(),
            logs()
        );
        assert_eq!(spread.by_backend.keys().collect::<Vec<_>>(), ["client-1"], "{spread:?}");
    }
    // The flow view names both ends' translation on node 2: to client-1:8080, from
    // secret-2's floating address.
    let flows: Vec<vrouter::api::FlowView> = b
        .api()
        .call(&Request::Flows {
            filter: Default::default(),
            limit: 1000,
            from_index: 0,
        })
        .unwrap();
    let both = flows
        .iter()
        .filter_map(|f| f.nat.as_ref().filter(|_| f.dst == cluster_service))
        .find(|n| n.source.is_some())
        .unwrap_or_else(|| panic!("no flow to the cluster service with both ends translated: {flows:?}"));
    assert_eq!((both.ip, both.port), (ip(client1), 8080));
    assert_eq!(both.source.map(|s| s.ip()), Some(fip2));
    // Node 2's service view counts those connections for the cluster service,
    // though their flows are keyed in secret-2's own VRF. (Each try opens new ones:
    // closed connections' flows leave the table.)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        tcp_spread(&secret2.ns, cluster_service, 80, 5).unwrap();
        let services: Vec<vrouter::api::ServiceView> = b.api().call(&Request::Services).unwrap();
        let counted = services.iter().find(|s| s.ip == cluster_service && s.flows > 0);
        if let Some(s) = counted {
            assert!(s.packets > 0 && s.bytes > 0, "{s:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node 2 counts no flow of the cluster service: {services:?}"
        );
    }
    // So do the flow records (`flow watch`, IPFIX's post-NAT fields), once the aging
    // pass (each second) has made them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let seen: vrouter::api::FlowRecordsView = b
            .api()
            .call(&Request::FlowRecords {
                after: 0,
                limit: 10_000,
            })
            .unwrap();
        let recorded = seen
            .records
            .iter()
            .filter_map(|r| r.nat.as_ref().filter(|_| r.dst == cluster_service))
            .find(|n| n.source.is_some());
        if let Some(n) = recorded {
            assert_eq!(
                (n.ip, n.port, n.source.map(|s| s.ip())),
                (ip(client1), 8080, Some(fip2))
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no flow record of a flow to the cluster service with both ends translated: {seen:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

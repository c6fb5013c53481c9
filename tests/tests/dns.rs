//! DNS for pods (the seed's 4.6) end to end: two nodes apply `k8s/scenarios/dns.yaml`
//! with `--dns-hosts`; kube-dns is dnsmasq (a real DNS server) in a pod on each node,
//! behind the kube-dns service (UDP and TCP 53) that the vrouters balance. A pod of
//! the default namespace (node 1) and a pod of an isolated namespace (node 2, through
//! its floating IP: rule d) resolve services of other namespaces; 10,000 lookups, each
//! an A and an AAAA query sent back to back from one new socket (what glibc's
//! resolver does, and what loses a query to connection-tracking races elsewhere),
//! all answered, over both kube-dns backends (none lost to a full per-port flow share
//! either: the test sizes the table for them, and `dropstats` shows `flow_limit`
//! when a pod's lookups outgrow its share).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use system_tests::{fabric_node_with_flows, serial, wait_for};
use vrouter::api::{InterfaceView, Request};
use vrouter_lab::dns::{lookups, resolve, KubeDns};
use vrouter_lab::k8s_section;
use vrouter_lab::node::{FabricLan, LabNode};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");
const PEER: &str = system_tests::CONTROL_NODE;
const KUBE_DNS: &str = "198.18.100.10";
const WEB: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 50);
const CART: Ipv4Addr = Ipv4Addr::new(198, 18, 100, 51);
const LOOKUPS: u32 = 10_000;
/// How long a lookup waits for both answers: glibc's resolver timeout (the
/// five-second timeouts users see are this). A query lost on the way never comes;
/// one late on a loaded machine does.
const RESOLVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Packets node `n`'s port `name` sent to its pod.
fn delivered(node: &LabNode, name: &str) -> u64 {
    let list: Vec<InterfaceView> = node.api().call(&Request::Interfaces).unwrap();
    list.iter()
        .find(|i| i.name == name)
        .map_or(0, |i| i.counters.tx_packets)
}

#[test]
fn pods_resolve_services_of_other_namespaces_and_parallel_a_and_aaaa_queries_never_time_out() {
    let _machine = serial();
    let lan = FabricLan::new().expect("fabric LAN");
    let _peer = system_tests::control_node(&lan, LAB);
    let mut nodes: Vec<LabNode> = (1..=2u8)
        .map(|n| {
            // Each lookup is a flow of its own (a new source port) and stays for the
            // idle timeout: the client's port holds 10,000 of them, more than the
            // default per-port share of a 64K table (an eighth).
            let flows = vrouter::flows::FlowConfig {
                entries: 1 << 18,
                ..Default::default()
            };
            let mut node = fabric_node_with_flows(BIN, n, flows);
            node.add_config(&system_tests::xmpp_section(PEER, n));
            node.join(&lan).expect("joining the fabric");
            node.start_vrouter().expect("starting the vrouter");
            node
        })
        .collect();
    // Node 1: the default namespace's client (198.18.1.2) and kube-dns-1 (.40);
    // node 2: kube-dns-2 (.41) and the isolated namespace's client (198.18.2.3).
    nodes[0].add_pod("cluster-network", 0, 1, true).unwrap();
    nodes[0].add_pod("cluster-network", 0, 39, true).unwrap();
    nodes[1].add_pod("cluster-network", 0, 40, true).unwrap();
    nodes[1].add_pod("shop-vn", 1, 2, true).unwrap();
    let hosts = tempfile::tempdir().unwrap();
    let hosts_file = hosts.path().join("hosts");
    for node in &nodes {
        let file = hosts_file.display().to_string();
        let args = ["--prune", "--floating-pool", "198.18.254.0/24", "--dns-hosts", &file];
        k8s_section::apply(Path::new(BIN), node, "dns.yaml", &args).expect("vrouter apply");
    }
    let written = std::fs::read_to_string(&hosts_file).unwrap();
    assert!(
        written.contains("198.18.100.51 cart.shop.svc.cluster.local\n"),
        "{written}"
    );
    let _dns = [
        KubeDns::start(&nodes[0].pods[1].ns, Ipv4Addr::new(198, 18, 1, 40), &hosts_file).expect("kube-dns-1"),
        KubeDns::start(&nodes[1].pods[0].ns, Ipv4Addr::new(198, 18, 1, 41), &hosts_file).expect("kube-dns-2"),
    ];
    let server = SocketAddr::new(KUBE_DNS.parse::<IpAddr>().unwrap(), 53);
    let logs = || {
        let drops = |n: &LabNode| {
            serde_json::to_string(&n.api().call::<serde_json::Value>(&Request::DropStats).unwrap()).unwrap()
        };
        format!(
            "node 1 drops {}\nnode 2 drops {}\nnode 1:\n{}\nnode 2:\n{}",
            drops(&nodes[0]),
            drops(&nodes[1]),
            nodes[0].log(),
            nodes[1].log()
        )
    };
    let (default_pod, isolated_pod) = (&nodes[0].pods[0].ns, &nodes[1].pods[1].ns);
    // Each client resolves the other namespace's service (once the routes to the
    // other node's pods, and the isolated pod's floating IP's, are there): 16
    // lookups in a row, each from a new socket, so that both kube-dns backends
    // answered (one answer proves only the backend it was balanced to).
    let found = |pod, name: &str, want: Ipv4Addr| {
        lookups(pod, server, name, want, 16, Duration::from_secs(1))
            .is_ok_and(|run| run.timeouts == 0 && run.wrong == 0)
    };
    let reached = wait_for(Duration::from_secs(40), || {
        found(default_pod, "cart.shop.svc.cluster.local", CART)
    });
    assert!(
        reached.is_some(),
        "{:?}\n{}",
        resolve(
            default_pod,
            server,
            "cart.shop.svc.cluster.local",
            Duration::from_secs(1)
        ),
        logs()
    );
    let reached = wait_for(Duration::from_secs(40), || {
        found(isolated_pod, "web.default.svc.cluster.local", WEB)
    });
    assert!(reached.is_some(), "the isolated pod never resolved\n{}", logs());
    let unknown = resolve(
        default_pod,
        server,
        "nothing.default.svc.cluster.local",
        Duration::from_secs(1),
    )
    .unwrap();
    assert_eq!((unknown.rcode, unknown.v4.len()), (3, 0), "no such name");
    // kube-dns's TCP port too.
    let tcp = vrouter_lab::http::connect(default_pod, server, Duration::from_secs(2));
    assert!(tcp.is_ok(), "TCP 53: {tcp:?}");
    // Many lookups, A and AAAA at once from one socket each.
    let before = [
        delivered(&nodes[0], &nodes[0].pods[1].host_if),
        delivered(&nodes[1], &nodes[1].pods[0].host_if),
    ];
    let run = lookups(
        default_pod,
        server,
        "web.default.svc.cluster.local",
        WEB,
        LOOKUPS,
        RESOLVER_TIMEOUT,
    )
    .unwrap();
    eprintln!("{run:?}");
    assert_eq!(
        (run.lookups, run.timeouts, run.wrong),
        (LOOKUPS, 0, 0),
        "{run:?}\n{}",
        logs()
    );
    let run = lookups(
        isolated_pod,
        server,
        "web.default.svc.cluster.local",
        WEB,
        LOOKUPS / 5,
        RESOLVER_TIMEOUT,
    )
    .unwrap();
    eprintln!("isolated: {run:?}");
    assert_eq!(
        (run.timeouts, run.wrong),
        (0, 0),
        "from the isolated namespace: {run:?}"
    );
    let after = [
        delivered(&nodes[0], &nodes[0].pods[1].host_if),
        delivered(&nodes[1], &nodes[1].pods[0].host_if),
    ];
    for (backend, (b, a)) in before.iter().zip(after).enumerate() {
        assert!(
            a - b > u64::from(LOOKUPS) / 2,
            "kube-dns-{} got {} queries",
            backend + 1,
            a - b
        );
    }
}

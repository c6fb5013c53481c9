//! A service chain end to end, from manifests: two networks (red, blue) that cannot
//! reach each other are joined through a service instance, a pod with a left
//! interface in red and a right one in blue that forwards between them through a
//! real packet filter (nftables), annotated as the instance of the chain
//! (`k8s/scenarios/service-chain.yaml`, applied with `vrouter apply`). With the
//! chain, red's pod reaches blue's pod and back through the instance (the filter's
//! counters prove every packet passed it), and the filter blocks what its rule says;
//! the manifests deleted (`vrouter delete`), the networks are apart again.
//!
//! Across nodes: with the instance on node 1 and both networks' pods on node 2,
//! node 1 advertises the prefixes the chain leaks into each network (over XMPP,
//! through the lab's control-node peer) with the instance's labels, so node 2's
//! pods go through the instance too, and stop reaching each other once the chain
//! is deleted.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;
use system_tests::{node, peering_node, serial, wait_for};
use vrouter::api::{Request, ServiceChainView};
use vrouter::config::XdpMode;
use vrouter_lab::backends::{tcp_spread, NamedServers};
use vrouter_lab::k8s_section;
use vrouter_lab::netns::Netns;
use vrouter_lab::node::{FabricLan, LabNode, Pod};
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");
const PEER: &str = system_tests::CONTROL_NODE;
/// The port the filter lets through, and the one it blocks.
const OPEN: u16 = 8080;
const BLOCKED: u16 = 2323;

/// The instance's packet filter: count what it forwards each way, drop TCP to
/// `BLOCKED` (counted too).
const RULES: &str = "table inet chain_filter {
  counter to_right {}
  counter to_left {}
  counter blocked {}
  chain forward {
    type filter hook forward priority 0; policy accept;
    tcp dport 2323 counter name blocked drop
    iifname \"left\" oifname \"right\" counter name to_right
    iifname \"right\" oifname \"left\" counter name to_left
  }
}
";

/// Packets counter `name` of the instance's filter has counted.
fn counted(instance: &Netns, name: &str) -> u64 {
    let out = instance
        .exec("nft", &["-j", "list", "counter", "inet", "chain_filter", name])
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["nftables"]
        .as_array()
        .and_then(|items| items.iter().find_map(|i| i["counter"]["packets"].as_u64()))
        .unwrap_or_else(|| panic!("counter {name}: {v}"))
}

/// Makes pod `left`'s namespace the instance: its interface renamed `left`, and
/// `right`'s interface moved into it as `right`, forwarding between them through
/// the filter of `RULES`. Returns the instance's namespace.
fn make_instance<'p>(left: &'p Pod, right: &Pod) -> &'p Netns {
    let instance = &left.ns;
    instance.ip(&["link", "set", "eth0", "down"]).unwrap();
    instance.ip(&["link", "set", "eth0", "name", "left"]).unwrap();
    right
        .ns
        .ip(&["link", "set", "eth0", "netns", instance.name(), "name", "right"])
        .unwrap();
    instance.ip(&["link", "set", "left", "up"]).unwrap();
    instance.ip(&["link", "set", "right", "up"]).unwrap();
    instance
        .ip(&["addr", "add", &format!("{}/24", right.ipv4), "dev", "right"])
        .unwrap();
    // (Moving the link kept its offload settings, not its address.)
    instance.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]).unwrap();
    let mut nft = instance.command("nft");
    nft.args(["-f", "-"]);
    let mut child = nft.stdin(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), RULES.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "nft refused the rules");
    instance
}

/// The manifests name the addresses the lab gives these pods (client, server, the
/// instance's left and right).
fn assert_manifest_addresses(pods: [&Pod; 4]) {
    let addresses = pods.map(|p| p.ipv4.to_string());
    assert_eq!(addresses, ["198.18.1.2", "198.18.2.2", "198.18.1.251", "198.18.2.251"]);
}

/// Red's `client` reaches blue's server at `blue` through `instance` both ways
/// (pings and TCP, counted by the filter each way), and not on the blocked port.
fn assert_steered_through(instance: &Netns, client: &Pod, blue: IpAddr, context: impl Fn() -> String) {
    let (to_right, to_left) = (counted(instance, "to_right"), counted(instance, "to_left"));
    assert!(
        ping(client, blue, 5),
        "red does not reach blue through the chain\n{}",
        context()
    );
    let spread = tcp_spread(&client.ns, blue, OPEN, 3).unwrap();
    assert_eq!(
        (spread.failed, spread.by_backend.get("blue-1")),
        (0, Some(&3)),
        "{spread:?}"
    );
    assert!(
        counted(instance, "to_right") >= to_right + 4,
        "requests did not pass the filter"
    );
    assert!(
        counted(instance, "to_left") >= to_left + 4,
        "replies did not pass the filter"
    );
    // The filter's rule holds: the blocked port is not reached, and it counted why.
    let blocked = tcp_spread(&client.ns, blue, BLOCKED, 1).unwrap();
    assert_eq!(blocked.failed, 1, "{blocked:?}");
    assert!(counted(instance, "blocked") >= 1);
}

/// The filter instance made of `left` and `right`, and blue's servers (the open and
/// the blocked port) started in pod `server`: the instance's namespace, the
/// servers, and blue's address.
fn chain_between<'p>(left: &'p Pod, right: &Pod, server: &Pod) -> (&'p Netns, NamedServers, IpAddr) {
    let instance = make_instance(left, right);
    let servers = NamedServers::start(&server.ns, "blue-1", &[OPEN, BLOCKED], &[]).unwrap();
    (instance, servers, server.ipv4.into())
}

/// `vrouter delete -f` of the scenario on `node`: what it printed.
fn delete(node: &LabNode) -> String {
    let deleted = std::process::Command::new(BIN)
        .args(["--api-socket", &node.api_socket().display().to_string(), "delete", "-f"])
        .arg(k8s_section::scenario("service-chain.yaml"))
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    String::from_utf8_lossy(&deleted.stdout).into_owned()
}

#[test]
fn a_service_chain_steers_two_networks_through_a_packet_filter() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("blue", 1, 1, true).unwrap();
    // The instance: the left interface of one pod's namespace in red, and the right
    // one moved into that namespace from a blue pod's.
    n.add_pod("red", 0, 250, true).unwrap();
    n.add_pod("blue", 1, 250, true).unwrap();
    let (client, server) = (&n.pods[0], &n.pods[1]);
    let (left, right) = (&n.pods[2], &n.pods[3]);
    let (instance, _servers, blue) = chain_between(left, right, server);

    // Apart: red cannot reach blue.
    assert!(!ping(client, blue, 1), "red reached blue without a chain");

    assert_manifest_addresses([client, server, left, right]);
    let applied = k8s_section::apply(Path::new(BIN), &n, "service-chain.yaml", &["--prune"]).unwrap();
    assert!(applied.contains("service chain chains/filter applied"), "{applied}");
    let api = n.api();
    let chains: Vec<ServiceChainView> = api.call(&Request::ServiceChains).unwrap();
    assert_eq!(chains.len(), 1, "{chains:?}");
    assert_eq!(
        (
            chains[0].name.as_str(),
            chains[0].left_interface.as_str(),
            chains[0].right_interface.as_str()
        ),
        ("chains/filter", left.host_if.as_str(), right.host_if.as_str())
    );
    assert_eq!(
        (chains[0].left_vrf.as_str(), chains[0].right_vrf.as_str()),
        ("red", "blue")
    );
    assert!(
        chains[0].routes_in_left >= 1 && chains[0].routes_in_right >= 1,
        "{chains:?}"
    );

    // Joined through the filter.
    assert_steered_through(instance, client, blue, || n.log());

    // The manifests deleted: apart again.
    let deleted = delete(&n);
    assert!(deleted.contains("service chain chains/filter removed"), "{deleted}");
    assert!(!ping(client, blue, 1), "red still reaches blue without the chain");
    let chains: Vec<ServiceChainView> = api.call(&Request::ServiceChains).unwrap();
    assert!(chains.is_empty(), "{chains:?}");
}

#[test]
fn a_service_chain_steers_the_pods_of_another_node_through_the_instance() {
    let _machine = serial();
    let lan = FabricLan::new().expect("fabric LAN");
    let _peer = system_tests::control_node(&lan, LAB);
    let (mut a, mut b) = (peering_node(BIN, &lan, 1, PEER), peering_node(BIN, &lan, 2, PEER));
    // Node 1 holds the instance; node 2 red's client and blue's server.
    a.add_pod("red", 0, 250, true).unwrap();
    a.add_pod("blue", 1, 250, true).unwrap();
    b.add_pod("red", 0, 1, true).unwrap();
    b.add_pod("blue", 1, 1, true).unwrap();
    let (left, right) = (&a.pods[0], &a.pods[1]);
    let (client, server) = (&b.pods[0], &b.pods[1]);
    let (instance, _servers, blue) = chain_between(left, right, server);
    let context = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());
    // The nodes peer: the client reaches the instance's left address on node 1.
    assert!(
        wait_for(Duration::from_secs(20), || ping(client, left.ipv4.into(), 1)).is_some(),
        "the nodes' routes did not cross\n{}",
        context()
    );
    assert!(!ping(client, blue, 1), "red reached blue without a chain");

    // The manifests applied on both nodes: the chain is in force where its instance is.
    assert_manifest_addresses([client, server, left, right]);
    let on_b = k8s_section::apply(Path::new(BIN), &b, "service-chain.yaml", &["--prune"]).unwrap();
    assert!(!on_b.contains("service chain chains/filter applied"), "{on_b}");
    let on_a = k8s_section::apply(Path::new(BIN), &a, "service-chain.yaml", &["--prune"]).unwrap();
    assert!(on_a.contains("service chain chains/filter applied"), "{on_a}");
    // Node 1 learns blue's server and red's client from node 2 and leaks each into
    // the other network; node 2 learns those routes from node 1.
    assert!(
        wait_for(Duration::from_secs(20), || ping(client, blue, 1)).is_some(),
        "node 2's red does not reach its blue through node 1's instance\n{}",
        context()
    );
    assert_steered_through(instance, client, blue, context);

    // Deleted on node 1: its leaked routes are withdrawn, node 2's networks apart.
    let deleted = delete(&a);
    assert!(deleted.contains("service chain chains/filter removed"), "{deleted}");
    assert!(
        wait_for(Duration::from_secs(20), || !ping(client, blue, 1)).is_some(),
        "node 2's red still reaches blue without the chain\n{}",
        context()
    );
}

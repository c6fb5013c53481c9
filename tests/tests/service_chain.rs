//! A service chain end to end, from manifests: two networks (red, blue) that cannot
//! reach each other are joined through a service instance, a pod with a left
//! interface in red and a right one in blue that forwards between them through a
//! real packet filter (nftables), annotated as the instance of the chain
//! (`k8s/scenarios/service-chain.yaml`, applied with `vrouter apply`). With the
//! chain, red's pod reaches blue's pod and back through the instance (the filter's
//! counters prove every packet passed it), and the filter blocks what its rule says;
//! the manifests deleted (`vrouter delete`), the networks are apart again.

use std::net::IpAddr;
use std::path::Path;
use system_tests::{node, serial};
use vrouter::api::{Request, ServiceChainView};
use vrouter::config::XdpMode;
use vrouter_lab::backends::{tcp_spread, NamedServers};
use vrouter_lab::k8s_section;
use vrouter_lab::netns::Netns;
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
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
    let _servers = NamedServers::start(&server.ns, "blue-1", &[OPEN, BLOCKED], &[]).unwrap();
    let blue: IpAddr = server.ipv4.into();

    // Apart: red cannot reach blue.
    assert!(!ping(client, blue, 1), "red reached blue without a chain");

    // The manifests name the addresses the lab gives these pods.
    let addresses = [client.ipv4, server.ipv4, left.ipv4, right.ipv4].map(|a| a.to_string());
    assert_eq!(addresses, ["198.18.1.2", "198.18.2.2", "198.18.1.251", "198.18.2.251"]);
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

    // Joined through the filter: pings and a TCP connection each way through it.
    let (to_right, to_left) = (counted(instance, "to_right"), counted(instance, "to_left"));
    assert!(
        ping(client, blue, 5),
        "red does not reach blue through the chain\n{}",
        n.log()
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

    // The manifests deleted: apart again.
    let deleted = std::process::Command::new(BIN)
        .args(["--api-socket", &n.api_socket().display().to_string(), "delete", "-f"])
        .arg(k8s_section::scenario("service-chain.yaml"))
        .output()
        .unwrap();
    assert!(deleted.status.success(), "{}", String::from_utf8_lossy(&deleted.stderr));
    assert!(
        String::from_utf8_lossy(&deleted.stdout).contains("service chain chains/filter removed"),
        "{}",
        String::from_utf8_lossy(&deleted.stdout)
    );
    assert!(!ping(client, blue, 1), "red still reaches blue without the chain");
    let chains: Vec<ServiceChainView> = api.call(&Request::ServiceChains).unwrap();
    assert!(chains.is_empty(), "{chains:?}");
}

//! NetworkPolicy end to end: two nodes, eight pods in three namespaces, the ten
//! policies of `k8s/scenarios/policy.yaml` applied to both vrouters with
//! `vrouter apply -f`. What each pair may open is checked against a table written
//! from Kubernetes' rules, not from the translation (`POLICY_TRUTH_TABLE`, which the
//! lab prints too): new TCP and UDP connections
//! within a node and across the fabric, and connections opened before the policies
//! came (a revoked one stops, an allowed one goes on). A denial is counted per
//! policy, logged with the policy, and the flow view names it.

use nexthop::encap::Encap;
use std::net::IpAddr;
use std::path::Path;
use system_tests::{route_to_pod, serial, two_started_nodes};
use vrouter::api::{FlowFilter, FlowView, PolicyView, Request};
use vrouter_lab::backends::{ask, spawn_ask, tcp_sessions, NamedServers};
use vrouter_lab::k8s_section::{self, truth_table, POLICY_PODS as PODS, POLICY_TCP_PORTS as TCP_PORTS, SYSLOG};
use vrouter_lab::node::{FabricLan, LabNode, Pod};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
fn apply(node: &LabNode) {
    let stdout = k8s_section::apply(Path::new(BIN), node, "policy.yaml", &["--prune"]).unwrap();
    assert!(
        stdout.contains("network policy shop/web-http@web-2 applied"),
        "{stdout}"
    );
}

#[test]
fn network_policies_from_manifests_allow_exactly_what_kubernetes_defines() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (mut a, mut b) = two_started_nodes(BIN, &lan);
    for i in 1..=4 {
        a.add_pod("cluster-network", 0, i, true).unwrap();
    }
    for i in 5..=8 {
        b.add_pod("cluster-network", 0, i, true).unwrap();
    }
    for pod in 0..4 {
        route_to_pod(&a, &b, pod, Encap::MplsOverUdp, 0);
        route_to_pod(&b, &a, pod, Encap::MplsOverUdp, 0);
    }
    let pod = |name: &str| -> &Pod {
        let i = PODS.iter().position(|p| *p == name).unwrap();
        if i < 4 {
            &a.pods[i]
        } else {
            &b.pods[i - 4]
        }
    };
    let _servers: Vec<NamedServers> = PODS
        .iter()
        .map(|name| NamedServers::start(&pod(name).ns, name, &TCP_PORTS, &[SYSLOG]).unwrap())
        .collect();
    let logs = || format!("node 1:\n{}\nnode 2:\n{}", a.log(), b.log());
    let ip = |name: &str| IpAddr::from(pod(name).ipv4);
    // Connections open before the policies: one they revoke (within a node, and
    // across the fabric) and one they allow.
    let open = |from: &str, to: &str, port: u16| {
        let mut s = tcp_sessions(&pod(from).ns, ip(to), port, 1).unwrap().remove(0);
        assert_eq!(ask(&mut s).unwrap(), to);
        s
    };
    let mut revoked_local = open("ledger", "cache", 6379);
    let mut revoked_remote = open("web-1", "ledger", 22);
    let mut kept = open("monitor", "web-1", 8080);

    apply(&a);
    apply(&b);

    let wrong = truth_table(pod, false);
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), logs());
    assert!(
        ask(&mut revoked_local).is_err(),
        "ledger -> cache:6379 goes on after the policy"
    );
    assert!(
        ask(&mut revoked_remote).is_err(),
        "web-1 -> ledger:22 goes on after the policy"
    );
    assert_eq!(ask(&mut kept).unwrap(), "web-1", "an allowed open connection stops");

    // Counted per policy on the node that denied, logged with the policy, and named
    // by the flow view.
    let policies: Vec<PolicyView> = b.api().call(&Request::Policies).unwrap();
    let ledger = policies.iter().find(|p| p.name == "bank/ledger-from-api").unwrap();
    assert!(ledger.denied >= 2, "{ledger:?}");
    assert_eq!(ledger.local_pods, ["cluster-network/198.18.1.7"]);
    assert!(b.drop_stats().unwrap().get("policy") > 0);
    assert!(
        b.log().contains("connection denied by network policy") && b.log().contains("bank/ledger-from-api"),
        "{}",
        b.log()
    );
    // A denied flow lives for the drop timeout: look while a new attempt is made.
    let attempt = spawn_ask(&pod("api").ns, ip("db"), 5432, false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let flows = loop {
        let flows: Vec<FlowView> = a
            .api()
            .call(&Request::Flows {
                filter: FlowFilter {
                    src: Some(ip("api")),
                    dst: Some(ip("db")),
                    ..Default::default()
                },
                limit: 10,
                from_index: 0,
            })
            .unwrap();
        if !flows.is_empty() || std::time::Instant::now() > deadline {
            break flows;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(attempt.join().unwrap().is_err(), "api -> db:5432 is denied");
    let verdict = flows
        .iter()
        .find_map(|f| f.policy.clone())
        .expect("a flow with its verdict");
    assert!(!verdict.allowed, "{verdict:?}");
    assert!(verdict.egress.contains("denied by bank/api-egress"), "{verdict:?}");

    // Deleting the manifests' objects opens everything again.
    for n in [&a, &b] {
        let out = std::process::Command::new(BIN)
            .args(["--api-socket", &n.api_socket().display().to_string(), "delete", "-f"])
            .arg(k8s_section::scenario("policy.yaml"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let again = spawn_ask(&pod("cache").ns, ip("db"), 5432, false).join().unwrap();
    assert_eq!(again.unwrap(), "db", "{}", logs());
}

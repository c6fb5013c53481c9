//! The lab's Kubernetes section: the manifests of `k8s/scenarios` applied to both
//! nodes with `vrouter apply` (the vrouter under test's own command line):
//! `policy.yaml`, eight pods in three namespaces with ten NetworkPolicies, and
//! `isolation.yaml`, an isolated namespace with a pod on each node behind a service.
//! Prints the translation, the NetworkPolicy truth table (what Kubernetes' rules say
//! each pair may open, and what the data plane did) and the seed's isolation checks.
//! Routes of the new networks come from the control-node peer, as red's do.

use super::backends::{spawn_ask, tcp_spread, NamedServers};
use super::mark;
use super::node::{LabNode, Pod};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The policy scenario's pods in the order the lab numbers them (pod i of the
/// cluster network: 198.18.1.(i+1)): the first four on node 1, the others on node 2.
pub const POLICY_PODS: [&str; 8] = ["web-1", "web-2", "db", "api", "cache", "ledger", "monitor", "debug"];
/// TCP ports every policy pod serves.
pub const POLICY_TCP_PORTS: [u16; 11] = [22, 5432, 6379, 6380, 6381, 7000, 7001, 8080, 8081, 8443, 9100];
/// The UDP port every policy pod serves.
pub const SYSLOG: u16 = 514;

/// (from, to, protocol, port, allowed) for `k8s/scenarios/policy.yaml`, written from
/// Kubernetes' rules (not from the translation), with the rule that decides.
pub const POLICY_TRUTH_TABLE: [(&str, &str, &str, u16, bool, &str); 31] = [
    (
        "monitor",
        "web-1",
        "tcp",
        8080,
        true,
        "web-http: named port http = 8080, from anyone",
    ),
    ("monitor", "web-1", "tcp", 8081, false, "not web-1's http port"),
    ("monitor", "web-2", "tcp", 8081, true, "web-2 names http 8081"),
    ("web-1", "db", "tcp", 5432, true, "db-from-web"),
    ("cache", "db", "tcp", 5432, false, "cache is no web pod"),
    (
        "api",
        "db",
        "tcp",
        5432,
        false,
        "api-egress allows ledger:7000 and UDP 514 only",
    ),
    ("web-2", "cache", "tcp", 6380, true, "cache-from-shop, endPort 6380"),
    ("web-2", "cache", "tcp", 6381, false, "past endPort"),
    ("ledger", "cache", "tcp", 6379, false, "bank is not team=shop"),
    (
        "monitor",
        "db",
        "tcp",
        9100,
        true,
        "metrics-from-monitor: ops AND app=monitor",
    ),
    ("debug", "db", "tcp", 9100, false, "debug-no-egress (and no monitor)"),
    (
        "monitor",
        "cache",
        "tcp",
        9100,
        true,
        "metrics-from-monitor selects every shop pod",
    ),
    ("ledger", "web-1", "tcp", 9100, false, "ledger is not ops/monitor"),
    ("api", "ledger", "tcp", 7000, true, "ledger-from-api and api-egress"),
    ("web-1", "ledger", "tcp", 7000, false, "ledger takes 7000 from api only"),
    ("api", "ledger", "tcp", 7001, false, "port"),
    (
        "api",
        "debug",
        "udp",
        SYSLOG,
        true,
        "api-egress ipBlock; nothing isolates debug's ingress",
    ),
    (
        "api",
        "monitor",
        "udp",
        SYSLOG,
        false,
        "api-egress except 198.18.1.8/32",
    ),
    (
        "ledger",
        "monitor",
        "udp",
        SYSLOG,
        true,
        "monitor-syslog: every namespace",
    ),
    ("ledger", "monitor", "tcp", 22, false, "monitor is isolated for ingress"),
    ("web-1", "api", "tcp", 8443, true, "api-from-block"),
    (
        "monitor",
        "api",
        "tcp",
        8443,
        false,
        "api-from-block except 198.18.1.8/31",
    ),
    ("web-1", "api", "tcp", 22, false, "port"),
    (
        "debug",
        "web-1",
        "tcp",
        8080,
        false,
        "debug-no-egress, though web-1 takes anyone",
    ),
    ("cache", "ledger", "tcp", 22, false, "ledger is isolated for ingress"),
    ("db", "debug", "tcp", 22, true, "nothing selects debug for ingress"),
    ("ledger", "api", "tcp", 8443, true, "198.18.1.7 is in the block"),
    ("web-1", "web-2", "tcp", 8081, true, "web-http, same node"),
    ("db", "web-1", "tcp", 22, false, "shop's default deny"),
    ("monitor", "debug", "tcp", 22, true, "neither side isolated that way"),
    ("api", "web-1", "tcp", 8080, false, "api-egress"),
];

/// The floating pool the lab applies the isolation scenario with.
pub const FLOATING_POOL: &str = "198.18.254.0/24";
/// The isolated namespace's service.
pub const ISOLATED_SERVICE: &str = "198.18.100.20";
/// The cluster network's service in `isolation.yaml` (rule d), in front of web-1:8080.
pub const CLUSTER_SERVICE: &str = "198.18.100.21";

/// A scenario file of `k8s/scenarios`, found beside the source tree (the lab runs
/// from the repository).
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../k8s/scenarios")
        .join(name)
}

/// Applies scenario `name` to `node` with the vrouter's own `apply`; its output.
pub fn apply(vrouter: &Path, node: &LabNode, name: &str, extra: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new(vrouter)
        .args(["--api-socket", &node.api_socket().display().to_string(), "apply"])
        .args(extra)
        .arg("-f")
        .arg(scenario(name))
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "vrouter apply -f {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs the truth table from `pod`'s pods; the lines that differ from the table.
pub fn truth_table<'p>(pod: impl Fn(&str) -> &'p Pod, print: bool) -> Vec<String> {
    let ip = |name: &str| IpAddr::from(pod(name).ipv4);
    let probes: Vec<_> = POLICY_TRUTH_TABLE
        .iter()
        .map(|&(from, to, proto, port, _, _)| spawn_ask(&pod(from).ns, ip(to), port, proto == "udp"))
        .collect();
    let mut wrong = Vec::new();
    for (probe, &(from, to, proto, port, allowed, why)) in probes.into_iter().zip(POLICY_TRUTH_TABLE.iter()) {
        let answer = probe
            .join()
            .map_err(|_| anyhow::anyhow!("probe panicked"))
            .and_then(|a| a);
        let reached = answer.as_ref().is_ok_and(|name| name == to);
        if print {
            println!(
                "   {from:>7} -> {to:<7} {proto}/{port:<5} {:<7} {} ({why})",
                if reached { "open" } else { "denied" },
                mark(reached == allowed)
            );
        }
        if reached != allowed {
            wrong.push(format!(
                "{from} -> {to} {proto}/{port}: expected {allowed}, got {answer:?}"
            ));
        }
    }
    wrong
}

/// Waits until `node` routes every address of `wanted` in `vrf` (learned from the
/// control node), for at most 30 s.
fn wait_routes(node: &LabNode, vrf: &str, wanted: &[String]) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let routes = node.api().all_routes(Some(vrf), 10_000).unwrap_or_default();
        if wanted.iter().all(|w| routes.iter().any(|r| r.prefix.to_string() == *w)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Runs the section on the lab's two nodes; returns what went other than expected.
pub(super) fn run(vrouter: &Path, nodes: &mut [LabNode], cni: &crate::cni::CniDriver) -> anyhow::Result<Vec<String>> {
    let mut wrong = Vec::new();
    println!("\n== Kubernetes manifests: k8s/scenarios/policy.yaml and isolation.yaml, applied with `vrouter apply`");
    let first = nodes[0].pods.len();
    let second = nodes[1].pods.len();
    // Attached through the CNI plugin, in the VRFs the translation places them in.
    for i in 1..=4 {
        cni.add_lab_pod(&mut nodes[0], "cluster-network", 0, i)?;
        cni.add_lab_pod(&mut nodes[1], "cluster-network", 0, i + 4)?;
    }
    cni.add_lab_pod(&mut nodes[0], "iso-vn", 1, 1)?;
    cni.add_lab_pod(&mut nodes[1], "iso-vn", 1, 2)?;
    let (a, b) = (&nodes[0], &nodes[1]);
    let k8s_pods: Vec<&Pod> = a.pods[first..].iter().chain(&b.pods[second..]).collect();
    let wanted = |n: &LabNode, from: usize, vrf: &str| -> Vec<String> {
        n.pods[from..]
            .iter()
            .filter(|p| p.vrf == vrf)
            .map(|p| format!("{}/32", p.ipv4))
            .collect()
    };
    let learned = ["cluster-network", "iso-vn"]
        .iter()
        .all(|vrf| wait_routes(a, vrf, &wanted(b, second, vrf)) && wait_routes(b, vrf, &wanted(a, first, vrf)));
    println!(
        "   pods' routes learned from the control node on both nodes: {}",
        mark(learned)
    );
    for (node, n) in [(a, 1), (b, 2)] {
        apply(vrouter, node, "policy.yaml", &["--prune"])?;
        let out = apply(vrouter, node, "isolation.yaml", &["--floating-pool", FLOATING_POOL])?;
        let fips = out.lines().filter(|l| l.starts_with("floating IP")).count();
        println!("   node {n}: 10 NetworkPolicies (11 policies: web-http splits by named port), 1 service, {fips} floating IP of its isolated pod");
    }
    // Each node advertises its isolated pod's floating IP; the other learns it.
    let fips = |n: &LabNode| -> anyhow::Result<Vec<String>> {
        let list: Vec<vrouter::api::FloatingIpView> = n.api().call(&vrouter::api::Request::FloatingIps)?;
        Ok(list.iter().map(|f| format!("{}/32", f.ip)).collect())
    };
    let learned = wait_routes(a, "cluster-network", &fips(b)?) && wait_routes(b, "cluster-network", &fips(a)?);
    println!(
        "   each node learned the other's floating IP from the control node: {}",
        mark(learned)
    );
    let policy_pod = |name: &str| -> &Pod {
        let i = POLICY_PODS.iter().position(|p| *p == name).expect("a scenario pod");
        let cluster: Vec<&Pod> = k8s_pods
            .iter()
            .copied()
            .filter(|p| p.vrf == "cluster-network")
            .collect();
        cluster[i]
    };
    let secret: Vec<&Pod> = k8s_pods.iter().copied().filter(|p| p.vrf == "iso-vn").collect();
    let mut servers = Vec::new();
    for name in POLICY_PODS {
        servers.push(NamedServers::start(
            &policy_pod(name).ns,
            name,
            &POLICY_TCP_PORTS,
            &[SYSLOG],
        )?);
    }
    for (k, p) in secret.iter().enumerate() {
        servers.push(NamedServers::start(
            &p.ns,
            &format!("secret-{}", k + 1),
            &[22, 9376],
            &[],
        )?);
    }
    println!("\n== NetworkPolicy truth table (31 connections within a node and across the fabric; ok = as Kubernetes defines)");
    let table = truth_table(policy_pod, true);
    wrong.extend(table.into_iter().map(|w| format!("policy: {w}")));

    println!("\n== namespace isolation (the seed's section 9 and rules a-e; iso is isolated, the others are not)");
    let mut check = |what: &str, ok: bool| {
        println!("   {what}: {}", mark(ok));
        if !ok {
            wrong.push(format!("isolation: {what}"));
        }
    };
    let reaches = |from: &Pod, to: IpAddr, port: u16, name: &str| {
        spawn_ask(&from.ns, to, port, false)
            .join()
            .ok()
            .and_then(Result::ok)
            .is_some_and(|n| n == name)
    };
    let (monitor, debug) = (policy_pod("monitor"), policy_pod("debug"));
    check(
        "9.2 pods of the cluster network reach each other (2:monitor -> 2:debug, 1:db -> 2:debug)",
        reaches(monitor, debug.ipv4.into(), 22, "debug") && reaches(policy_pod("db"), debug.ipv4.into(), 22, "debug"),
    );
    check(
        "9.5 no pod of another namespace reaches an isolated pod (2:monitor -> 1:secret-1, 1:db -> 2:secret-2)",
        !reaches(monitor, secret[0].ipv4.into(), 22, "secret-1")
            && !reaches(policy_pod("db"), secret[1].ipv4.into(), 22, "secret-2"),
    );
    check(
        "rule a: isolated pods reach each other (1:secret-1 -> 2:secret-2)",
        reaches(secret[0], secret[1].ipv4.into(), 22, "secret-2"),
    );
    // (Node 1's cluster-network pods are all isolated for ingress by the policies:
    // web-1's http port is open to anyone.)
    check(
        "9.6 isolated pods reach other namespaces' pods from their floating IPs (1:secret-1 -> 2:debug:22, 2:secret-2 -> 1:web-1:8080)",
        reaches(secret[0], debug.ipv4.into(), 22, "debug") && reaches(secret[1], policy_pod("web-1").ipv4.into(), 8080, "web-1"),
    );
    let spread = tcp_spread(&monitor.ns, ISOLATED_SERVICE.parse()?, 80, 100)?;
    println!(
        "   100 connections from 2:monitor to iso/secret-web {ISOLATED_SERVICE}:80: {:?} (failed {})",
        spread.by_backend, spread.failed
    );
    check(
        "rule e: others reach isolated pods through their service, on both nodes",
        spread.failed == 0 && spread.by_backend.len() == 2,
    );
    let cluster_service: IpAddr = CLUSTER_SERVICE.parse()?;
    check(
        "rule d: isolated pods reach a cluster-network service from their floating IPs (1:secret-1 and 2:secret-2 -> default/cluster-web -> 1:web-1:8080)",
        reaches(secret[0], cluster_service, 80, "web-1") && reaches(secret[1], cluster_service, 80, "web-1"),
    );
    drop(servers);
    Ok(wrong)
}

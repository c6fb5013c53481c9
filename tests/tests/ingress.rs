//! Ingress end to end (the seed's "Ingress in Contrail"): two nodes apply
//! `k8s/scenarios/ingress.yaml`; node 1 runs the active haproxy instance of each
//! ingress, node 2 the standby, each in its own namespace attached as a vrouter port
//! holding the VIP; a control-node peer reflects the VIP's paths by local
//! preference. Real web servers (busybox httpd) in pods on both nodes answer.
//!
//! Each test is its own named scenario: fanout by path and virtual hosting by host
//! header reach the right services from pods on both nodes and from a host outside
//! the cluster (the fanout's external IP); a hung or killed active haproxy moves the
//! VIP to the standby within the stated time while requests keep being answered, and
//! it takes the VIP back once it answers again; a changed ingress is reloaded while a
//! connection stays open through it; deleting the ingresses leaves no process,
//! namespace, port or file behind, nor does stopping the vrouter.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};
use system_tests::{fabric_host, fabric_node, serial, wait_for, ControlNodePeer};
use vrouter::api::{IngressView, Request};
use vrouter_lab::http::{connect, get, Answer, WebServer};
use vrouter_lab::ingress_section::WEB_PODS;
use vrouter_lab::k8s_section;
use vrouter_lab::netns::Netns;
use vrouter_lab::node::{FabricLan, LabNode};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");
const PEER: &str = system_tests::CONTROL_NODE;
const SINGLE: &str = "198.18.100.40";
const FANOUT: &str = "198.18.100.41";
const VHOST: &str = "198.18.100.42";
const EXTERNAL: &str = "198.19.40.41";
/// The nodes' public pool: ingresses without an external IP take theirs from it.
const POOL: &str = "198.19.41.0/24";
/// The stated take-over time when the active haproxy hangs (probes every 100 ms,
/// three failures of 500 ms each, then the route's withdrawal reaches the others;
/// about 2 s measured, with room for a loaded machine).
const HUNG_TAKEOVER: Duration = Duration::from_secs(4);
/// ... and when it exits (seen on the next probe).
const CRASH_TAKEOVER: Duration = Duration::from_millis(1500);

struct Cluster {
    nodes: Vec<LabNode>,
    outside: Netns,
    web: Vec<WebServer>,
    /// The control-node peer and its host.
    _peer: (ControlNodePeer, Netns),
    _lan: FabricLan,
}

impl Cluster {
    /// Node `n`'s client pod (its first pod).
    fn client(&self, n: usize) -> &Netns {
        &self.nodes[n].pods[0].ns
    }

    fn view(&self, n: usize, name: &str) -> IngressView {
        let list: Vec<IngressView> = self.nodes[n].api().call(&Request::Ingresses).unwrap();
        list.into_iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("no ingress {name}"))
    }

    fn logs(&self) -> String {
        format!("node 1:\n{}\nnode 2:\n{}", self.nodes[0].log(), self.nodes[1].log())
    }
}

/// Two nodes (1 active, 2 standby) with a client pod each and the web pods, the
/// scenario applied to both, every VIP answering.
fn cluster() -> Cluster {
    let lan = FabricLan::new().expect("fabric LAN");
    let peer = system_tests::control_node(&lan, LAB);
    let outside = fabric_host(&lan, 11);
    let mut nodes: Vec<LabNode> = (1..=2u8)
        .map(|n| {
            let mut node = fabric_node(BIN, n);
            let role = if n == 1 { "active" } else { "standby" };
            node.add_config(&system_tests::xmpp_section(PEER, n));
            node.add_config(&format!(
                "[host]\nvrf = \"cluster-network\"\nroutes = [\"198.18.1.0/24\", \"198.18.100.0/24\"]\nload_balancer_pool = [\"{POOL}\"]\n\
                 [ingress]\nrole = \"{role}\"\ngateway = \"198.18.1.1\"\nprobe_interval_ms = 100\nprobe_failures = 3\nreclaim_delay_ms = 2000"
            ));
            node.join(&lan).expect("joining the fabric");
            node.start_vrouter().expect("starting the vrouter");
            node.add_pod("cluster-network", 0, n, true).expect("client pod");
            node
        })
        .collect();
    let mut web = Vec::new();
    for (n, name, index) in WEB_PODS {
        let pod = nodes[n].add_pod("cluster-network", 0, index, true).expect("web pod");
        web.push(WebServer::start(&pod.ns, name, &["qa.html", "dev.html"]).expect("web server"));
    }
    for node in &nodes {
        k8s_section::apply(Path::new(BIN), node, "ingress.yaml", &["--prune"]).expect("vrouter apply");
    }
    // The fabric routes the fanout's external IP and the pool to node 1 (as a BGP
    // speaker would).
    for prefix in [&format!("{EXTERNAL}/32"), POOL] {
        outside.ip(&["route", "add", prefix, "via", "198.18.0.1"]).unwrap();
    }
    let c = Cluster {
        nodes,
        outside,
        web,
        _peer: peer,
        _lan: lan,
    };
    // Every ingress's active instance holds its VIP (node 2 sends there), and each
    // VIP answers a request that reaches a backend.
    for name in [
        "web/single-service",
        "web/simple-fanout",
        "web/virtual-host",
        "web/partly",
    ] {
        let placed = wait_for(Duration::from_secs(60), || {
            c.view(0, name).vip_at == "this node" && c.view(1, name).vip_at == "198.18.0.1"
        });
        assert!(placed.is_some(), "{name}: {:?}\n{}", c.view(1, name), c.logs());
    }
    for (vip, host, path) in [
        (SINGLE, "x", "/"),
        (FANOUT, "x", "/qa.html"),
        (VHOST, "maps.google.com", "/"),
    ] {
        for n in 0..2 {
            let answered = wait_for(Duration::from_secs(30), || {
                request(c.client(n), vip, host, path).is_some_and(|a| a.status == 200)
            });
            assert!(
                answered.is_some(),
                "{vip} never answered node {}'s pod\n{}",
                n + 1,
                c.logs()
            );
        }
    }
    c
}

fn request(from: &Netns, vip: &str, host: &str, path: &str) -> Option<Answer> {
    request_within(from, vip, host, path, Duration::from_secs(3))
}

fn request_within(from: &Netns, vip: &str, host: &str, path: &str, timeout: Duration) -> Option<Answer> {
    let addr = SocketAddr::new(vip.parse::<IpAddr>().unwrap(), 80);
    get(from, addr, host, path, timeout).ok()
}

/// The pod that answered `GET path` with `Host: host` at `vip`, or the status.
fn who(from: &Netns, vip: &str, host: &str, path: &str) -> String {
    match request(from, vip, host, path) {
        Some(a) if a.status == 200 => a.body.trim().to_string(),
        Some(a) => a.status.to_string(),
        None => "no answer".into(),
    }
}

#[test]
fn fanout_by_path_and_virtual_hosts_reach_the_right_services_from_pods_and_from_outside() {
    let _machine = serial();
    let c = cluster();
    for n in 0..2 {
        let from = c.client(n);
        assert_eq!(who(from, FANOUT, "x", "/qa.html"), "qa-1", "{}", c.logs());
        assert_eq!(who(from, FANOUT, "x", "/dev.html"), "dev-1");
        assert_eq!(who(from, FANOUT, "x", "/index.html"), "503", "no rule, no default");
        assert_eq!(who(from, VHOST, "maps.google.com", "/"), "maps-1");
        assert_eq!(who(from, VHOST, "IMAGES.google.com:80", "/qa.html"), "images-1");
        assert_eq!(who(from, VHOST, "other.google.com", "/"), "503");
        // The single service's pods on both nodes answer (the vrouter spreads
        // haproxy's connections to the service's ClusterIP).
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..40 {
            seen.insert(who(from, SINGLE, "anything", "/"));
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["nginx-1", "nginx-2"]);
    }
    // From outside the cluster, at the fanout's external IP through node 1.
    assert_eq!(who(&c.outside, EXTERNAL, "x", "/qa.html"), "qa-1", "{}", c.logs());
    assert_eq!(who(&c.outside, EXTERNAL, "x", "/dev.html"), "dev-1");
    // The virtual hosts have no externalIP annotation: an address of the pool, the
    // same on both nodes, reached from outside too.
    let pooled = c
        .view(0, "web/virtual-host")
        .external_ip
        .expect("an address of the pool");
    assert!(POOL.parse::<ipnet::Ipv4Net>().unwrap().contains(&pooled), "{pooled}");
    assert_eq!(c.view(1, "web/virtual-host").external_ip, Some(pooled));
    assert_eq!(who(&c.outside, &pooled.to_string(), "maps.google.com", "/"), "maps-1");
    // The views: node 1's instance holds the VIP, node 2 sends its traffic there.
    let active = c.view(0, "web/simple-fanout");
    assert_eq!(active.role.as_deref(), Some("active"));
    assert_eq!(active.vip_at, "this node");
    let instance = active.instance.as_ref().unwrap();
    assert!(instance.attached && instance.state == "serving", "{active:?}");
    assert!(
        active
            .backends
            .iter()
            .any(|b| b.backend.contains("qa-webserver") && b.responses_2xx > 0),
        "{active:?}"
    );
    let standby = c.view(1, "web/simple-fanout");
    assert_eq!(standby.role.as_deref(), Some("standby"));
    assert_eq!(standby.vip_at, "198.18.0.1");
    assert!(
        standby.instance.as_ref().unwrap().attached,
        "the standby advertises too, at 100"
    );
}

/// The haproxy processes (master and workers) of node `n`'s instance of `ingress`,
/// by their configuration file (the lab's vrouters mount their namespaces in mount
/// namespaces of their own: `ip netns pids` does not see them from here).
fn instance_pids(c: &Cluster, n: usize, ingress: &str) -> Vec<String> {
    let config = c.view(n, ingress).instance.unwrap().config;
    let out = std::process::Command::new("pgrep")
        .args(["-f", &config])
        .output()
        .unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert!(pids.len() >= 2, "haproxy's master and a worker: {pids:?}");
    pids
}

/// Requests the fanout from node 2's pod every 50 ms until `until` holds and a
/// request after it is answered; the longest time without an answer, and how many
/// requests failed.
fn outage(c: &Cluster, mut until: impl FnMut() -> bool, limit: Duration) -> (Duration, usize) {
    let (mut longest, mut failed) = (Duration::ZERO, 0);
    let mut last_ok = Instant::now();
    let start = Instant::now();
    // Until `until` holds and a request was answered after it.
    let mut done = false;
    let mut answered_since_done = false;
    while start.elapsed() < limit && !(done && answered_since_done) {
        done = done || until();
        // A short timeout: the gap is measured to about this much.
        let answer = request_within(c.client(1), FANOUT, "x", "/qa.html", Duration::from_millis(250));
        if answer.is_some_and(|a| a.body.trim() == "qa-1") {
            longest = longest.max(last_ok.elapsed());
            last_ok = Instant::now();
            answered_since_done = done;
        } else {
            failed += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (longest.max(last_ok.elapsed()), failed)
}

#[test]
fn a_hung_or_killed_active_haproxy_hands_the_vip_to_the_standby_and_takes_it_back() {
    let _machine = serial();
    let c = cluster();
    let on_standby = |c: &Cluster| c.view(1, "web/simple-fanout").vip_at == "this node";
    let on_active = |c: &Cluster| {
        c.view(0, "web/simple-fanout").vip_at == "this node" && c.view(1, "web/simple-fanout").vip_at == "198.18.0.1"
    };
    assert!(on_active(&c));
    // Hung: every haproxy process of the active instance stopped (it still exists;
    // Tungsten would keep the VIP on it).
    let hung = instance_pids(&c, 0, "web/simple-fanout");
    for pid in &hung {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.parse().unwrap()),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
    }
    let (gap, failed) = outage(&c, || on_standby(&c), Duration::from_secs(20));
    assert!(
        on_standby(&c),
        "the standby never took the VIP: {:?} {:?}\n{}",
        c.view(0, "web/simple-fanout"),
        c.view(1, "web/simple-fanout"),
        c.logs()
    );
    assert!(
        gap < HUNG_TAKEOVER,
        "{gap:?} without an answer ({failed} requests failed)\n{}",
        c.logs()
    );
    eprintln!("hung active haproxy: the standby answered after {gap:?} ({failed} requests failed)");
    assert_eq!(
        who(c.client(0), FANOUT, "x", "/dev.html"),
        "dev-1",
        "node 1's pods reach the standby"
    );
    let view = c.view(0, "web/simple-fanout").instance.unwrap();
    assert!(view.withdrawals >= 1 && view.last_withdrawal_ms.is_some(), "{view:?}");
    // The supervisor restarts it; once it has answered for 2 s it takes the VIP back.
    let back = wait_for(Duration::from_secs(20), || on_active(&c));
    assert!(back.is_some(), "the active never took the VIP back\n{}", c.logs());
    // What answers now is a new haproxy: the hung processes are gone (restarted by
    // the supervisor, or with the instance set up anew).
    let alive: Vec<&String> = hung
        .iter()
        .filter(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    assert!(
        alive.is_empty(),
        "hung haproxy processes {alive:?} still there: {:?}\n{}",
        c.view(0, "web/simple-fanout"),
        c.logs()
    );
    let (gap, _) = outage(&c, || false, Duration::from_secs(1));
    assert!(
        gap < Duration::from_millis(500),
        "answered again after the move back: {gap:?}"
    );
    // Killed.
    for pid in instance_pids(&c, 0, "web/simple-fanout") {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid.parse().unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let (gap, failed) = outage(&c, || on_standby(&c), Duration::from_secs(20));
    assert!(on_standby(&c), "the standby never took the VIP\n{}", c.logs());
    assert!(
        gap < CRASH_TAKEOVER,
        "{gap:?} without an answer ({failed} failed)\n{}",
        c.logs()
    );
    eprintln!("killed active haproxy: the standby answered after {gap:?} ({failed} requests failed)");
    assert!(
        wait_for(Duration::from_secs(20), || on_active(&c)).is_some(),
        "{}",
        c.logs()
    );
    assert_eq!(who(c.client(1), FANOUT, "x", "/qa.html"), "qa-1");
}

/// Ingress `name` as the scenario's translation has it (what `vrouter apply` sends).
fn scenario_ingress(name: &str) -> control_client::IngressSpec {
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(k8s_section::scenario("ingress.json")).unwrap()).unwrap();
    golden["ingresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| serde_json::from_value::<control_client::IngressSpec>(i.clone()).unwrap())
        .find(|i| i.name == name)
        .unwrap()
}

#[test]
fn a_changed_ingress_is_reloaded_without_dropping_an_open_connection() {
    let _machine = serial();
    let c = cluster();
    // A long answer in progress from node 2's pod through the single service's
    // active haproxy (the client reads a little, then waits): the connection is
    // busy when the configuration changes.
    // Larger than what the sockets on the way buffer: the answer is still being
    // sent when the reload comes.
    const BIG: usize = 32 << 20;
    for web in &c.web {
        web.add_page("big.bin", BIG).unwrap();
    }
    let vip = SocketAddr::new(SINGLE.parse().unwrap(), 80);
    let mut open = connect(c.client(1), vip, Duration::from_secs(5)).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    open.write_all(b"GET /big.bin HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 4096];
    std::io::Read::read_exact(&mut open, &mut first).unwrap();
    assert!(
        first.starts_with(b"HTTP/1."),
        "{:?}",
        String::from_utf8_lossy(&first[..64])
    );
    // The single service gains a rule (the scenario's translation, as `vrouter
    // apply` sends it).
    let fanout = scenario_ingress("web/simple-fanout");
    let mut spec = scenario_ingress("web/single-service");
    spec.rules = vec![control_client::IngressRule {
        host: None,
        paths: vec![control_client::IngressPath {
            path: "/qa.html".into(),
            kind: control_client::PathMatch::Exact,
            backend: fanout.rules[0].paths[0].backend.clone(),
        }],
    }];
    for n in &c.nodes {
        let _: serde_json::Value = n.api().call(&Request::AddIngress { spec: spec.clone() }).unwrap();
    }
    let reloaded = wait_for(Duration::from_secs(10), || {
        (0..2).all(|n| c.view(n, "web/single-service").instance.is_some_and(|i| i.reloads == 1))
    });
    assert!(
        reloaded.is_some(),
        "{:?}\n{}",
        c.view(0, "web/single-service"),
        c.logs()
    );
    // New connections see the new rule; the busy one is answered in full.
    assert!(
        wait_for(Duration::from_secs(5), || who(c.client(1), SINGLE, "x", "/qa.html")
            == "qa-1")
        .is_some(),
        "{}",
        c.logs()
    );
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut open, &mut rest).unwrap();
    let all = [first.as_slice(), &rest].concat();
    let body = all.windows(4).position(|w| w == b"\r\n\r\n").map(|p| all.len() - p - 4);
    assert_eq!(body, Some(BIG), "the answer in progress across the reload, whole");
    assert_eq!(c.view(0, "web/single-service").instance.unwrap().restarts, 0);
}

#[test]
fn deleting_the_ingresses_or_stopping_the_vrouter_leaves_no_process_namespace_port_or_file() {
    let _machine = serial();
    let mut c = cluster();
    let namespaces: Vec<String> = (0..2)
        .flat_map(|n| {
            let list: Vec<IngressView> = c.nodes[n].api().call(&Request::Ingresses).unwrap();
            list.into_iter().filter_map(|i| i.instance.map(|x| x.netns))
        })
        .collect();
    assert_eq!(namespaces.len(), 8, "four ingresses on two nodes");
    let dirs: Vec<std::path::PathBuf> = (0..2).map(|n| c.nodes[n].dir().join("state").join("ingress")).collect();
    // Node 1's ingresses deleted (`vrouter delete -f`); node 2's vrouter stopped.
    let out = std::process::Command::new(BIN)
        .args([
            "--api-socket",
            &c.nodes[0].api_socket().display().to_string(),
            "delete",
            "-f",
        ])
        .arg(k8s_section::scenario("ingress.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stopped = c.nodes[1].stop_vrouter().unwrap();
    assert!(stopped.success(), "{stopped:?}\n{}", c.logs());
    let clean = wait_for(Duration::from_secs(10), || {
        let netns = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let ports = c.nodes[0]
            .interfaces()
            .unwrap()
            .iter()
            .any(|i| namespaces.contains(&i.name));
        let files = dirs
            .iter()
            .any(|d| std::fs::read_dir(d).map(|mut e| e.next().is_some()).unwrap_or(false));
        !netns.iter().any(|n| namespaces.contains(n)) && !ports && !files
    });
    assert!(clean.is_some(), "something is left\n{}", c.logs());
    for dir in &dirs {
        let pgrep = std::process::Command::new("pgrep").arg("-f").arg(dir).output().unwrap();
        assert!(
            pgrep.stdout.is_empty(),
            "processes left: {}",
            String::from_utf8_lossy(&pgrep.stdout)
        );
    }
    let list: Vec<IngressView> = c.nodes[0].api().call(&Request::Ingresses).unwrap();
    assert!(list.is_empty(), "{list:?}");
    assert_eq!(who(c.client(0), FANOUT, "x", "/qa.html"), "no answer");
}

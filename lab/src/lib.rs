//! The vrouter's measurement and demonstration tools, kept out of the operator's
//! binary (`vrouter-lab`): the lab (compute nodes of network namespaces with pods on
//! real vrouters over AF_XDP, traffic between every pair, a printed report), the
//! soak, the AF_XDP traffic generator and counting sink ([`gen`]), the minimal
//! forwarder ([`minfwd`]) and the forwarding benchmark ([`mod@bench`]). The same building
//! blocks serve the system tests.
//!
//! Contract: everything a tool creates (namespaces, links, processes, files) is
//! removed when it ends, also when it fails; test traffic goes only to 198.18.0.0/15
//! inside namespaces it made.
#![forbid(unsafe_code)]

pub mod backends;
pub mod bench;
pub mod cli;
pub mod cni;
pub mod cni_bench;
mod cni_section;
pub mod control_node;
pub mod dns;
pub mod gen;
pub mod http;
pub mod ingress_section;
pub mod k8s_section;
pub mod minfwd;
pub mod netns;
pub mod networks_section;
pub mod node;
mod services_section;
pub mod soak;
pub mod spread;
pub mod tcp_bench;
pub mod traffic;
mod traffic_threads;

use anyhow::Context;
use node::{LabNode, NodeOptions};
use std::net::IpAddr;
use vrouter::config::{PollMode, XdpMode};

/// `vrouter lab` options.
#[derive(Debug, Clone, clap::Args)]
pub struct LabOptions {
    /// Pods per VRF (two VRFs: red and blue).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=20))]
    pub pods_per_vrf: u8,
    /// Megabytes sent in each TCP transfer.
    #[arg(long, default_value_t = 10)]
    pub tcp_mb: u64,
    /// Datagrams in each UDP burst.
    #[arg(long, default_value_t = 20000)]
    pub udp_count: u64,
    /// XDP mode for the pod ports.
    #[arg(long, value_enum, default_value = "native")]
    pub xdp_mode: XdpMode,
    /// Worker idle behaviour.
    #[arg(long, value_enum, default_value = "adaptive")]
    pub poll_mode: PollMode,
    /// The CNI plugin the red and blue pods are attached through (default:
    /// `vrouter-cni` beside this program).
    #[arg(long)]
    pub cni_plugin: Option<std::path::PathBuf>,
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "--"
    }
}

/// VNIs the lab gives its VRFs (used by VXLAN).
const VNIS: [(&str, u32); 2] = [("red", 100), ("blue", 200)];

fn lab_node(options: &LabOptions, binary: &std::path::Path, n: u8) -> anyhow::Result<LabNode> {
    LabNode::new(NodeOptions {
        binary: binary.to_path_buf(),
        workers: 1,
        xdp_mode: options.xdp_mode,
        poll_mode: options.poll_mode,
        flows: vrouter::flows::FlowConfig {
            entries: 1 << 20,
            ..Default::default()
        },
        fabric_ip: std::net::Ipv4Addr::new(198, 18, 0, n),
    })
}

/// Where the lab's control-node peer listens (a host on the fabric LAN).
const CONTROL_NODE: &str = "198.18.0.10:5269";

/// The lab's control node: the control-node peer (`control_node::serve`) on a thread
/// of its own in a fabric host's namespace; stopped when dropped.
struct ControlNode {
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    _host: netns::Netns,
}

impl ControlNode {
    fn start(lan: &node::FabricLan) -> anyhow::Result<Self> {
        let host = lan.add_host(10)?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let name = host.name().to_string();
        let thread = std::thread::spawn(move || {
            let run = || -> anyhow::Result<()> {
                netns::enter_by_name(&name)?;
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(async {
                    let listener = tokio::net::TcpListener::bind(CONTROL_NODE).await?;
                    let _ = ready_tx.send(Ok(()));
                    control_node::serve(listener, stopped).await
                })
            };
            if let Err(e) = run() {
                let _ = ready_tx.send(Err(e));
            }
        });
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .context("control-node peer did not start")??;
        Ok(Self {
            stop,
            thread: Some(thread),
            _host: host,
        })
    }
}

impl Drop for ControlNode {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits (bounded) until `node` holds a route for every red pod of `other`, which it
/// learns from the control node over XMPP.
fn wait_learned(node: &LabNode, other: &LabNode) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let wanted: Vec<String> = other
        .pods
        .iter()
        .filter(|p| p.vrf == "red")
        .flat_map(|p| [format!("{}/32", p.ipv4), format!("{}/128", p.ipv6)])
        .collect();
    while std::time::Instant::now() < deadline {
        let routes = node.api().all_routes(Some("red"), 10_000).unwrap_or_default();
        if wanted.iter().all(|w| routes.iter().any(|r| r.prefix.to_string() == *w)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Routes every blue pod of `owner` on `other`, over VXLAN (the VRF's VNI), through the
/// API: EVPN over XMPP is not spoken yet, so blue's routes do not come from the control
/// node (red's do).
fn advertise_blue(owner: &LabNode, other: &LabNode) -> anyhow::Result<()> {
    use control_client::{RouteSpec, RouteTarget};
    use nexthop::encap::Encap;
    for pod in owner.pods.iter().filter(|p| p.vrf == "blue") {
        let vni = VNIS
            .iter()
            .find(|(v, _)| *v == pod.vrf)
            .map(|(_, vni)| *vni)
            .context("blue has a VNI")?;
        for prefix in [format!("{}/32", pod.ipv4), format!("{}/128", pod.ipv6)] {
            let target = RouteTarget::Tunnel {
                remote: owner.fabric_ip(),
                label: vni,
                encaps: vec![Encap::Vxlan],
                mac: None,
            };
            let route = RouteSpec {
                vrf: pod.vrf.clone(),
                prefix: prefix.parse()?,
                target,
            };
            other
                .api()
                .call::<serde_json::Value>(&vrouter::api::Request::AddRoute { route })?;
        }
    }
    Ok(())
}

/// Waits (bounded) until every tunnel next hop of `node` has its fabric MAC.
fn wait_tunnels_resolved(node: &LabNode) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let nhs: Vec<vrouter::api::NextHopView> = node.api().call(&vrouter::api::Request::NextHops).unwrap_or_default();
        if nhs
            .iter()
            .all(|n| !matches!(n.nexthop, nexthop::NextHop::Tunnel { outer_mac, .. } if outer_mac.0 == [0; 6]))
        {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// The floating address the lab gives its isolated pod, in red.
const FLOATING_IP: &str = "198.18.1.200";

/// An isolated pod (VRF green, on node 1) gets a floating IP in red: red pods on both
/// nodes reach it at that address (node 2 by the route node 1 advertises over XMPP,
/// with the pod's label), it reaches them from it, and its own address stays out of
/// red's reach. Returns what went other than expected.
fn floating_ip_section(nodes: &mut [node::LabNode], cni: &cni::CniDriver) -> anyhow::Result<Vec<String>> {
    let floating: IpAddr = FLOATING_IP.parse()?;
    cni.add_lab_pod(&mut nodes[0], "green", 2, 1)?;
    let green = nodes[0].pods.last().expect("just added");
    let spec = control_client::FloatingIpSpec {
        name: "green/pod-1".into(),
        vrf: "red".into(),
        ip: floating,
        interface: green.host_if.clone(),
        egress_only: false,
    };
    let _: serde_json::Value = nodes[0].api().call(&vrouter::api::Request::AddFloatingIp { spec })?;
    println!(
        "\n== floating IP: pod {} (VRF green, {}) gets {floating} in red",
        green.name, green.ipv4
    );
    let red_local = nodes[0]
        .pods
        .iter()
        .find(|p| p.vrf == "red")
        .expect("a red pod on node 1");
    let red_remote = nodes[1]
        .pods
        .iter()
        .find(|p| p.vrf == "red")
        .expect("a red pod on node 2");
    let mut wrong = Vec::new();
    let mut check = |what: String, expected: bool, got: bool| {
        println!("   {what}: {}", mark(got));
        if got != expected {
            wrong.push(format!(
                "floating IP: {what}: expected {}, got {}",
                mark(expected),
                mark(got)
            ));
        }
    };
    check(
        format!("1:{} -> {floating} (same node)", red_local.name),
        true,
        traffic::ping(red_local, floating, 3),
    );
    // Node 2 learns the floating address over XMPP first.
    let learned = (0..50).any(|_| {
        traffic::ping(red_remote, floating, 1) || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            false
        }
    });
    check(
        format!("2:{} -> {floating} (across the fabric)", red_remote.name),
        true,
        learned,
    );
    check(
        format!("1:{} -> 2:{} (from the floating address)", green.name, red_remote.name),
        true,
        traffic::ping(green, red_remote.ipv4.into(), 3),
    );
    check(
        format!("1:{} -> {} (its own address, from red)", red_local.name, green.ipv4),
        false,
        traffic::ping(red_local, green.ipv4.into(), 1),
    );
    Ok(wrong)
}

/// Builds the lab, runs the traffic, prints the report, removes everything. Fails if
/// any reachability differs from what VRF isolation says it should be.
pub fn run(binary: &std::path::Path, options: &LabOptions) -> anyhow::Result<()> {
    let binary = binary.to_path_buf();
    let lan = node::FabricLan::new()?;
    let mut nodes = vec![lab_node(options, &binary, 1)?, lab_node(options, &binary, 2)?];
    println!(
        "== vrouter lab: two compute nodes on a fabric bridge (namespaces {} and {})",
        nodes[0].ns.name(),
        nodes[1].ns.name()
    );
    let _control_node = ControlNode::start(&lan)?;
    for (k, n) in nodes.iter_mut().enumerate() {
        n.add_config(services_section::HOST_CONFIG);
        n.add_config(&ingress_section::config(k as u8 + 1));
        n.add_config(&format!(
            "[xmpp]\nservers = [\"{CONTROL_NODE}\"]\nhost = \"lab-node-{}\"",
            k + 1
        ));
        n.join(&lan)?;
        n.start_vrouter()?;
    }
    let per_vrf = options.pods_per_vrf;
    // The red and blue pods come in as a container runtime brings them: the CNI
    // plugin's ADD, host-local IPAM giving each the address the lab plans for it.
    let cni = cni::CniDriver::new(&cli::cni_plugin(options.cni_plugin.clone())?)?;
    let attach_started = std::time::Instant::now();
    for (vrf_index, vrf) in ["red", "blue"].iter().enumerate() {
        for i in 1..=per_vrf {
            cni.add_lab_pod(&mut nodes[0], vrf, vrf_index as u8, i)?;
        }
        cni.add_lab_pod(&mut nodes[1], vrf, vrf_index as u8, per_vrf + 1)?;
    }
    println!(
        "   {} pods attached through the CNI plugin (ADD, host-local IPAM; each ADD returns once its pod reaches its gateway) in {} ms",
        2 * (usize::from(per_vrf) + 1),
        attach_started.elapsed().as_millis()
    );
    for n in &nodes {
        for (vrf, vni) in VNIS {
            let _: serde_json::Value = n
                .api()
                .call(&vrouter::api::Request::SetVrfVni { vrf: vrf.into(), vni })?;
        }
    }
    advertise_blue(&nodes[0], &nodes[1])?;
    advertise_blue(&nodes[1], &nodes[0])?;
    let learned = wait_learned(&nodes[0], &nodes[1]) && wait_learned(&nodes[1], &nodes[0]);
    for (k, n) in nodes.iter().enumerate() {
        for pod in &n.pods {
            println!(
                "   node {} pod {:<8} vrf {:<5} {} / {} on {}",
                k + 1,
                pod.name,
                pod.vrf,
                pod.ipv4,
                pod.ipv6,
                pod.host_if
            );
        }
    }
    println!(
        "   red crosses the fabric over MPLS over UDP with routes from the control-node peer over XMPP ({CONTROL_NODE}{}), blue over VXLAN (VNI 200, routes through the API)",
        if learned { "" } else { "; NOT ALL LEARNED" }
    );
    if !nodes.iter().all(wait_tunnels_resolved) {
        println!("   (some tunnel next hops are still unresolved)");
    }
    let pods: Vec<(usize, &node::Pod)> = nodes
        .iter()
        .enumerate()
        .flat_map(|(k, n)| n.pods.iter().map(move |p| (k + 1, p)))
        .collect();
    let label = |(k, p): &(usize, &node::Pod)| format!("{k}:{}", p.name);
    let mut wrong = Vec::new();
    for family in ["IPv4", "IPv6"] {
        println!("\n== {family} reachability (ping; rows ping columns; ok = reply, -- = none; n:pod = pod on node n)");
        print!("{:>10}", "");
        for p in &pods {
            print!(" {:>9}", label(p));
        }
        println!();
        for from in &pods {
            print!("{:>10}", label(from));
            for to in &pods {
                if std::ptr::eq(from.1, to.1) {
                    print!(" {:>9}", "");
                    continue;
                }
                let dst: IpAddr = if family == "IPv4" {
                    to.1.ipv4.into()
                } else {
                    to.1.ipv6.into()
                };
                let expected = from.1.vrf == to.1.vrf;
                let got = traffic::ping(from.1, dst, if expected { 3 } else { 1 });
                if got != expected {
                    wrong.push(format!(
                        "{family} {} -> {}: expected {}, got {}",
                        label(from),
                        label(to),
                        mark(expected),
                        mark(got)
                    ));
                }
                print!(" {:>9}", mark(got));
            }
            println!();
        }
        let gw_ok = pods.iter().all(|(_, p)| {
            traffic::ping(
                p,
                if family == "IPv4" {
                    p.gateway4.into()
                } else {
                    p.gateway6.into()
                },
                3,
            )
        });
        println!("   every pod pings its gateway: {}", mark(gw_ok));
        if !gw_ok {
            wrong.push(format!("{family}: a pod cannot ping its gateway"));
        }
    }
    println!("\n== transfers");
    let bytes = options.tcp_mb * 1_000_000;
    let red: Vec<&(usize, &node::Pod)> = pods.iter().filter(|(_, p)| p.vrf == "red").collect();
    let blue: Vec<&(usize, &node::Pod)> = pods.iter().filter(|(_, p)| p.vrf == "blue").collect();
    let mut pairs = vec![
        (red[0], *red.last().expect("a red pod on node 2"), "MPLSoUDP"),
        (blue[0], *blue.last().expect("a blue pod on node 2"), "VXLAN"),
    ];
    if red.len() > 2 {
        pairs.insert(0, (red[0], red[1], "same node"));
    }
    for (from, to, how) in pairs {
        for dst in [IpAddr::from(to.1.ipv4), IpAddr::from(to.1.ipv6)] {
            let t = traffic::tcp_transfer(from.1, to.1, dst, bytes)?;
            println!(
                "   TCP {} -> {} ({how}) [{dst}]: {} bytes, intact: {}, {:.0} Mbit/s",
                label(from),
                label(to),
                t.bytes,
                t.intact,
                t.mbit_per_s
            );
            if !t.intact {
                wrong.push(format!(
                    "TCP {} -> {} [{dst}] data damaged or short",
                    label(from),
                    label(to)
                ));
            }
        }
        let u = traffic::udp_burst(from.1, to.1, to.1.ipv4.into(), options.udp_count, 512)?;
        println!(
            "   UDP {} -> {} ({how}): {}/{} datagrams of 512 B, {:.0} pps",
            label(from),
            label(to),
            u.received,
            u.sent,
            u.pps
        );
    }
    wrong.extend(floating_ip_section(&mut nodes, &cni)?);
    wrong.extend(services_section::run(&nodes, &lan)?);
    wrong.extend(k8s_section::run(&binary, &mut nodes, &cni)?);
    wrong.extend(networks_section::run(&mut nodes, &cni)?);
    wrong.extend(ingress_section::run(&binary, &mut nodes, &cni)?);
    for (k, n) in nodes.iter().enumerate() {
        println!("\n== node {}: vif", k + 1);
        for i in n.interfaces()? {
            println!(
                "   vif {:<3} {:<9} {:<6} rx {:>9} pkts  tx {:>9} pkts  drops {:>6}",
                i.vif, i.name, i.vrf, i.counters.rx_packets, i.counters.tx_packets, i.counters.drops
            );
        }
        let tunnels: Vec<vrouter::stats::TunnelTotals> = n.api().call(&vrouter::api::Request::Tunnels)?;
        for t in tunnels {
            println!(
                "   tunnel to/from {:<12} tx {:>9} pkts {:>11} B  rx {:>9} pkts {:>11} B",
                t.remote.to_string(),
                t.tx_packets,
                t.tx_bytes,
                t.rx_packets,
                t.rx_bytes
            );
        }
        let flows: vrouter::api::FlowStatsView = n.api().call(&vrouter::api::Request::FlowStats)?;
        println!(
            "   flows: {} entries active, {} created, {} refused",
            flows.active_entries,
            flows.created_entries,
            flows.refused_table_full + flows.refused_interface_limit
        );
        let drops = n.drop_stats()?;
        let nonzero: Vec<String> = drops
            .reasons
            .iter()
            .filter(|(_, c)| *c > 0)
            .map(|(l, c)| format!("{l} {c}"))
            .collect();
        println!(
            "   drops: {}",
            if nonzero.is_empty() {
                "none".to_string()
            } else {
                nonzero.join(", ")
            }
        );
    }
    wrong.extend(cni_section::run(&cni, &nodes)?);
    let mut left = Vec::new();
    for n in &mut nodes {
        n.stop_vrouter()?;
        left.extend(n.interfaces_with_xdp());
    }
    println!(
        "\n== shutdown: XDP programs left attached: {}",
        if left.is_empty() {
            "none".to_string()
        } else {
            left.join(", ")
        }
    );
    drop(nodes);
    drop(lan);
    println!("== lab removed");
    if wrong.is_empty() {
        println!(
            "RESULT: every pod reaches exactly the pods of its own VRF, on its node and across the fabric; the isolated pod reaches red, and red it, only through its floating IP; services spread, node ports and source NAT reach across the cluster's edge, health checks take a dead backend out; Kubernetes manifests applied: network policies allow exactly what Kubernetes defines, an isolated namespace is reached only through its services; ingresses route by path and host and their VIPs follow the active haproxy; pods resolve service names through kube-dns"
        );
        Ok(())
    } else {
        anyhow::bail!("unexpected results:\n  {}", wrong.join("\n  "))
    }
}

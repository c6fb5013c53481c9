//! Ports configured by the control node: two nodes bind their pods' interfaces to
//! virtual machine interfaces (as the CNI plugin does) and the control-node peer
//! serves the objects kube-manager would create for them over IF-MAP. The ports are
//! attached with the VRF, addresses and gateway of the configuration, their routes
//! cross over XMPP and the pods reach each other; deleting a pod's objects detaches
//! its port (and traffic stops); adding them again brings it back; a restarted
//! vrouter forwards for its bound port before the configuration is sent again.

use control_client::contrail::rules::{Endpoint, PortRange, Rule, RuleAction};
use control_client::contrail::{encode, IpamSubnet, PortObjects, SecurityGroupProps, Uuid};
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};
use system_tests::{fabric_host, fabric_node, serial};
use vrouter::api::{ConfigView, Request};
use vrouter_lab::http::{connect, get, WebServer, WEB_PORT};
use vrouter_lab::netns::Netns;
use vrouter_lab::node::{FabricLan, LabNode, Pod};
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");
const PEER: &str = system_tests::CONTROL_NODE;
const NETWORK: &str = "default-domain:k8s-default:cluster-network";

/// The control-node peer serving `dir`, killed when dropped.
fn peer(host: &Netns, dir: &Path) -> system_tests::ControlNodePeer {
    system_tests::ControlNodePeer::start_with(
        host,
        LAB,
        PEER,
        &[std::ffi::OsStr::new("--config-dir"), dir.as_os_str()],
    )
}

/// A config directory removed when dropped.
struct ConfigDir(PathBuf);

impl ConfigDir {
    fn new() -> ConfigDir {
        let dir = std::env::temp_dir().join(format!("vrouter-config-{}-{:?}", std::process::id(), Instant::now()));
        std::fs::create_dir_all(&dir).unwrap();
        ConfigDir(dir)
    }

    /// Writes `xml` as file `name` for `host` (atomically: the peer never reads half).
    fn write(&self, host: &str, name: &str, xml: &str) {
        let dir = self.0.join(host);
        std::fs::create_dir_all(&dir).unwrap();
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, xml).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

impl Drop for ConfigDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Node `n` with one pod whose port is not attached through the API.
fn node(lan: &FabricLan, n: u8) -> LabNode {
    let mut node = system_tests::peering_node(BIN, lan, n, PEER);
    node.add_pod("unused", 0, n, false).expect("adding a pod");
    node
}

/// The objects of node `n`'s pod.
fn objects(n: u8, pod: &Pod) -> PortObjects {
    PortObjects {
        host: format!("node-{n}"),
        vm: Uuid::from_u128(0x1000 + u128::from(n)),
        vmi: Uuid::from_u128(0x2000 + u128::from(n)),
        vmi_name: format!(
            "default-domain:k8s-default:pod-{n}__{}",
            Uuid::from_u128(0x2000 + u128::from(n))
        ),
        network: NETWORK.into(),
        network_id: 4,
        subnets: vec![
            IpamSubnet {
                prefix: "198.18.1.0/24".parse().unwrap(),
                gateway: Some(pod.gateway4.into()),
                dns_server: None,
            },
            IpamSubnet {
                prefix: "2001:2:0:1::/64".parse().unwrap(),
                gateway: Some(pod.gateway6.into()),
                dns_server: None,
            },
        ],
        mac: pod.mac,
        addresses: vec![pod.ipv4.into(), pod.ipv6.into()],
        vlan: None,
    }
}

/// Binds node 1's and 2's pods to `oa` and `ob` and starts a web server in node
/// 2's: the server and its address.
fn serve(a: &LabNode, oa: &PortObjects, b: &LabNode, ob: &PortObjects) -> (WebServer, std::net::SocketAddr) {
    bind(a, oa);
    bind(b, ob);
    let pb = &b.pods[0];
    let server = WebServer::start(&pb.ns, "web", &[]).expect("web server in node 2's pod");
    (server, std::net::SocketAddr::from((pb.ipv4, WEB_PORT)))
}

/// A node's configuration, policies and log, for a failure's message.
fn policy_context(n: &LabNode) -> String {
    let policies: serde_json::Value = n.api().call(&Request::Policies).unwrap();
    format!("config {:?}\npolicies {policies}\nlog {}", config(n), n.log())
}

/// What the web server answers on connection `open` (opened earlier) now: nothing
/// if it is cut off.
fn ask_again(open: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::{Read, Write};
    let _ = open.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = open.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n");
    let mut answer = Vec::new();
    let _ = open.read_to_end(&mut answer);
    answer
}

/// Nodes 1 and 2 on a fabric with the lab's control-node peer serving `dir`
/// (dropped in this order: nodes, peer, directory, fabric).
struct TwoNodes {
    a: LabNode,
    b: LabNode,
    _peer: system_tests::ControlNodePeer,
    dir: ConfigDir,
    _host: Netns,
    _lan: FabricLan,
}

impl TwoNodes {
    fn new() -> TwoNodes {
        let lan = FabricLan::new().expect("fabric LAN");
        let host = fabric_host(&lan, 10);
        let dir = ConfigDir::new();
        let peer = peer(&host, &dir.0);
        let (a, b) = (node(&lan, 1), node(&lan, 2));
        TwoNodes {
            a,
            b,
            _peer: peer,
            dir,
            _host: host,
            _lan: lan,
        }
    }
}

fn bind(node: &LabNode, objects: &PortObjects) {
    let binding = control_client::contrail::PortBinding {
        name: node.pods[0].host_if.clone(),
        vmi: objects.vmi,
        vm: Some(objects.vm),
        mtu: None,
    };
    let _: serde_json::Value = node.api().call(&Request::BindPort { binding }).unwrap();
}

fn config(node: &LabNode) -> ConfigView {
    node.api().call(&Request::Config).unwrap()
}

/// Waits (bounded) until `what` holds.
fn eventually(what: &str, timeout: Duration, cond: impl Fn() -> bool, context: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}\n{}", context());
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn ports_configured_by_the_control_node_are_attached_and_follow_their_config() {
    let _machine = serial();
    let lan = FabricLan::new().expect("fabric LAN");
    let host = fabric_host(&lan, 10);
    let dir = ConfigDir::new();
    let _peer = peer(&host, &dir.0);
    let mut a = node(&lan, 1);
    let b = node(&lan, 2);
    let (oa, ob) = (objects(1, &a.pods[0]), objects(2, &b.pods[0]));
    let vrf = oa.vrf();
    dir.write("node-1", "10-pod.xml", &encode(&oa.updates()));
    dir.write("node-2", "10-pod.xml", &encode(&ob.updates()));
    bind(&a, &oa);
    bind(&b, &ob);
    let context = |n: &LabNode| format!("config {:?}\nlog {}", config(n), n.log());
    for n in [&a, &b] {
        eventually(
            "the bound port is attached in the configured VRF",
            Duration::from_secs(40),
            || {
                config(n)
                    .ports
                    .iter()
                    .any(|p| p.attached && p.vrf.as_deref() == Some(vrf.as_str()))
            },
            || context(n),
        );
    }
    let view = config(&a);
    assert_eq!(view.server, Some(0));
    assert!(view.objects >= 6, "{view:?}");
    assert_eq!(
        view.ports[0].config_name.as_deref(),
        Some(oa.vmi_name.as_str()),
        "{view:?}"
    );
    // The configured VRF's VNI is the network id (automatic VXLAN mode).
    let vxlan: Vec<(u32, String)> = a.api().call(&Request::Vxlan).unwrap();
    assert!(vxlan.contains(&(4, vrf.clone())), "{vxlan:?}");
    // The pods reach each other: their routes crossed over XMPP in that VRF.
    let (pa, pb) = (&a.pods[0], &b.pods[0]);
    for to in [std::net::IpAddr::from(pb.ipv4), pb.ipv6.into()] {
        eventually(
            &format!("ping {to} across the fabric"),
            Duration::from_secs(40),
            || ping(pa, to, 1),
            || context(&a),
        );
    }
    // Node 2's pod is deleted in the configuration: its port is detached (once the
    // initial sync is over) and traffic to it stops.
    dir.write("node-2", "20-delete.xml", &encode(&ob.deletes()));
    eventually(
        "node 2's port detached",
        Duration::from_secs(20),
        || config(&b).ports.iter().all(|p| !p.attached && p.waiting_for.is_some()),
        || context(&b),
    );
    assert!(!ping(pa, pb.ipv4.into(), 1), "traffic to a deleted pod");
    // Created again: attached again, under the same label.
    dir.write("node-2", "30-readd.xml", &encode(&ob.updates()));
    eventually(
        "node 2's port back",
        Duration::from_secs(20),
        || ping(pa, pb.ipv4.into(), 1),
        || context(&b),
    );
    // A restart keeps the bound port: it forwards from the state directory at once,
    // before the control node sends the configuration again.
    let (host_if, target) = (pa.host_if.clone(), pb.ipv4);
    a.stop_vrouter().expect("stopping node 1");
    a.start_vrouter().expect("starting node 1 again");
    let interfaces: Vec<vrouter::api::InterfaceView> = a.api().call(&Request::Interfaces).unwrap();
    assert!(
        interfaces.iter().any(|i| i.name == host_if && i.vrf == vrf),
        "{interfaces:?}"
    );
    eventually(
        "traffic after the restart",
        Duration::from_secs(40),
        || ping(&a.pods[0], target.into(), 1),
        || context(&a),
    );
}

/// A pod added through the CNI plugin with `"ipam": {"type": "vrouter"}`: the plugin
/// waits for the interface kube-manager configured for the pod's virtual machine (its
/// UID in `CNI_ARGS`), gives the pod its MAC, address and gateway, and binds the port
/// to it; DEL unbinds it. A pod whose interface never comes is refused in time, with
/// nothing left behind.
#[test]
fn a_pod_added_through_the_cni_plugin_takes_its_addresses_from_the_configuration() {
    const PLUGIN: &str = env!("CARGO_BIN_EXE_vrouter-cni-under-test");
    let _machine = serial();
    let lan = FabricLan::new().expect("fabric LAN");
    let host = fabric_host(&lan, 10);
    let dir = ConfigDir::new();
    let _peer = peer(&host, &dir.0);
    let mut node = fabric_node(BIN, 1);
    node.add_config(&system_tests::xmpp_section(PEER, 1));
    node.join(&lan).expect("joining the fabric");
    node.start_vrouter().expect("starting the vrouter");
    let vm = Uuid::from_u128(0x1007);
    let objects = PortObjects {
        host: "node-1".into(),
        vm,
        vmi: Uuid::from_u128(0x2007),
        vmi_name: format!("default-domain:k8s-default:web-7__{}", Uuid::from_u128(0x2007)),
        network: NETWORK.into(),
        network_id: 4,
        subnets: vec![IpamSubnet {
            prefix: "198.18.1.0/24".parse().unwrap(),
            gateway: Some("198.18.1.1".parse().unwrap()),
            dns_server: None,
        }],
        mac: nexthop::MacAddr([0x02, 0x5e, 0, 0, 0, 0x07]),
        addresses: vec!["198.18.1.7".parse().unwrap()],
        vlan: None,
    };
    dir.write("node-1", "10-pod.xml", &encode(&objects.updates()));
    let mut cni = vrouter_lab::cni::CniDriver::new(Path::new(PLUGIN)).unwrap();
    cni.set_cni_args(&format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-7;K8S_POD_UID={vm}"
    ));
    let mut conf = cni.config(
        "1.1.0",
        "cluster-network",
        &node,
        "cluster-network",
        "198.18.1.0/24",
        "2001:2:0:1::/64",
    );
    conf["ipam"] = serde_json::json!({"type": "vrouter"});
    conf["readyTimeoutMs"] = serde_json::json!(30_000);
    let pod = Netns::create("pod").unwrap();
    let added = cni.run("ADD", &conf, "web-7", &pod).unwrap();
    assert!(added.ok, "{}\n{}", added.json, node.log());
    assert_eq!(added.json["ips"][0]["address"], "198.18.1.7/24", "{}", added.json);
    assert_eq!(added.json["ips"][0]["gateway"], "198.18.1.1");
    assert_eq!(added.json["interfaces"][1]["mac"], "02:5e:00:00:00:07");
    let view = config(&node);
    let port = view.ports.iter().find(|p| p.vmi == objects.vmi.to_string());
    assert!(
        port.is_some_and(|p| p.attached && p.vrf.as_deref() == Some(objects.vrf().as_str())),
        "{view:?}"
    );
    // The pod's interface as configured (ADD returned once it reached its gateway).
    let link =
        String::from_utf8_lossy(&pod.exec("ip", &["-j", "addr", "show", "dev", "eth0"]).unwrap().stdout).into_owned();
    assert!(
        link.contains("198.18.1.7") && link.contains("02:5e:00:00:00:07"),
        "{link}"
    );
    // CHECK finds it as ADD made it (the configured MAC and VRF).
    let checked = cni
        .run(
            "CHECK",
            &vrouter_lab::cni::with_prev_result(&conf, &added.json),
            "web-7",
            &pod,
        )
        .unwrap();
    assert!(checked.ok, "{}", checked.json);
    // DEL: unbound, detached.
    let deleted = cni
        .run(
            "DEL",
            &vrouter_lab::cni::with_prev_result(&conf, &added.json),
            "web-7",
            &pod,
        )
        .unwrap();
    assert!(deleted.ok, "{}", deleted.json);
    let view = config(&node);
    assert!(view.ports.is_empty(), "{view:?}");
    // A pod whose interface is not configured: refused in time, nothing left.
    cni.set_cni_args(&format!("IgnoreUnknown=1;K8S_POD_UID={}", Uuid::from_u128(0x1999)));
    conf["readyTimeoutMs"] = serde_json::json!(1_000);
    let other = Netns::create("pod").unwrap();
    let asked = Instant::now();
    let refused = cni.run("ADD", &conf, "web-8", &other).unwrap();
    assert!(!refused.ok, "{}", refused.json);
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "refused after {:?}",
        asked.elapsed()
    );
    assert_eq!(refused.json["code"], 11, "try again later: {}", refused.json);
    assert!(config(&node).ports.is_empty());
    let ports: Vec<vrouter::api::InterfaceView> = node.api().call(&Request::Interfaces).unwrap();
    assert!(!ports.iter().any(|p| p.name.starts_with("vc")), "{ports:?}");
}

/// A security group rule (`local` on one end) as kube-manager writes one.
fn group_rule(ingress: bool, remote: Endpoint, protocol: Option<u8>, port: Option<u16>) -> Rule {
    let ports = port.map(|p| PortRange { start: p, end: p });
    Rule::security_group(ingress, remote, protocol, ports.into_iter().collect())
}

/// Security groups from the control node filter traffic where it is received: node
/// 1's pod is in group `client` (it lets nothing in), node 2's in group `web`,
/// which lets in TCP 8080 from `client`'s members; node 2 learns who they are from
/// the security group list of node 1's route. Opened to ICMP, pings pass; the
/// port changed, the web server is cut off, including the connection already open.
#[test]
fn security_groups_from_the_control_node_filter_traffic_where_it_arrives() {
    let _machine = serial();
    let TwoNodes { a, b, dir, .. } = &TwoNodes::new();
    let (oa, ob) = (objects(1, &a.pods[0]), objects(2, &b.pods[0]));
    // Group ids as the API server numbers them; web names client by its id, as the
    // schema transformer writes a remote group (node 2 holds no object of it).
    let client = |ingress: Vec<Rule>| SecurityGroupProps {
        id: Some(8_000_011),
        rules: [vec![group_rule(false, Endpoint::Any, None, None)], ingress].concat(),
    };
    let from_clients = |protocol: u8, port: Option<u16>| {
        group_rule(true, Endpoint::SecurityGroup("8000011".into()), Some(protocol), port)
    };
    let web = |ingress: Vec<Rule>| SecurityGroupProps {
        id: Some(8_000_010),
        rules: [vec![group_rule(false, Endpoint::Any, None, None)], ingress].concat(),
    };
    let with_group = |o: &PortObjects, name: &str, props: SecurityGroupProps| {
        let mut ops = o.updates();
        ops.extend(o.security_group(name, props));
        encode(&ops)
    };
    dir.write(
        "node-1",
        "10-pod.xml",
        &with_group(&oa, "default-domain:k8s-default:client", client(vec![])),
    );
    dir.write(
        "node-2",
        "10-pod.xml",
        &with_group(
            &ob,
            "default-domain:k8s-default:web",
            web(vec![from_clients(6, Some(WEB_PORT))]),
        ),
    );
    let (_server, web_addr) = serve(a, &oa, b, &ob);
    let (pa, pb) = (&a.pods[0], &b.pods[0]);
    let context = policy_context;
    eventually(
        "the client reaches the web server",
        Duration::from_secs(40),
        || get(&pa.ns, web_addr, "web", "/", Duration::from_secs(1)).is_ok_and(|a| a.status == 200),
        || context(b),
    );
    // Pings are no part of web's rules, and client lets nothing in.
    assert!(!ping(pa, pb.ipv4.into(), 2), "a ping web does not allow");
    assert!(!ping(pb, pa.ipv4.into(), 2), "a ping client does not allow");
    let mut open = connect(&pa.ns, web_addr, Duration::from_secs(2)).expect("a connection to keep open");
    // Web opens to pings from client (and the open connection still works).
    dir.write(
        "node-2",
        "20-icmp.xml",
        &encode(&ob.security_group(
            "default-domain:k8s-default:web",
            web(vec![from_clients(6, Some(WEB_PORT)), from_clients(1, None)]),
        )),
    );
    eventually(
        "pings from client to web",
        Duration::from_secs(20),
        || ping(pa, pb.ipv4.into(), 1),
        || context(b),
    );
    assert!(!ping(pb, pa.ipv4.into(), 2), "client still lets nothing in");
    // Web's TCP rule moves to another port: new connections and the open one stop.
    dir.write(
        "node-2",
        "30-port.xml",
        &encode(&ob.security_group(
            "default-domain:k8s-default:web",
            web(vec![from_clients(6, Some(9999)), from_clients(1, None)]),
        )),
    );
    eventually(
        "the web server cut off",
        Duration::from_secs(20),
        || get(&pa.ns, web_addr, "web", "/", Duration::from_millis(500)).is_err(),
        || context(b),
    );
    let answer = ask_again(&mut open);
    assert!(answer.is_empty(), "the connection open before the change was answered");
    assert!(ping(pa, pb.ipv4.into(), 2), "pings are still allowed");
}

/// A rule of a network's access control list, as the schema transformer writes
/// one: one way, from `src` to the network, its action.
fn network_rule(src: Endpoint, protocol: Option<u8>, port: Option<u16>, action: RuleAction) -> Rule {
    let ports = port.map(|p| PortRange { start: p, end: p });
    let network = Endpoint::VirtualNetwork(NETWORK.into());
    Rule::one_way(src, network, protocol, ports.into_iter().collect(), action)
}

/// A network's access control list from the control node decides, where traffic
/// is received, what its first matching rule says: node 2 is given the network's
/// list, which denies TCP 8080 from node 1's pod and then passes the network to
/// itself. The web server is cut off (the connection open before too) while pings
/// pass; the list changed to deny ICMP instead, pings stop and the web server
/// answers again. Node 1 has no list: what it sends is not filtered there.
#[test]
fn a_networks_access_list_from_the_control_node_decides_by_first_match_where_traffic_arrives() {
    let _machine = serial();
    let TwoNodes { a, b, dir, .. } = &TwoNodes::new();
    let (oa, ob) = (objects(1, &a.pods[0]), objects(2, &b.pods[0]));
    dir.write("node-1", "10-pod.xml", &encode(&oa.updates()));
    dir.write("node-2", "10-pod.xml", &encode(&ob.updates()));
    let (_server, web_addr) = serve(a, &oa, b, &ob);
    let (pa, pb) = (&a.pods[0], &b.pods[0]);
    let context = policy_context;
    let web_answers = |timeout| get(&pa.ns, web_addr, "web", "/", timeout).is_ok_and(|a| a.status == 200);
    eventually(
        "the client reaches the web server",
        Duration::from_secs(40),
        || web_answers(Duration::from_secs(1)),
        || context(b),
    );
    let mut open = connect(&pa.ns, web_addr, Duration::from_secs(2)).expect("a connection to keep open");
    let from_a = Endpoint::Subnet(ipnet::IpNet::from(std::net::IpAddr::from(pa.ipv4)));
    let itself = Endpoint::VirtualNetwork(NETWORK.into());
    dir.write(
        "node-2",
        "20-list.xml",
        &encode(&ob.network_acl(vec![
            network_rule(from_a.clone(), Some(6), Some(WEB_PORT), RuleAction::Deny),
            network_rule(itself.clone(), None, None, RuleAction::Pass),
        ])),
    );
    eventually(
        "the web server cut off",
        Duration::from_secs(20),
        || !web_answers(Duration::from_millis(500)),
        || context(b),
    );
    let answer = ask_again(&mut open);
    assert!(answer.is_empty(), "the connection open before the list was answered");
    assert!(ping(pa, pb.ipv4.into(), 2), "the network passes to itself: pings");
    assert!(ping(pb, pa.ipv4.into(), 2), "and back");
    let policies: Vec<vrouter::api::PolicyView> = b.api().call(&Request::Policies).unwrap();
    let list = policies
        .iter()
        .find(|p| p.name == format!("config:vn:{NETWORK}"))
        .unwrap_or_else(|| panic!("the network's policy: {policies:?}"));
    assert!(list.denied >= 1, "the denied connection is counted: {list:?}");
    assert_eq!(list.tier, control_client::PolicyTier::Network, "{list:?}");
    // The first rule now denies ICMP from node 1's pod.
    dir.write(
        "node-2",
        "20-list.xml",
        &encode(&ob.network_acl(vec![
            network_rule(from_a, Some(1), None, RuleAction::Deny),
            network_rule(itself, None, None, RuleAction::Pass),
        ])),
    );
    eventually(
        "the web server answers again",
        Duration::from_secs(20),
        || web_answers(Duration::from_secs(1)),
        || context(b),
    );
    assert!(!ping(pa, pb.ipv4.into(), 2), "pings from node 1's pod are denied");
}

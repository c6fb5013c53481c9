//! Two nodes take their remote routes from a control node over XMPP (the lab's
//! control-node peer, on the fabric LAN), not from the local API: pods on the two
//! nodes reach each other; with the peer killed, traffic keeps flowing (headless);
//! with the peer back, both channels come up again and traffic flows.

use std::net::IpAddr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use system_tests::{fabric_host, fabric_node, serial};
use vrouter::api::{Request, XmppChannelView};
use vrouter_lab::netns::Netns;
use vrouter_lab::node::{FabricLan, LabNode};
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const LAB: &str = env!("CARGO_BIN_EXE_vrouter-lab-under-test");
const PEER: &str = "198.18.0.10:5269";

/// The control-node peer, killed when dropped.
struct Peer(Child);

impl Peer {
    fn start(host: &Netns) -> Peer {
        let child = host
            .command(LAB)
            .args(["control-node", "--listen", PEER])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("control-node peer");
        Peer(child)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(lan: &FabricLan, n: u8) -> LabNode {
    let mut node = fabric_node(BIN, n);
    node.add_config(&format!(
        "[xmpp]\nservers = [\"{PEER}\"]\nhost = \"node-{n}\"\nhold_time_secs = 9"
    ));
    node.join(lan).expect("joining the fabric");
    node.start_vrouter().expect("starting the vrouter");
    node.add_pod("red", 0, n, true).expect("adding a pod");
    node
}

fn channel(n: &LabNode) -> XmppChannelView {
    let channels: Vec<XmppChannelView> = n.api().call(&Request::Xmpp).unwrap();
    channels.into_iter().next().expect("one channel")
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
fn pods_on_two_nodes_reach_each_other_by_routes_from_a_control_node() {
    let _machine = serial();
    let lan = FabricLan::new().expect("fabric LAN");
    let host = fabric_host(&lan, 10);
    let peer = Peer::start(&host);
    let a = node(&lan, 1);
    let b = node(&lan, 2);
    let (pa, pb) = (&a.pods[0], &b.pods[0]);
    let context = || {
        format!(
            "node 1 channel {:?}\nnode 2 channel {:?}\nnode 1 log {}",
            channel(&a),
            channel(&b),
            a.log()
        )
    };
    for to in [IpAddr::from(pb.ipv4), IpAddr::from(pb.ipv6)] {
        eventually(
            &format!("ping {to} across the fabric"),
            Duration::from_secs(40),
            || ping(pa, to, 1),
            context,
        );
    }
    assert!(ping(pb, pa.ipv4.into(), 3), "and back\n{}", context());
    // The routes came over XMPP: none was added through either node's API.
    let routes: Vec<vrouter::api::RouteView> = a.api().all_routes(Some("red"), 10_000).unwrap();
    assert!(
        routes.iter().any(|r| r.prefix.to_string() == format!("{}/32", pb.ipv4)),
        "{routes:?}"
    );
    assert!(channel(&a).route_messages > 0);
    // Headless: the control node goes away, traffic keeps flowing.
    drop(peer);
    eventually(
        "the channels notice",
        Duration::from_secs(30),
        || !channel(&a).up && !channel(&b).up,
        context,
    );
    assert!(ping(pa, pb.ipv4.into(), 3), "headless forwarding\n{}", context());
    // The control node comes back: both channels come up again and re-sync.
    let _peer = Peer::start(&host);
    eventually(
        "both channels up again",
        Duration::from_secs(60),
        || channel(&a).established >= 2 && channel(&b).established >= 2 && channel(&a).up && channel(&b).up,
        context,
    );
    eventually(
        "traffic after the re-sync",
        Duration::from_secs(30),
        || ping(pa, pb.ipv4.into(), 1),
        context,
    );
}

//! Pods on one node: reachability inside a VRF over IPv4 and IPv6, a 10 MB TCP
//! transfer with intact data, isolation between VRFs with the drop counted, and
//! interfaces added and removed while traffic runs.

use std::net::IpAddr;
use system_tests::{node, serial};
use vrouter::config::XdpMode;
use vrouter_lab::traffic::{ping, tcp_transfer};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

fn same_vrf_reach_and_other_vrf_isolated(mode: XdpMode) {
    let _machine = serial();
    let mut n = node(BIN, mode);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    n.add_pod("blue", 1, 1, true).unwrap();
    let (a, b, c) = (&n.pods[0], &n.pods[1], &n.pods[2]);

    for dst in [IpAddr::from(b.ipv4), IpAddr::from(b.ipv6)] {
        assert!(ping(a, dst, 5), "red-1 cannot ping red-2 at {dst}\n{}", n.log());
    }
    assert!(ping(b, a.ipv6.into(), 3), "red-2 cannot ping red-1 over IPv6");
    assert!(
        ping(a, a.gateway4.into(), 3) && ping(a, a.gateway6.into(), 3),
        "gateway does not answer"
    );

    let t = tcp_transfer(a, b, b.ipv4.into(), 10_000_000).unwrap();
    assert!(t.intact && t.bytes == 10_000_000, "TCP over IPv4 damaged: {t:?}");
    let t = tcp_transfer(b, a, a.ipv6.into(), 10_000_000).unwrap();
    assert!(t.intact && t.bytes == 10_000_000, "TCP over IPv6 damaged: {t:?}");

    let before = n.drop_stats().unwrap().get("other_vrf");
    for dst in [IpAddr::from(c.ipv4), IpAddr::from(c.ipv6)] {
        assert!(!ping(a, dst, 1), "red-1 reached blue-1 at {dst}");
    }
    assert!(!ping(c, a.ipv4.into(), 1), "blue-1 reached red-1");
    let after = n.drop_stats().unwrap().get("other_vrf");
    assert!(after >= before + 3, "other_vrf drops went from {before} to {after}");

    let vifs = n.interfaces().unwrap();
    let red1 = vifs.iter().find(|v| v.name == a.host_if).unwrap();
    assert!(
        red1.counters.rx_packets > 5000 && red1.counters.tx_packets > 1000,
        "{red1:?}"
    );
    // The drop is counted per port and per worker, by reason.
    let by_reason = |list: &[(String, u64)]| list.iter().find(|(r, _)| r == "other_vrf").map_or(0, |(_, n)| *n);
    assert!(by_reason(&red1.counters.drops_by_reason) >= 2, "{red1:?}");
    let status: vrouter::api::StatusView = n.api().call(&vrouter::api::Request::Status).unwrap();
    assert!(by_reason(&status.workers[0].drops_by_reason) >= 3, "{status:?}");
}

#[test]
fn native_xdp_pods_reach_within_vrf_only() {
    same_vrf_reach_and_other_vrf_isolated(XdpMode::Native);
}

#[test]
fn generic_xdp_pods_reach_within_vrf_only() {
    same_vrf_reach_and_other_vrf_isolated(XdpMode::Generic);
}

#[test]
fn interfaces_come_and_go_at_run_time() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, false).unwrap();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    assert!(!ping(a, b.ipv4.into(), 1), "reached a pod that is not attached");
    let vif = n.attach(1).unwrap();
    assert!(ping(a, b.ipv4.into(), 5), "attached pod unreachable\n{}", n.log());
    let api = n.api();
    let _: serde_json::Value = api
        .call(&vrouter::api::Request::RemoveInterface {
            name: b.host_if.clone(),
        })
        .unwrap();
    assert!(!n.ns.has_xdp_program(&b.host_if), "program left on a removed port");
    assert!(!ping(a, b.ipv4.into(), 1), "detached pod still reachable");
    assert_eq!(n.attach(1).unwrap(), vif, "vif number not reused");
    assert!(ping(a, b.ipv4.into(), 5), "re-attached pod unreachable");
    // Bad requests leave the state as it was.
    let mut spec = b.spec();
    let err = api
        .call::<serde_json::Value>(&vrouter::api::Request::AddInterface { spec: spec.clone() })
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    spec.name = "nosuchif0".into();
    spec.ipv4 = Some("198.18.1.77".parse().unwrap());
    spec.ipv6 = None;
    let err = api
        .call::<serde_json::Value>(&vrouter::api::Request::AddInterface { spec })
        .unwrap_err();
    assert!(err.to_string().contains("nosuchif0"), "{err}");
    assert_eq!(n.interfaces().unwrap().len(), 3, "fabric + two pods");
    assert!(ping(a, b.ipv4.into(), 3), "a failed request disturbed forwarding");
}

#[test]
fn routes_added_and_removed_through_the_api() {
    use control_client::{RouteSpec, RouteTarget};
    use vrouter::api::{Request, RouteView};
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    // Pod b also answers for a service-like address the VRF routes to it.
    b.ns.ip(&["addr", "add", "198.19.5.5/32", "dev", "lo"]).unwrap();
    let extra: std::net::IpAddr = "198.19.5.5".parse().unwrap();
    assert!(!ping(a, extra, 1), "reachable before the route exists");
    let api = n.api();
    let route = RouteSpec {
        vrf: "red".into(),
        prefix: "198.19.5.0/24".parse().unwrap(),
        target: RouteTarget::Interface {
            name: b.host_if.clone(),
        },
    };
    let _: serde_json::Value = api.call(&Request::AddRoute { route }).unwrap();
    let routes: Vec<RouteView> = api
        .all_routes(Some("red"), vrouter::api::MAX_ROUTES_PER_ANSWER)
        .unwrap();
    assert!(
        routes.iter().any(|r| r.prefix.to_string() == "198.19.5.0/24"),
        "{routes:?}"
    );
    assert!(ping(a, extra, 5), "route through the API not used\n{}", n.log());
    // A more specific discard route wins and is counted.
    let discard = RouteSpec {
        vrf: "red".into(),
        prefix: "198.19.5.5/32".parse().unwrap(),
        target: RouteTarget::Discard,
    };
    let _: serde_json::Value = api.call(&Request::AddRoute { route: discard }).unwrap();
    let before = n.drop_stats().unwrap().get("discard");
    assert!(!ping(a, extra, 1));
    assert!(n.drop_stats().unwrap().get("discard") > before);
    for prefix in ["198.19.5.5/32", "198.19.5.0/24"] {
        let _: serde_json::Value = api
            .call(&Request::RemoveRoute {
                vrf: "red".into(),
                prefix: prefix.parse().unwrap(),
            })
            .unwrap();
    }
    let before = n.drop_stats().unwrap().get("no_route");
    assert!(!ping(a, extra, 1), "reachable after the route was removed");
    assert!(n.drop_stats().unwrap().get("no_route") > before);
    let status: vrouter::api::StatusView = api.call(&Request::Status).unwrap();
    assert_eq!(status.workers.len(), 1);
    assert!(
        status.workers[0].rx_packets > 0 && status.workers[0].drops > 0,
        "{status:?}"
    );
}

#[test]
fn a_packet_too_big_for_the_egress_pod_gets_the_icmp_error() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, false).unwrap();
    // Pod b's interface takes 1400-byte packets; the vrouter learns it at attach.
    let host_if = n.pods[1].host_if.clone();
    n.ns.ip(&["link", "set", "dev", &host_if, "mtu", "1400"]).unwrap();
    n.pods[1].ns.ip(&["link", "set", "dev", "eth0", "mtu", "1400"]).unwrap();
    n.attach(1).unwrap();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    // 1372 bytes of ICMP payload + 28 = 1400: fits.
    let ping_size = |size: &str| {
        a.ns.command("ping")
            .args(["-4", "-c", "1", "-W", "2", "-M", "do", "-s", size, &b.ipv4.to_string()])
            .output()
            .unwrap()
    };
    assert!(ping_size("1372").status.success(), "a packet that fits was lost");
    let before = n.drop_stats().unwrap();
    let out = ping_size("1400");
    assert!(!out.status.success());
    let after = n.drop_stats().unwrap();
    assert!(after.get("mtu") > before.get("mtu"), "{after:?}");
    assert!(
        after.icmp_errors_sent > before.icmp_errors_sent,
        "no ICMP error sent: {after:?}"
    );
    // The pod's kernel learned the path MTU from it: the next try says so at once.
    let again = ping_size("1400");
    let text = String::from_utf8_lossy(&again.stdout).to_string() + &String::from_utf8_lossy(&again.stderr);
    assert!(text.contains("1400"), "no path MTU learned: {text}");
}

#[test]
fn a_port_whose_veth_vanishes_is_detached_and_comes_back_as_it_was() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    let host_if = n.pods[1].host_if.clone();
    let identity = |n: &vrouter_lab::node::LabNode| {
        n.interfaces()
            .unwrap()
            .into_iter()
            .find(|i| i.name == host_if)
            .map(|i| (i.vif, i.label))
    };
    let before = identity(&n).expect("attached");
    // The pod's veth is deleted under the vrouter (no vif delete): the kernel's link
    // message detaches it, well before the periodic sweep would.
    n.ns.ip(&["link", "del", "dev", &host_if]).unwrap();
    let deadline = std::time::Instant::now() + vrouter::control::task::LINK_SWEEP / 4;
    while identity(&n).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "still listed as attached after {:?}\n{}",
            vrouter::control::task::LINK_SWEEP / 4,
            n.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Logged before it is detached; the log is a file another process writes.
    while !n.log().contains("vanished") {
        assert!(std::time::Instant::now() < deadline, "not logged\n{}", n.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // An interface of the same name appears again: adding it works at once and it
    // keeps its vif and label.
    n.ns.ip(&["link", "add", &host_if, "type", "veth", "peer", "name", "vanishp"])
        .unwrap();
    n.ns.ip(&["link", "set", &host_if, "up"]).unwrap();
    let spec = n.pods[1].spec();
    let again: vrouter::api::AttachedView = n.api().call(&vrouter::api::Request::AddInterface { spec }).unwrap();
    assert_eq!(Some((again.vif, Some(again.label))), Some(before));
    assert!(
        ping(&n.pods[0], n.pods[0].gateway4.into(), 3),
        "the other pod is unaffected"
    );
}

/// Every port gets its own share of the worker's UMEM for receiving: ports attached
/// while few others were there do not keep frames that later ports need (frames in an
/// idle socket's fill ring cannot be taken back). Ports beyond what the UMEM holds are
/// refused with the key to raise, and a freed share goes to the next port.
#[test]
fn ports_attached_together_all_receive_and_a_full_umem_is_a_clear_error() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    // 4096 frames: a quarter of them guarantees 8 sockets (the fabric's and 7 pods')
    // a floor of 128.
    n.set_umem_frames(4096);
    n.set_fill_frames(128);
    n.start_vrouter().unwrap();
    for i in 1..=7 {
        n.add_pod("red", 0, i, true).unwrap();
    }
    // Every pod idle until all are attached, then each reaches its gateway.
    for pod in &n.pods {
        assert!(ping(pod, pod.gateway4.into(), 3), "{} starved\n{}", pod.name, n.log());
    }
    let refused = n.add_pod("red", 0, 8, true).unwrap_err();
    let message = format!("{refused:#}");
    assert!(message.contains("dataplane.umem_frames"), "{message}");
    let _: serde_json::Value = n
        .api()
        .call(&vrouter::api::Request::RemoveInterface {
            name: n.pods[0].host_if.clone(),
        })
        .unwrap();
    n.attach(7).unwrap();
    assert!(ping(&n.pods[7], n.pods[7].gateway4.into(), 3), "the late pod starved");
}

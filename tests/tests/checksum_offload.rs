//! Pods that keep their checksum offload on (what the CNI plugin leaves them when the
//! vrouter finishes checksums: AF_XDP transmit metadata, Linux 6.11+). Their frames'
//! TCP and UDP checksums hold only the pseudo-header's sum; every frame the vrouter
//! sends asks the kernel to finish it. The receiving pods here verify every checksum:
//! the vrouter's end of their veth has checksum offload off, so the kernel finishes
//! the sum in software there (as for a NIC without offload) and the pod's stack
//! checks it, dropping what is wrong. TCP over IPv4 and IPv6 and UDP arrive intact on
//! one node and across nodes over each encapsulation, and a datagram the vrouter
//! must fragment for the fabric (its checksum finished in software first) too. So do
//! connections to a service, whose translation leaves the transport checksum to the
//! kernel.

use control_client::{L4Protocol, ServicePort, ServiceSpec};
use nexthop::encap::Encap;
use std::net::IpAddr;
use system_tests::{node, route_to_pod, serial, set_vrf_vni, two_nodes};
use vrouter::api::{Request, StatusView};
use vrouter::config::XdpMode;
use vrouter_lab::backends::{ask_udp_sized, tcp_spread, udp_client, NamedServers};
use vrouter_lab::node::{FabricLan, LabNode, Pod};
use vrouter_lab::traffic::{tcp_transfer, udp_datagram};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

fn status(n: &LabNode) -> StatusView {
    n.api().call(&Request::Status).unwrap()
}

fn offloaded(n: &LabNode) -> u64 {
    status(n).workers.iter().map(|w| w.checksum_offloads).sum()
}

/// True if `pod`'s interface has transmit checksum offload on.
fn pod_offloads_checksums(pod: &Pod) -> bool {
    let out = pod.ns.exec("ethtool", &["-k", "eth0"]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim() == "tx-checksumming: on")
}

/// Makes `pod` verify every checksum it receives: the vrouter's end of its veth
/// stops offloading, so the kernel finishes checksums before the pod sees them.
fn verify_checksums_in(n: &LabNode, pod: &Pod) {
    n.ns.exec("ethtool", &["-K", &pod.host_if, "tx", "off"]).unwrap();
}

/// The receiving side of [`unfragmented_sender`]: one datagram of `size` bytes with
/// every byte as sent, within 5 s (exit 0), else exit 1.
const RECEIVER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5209))
s.settimeout(5)
size = int(sys.argv[1])
want = bytes(i % 251 for i in range(size))
print("ready", flush=True)
try:
    while True:
        got, _ = s.recvfrom(65536)
        if got == want:
            sys.exit(0)
except socket.timeout:
    sys.exit(1)
"#;

/// Sends datagrams of `size` bytes to argv[2] with DF clear (IP_PMTUDISC_DONT):
/// a router on the way fragments them.
const SENDER: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, 10, 0)
size = int(sys.argv[1])
for _ in range(5):
    s.sendto(bytes(i % 251 for i in range(size)), (sys.argv[2], 5209))
    time.sleep(0.2)
"#;

/// A datagram of `size` bytes from `from` to `to` without DF: whether it arrived.
fn unfragmented_sender(from: &Pod, to: &Pod, size: usize) -> bool {
    use std::io::BufRead;
    let size = size.to_string();
    let mut receiver = to
        .ns
        .command("python3")
        .args(["-c", RECEIVER, &size])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufReader::new(receiver.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready");
    from.ns
        .exec("python3", &["-c", SENDER, &size, &to.ipv4.to_string()])
        .unwrap();
    receiver.wait().unwrap().success()
}

fn tcp_and_udp_arrive(a: &Pod, b: &Pod, context: &str) {
    for dst in [b.ipv4.into(), b.ipv6.into()] {
        let t = tcp_transfer(a, b, dst, 10_000_000).unwrap();
        assert!(t.intact && t.bytes == 10_000_000, "TCP to {dst} {context}: {t:?}");
    }
    // UDP: a datagram with a wrong checksum never reaches the socket, so one that
    // arrives whole (of three sent, as a resolver would retry) proves it.
    for (i, dst) in [b.ipv4.into(), b.ipv6.into()].into_iter().enumerate() {
        let port = 5300 + i as u16;
        assert!(
            udp_datagram(a, b, dst, port, port, 1200).unwrap(),
            "UDP to {dst} {context}"
        );
    }
}

/// A node with two pods in VRF red that keep checksum offload on and verify every
/// checksum they receive.
fn two_verifying_pods() -> LabNode {
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    assert!(
        status(&n).checksum_offload(),
        "this kernel has AF_XDP transmit metadata: the workers finish checksums"
    );
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    for pod in &n.pods {
        assert!(pod_offloads_checksums(pod), "{}", pod.name);
        verify_checksums_in(&n, pod);
    }
    n
}

#[test]
fn pods_keeping_checksum_offload_reach_pods_that_verify_every_checksum() {
    let _machine = serial();
    let n = two_verifying_pods();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    let before = offloaded(&n);
    tcp_and_udp_arrive(a, b, "on one node");
    tcp_and_udp_arrive(b, a, "on one node, back");
    let after = offloaded(&n);
    assert!(
        after > before + 10_000,
        "checksums left to the kernel: {before} -> {after}"
    );
}

#[test]
fn across_nodes_each_encapsulation_and_a_fragmented_datagram_arrive_verified() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let (a, b) = two_nodes(BIN, &lan);
    for n in [&a, &b] {
        assert!(pod_offloads_checksums(&n.pods[0]));
        verify_checksums_in(n, &n.pods[0]);
        set_vrf_vni(n, "red", 4100);
    }
    for encap in [Encap::MplsOverUdp, Encap::MplsOverGre, Encap::Vxlan] {
        route_to_pod(&a, &b, 0, encap, 4100);
        route_to_pod(&b, &a, 0, encap, 4100);
        let context = format!("across nodes over {encap:?}");
        tcp_and_udp_arrive(&a.pods[0], &b.pods[0], &context);
    }
    // A 1500-byte datagram (the pod's MTU) and a 1500-byte fabric: with the tunnel's
    // headers it does not fit, the vrouter fragments it, so its checksum must be
    // finished before the fragments leave.
    assert!(
        unfragmented_sender(&a.pods[0], &b.pods[0], 1500 - 28),
        "a datagram fragmented by the vrouter\n{}",
        a.log()
    );
}

/// A connection to a service is translated (its destination to the backend, the
/// replies' source back to the service), the transport checksum left to the kernel
/// to finish: both pods verify every checksum, the data and the acknowledgements,
/// with and without a port translation, TCP and UDP.
#[test]
fn translated_connections_to_a_service_arrive_verified_both_ways() {
    let _machine = serial();
    let n = two_verifying_pods();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    let _servers = NamedServers::start(&b.ns, &b.name, &[9376], &[5301]).unwrap();
    let port = |protocol, port, target_port| ServicePort {
        protocol,
        port,
        target_port,
        node_port: None,
    };
    let service: IpAddr = "198.18.100.10".parse().unwrap();
    let spec = ServiceSpec {
        name: "default/verified".into(),
        vrf: "red".into(),
        ip: service,
        ports: vec![
            port(L4Protocol::Tcp, 5201, 5201),
            port(L4Protocol::Tcp, 80, 9376),
            port(L4Protocol::Udp, 5300, 5301),
        ],
        backends: vec![b.ipv4.into()],
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
    };
    n.api()
        .call::<serde_json::Value>(&Request::AddService { spec })
        .unwrap();
    let before = offloaded(&n);
    let t = tcp_transfer(a, b, service, 10_000_000).unwrap();
    assert!(t.intact && t.bytes == 10_000_000, "{t:?}\n{}", n.log());
    let spread = tcp_spread(&a.ns, service, 80, 50).unwrap();
    assert_eq!((spread.failed, spread.by_backend.len()), (0, 1), "{spread:?}");
    for src_port in 42_000..42_010 {
        let socket = udp_client(&a.ns, src_port).unwrap();
        let answer = ask_udp_sized(&socket, service, 5300, 1200);
        assert!(
            answer.as_ref().is_ok_and(|name| *name == b.name),
            "UDP from port {src_port}: {answer:?}"
        );
    }
    let after = offloaded(&n);
    assert!(
        after > before + 5_000,
        "checksums left to the kernel: {before} -> {after}"
    );
}

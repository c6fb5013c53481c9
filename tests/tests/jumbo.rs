//! Pods with an MTU above what one UMEM chunk holds (9000 bytes: a frame spans three
//! chunks): the steering program takes multi-buffer frames, the sockets receive them
//! as chains of descriptors, the worker gathers, forwards and sends them as chains.
//! Pings of 8000 bytes pass unfragmented both ways, a TCP transfer arrives intact,
//! and the status counts the chains. A pod that keeps a 1500-byte MTU gets an ICMP
//! fragmentation-needed for a jumbo datagram with DF (its sender learns the path's
//! MTU) and still takes TCP from a jumbo pod. Across a 1500-byte fabric, the jumbo
//! pod learns the path's MTU or has its datagrams fragmented.

use nexthop::encap::Encap;
use system_tests::{fabric_node, node, route_to_pod, serial};
use vrouter::api::{Request, StatusView};
use vrouter::config::XdpMode;
use vrouter_lab::node::{FabricLan, LabNode, Pod};
use vrouter_lab::traffic::tcp_transfer;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// A ping of `size` bytes of payload with DF set: whether it was answered.
fn big_ping(from: &Pod, to: &Pod, size: u16) -> bool {
    let size = size.to_string();
    let to = to.ipv4.to_string();
    from.ns.succeeds(
        "ping",
        &[
            "-4", "-c", "1", "-w", "3", "-W", "1", "-q", "-M", "do", "-s", &size, &to,
        ],
    )
}

fn chains(n: &LabNode) -> (u64, u64) {
    let status: StatusView = n.api().call(&Request::Status).unwrap();
    status
        .workers
        .iter()
        .fold((0, 0), |(r, s), w| (r + w.chains_received, s + w.chains_sent))
}

#[test]
fn jumbo_pods_exchange_multi_buffer_frames_and_a_small_mtu_pod_gets_the_icmp_error() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    for i in 1..=3 {
        n.add_pod("red", 0, i, false).unwrap();
    }
    n.set_pod_mtu(0, 9000).unwrap();
    n.set_pod_mtu(1, 9000).unwrap();
    for i in 0..3 {
        n.attach(i).unwrap();
    }
    let (a, b, small) = (&n.pods[0], &n.pods[1], &n.pods[2]);
    assert!(
        big_ping(a, b, 8000),
        "an 8000-byte ping between jumbo pods\n{}",
        n.log()
    );
    assert!(big_ping(b, a, 8000), "and back");
    let (received, sent) = chains(&n);
    assert!(received >= 2 && sent >= 2, "chains received {received}, sent {sent}");
    let t = tcp_transfer(a, b, b.ipv4.into(), 20_000_000).unwrap();
    assert!(t.intact && t.bytes == 20_000_000, "{t:?}");
    let (after, _) = chains(&n);
    assert!(
        after > received + 1000,
        "the transfer went as chains: {received} -> {after}"
    );
    // The 1500-byte pod: too big with DF is refused with the error, small passes,
    // and TCP adapts (each end announces its MSS).
    assert!(
        !big_ping(a, small, 8000),
        "an 8000-byte datagram reached a 1500-byte pod"
    );
    assert!(big_ping(a, small, 1400));
    let drops = n.drop_stats().unwrap();
    assert!(drops.icmp_errors_sent >= 1, "{drops:?}");
    let t = tcp_transfer(a, small, small.ipv4.into(), 5_000_000).unwrap();
    assert!(t.intact && t.bytes == 5_000_000, "{t:?}");
}

/// A jumbo pod across a 1500-byte fabric: an 8000-byte datagram with DF gets the
/// fragmentation-needed error (the path's MTU: the fabric's less the tunnel's
/// headers); without DF it is fragmented for the fabric (from the gathered chain)
/// and reassembled by the remote pod; TCP between them works at the path's MTU.
#[test]
fn a_jumbo_pod_reaches_another_node_over_a_1500_byte_fabric() {
    let _machine = serial();
    let lan = FabricLan::new().unwrap();
    let mut a = fabric_node(BIN, 1);
    let mut b = fabric_node(BIN, 2);
    for (n, index) in [(&mut a, 1), (&mut b, 2)] {
        n.join(&lan).unwrap();
        n.start_vrouter().unwrap();
        n.add_pod("red", 0, index, false).unwrap();
        n.set_pod_mtu(0, 9000).unwrap();
        n.attach(0).unwrap();
    }
    route_to_pod(&a, &b, 0, Encap::MplsOverUdp, 0);
    route_to_pod(&b, &a, 0, Encap::MplsOverUdp, 0);
    let (pa, pb) = (&a.pods[0], &b.pods[0]);
    assert!(big_ping(pa, pb, 1000), "a small ping across\n{}", a.log());
    assert!(!big_ping(pa, pb, 8000), "8000 bytes with DF crossed a 1500-byte fabric");
    let fragmented = pa.ns.succeeds(
        "ping",
        &[
            "-4",
            "-c",
            "1",
            "-w",
            "3",
            "-W",
            "1",
            "-q",
            "-M",
            "dont",
            "-s",
            "8000",
            &pb.ipv4.to_string(),
        ],
    );
    assert!(fragmented, "8000 bytes without DF, fragmented\n{}", a.log());
    assert!(chains(&a).0 >= 1, "the jumbo datagram came as a chain");
    let t = tcp_transfer(pa, pb, pb.ipv4.into(), 5_000_000).unwrap();
    assert!(t.intact && t.bytes == 5_000_000, "{t:?}");
}

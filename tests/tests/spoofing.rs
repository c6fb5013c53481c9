//! Anti-spoofing on a real node: frames a pod sends from another VRF's address,
//! loopback, broadcast, its gateway or a foreign MAC are dropped and counted as
//! `source_mismatch`; none reaches another pod.

use std::net::{IpAddr, Ipv4Addr};
use system_tests::{node, serial};
use vrouter::config::XdpMode;
use vrouter_lab::gen::GenOptions;
use vrouter_lab::node::LabNode;
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const PER_SOURCE: u64 = 500;

/// Sends `PER_SOURCE` UDP frames from pod 0 with this source MAC and address to pod 1.
fn send_from(n: &LabNode, src_mac: nexthop::MacAddr, src: IpAddr) -> u64 {
    let (a, b) = (&n.pods[0], &n.pods[1]);
    let options = GenOptions {
        flows: 10,
        rate: 20_000,
        count: PER_SOURCE,
        seconds: 5.0,
        ..GenOptions::udp(
            "eth0",
            (src_mac, "00:00:5e:00:01:00".parse().unwrap()),
            src,
            b.ipv4.into(),
        )
    };
    let pod_ns = a.ns.name().to_string();
    std::thread::spawn(move || {
        vrouter_lab::netns::enter_by_name(&pod_ns).unwrap();
        // The kernel releases the previous run's socket on the queue asynchronously:
        // retry a busy bind, bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match vrouter_lab::gen::generate(&options) {
                Ok(report) => return report.packets,
                Err(e) if std::time::Instant::now() < deadline && format!("{e:#}").contains("busy") => {
                    std::thread::sleep(std::time::Duration::from_millis(50))
                }
                Err(e) => panic!("generator: {e:#}"),
            }
        }
    })
    .join()
    .unwrap()
}

/// Waits (bounded) until the node counted at least `want` source mismatches.
fn mismatches_reach(n: &LabNode, want: u64) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let seen = n.drop_stats().unwrap().get("source_mismatch");
        if seen >= want || std::time::Instant::now() >= deadline {
            return seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn spoofed_sources_from_a_pod_are_dropped_and_counted() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    n.add_pod("blue", 1, 1, true).unwrap();
    assert!(ping(&n.pods[0], n.pods[1].ipv4.into(), 5), "{}", n.log());
    let delivered_before = |n: &LabNode| {
        n.interfaces()
            .unwrap()
            .into_iter()
            .find(|i| i.name == n.pods[1].host_if)
            .unwrap()
            .counters
            .tx_packets
    };
    let before = delivered_before(&n);
    let own_mac = n.pods[0].mac;
    let cases = [
        (own_mac, IpAddr::from(n.pods[2].ipv4)),
        (own_mac, IpAddr::from(Ipv4Addr::LOCALHOST)),
        (own_mac, IpAddr::from(Ipv4Addr::BROADCAST)),
        (own_mac, IpAddr::from(n.pods[0].gateway4)),
        (nexthop::MacAddr([2, 0, 0, 0, 0x77, 0x77]), IpAddr::from(n.pods[0].ipv4)),
    ];
    let mut sent = 0;
    for (mac, src) in cases {
        sent += send_from(&n, mac, src);
    }
    assert_eq!(sent, 5 * PER_SOURCE);
    // copy-mode AF_XDP on veth may lose a few frames before the vrouter sees them.
    let counted = mismatches_reach(&n, sent);
    assert!(
        counted >= sent * 95 / 100,
        "source_mismatch {counted} of {sent}\n{}",
        n.log()
    );
    let delivered = delivered_before(&n) - before;
    assert!(delivered < 10, "{delivered} spoofed frames reached the other pod");
    // The pod's own traffic still flows.
    assert!(ping(&n.pods[0], n.pods[1].ipv4.into(), 3));
}

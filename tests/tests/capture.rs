//! `vrouter capture` during known traffic, read back by tshark: a pod's echo requests
//! as received, the replies as sent to it after rewrite (from the vrouter's MAC), and
//! its pings into another VRF as dropped with the reason.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use system_tests::{node, serial, Background};
use vrouter::config::XdpMode;
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

/// `tshark -r file` fields: comment, eth.src, ip.src, ip.dst, icmp.type per packet.
fn read(file: &std::path::Path) -> Vec<Vec<String>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.comment",
            "-e",
            "eth.src",
            "-e",
            "ip.src",
            "-e",
            "ip.dst",
            "-e",
            "icmp.type",
        ])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

#[test]
fn a_capture_shows_received_sent_and_dropped_packets_to_tshark() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    n.add_pod("blue", 1, 1, true).unwrap();
    let (a, b, c) = (&n.pods[0], &n.pods[1], &n.pods[2]);
    let vif = n
        .interfaces()
        .unwrap()
        .into_iter()
        .find(|v| v.name == a.host_if)
        .unwrap()
        .vif;
    let file = n.dir().join("red1.pcapng");
    let socket = n.api_socket().display().to_string();
    let mut capture = Background::spawn(
        Command::new(BIN)
            .args([
                "--api-socket",
                &socket,
                "capture",
                "--vif",
                &vif.to_string(),
                "--seconds",
                "60",
                "-w",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    // The capture runs once a ping shows in the file.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read(&file).is_empty() {
        assert!(Instant::now() < deadline, "nothing captured");
        ping(a, b.ipv4.into(), 1);
    }
    assert!(ping(a, b.ipv4.into(), 3), "red-1 cannot ping red-2");
    assert!(!ping(a, c.ipv4.into(), 2), "red-1 reached blue-1");
    let stopped = capture.stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(10));
    assert!(stopped.is_some_and(|s| s.success()), "capture did not stop cleanly");

    let packets = read(&file);
    let has = |comment: &str, src: &str, dst: &str, icmp: &str| {
        packets
            .iter()
            .find(|p| p.len() >= 5 && p[0].starts_with(comment) && p[2] == src && p[3] == dst && p[4] == icmp)
    };
    let (a4, b4, c4) = (a.ipv4.to_string(), b.ipv4.to_string(), c.ipv4.to_string());
    let dump = format!("{packets:?}");
    assert!(
        has("received", &a4, &b4, "8").is_some(),
        "no echo request received: {dump}"
    );
    let reply = has("sent, after rewrite", &b4, &a4, "0").unwrap_or_else(|| panic!("no reply sent: {dump}"));
    assert_eq!(
        reply[1], "00:00:5e:00:01:00",
        "a reply leaves from the vrouter's MAC: {dump}"
    );
    assert!(
        has("dropped: other_vrf", &a4, &c4, "8").is_some(),
        "no dropped request: {dump}"
    );
}

/// The fragments the vrouter cuts for the fabric show in a capture of the fabric
/// (vif 0) as sent, encapsulated.
#[test]
fn fragments_sent_on_the_fabric_are_captured() {
    let _machine = serial();
    let lan = vrouter_lab::node::FabricLan::new().unwrap();
    let (a, b) = system_tests::two_nodes(BIN, &lan);
    system_tests::route_to_pod(&a, &b, 0, nexthop::encap::Encap::MplsOverUdp, 0);
    system_tests::route_to_pod(&b, &a, 0, nexthop::encap::Encap::MplsOverUdp, 0);
    let (pa, pb) = (&a.pods[0], &b.pods[0]);
    assert!(ping(pa, pb.ipv4.into(), 8), "the pods do not reach each other");
    let file = a.dir().join("fabric.pcapng");
    let socket = a.api_socket().display().to_string();
    let mut capture = Background::spawn(
        Command::new(BIN)
            .args([
                "--api-socket",
                &socket,
                "capture",
                "--vif",
                "0",
                "--seconds",
                "60",
                "-w",
            ])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while read(&file).is_empty() {
        assert!(Instant::now() < deadline, "nothing captured on the fabric");
        ping(pa, pb.ipv4.into(), 1);
    }
    // 1500-byte fragments from the pod's kernel, too large with tunnel headers: the
    // vrouter cuts them again.
    assert!(
        vrouter_lab::traffic::udp_datagram(pa, pb, pb.ipv4.into(), 7100, 7101, 3000).unwrap(),
        "the large datagram was lost"
    );
    let stopped = capture.stop_with(nix::sys::signal::Signal::SIGINT, Duration::from_secs(10));
    assert!(stopped.is_some_and(|s| s.success()), "capture did not stop cleanly");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-d", "udp.port==6635,mpls", "-T", "fields", "-E", "separator=|"])
        .args(["-e", "frame.comment", "-e", "ip.frag_offset"])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // The pod's kernel cuts at multiples of 1480 bytes (offset 185 in 8-byte units);
    // a sent inner fragment (the second IP layer) starting elsewhere is the vrouter's.
    let cut_by_the_vrouter = text
        .lines()
        .filter(|l| l.starts_with("sent"))
        .filter_map(|l| l.split('|').nth(1)?.split(',').nth(1)?.parse::<u32>().ok())
        .filter(|offset| offset % 185 != 0)
        .count();
    assert!(
        cut_by_the_vrouter >= 1,
        "no fragment of the vrouter's captured as sent on the fabric:\n{text}"
    );
}

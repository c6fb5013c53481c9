//! Flow records reach a real IPFIX collector (Debian's nfcapd) with the right tuples
//! and counts: a TCP connection between two pods is exported from its first record
//! to its end, and the collector's sums per direction are the packets and bytes the
//! vrouter's flow table counted; `vrouter flow watch` prints the same connection's
//! records as JSON lines, its end with why and its totals.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use system_tests::{node_with_flows, serial, Background};
use vrouter::api::{FlowFilter, FlowView, Request};
use vrouter::flows::FlowConfig;
use vrouter_lab::netns::Netns;
use vrouter_lab::traffic::tcp_transfer;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const COLLECTOR_PORT: u16 = 4739;

/// nfcapd in a namespace; stopped (SIGTERM: it writes its file out) on drop.
struct Nfcapd(Background);

impl Nfcapd {
    fn start(ns: &Netns, dir: &Path) -> Self {
        let log = std::fs::File::create(dir.join("nfcapd.log")).unwrap();
        // Debian's nfdump; scripts/setup.sh installs it.
        let collector = Self(Background::spawn(
            ns.command("nfcapd")
                .args(["-b", "127.0.0.1", "-p", &COLLECTOR_PORT.to_string(), "-w"])
                .arg(dir)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log),
        ));
        // Listening before anything is sent (templates go out at the first pass).
        let deadline = Instant::now() + Duration::from_secs(10);
        while receive_queue(ns).is_none() {
            assert!(Instant::now() < deadline, "nfcapd does not listen on {COLLECTOR_PORT}");
            std::thread::sleep(Duration::from_millis(50));
        }
        collector
    }

    /// Stops it once (SIGTERM, then a kill after 10 s).
    fn stop(&mut self) {
        self.0
            .stop_with(nix::sys::signal::Signal::SIGTERM, Duration::from_secs(10));
    }
}

/// Bytes waiting in the collector's socket, if it listens.
fn receive_queue(ns: &Netns) -> Option<u64> {
    let out = ns
        .exec("ss", &["-lunH", "sport", "=", &format!(":{COLLECTOR_PORT}")])
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// (packets, bytes) per (source, destination, source port, destination port) of the
/// TCP records in `dir`, summed.
fn collected(dir: &Path) -> Vec<(String, u64, u64)> {
    let out = std::process::Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .args(["-q", "-N", "-o", "fmt:%sa|%da|%sp|%dp|%pr|%pkt|%byt", "proto tcp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sums: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() < 7 {
            continue;
        }
        let key = format!("{}:{}>{}:{}", f[0], f[2], f[1], f[3]);
        let e = sums.entry(key).or_default();
        e.0 += f[5].parse::<u64>().unwrap_or(0);
        e.1 += f[6].parse::<u64>().unwrap_or(0);
    }
    sums.into_iter().map(|(k, (p, b))| (k, p, b)).collect()
}

#[test]
fn a_connection_s_records_reach_an_ipfix_collector_with_its_counts() {
    let _machine = serial();
    let mut n = node_with_flows(
        BIN,
        FlowConfig {
            entries: 1 << 16,
            tcp_closed_timeout_secs: 1,
            ..Default::default()
        },
    );
    n.add_config(&format!(
        "flow_export = {{ ipfix_collector = \"127.0.0.1:{COLLECTOR_PORT}\", active_timeout_secs = 2 }}"
    ));
    let dir = n.dir().join("nfcapd");
    std::fs::create_dir_all(&dir).unwrap();
    let mut collector = Nfcapd::start(&n.ns, &dir);
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    let watch_out = n.dir().join("watch.jsonl");
    let mut watch = Background::spawn(
        std::process::Command::new(BIN)
            .args([
                "--api-socket",
                &n.api_socket().display().to_string(),
                "flow",
                "watch",
                "--from-start",
            ])
            .stdout(std::fs::File::create(&watch_out).unwrap())
            .stderr(Stdio::null()),
    );

    let t = tcp_transfer(a, b, b.ipv4.into(), 3_000_000).unwrap();
    assert!(t.intact, "{t:?}");

    // The connection's entries as the vrouter counts them, until aging ends them.
    let filter = FlowFilter {
        proto: Some(6),
        ..Default::default()
    };
    let mut last: Vec<FlowView> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now: Vec<FlowView> = n
            .api()
            .call(&Request::Flows {
                filter: filter.clone(),
                limit: 100,
                from_index: 0,
            })
            .unwrap();
        if now.is_empty() {
            break;
        }
        last = now;
        assert!(Instant::now() < deadline, "the flows never aged: {last:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(last.len(), 2, "one entry per direction: {last:?}");
    // flow watch shows both ends once the aging pass delivered them, and the records
    // a watch shows have gone to the collector (on loopback, into its socket).
    let ended = |lines: &str| {
        lines
            .lines()
            .filter(|l| l.contains("\"event\":\"ended\"") && l.contains("\"proto\":6,"))
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while ended(&std::fs::read_to_string(&watch_out).unwrap_or_default()) < 2 {
        assert!(Instant::now() < deadline, "flow watch shows no end of the connection");
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while receive_queue(&n.ns) != Some(0) {
        assert!(Instant::now() < deadline, "nfcapd does not read its socket");
        std::thread::sleep(Duration::from_millis(50));
    }
    collector.stop();

    // flow watch saw the connection appear and end, with its totals.
    watch.stop_with(nix::sys::signal::Signal::SIGKILL, Duration::from_secs(5));
    let lines = std::fs::read_to_string(&watch_out).unwrap();
    let records: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for f in &last {
        let of_flow = |event: &str| {
            records.iter().find(|r| {
                r["event"] == event
                    && r["src"] == f.src.to_string()
                    && r["dst"] == f.dst.to_string()
                    && r["src_port"] == f.src_port
                    && r["dst_port"] == f.dst_port
            })
        };
        assert!(of_flow("created").is_some(), "no created record of {f:?}:\n{lines}");
        let end = of_flow("ended").unwrap_or_else(|| panic!("no ended record of {f:?}:\n{lines}"));
        assert_eq!(end["end_reason"], "tcp_closed", "{end}");
        assert_eq!(
            (end["total_packets"].as_u64(), end["total_bytes"].as_u64()),
            (Some(f.packets), Some(f.bytes)),
            "{end}"
        );
        assert_eq!(
            (end["vrf"].as_str(), end["action"].as_str()),
            (Some("red"), Some("forward")),
            "{end}"
        );
    }

    let got = collected(&dir);
    for f in &last {
        let key = format!("{}:{}>{}:{}", f.src, f.src_port, f.dst, f.dst_port);
        let found = got.iter().find(|(k, _, _)| *k == key);
        assert_eq!(
            found.map(|(_, p, b)| (*p, *b)),
            Some((f.packets, f.bytes)),
            "{key}: collector has {got:?}\n{}",
            std::fs::read_to_string(dir.join("nfcapd.log")).unwrap_or_default()
        );
    }
}

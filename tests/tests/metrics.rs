//! The Prometheus endpoint under a real Prometheus server (Debian's package): after
//! known traffic (pings inside a VRF, pings across VRFs that are dropped), a query
//! returns exactly the counters the vrouter's own API reports, and `promtool check
//! metrics` passes on what the endpoint serves.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use system_tests::{node, serial, Background};
use vrouter::config::XdpMode;
use vrouter_lab::netns::Netns;
use vrouter_lab::traffic::ping;

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");
const METRICS: &str = "127.0.0.1:9470";
const PROMETHEUS: &str = "127.0.0.1:9090";

/// A Prometheus server in a namespace, killed on drop.
struct Prometheus {
    _server: Background,
}

impl Prometheus {
    fn start(ns: &Netns, dir: &Path) -> Self {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: vrouter\n    static_configs:\n      - targets: [\"{METRICS}\"]\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        Self {
            _server: Background::spawn(
                ns.command("prometheus")
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
                    .arg(format!("--web.listen-address={PROMETHEUS}"))
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log),
            ),
        }
    }
}

/// The value Prometheus gives for `query` now, if it has one.
fn query(ns: &Netns, query: &str) -> Option<f64> {
    let out = ns
        .exec(
            "promtool",
            &["query", "instant", &format!("http://{PROMETHEUS}"), query],
        )
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .next()?
        .split("=> ")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Waits until Prometheus gives for `q` at least `floor` (the vrouter's own count,
/// read before), then checks it is no more than `now()` (the count read after): a
/// counter scraped between the two readings. Pods' kernels keep sending (neighbour
/// discovery), so an interface's count may grow while the test waits.
fn wait_for_count(ns: &Netns, q: &str, floor: u64, now: impl Fn() -> u64, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = query(ns, q);
        if let Some(v) = got.filter(|v| *v >= floor as f64) {
            let after = now();
            assert!(
                v <= after as f64,
                "Prometheus gives {v} for {q}, the vrouter counts {after}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus gives {got:?} for {q}, the vrouter counted {floor}\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_scrapes_the_counters_of_known_traffic() {
    let _machine = serial();
    let mut n = node(BIN, XdpMode::Native);
    n.add_config("log_format = \"json\"");
    n.add_config(&format!("metrics = {{ listen = \"{METRICS}\" }}"));
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    n.add_pod("blue", 1, 1, true).unwrap();
    let dir = n.dir().join("prometheus");
    std::fs::create_dir_all(&dir).unwrap();
    let _prometheus = Prometheus::start(&n.ns, &dir);

    let (a, b, c) = (&n.pods[0], &n.pods[1], &n.pods[2]);
    assert!(ping(a, b.ipv4.into(), 5), "red-1 cannot ping red-2\n{}", n.log());
    assert!(!ping(a, c.ipv4.into(), 3), "red-1 reached blue-1");

    // What the vrouter says, now that the traffic is over.
    let other_vrf = n.drop_stats().unwrap().get("other_vrf");
    assert!(other_vrf >= 3, "three pings across VRFs, {other_vrf} other_vrf drops");
    let vifs = n.interfaces().unwrap();
    let red1 = vifs.iter().find(|v| v.name == a.host_if).unwrap();
    assert!(red1.counters.rx_packets >= 8, "{red1:?}");

    let up = || 1;
    wait_for_count(&n.ns, "up{job=\"vrouter\"}", 1, up, &dir);
    let drops = || n.drop_stats().unwrap().get("other_vrf");
    wait_for_count(
        &n.ns,
        "vrouter_drops_total{reason=\"other_vrf\"}",
        other_vrf,
        drops,
        &dir,
    );
    let port = |name: &str| {
        n.interfaces()
            .unwrap()
            .into_iter()
            .find(|v| v.name == name)
            .unwrap()
            .counters
    };
    wait_for_count(
        &n.ns,
        &format!("vrouter_interface_receive_packets_total{{interface=\"{}\"}}", a.host_if),
        red1.counters.rx_packets,
        || port(&a.host_if).rx_packets,
        &dir,
    );
    let red1_other_vrf = |c: &vrouter::api::VifTotals| {
        c.drops_by_reason
            .iter()
            .find(|(r, _)| r == "other_vrf")
            .map_or(0, |(_, n)| *n)
    };
    wait_for_count(
        &n.ns,
        &format!(
            "vrouter_interface_drops_total{{interface=\"{}\",reason=\"other_vrf\"}}",
            a.host_if
        ),
        red1_other_vrf(&red1.counters),
        || red1_other_vrf(&port(&a.host_if)),
        &dir,
    );
    let attached = vifs.len() as u64;
    wait_for_count(&n.ns, "vrouter_interfaces", attached, || attached, &dir);

    // Every query of the sample dashboard is valid PromQL over these metrics.
    let dashboard: serde_json::Value = serde_json::from_str(include_str!("../../ops/grafana/vrouter.json")).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*");
            let out =
                n.ns.command("promtool")
                    .args(["query", "instant", &format!("http://{PROMETHEUS}"), &expr])
                    .output()
                    .unwrap();
            assert!(
                out.status.success(),
                "{}: {expr}: {}",
                panel["title"],
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    // With log_format = "json" every log line is an object with its fields as keys.
    let log = n.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["address"] == METRICS),
        "the endpoint's start, with its address as a field:\n{log}"
    );

    // The endpoint's text passes Prometheus' own linter.
    let served =
        n.ns.exec("curl", &["-sf", &format!("http://{METRICS}/metrics")])
            .unwrap();
    let mut lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    lint.stdin.take().unwrap().write_all(&served.stdout).unwrap();
    let lint = lint.wait_with_output().unwrap();
    assert!(
        lint.status.success() && lint.stdout.is_empty() && lint.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );
}

//! The exposition a scrape gets: valid, complete, with the values of known counters
//! and changes, every family documented in the README; and the HTTP side's answers.

use super::*;
use crate::control::task::{self, Change, ControlTask};
use crate::control::Control;
use crate::drops::DropReason;
use crate::flows::{FlowConfig, Flows};
use crate::stats::WorkerStats;
use crate::store::StateStore;
use control_client::xmpp::{Element, Incoming};
use control_client::{DesiredState, InterfaceSpec, PeerId};
use nexthop::{MacAddr, Vif};
use std::collections::BTreeSet;
use std::io::{Read, Write};

/// A control side with pod `p0` in VRF red, one worker's counters, and the metrics
/// over both.
struct Node {
    task: Option<ControlTask>,
    worker: Arc<WorkerStats>,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut model = DesiredState::new(16);
        model.set_fabric("fabric0");
        model
            .add_interface(InterfaceSpec {
                name: "p0".into(),
                vrf: "red".into(),
                mac: MacAddr([2, 0, 0, 0, 0, 2]),
                ..InterfaceSpec::default()
            })
            .unwrap();
        let (control, publisher) = Control::detached(model, StateStore::open(dir.path()).unwrap(), 100);
        let timings = control.timings();
        let worker = Arc::new(WorkerStats::new(16));
        let flows = Arc::new(Flows::new(&FlowConfig::default(), 16));
        let views = Arc::new(Views::new(publisher, vec![Arc::clone(&worker)], flows, vec![3]));
        let ready = views.ready_flag();
        let task = task::spawn(control, std::time::Duration::from_millis(50), Arc::clone(&ready)).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !ready.load(std::sync::atomic::Ordering::Acquire) {
            assert!(std::time::Instant::now() < deadline, "the control task never restored");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let metrics = Arc::new(Metrics::new(views, task.handle(), &timings));
        Self {
            task: Some(task),
            worker,
            metrics,
            _dir: dir,
        }
    }

    fn handle(&self) -> ControlHandle {
        self.task.as_ref().unwrap().handle()
    }

    fn text(&self) -> String {
        self.metrics.render(false).unwrap()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.shutdown();
        }
    }
}

/// A control node's route message: one tunnel route and one ECMP route in red.
fn route_message() -> control_client::xmpp::RouteUpdate {
    let stanza = r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/red">
        <item id="198.19.0.0/24"><entry><nlri><af>1</af><safi>1</safi><address>198.19.0.0/24</address></nlri><next-hops><next-hop><af>1</af><address>198.18.0.2</address><label>20</label><tunnel-encapsulation-list><tunnel-encapsulation>udp</tunnel-encapsulation></tunnel-encapsulation-list></next-hop></next-hops></entry></item>
        <item id="198.19.1.0/24"><entry><nlri><af>1</af><safi>1</safi><address>198.19.1.0/24</address></nlri><next-hops><next-hop><af>1</af><address>198.18.0.2</address><label>21</label></next-hop><next-hop><af>1</af><address>198.18.0.3</address><label>22</label></next-hop></next-hops></entry></item>
        </items></event></message>"#;
    let Incoming::Routes(update) = Incoming::decode(&Element::parse(stanza).unwrap()).unwrap() else {
        panic!("a route update")
    };
    update
}

/// The value of the series `series` (name and labels exactly as written).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The families the text declares, checking that every sample belongs to the
/// family declared last, with HELP and TYPE before it, and a valid name.
fn families(text: &str) -> BTreeSet<String> {
    let mut declared = BTreeSet::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name.starts_with("vrouter_"), "{line}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{line}"
            );
            assert!(rest.len() > name.len() + 10, "help text missing: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(declared.insert(name.to_string()), "{name} declared twice");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter without _total: {name}");
            }
            current = Some((name.to_string(), kind.to_string()));
            continue;
        }
        let (family, kind) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before any TYPE: {line}"));
        let name = line.split(['{', ' ']).next().unwrap();
        let ok = match kind.as_str() {
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name.strip_suffix(s) == Some(family.as_str())),
            _ => name == family,
        };
        assert!(ok, "sample {name} is not of family {family}");
        let number = line.rsplit(' ').next().unwrap();
        assert!(number.parse::<f64>().is_ok(), "not a number: {line}");
    }
    declared
}

#[test]
fn a_scrape_shows_known_counters_and_changes() {
    let node = Node::new();
    let p0 = &node.worker.vifs[1];
    p0.rx_packets.add(5);
    p0.rx_bytes.add(420);
    node.worker.drop_packet(Vif(1), DropReason::NoRoute);
    node.worker.count_tunnel([198, 18, 0, 2].into(), true, 150);
    node.worker.frame_double_releases.set(2);
    let handle = node.handle();
    handle.apply_blocking(Change::PeerUp(PeerId(0))).unwrap();
    handle
        .post(Change::RouteUpdate {
            peer: PeerId(0),
            update: route_message(),
        })
        .unwrap();
    // Posted: applied once the queue has drained past it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = node.text();
        if value(&text, "vrouter_xmpp_route_update_latency_seconds_count") == Some(1.0) {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "route update never timed:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    families(&text);
    let p0 = r#"{interface="p0",vif="1",vrf="red",kind="pod"}"#;
    assert_eq!(
        value(&text, &format!("vrouter_interface_receive_packets_total{p0}")),
        Some(5.0)
    );
    assert_eq!(
        value(&text, &format!("vrouter_interface_receive_bytes_total{p0}")),
        Some(420.0)
    );
    assert_eq!(
        value(
            &text,
            r#"vrouter_interface_drops_total{interface="p0",vif="1",reason="no_route"}"#
        ),
        Some(1.0)
    );
    assert_eq!(value(&text, r#"vrouter_drops_total{reason="no_route"}"#), Some(1.0));
    assert_eq!(
        value(&text, r#"vrouter_drops_total{reason="ttl_exceeded"}"#),
        Some(0.0),
        "every reason shown"
    );
    assert_eq!(
        value(&text, r#"vrouter_tunnel_transmit_bytes_total{remote="198.18.0.2"}"#),
        Some(150.0)
    );
    assert_eq!(
        value(&text, r#"vrouter_worker_receive_packets_total{worker="0",core="3"}"#),
        Some(5.0)
    );
    assert_eq!(
        value(
            &text,
            r#"vrouter_worker_frame_double_releases_total{worker="0",core="3"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "vrouter_ecmp_groups"),
        Some(1.0),
        "198.19.1.0/24 has two paths"
    );
    assert_eq!(value(&text, "vrouter_ready"), Some(1.0));
    assert!(value(&text, r#"vrouter_snapshot_build_seconds_count{kind="full"}"#).unwrap_or(0.0) >= 1.0);
    assert!(value(&text, "vrouter_control_changes_total").unwrap() >= 2.0);
    // OpenMetrics for scrapers that ask for it: the same families, ended by EOF.
    let open = node.metrics.render(true).unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("vrouter_interface_receive_packets_total{"));
}

#[test]
fn every_family_is_in_the_readme_and_only_those() {
    let text = Node::new().text();
    if let Ok(path) = std::env::var("VROUTER_METRICS_DUMP") {
        std::fs::write(path, &text).unwrap();
    }
    let rendered = families(&text);
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("### Metrics reference")
        .nth(1)
        .expect("README has a metrics reference")
        .split("\n## ")
        .next()
        .unwrap();
    let documented: BTreeSet<String> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next())
        .map(|name| {
            // The table names histograms by family (their samples add _bucket etc.).
            name.to_string()
        })
        .collect();
    assert_eq!(
        rendered.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "rendered, not in the README"
    );
    assert_eq!(
        documented.difference(&rendered).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in the README, not rendered"
    );
}

/// Sends `request` to `addr` and returns the whole answer.
fn http(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn the_endpoint_answers_scrapes_and_refuses_the_rest() {
    let node = Node::new();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = Arc::clone(&node.metrics);
    let server = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, metrics, stop).await
        });
    });
    let get = |path: &str, extra: &str| {
        http(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"),
        )
    };
    let plain = get("/metrics", "");
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
    assert!(plain.contains("text/plain; version=0.0.4"), "{plain}");
    assert!(plain.contains("\nvrouter_ready 1\n"), "{plain}");
    let open = get(
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
    );
    assert!(open.contains("application/openmetrics-text"), "{open}");
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(get("/other", "").starts_with("HTTP/1.1 404"));
    let post = http(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(post.contains("allow: GET, HEAD"), "{post}");
    assert!(
        http(addr, "NONSENSE\r\n\r\n").starts_with("HTTP/1.1 400"),
        "malformed: 400"
    );
    stop_tx.send(true).unwrap();
    server.join().unwrap();
}

/// The PromQL expressions of the sample Grafana dashboard.
fn dashboard_queries() -> Vec<String> {
    let dashboard: serde_json::Value = serde_json::from_str(include_str!("../../../ops/grafana/vrouter.json")).unwrap();
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_dashboard_queries_only_metrics_that_exist() {
    let rendered = families(&Node::new().text());
    let queries = dashboard_queries();
    assert!(queries.len() >= 18, "{queries:?}");
    for q in &queries {
        let names = q
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("vrouter_"));
        for name in names {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            assert!(rendered.contains(family), "{q}: no metric {name}");
        }
    }
}

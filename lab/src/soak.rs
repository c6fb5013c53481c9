//! `vrouter soak`: a node under everything at once for a set time (pings, TCP
//! transfers, UDP flow churn, route churn, a port attached and detached, an API
//! client), sampling the vrouter's memory, file descriptors, drops and API latency,
//! and a verdict line. The reliability review's five-minute soak, as a command.

use super::node::{LabNode, NodeOptions};
use super::traffic::{tcp_transfer, udp_spray_from};
use anyhow::Context;
use control_client::RouteSpec;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use vrouter::api::{DropStatsView, FlowFilter, FlowView, Request, StatusView};
use vrouter::config::{PollMode, XdpMode};

/// `vrouter soak` options.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakOptions {
    /// How long, in minutes (fractions allowed).
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// New UDP flows per second from one pod (each lives 10 s idle).
    #[arg(long, default_value_t = 2000)]
    pub churn_flows_per_sec: u32,
    /// XDP mode for the ports.
    #[arg(long, value_enum, default_value = "native")]
    pub xdp_mode: XdpMode,
}

/// What a soak saw.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SoakReport {
    /// Seconds it ran.
    pub seconds: f64,
    /// Resident memory of the vrouter after warm-up (a quarter of the run), KiB.
    pub rss_warm_kb: u64,
    /// Resident memory at the end, KiB.
    pub rss_end_kb: u64,
    /// Highest resident memory seen, KiB.
    pub rss_max_kb: u64,
    /// Open file descriptors after warm-up.
    pub fds_warm: u64,
    /// Open file descriptors at the end.
    pub fds_end: u64,
    /// Echo requests sent, pod to pod.
    pub pings_sent: u64,
    /// Echo requests unanswered.
    pub pings_lost: u64,
    /// TCP transfers completed.
    pub tcp_transfers: u64,
    /// TCP transfers whose data arrived damaged or short.
    pub tcp_damaged: u64,
    /// New UDP flows sent.
    pub flows_sprayed: u64,
    /// Routes added and removed.
    pub route_changes: u64,
    /// Attach and detach cycles of the churned port.
    pub port_cycles: u64,
    /// API requests made.
    pub api_calls: u64,
    /// API requests that failed.
    pub api_errors: u64,
    /// API latency, median, microseconds.
    pub api_p50_us: u64,
    /// API latency, 99th percentile, microseconds.
    pub api_p99_us: u64,
    /// API latency, worst, microseconds.
    pub api_max_us: u64,
    /// Drops by reason at the end (reasons that occurred).
    pub drops: Vec<(String, u64)>,
    /// Frames received by the vrouter.
    pub rx_packets: u64,
    /// Drops other than the pods' own chatter (multicast, router solicitations).
    pub unexpected_drops: u64,
    /// The vrouter was still running at the end.
    pub vrouter_alive: bool,
    /// Why the soak failed; empty when it passed.
    pub failures: Vec<String>,
}

/// Drop reasons the pods' own stacks cause in any run (IPv6 MLD and router
/// solicitations, DAD): not faults.
const EXPECTED_DROPS: [&str; 4] = ["multicast", "nd_unhandled", "self_solicitation", "neighbor_unknown"];

/// Runs a soak with the vrouter executable `binary` and prints its report and
/// verdict; an error if it failed.
pub fn run(binary: &std::path::Path, options: &SoakOptions) -> anyhow::Result<()> {
    let report = soak_with(binary, options)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    if report.failures.is_empty() {
        println!(
            "soak: PASS after {:.0} s: RSS {} -> {} KiB, fds {} -> {}, {} pings lost of {}, {} TCP transfers intact, {} flows, {} route changes, {} port cycles, API p99 {} us",
            report.seconds,
            report.rss_warm_kb,
            report.rss_end_kb,
            report.fds_warm,
            report.fds_end,
            report.pings_lost,
            report.pings_sent,
            report.tcp_transfers,
            report.flows_sprayed,
            report.route_changes,
            report.port_cycles,
            report.api_p99_us
        );
        Ok(())
    } else {
        println!("soak: FAIL: {}", report.failures.join("; "));
        anyhow::bail!("soak failed: {}", report.failures.join("; "))
    }
}

/// A value of `/proc/PID/status` in KiB (`VmRSS`), and the number of open fds.
fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some((rss, fds))
}

/// Runs the soak with the vrouter executable `binary` and returns what it saw (the
/// verdict is in `failures`).
pub fn soak_with(binary: &std::path::Path, options: &SoakOptions) -> anyhow::Result<SoakReport> {
    let mut node = LabNode::new(NodeOptions {
        binary: binary.to_path_buf(),
        workers: 1,
        xdp_mode: options.xdp_mode,
        poll_mode: PollMode::Adaptive,
        flows: vrouter::flows::FlowConfig {
            entries: 1 << 18,
            idle_timeout_secs: 10,
            ..Default::default()
        },
        fabric_ip: std::net::Ipv4Addr::new(198, 18, 0, 1),
    })?;
    node.start_vrouter()?;
    node.add_pod("red", 0, 1, true)?;
    node.add_pod("red", 0, 2, true)?;
    node.add_pod("red", 0, 3, false)?;
    let pid = node.vrouter_pid().context("vrouter pid")?;
    let total = Duration::from_secs_f64((options.minutes * 60.0).max(5.0));
    let start = Instant::now();
    let stop = AtomicBool::new(false);
    let counters: [AtomicU64; 8] = Default::default();
    let [tcp_ok, tcp_bad, flows, routes, cycles, api_calls, api_errors, _] = &counters;
    let latency = Mutex::new(hdrhistogram::Histogram::<u64>::new(3)?);
    let samples = Mutex::new(Vec::<(f64, u64, u64)>::new());
    let node = &node;
    let (a, b) = (&node.pods[0], &node.pods[1]);
    let (stop, latency, samples_ref) = (&stop, &latency, &samples);
    let is_running = || !stop.load(Ordering::Relaxed) && start.elapsed() < total;
    let running = &is_running;
    // Pings for the whole run, five a second.
    let count = (total.as_secs_f64() * 5.0) as u64;
    let pinger = std::thread::scope(|s| {
        let pinger = s.spawn(move || {
            a.ns.command("ping")
                .args(["-4", "-q", "-i", "0.2", "-c", &count.to_string(), &b.ipv4.to_string()])
                .output()
        });
        s.spawn(move || {
            while running() {
                match tcp_transfer(a, b, b.ipv4.into(), 2_000_000) {
                    Ok(t) if t.intact && t.bytes == 2_000_000 => tcp_ok.fetch_add(1, Ordering::Relaxed),
                    _ => tcp_bad.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
        s.spawn(move || {
            let mut base = 20_000u16;
            while running() {
                let n = options.churn_flows_per_sec;
                if let Ok(sent) = udp_spray_from(a, b.ipv4.into(), n, n, base) {
                    flows.fetch_add(u64::from(sent), Ordering::Relaxed);
                }
                base = if base >= 40_000 { 20_000 } else { base + 1 };
            }
        });
        s.spawn(move || {
            let api = node.api();
            let mut i = 0u32;
            while running() {
                let route = RouteSpec {
                    vrf: "red".into(),
                    prefix: format!("198.19.{}.0/24", i % 250).parse().expect("a prefix"),
                    target: control_client::RouteTarget::Discard,
                };
                let prefix = route.prefix;
                let ok = api.call::<serde_json::Value>(&Request::AddRoute { route }).is_ok()
                    && api
                        .call::<serde_json::Value>(&Request::RemoveRoute {
                            vrf: "red".into(),
                            prefix,
                        })
                        .is_ok();
                if ok {
                    routes.fetch_add(2, Ordering::Relaxed);
                } else {
                    api_errors.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        s.spawn(move || {
            let api = node.api();
            while running() {
                let name = node.pods[2].host_if.clone();
                let ok = node.attach(2).is_ok()
                    && api
                        .call::<serde_json::Value>(&Request::RemoveInterface { name })
                        .is_ok();
                if ok {
                    cycles.fetch_add(1, Ordering::Relaxed);
                } else {
                    api_errors.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        s.spawn(move || {
            let api = node.api();
            let mut i = 0u64;
            while running() {
                let t = Instant::now();
                let ok = if i.is_multiple_of(10) {
                    let request = Request::Flows {
                        filter: FlowFilter::default(),
                        limit: 1000,
                        from_index: 0,
                    };
                    api.call::<Vec<FlowView>>(&request).is_ok()
                } else {
                    api.call::<StatusView>(&Request::Status).is_ok()
                };
                let us = t.elapsed().as_micros() as u64;
                api_calls.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    api_errors.fetch_add(1, Ordering::Relaxed);
                }
                let _ = latency.lock().map(|mut h| h.record(us.max(1)));
                i += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        s.spawn(move || {
            while running() {
                if let Some((rss, fds)) = sample(pid) {
                    let _ = samples_ref
                        .lock()
                        .map(|mut v| v.push((start.elapsed().as_secs_f64(), rss, fds)));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            stop.store(true, Ordering::Relaxed);
        });
        pinger.join().expect("the ping thread")
    });
    let seconds = start.elapsed().as_secs_f64();
    let mut report = SoakReport {
        seconds,
        tcp_transfers: tcp_ok.load(Ordering::Relaxed),
        tcp_damaged: tcp_bad.load(Ordering::Relaxed),
        flows_sprayed: flows.load(Ordering::Relaxed),
        route_changes: routes.load(Ordering::Relaxed),
        port_cycles: cycles.load(Ordering::Relaxed),
        api_calls: api_calls.load(Ordering::Relaxed),
        api_errors: api_errors.load(Ordering::Relaxed),
        ..Default::default()
    };
    if let Ok(h) = latency.lock() {
        (report.api_p50_us, report.api_p99_us, report.api_max_us) =
            (h.value_at_quantile(0.5), h.value_at_quantile(0.99), h.max());
    }
    let samples = samples.into_inner().unwrap_or_default();
    let warm = samples.iter().find(|s| s.0 >= seconds / 4.0).or(samples.first());
    if let (Some(w), Some(end)) = (warm, samples.last()) {
        (report.rss_warm_kb, report.fds_warm, report.rss_end_kb, report.fds_end) = (w.1, w.2, end.1, end.2);
    }
    report.rss_max_kb = samples.iter().map(|s| s.1).max().unwrap_or_default();
    if let Ok(out) = pinger {
        let text = String::from_utf8_lossy(&out.stdout);
        // "N packets transmitted, M received, ..."
        let summary = text.lines().find(|l| l.contains("transmitted")).unwrap_or_default();
        let field = |word: &str| {
            summary
                .split(',')
                .find(|p| p.contains(word))
                .and_then(|p| p.split_whitespace().next()?.parse::<u64>().ok())
        };
        report.pings_sent = field("transmitted").unwrap_or(0);
        report.pings_lost = report.pings_sent.saturating_sub(field("received").unwrap_or(0));
    }
    report.vrouter_alive = sample(pid).is_some();
    if let Ok(d) = node.api().call::<DropStatsView>(&Request::DropStats) {
        report.drops = d.reasons.into_iter().filter(|(_, n)| *n > 0).collect();
    }
    report.unexpected_drops = report
        .drops
        .iter()
        .filter(|(r, _)| !EXPECTED_DROPS.contains(&r.as_str()))
        .map(|(_, n)| n)
        .sum();
    if let Ok(status) = node.api().call::<StatusView>(&Request::Status) {
        report.rx_packets = status.workers.iter().map(|w| w.rx_packets).sum();
    }
    report.failures = verdict(&report);
    Ok(report)
}

/// The verdict: what a production vrouter must hold through a soak.
fn verdict(r: &SoakReport) -> Vec<String> {
    let mut failures = Vec::new();
    let mut check = |ok: bool, why: String| {
        if !ok {
            failures.push(why);
        }
    };
    check(r.vrouter_alive, "the vrouter died".into());
    let allowance = (r.rss_warm_kb / 10).max(16 * 1024);
    check(
        r.rss_end_kb <= r.rss_warm_kb + allowance,
        format!("RSS grew from {} to {} KiB after warm-up", r.rss_warm_kb, r.rss_end_kb),
    );
    check(
        r.fds_end <= r.fds_warm + 16,
        format!("file descriptors grew from {} to {}", r.fds_warm, r.fds_end),
    );
    check(r.pings_sent > 0, "no pings were sent".into());
    check(
        r.pings_lost * 100 <= r.pings_sent,
        format!("{} of {} pings lost", r.pings_lost, r.pings_sent),
    );
    check(r.tcp_transfers > 0, "no TCP transfer completed".into());
    check(
        r.tcp_damaged == 0,
        format!("{} TCP transfers failed or damaged", r.tcp_damaged),
    );
    check(r.api_errors == 0, format!("{} API requests failed", r.api_errors));
    // Generous: on two cores the traffic of the soak itself competes with the API.
    check(r.api_p99_us < 500_000, format!("API p99 latency {} us", r.api_p99_us));
    check(
        r.unexpected_drops * 1000 <= r.rx_packets.max(1),
        format!(
            "{} unexpected drops of {} frames: {:?}",
            r.unexpected_drops, r.rx_packets, r.drops
        ),
    );
    check(
        r.route_changes > 0 && r.port_cycles > 0,
        "route or port churn did not run".into(),
    );
    failures
}

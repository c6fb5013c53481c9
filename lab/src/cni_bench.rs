//! `vrouter-lab cni-bench`: pod attach speed. N pods are added at once through the
//! vrouter's CNI plugin (ADD returns once the pod reaches its gateway, so its time is
//! the ADD-to-reachable latency), then through Debian's `ptp` plugin, the kernel's
//! routed veth per pod (what Calico- and Cilium-style CNIs give), timed to the
//! pod's first answered ping, on a node of its own in the same run. Prints p50, p99
//! and the most of each, the ADDs per second the node took, and DEL of all.

use crate::cni::{CniDriver, DEBIAN_CNI_DIR};
use crate::netns::Netns;
use crate::node::{LabNode, NodeOptions};
use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};
use vrouter::config::{PollMode, XdpMode};

/// `cni-bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct CniBenchOptions {
    /// Pods added at once.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub pods: u16,
    /// The CNI plugin (default: `vrouter-cni` beside this program).
    #[arg(long)]
    pub plugin: Option<std::path::PathBuf>,
}

/// One plugin's figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AttachFigures {
    /// Which plugin.
    pub plugin: String,
    /// Pods attached.
    pub pods: usize,
    /// Median ADD-to-reachable latency.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// The slowest.
    pub max_ms: f64,
    /// Pods per second over the whole burst.
    pub adds_per_second: f64,
    /// DEL of every pod at once, start to last.
    pub del_all_ms: f64,
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `attach` for every pod at once; each one's time from the common start.
fn burst<F>(pods: &[Netns], attach: F) -> anyhow::Result<(Vec<Duration>, Duration)>
where
    F: Fn(usize, &Netns) -> anyhow::Result<()> + Sync,
{
    let barrier = Barrier::new(pods.len() + 1);
    let (attach, barrier_ref) = (&attach, &barrier);
    std::thread::scope(|scope| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                scope.spawn(move || {
                    barrier_ref.wait();
                    let start = Instant::now();
                    attach(i, pod).map(|()| start.elapsed())
                })
            })
            .collect();
        barrier.wait();
        let start = Instant::now();
        let mut times = Vec::new();
        for h in handles {
            times.push(h.join().map_err(|_| anyhow::anyhow!("an ADD thread panicked"))??);
        }
        Ok((times, start.elapsed()))
    })
}

fn figures(plugin: &str, mut times: Vec<Duration>, wall: Duration, del_all: Duration) -> AttachFigures {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    AttachFigures {
        plugin: plugin.to_string(),
        pods: times.len(),
        p50_ms: millis(at(0.5)),
        p99_ms: millis(at(0.99)),
        max_ms: millis(*times.last().unwrap_or(&Duration::ZERO)),
        adds_per_second: times.len() as f64 / wall.as_secs_f64(),
        del_all_ms: millis(del_all),
    }
}

fn node(vrouter: &Path) -> anyhow::Result<LabNode> {
    LabNode::new(NodeOptions {
        binary: vrouter.to_path_buf(),
        workers: 1,
        xdp_mode: XdpMode::Native,
        poll_mode: PollMode::Adaptive,
        flows: Default::default(),
        fabric_ip: Ipv4Addr::new(198, 18, 0, 1),
    })
}

fn ok(out: crate::cni::CniOutput, what: &str) -> anyhow::Result<()> {
    if !out.ok {
        bail!("{what}: {}", out.json);
    }
    Ok(())
}

/// The vrouter's plugin: N ADDs at once, then N DELs at once.
fn vrouter_plugin(vrouter: &Path, plugin: &Path, count: u16) -> anyhow::Result<AttachFigures> {
    let mut n = node(vrouter)?;
    // Room for every pod's socket (4 x its floor of 64 frames: a quarter holds floors).
    n.set_umem_frames((256 * (u32::from(count) + 2)).next_power_of_two().max(16384));
    n.start_vrouter()?;
    let cni = CniDriver::new(plugin)?;
    let conf = cni.config("1.1.0", "bench", &n, "red", "198.18.64.0/22", "2001:2:0:64::/64");
    let pods: Vec<Netns> = (0..count)
        .map(|_| Netns::create("cnib"))
        .collect::<anyhow::Result<_>>()?;
    let (times, wall) = burst(&pods, |i, pod| {
        ok(cni.run("ADD", &conf, &format!("bench-{i}"), pod)?, "ADD")
    })?;
    let (_, del_all) = burst(&pods, |i, pod| {
        ok(cni.run("DEL", &conf, &format!("bench-{i}"), pod)?, "DEL")
    })?;
    Ok(figures("vrouter-cni", times, wall, del_all))
}

/// Debian's `ptp` plugin in a node namespace of its own (its host ends and routes go
/// there), timed to the pod's first answered ping of its gateway.
fn ptp_plugin(count: u16) -> anyhow::Result<AttachFigures> {
    let host = Netns::create("ptphost")?;
    let cni = CniDriver::new(&Path::new(DEBIAN_CNI_DIR).join("ptp"))?.inside(&host);
    let conf: Value = json!({
        "cniVersion": "1.0.0",
        "name": "bench-ptp",
        "type": "ptp",
        "ipMasq": false,
        "ipam": {"type": "host-local", "subnet": "198.18.68.0/22", "dataDir": cni.ipam_dir()},
    });
    let pods: Vec<Netns> = (0..count)
        .map(|_| Netns::create("ptpb"))
        .collect::<anyhow::Result<_>>()?;
    let (times, wall) = burst(&pods, |i, pod| {
        let out = cni.run("ADD", &conf, &format!("ptp-{i}"), pod)?;
        let gateway = out.json["ips"][0]["gateway"].as_str().map(str::to_string);
        ok(out, "ptp ADD")?;
        let gateway = gateway.context("ptp gave no gateway")?;
        // As the vrouter's plugin does: ping until a reply, pausing after a ping that
        // failed at once.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let tried = Instant::now();
            if pod.succeeds("ping", &["-c", "1", "-W", "0.2", "-q", &gateway]) {
                break;
            }
            if Instant::now() > deadline {
                bail!("a ptp pod does not reach {gateway}");
            }
            if tried.elapsed() < Duration::from_millis(50) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    })?;
    let (_, del_all) = burst(&pods, |i, pod| {
        ok(cni.run("DEL", &conf, &format!("ptp-{i}"), pod)?, "ptp DEL")
    })?;
    Ok(figures("ptp (kernel routed veth)", times, wall, del_all))
}

/// Runs both and prints the table; the figures, vrouter first.
pub fn run(vrouter: &Path, plugin: &Path, options: &CniBenchOptions) -> anyhow::Result<Vec<AttachFigures>> {
    let ours = vrouter_plugin(vrouter, plugin, options.pods)?;
    let peer = ptp_plugin(options.pods)?;
    println!("Pod attach, {} pods added at once (ADD to reachable):", options.pods);
    println!(
        "{:<26} {:>9} {:>9} {:>9} {:>10} {:>12}",
        "plugin", "p50 ms", "p99 ms", "max ms", "ADDs/s", "DEL all ms"
    );
    for f in [&ours, &peer] {
        println!(
            "{:<26} {:>9.1} {:>9.1} {:>9.1} {:>10.1} {:>12.1}",
            f.plugin, f.p50_ms, f.p99_ms, f.max_ms, f.adds_per_second, f.del_all_ms
        );
    }
    println!(
        "ratio vrouter-cni / ptp: p50 {:.2}x, p99 {:.2}x, ADDs/s {:.2}x",
        ours.p50_ms / peer.p50_ms,
        ours.p99_ms / peer.p99_ms,
        ours.adds_per_second / peer.adds_per_second
    );
    Ok(vec![ours, peer])
}

//! One measurement on a built device: generator in the pod, sink on the sink host,
//! the forwarding core's busy cycles read around it.

use super::devices::{forwarding_core, read_mac, Dut};
use super::{Case, Device};
use crate::gen::{GenOptions, GenReport, Latency, SinkReport};
use crate::node::FABRIC_IF;
use crate::traffic_threads::in_namespace;
use control_client::{RouteSpec, RouteTarget};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use vrouter::config::XdpMode;

/// What to send in a trial.
#[derive(Debug, Clone, Copy)]
pub struct TrialSpec {
    /// The case.
    pub case: Case,
    /// Offered packets per second (0: flat out).
    pub rate: u64,
    /// Seconds of traffic.
    pub seconds: f64,
    /// Route updates per second on a vrouter during the trial.
    pub route_churn: u32,
}

/// What a trial measured.
#[derive(Debug, Clone, Copy)]
pub struct Trial {
    /// What the generator sent.
    pub sent: GenReport,
    /// What the sink counted.
    pub received: SinkReport,
    /// Busy cycles of the forwarding core per packet, where the device reports them.
    pub busy_cycles: Option<f64>,
}

impl Trial {
    /// Packets lost, in percent of those sent.
    pub fn loss_percent(&self) -> f64 {
        if self.sent.packets == 0 {
            return 0.0;
        }
        (100.0 * (1.0 - self.received.packets as f64 / self.sent.packets as f64)).max(0.0)
    }
}

fn generator(dut: &Dut, case: &Case, rate: u64, count: u64, seconds: f64) -> GenOptions {
    let (src, dst) = dut.addresses(case.traffic.v6());
    GenOptions {
        proto: case.traffic.proto(),
        flows: case.flows,
        size: case.size,
        rate,
        count,
        seconds,
        ..GenOptions::udp("eth0", dut.macs(), src, dst)
    }
}

fn joined<T>(h: std::thread::JoinHandle<anyhow::Result<T>>, what: &str) -> anyhow::Result<T> {
    h.join().map_err(|_| anyhow::anyhow!("{what} panicked"))?
}

/// Sends one packet per flow (paced, so that little is lost before the device) so
/// that the measured trial finds its flows established, as a running cluster's are.
pub fn warm_up(dut: &Dut, case: &Case) -> anyhow::Result<()> {
    if case.flows <= 1 || matches!(dut.device, Device::Minimal) {
        return Ok(());
    }
    let rate = 200_000u64;
    let seconds = 5.0 + f64::from(case.flows) / rate as f64;
    let gen = generator(dut, case, rate, u64::from(case.flows), seconds);
    joined(
        in_namespace(dut.node.pods[0].ns.name(), move || crate::gen::generate(&gen)),
        "warm-up",
    )?;
    std::thread::sleep(Duration::from_millis(200));
    Ok(())
}

type ForwarderThread = std::thread::JoinHandle<anyhow::Result<crate::minfwd::Forwarded>>;

/// Starts the minimal forwarder in the node namespace on the forwarding core, when it
/// is the device.
fn start_minimal(dut: &Dut, stop: &Arc<AtomicBool>) -> anyhow::Result<Option<ForwarderThread>> {
    if dut.device != Device::Minimal {
        return Ok(None);
    }
    let (sink_mac, fabric_mac) = (read_mac(&dut.sink_host, "eth0")?, read_mac(&dut.node.ns, FABRIC_IF)?);
    let (stop, host_if) = (Arc::clone(stop), dut.node.pods[0].host_if.clone());
    let ns = dut.node.ns.name().to_string();
    let core = forwarding_core();
    Ok(Some(std::thread::spawn(move || {
        crate::netns::enter_by_name(&ns)?;
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
        crate::minfwd::forward(&host_if, FABRIC_IF, sink_mac, fabric_mac, &stop)
    })))
}

/// The device's busy-cycle counters, read before and after a trial.
#[derive(Debug, Clone, Copy, Default)]
struct Cycles {
    busy: u64,
    packets: u64,
}

fn vrouter_cycles(dut: &Dut) -> anyhow::Result<Cycles> {
    let status: vrouter::api::StatusView = dut.node.api().call(&vrouter::api::Request::Status)?;
    Ok(status.workers.iter().fold(Cycles::default(), |c, w| Cycles {
        busy: c.busy + w.busy_cycles,
        packets: c.packets + w.rx_packets,
    }))
}

/// Adds and removes an unrelated route at `rate` updates per second until `stop`;
/// returns the updates made.
fn churn(api: vrouter::api::ApiClient, rate: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut done = 0u64;
        let prefix: ipnet::IpNet = "198.19.255.1/32".parse().expect("literal");
        while !stop.load(Ordering::Relaxed) {
            let request = if done.is_multiple_of(2) {
                vrouter::api::Request::AddRoute {
                    route: RouteSpec {
                        vrf: "red".into(),
                        prefix,
                        target: RouteTarget::Discard,
                    },
                }
            } else {
                vrouter::api::Request::RemoveRoute {
                    vrf: "red".into(),
                    prefix,
                }
            };
            if api.call::<serde_json::Value>(&request).is_ok() {
                done += 1;
            }
            let due = Duration::from_secs_f64(done as f64 / f64::from(rate.max(1)));
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        done
    })
}

/// Runs one trial.
pub fn run(dut: &Dut, spec: &TrialSpec) -> anyhow::Result<Trial> {
    let seconds = spec.seconds;
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<()>(1);
    let sink = in_namespace(dut.sink_host.name(), move || {
        crate::gen::sink("eth0", XdpMode::Native, seconds + 5.0, 0, move || {
            let _ = ready_tx.send(());
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::anyhow!("sink did not start"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let forwarder = start_minimal(dut, &stop)?;
    let is_vrouter = dut.device.vrouter_encap().is_some();
    let before = if is_vrouter {
        vrouter_cycles(dut)?
    } else {
        Cycles::default()
    };
    if let Some(ovs) = dut.ovs() {
        ovs.appctl(&["dpif-netdev/pmd-stats-clear"])?;
    }
    std::thread::sleep(Duration::from_millis(200));
    let churner =
        (is_vrouter && spec.route_churn > 0).then(|| churn(dut.node.api(), spec.route_churn, Arc::clone(&stop)));
    let gen = generator(dut, &spec.case, spec.rate, 0, seconds);
    let sent = joined(
        in_namespace(dut.node.pods[0].ns.name(), move || crate::gen::generate(&gen)),
        "generator",
    )?;
    stop.store(true, Ordering::Relaxed);
    if let Some(c) = churner {
        let updates = c.join().map_err(|_| anyhow::anyhow!("route churn panicked"))?;
        tracing::info!(updates, "route updates during the run");
    }
    let received = joined(sink, "sink")?;
    let busy_cycles = match dut.device {
        Device::VrouterMplsoudp | Device::VrouterMplsogre | Device::VrouterVxlan => {
            let after = vrouter_cycles(dut)?;
            Some((after.busy - before.busy) as f64 / (after.packets - before.packets).max(1) as f64)
        }
        Device::Minimal => {
            let done = joined(forwarder.ok_or_else(|| anyhow::anyhow!("no forwarder"))?, "forwarder")?;
            Some(done.busy_cycles as f64 / done.packets.max(1) as f64)
        }
        Device::Ovs => dut
            .ovs()
            .map(|o| o.processing_cycles_per_packet())
            .transpose()?
            .flatten(),
        Device::Kernel => None,
    };
    Ok(Trial {
        sent,
        received,
        busy_cycles,
    })
}

/// The highest offered rate (within 1 % of `ceiling`, in 7 halvings) whose loss is at
/// most `tolerance` percent, RFC 2544 section 26.1 style.
pub fn zero_loss_search(dut: &Dut, spec: &TrialSpec, ceiling: f64, tolerance: f64) -> anyhow::Result<f64> {
    let (mut lo, mut hi) = (0.0f64, ceiling.max(1000.0) * 1.05);
    for _ in 0..7 {
        let rate = (lo + hi) / 2.0;
        let t = run(
            dut,
            &TrialSpec {
                rate: rate as u64,
                route_churn: 0,
                ..*spec
            },
        )?;
        if t.loss_percent() <= tolerance {
            lo = rate;
        } else {
            hi = rate;
        }
    }
    Ok(lo)
}

/// One-way delay through the device at `rate` with the case's stream, measured by an
/// AF_XDP sink on the sink host.
pub fn latency(dut: &Dut, case: &Case, rate: u64, seconds: f64) -> anyhow::Result<Latency> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<()>(1);
    let sink_stop = Arc::clone(&stop);
    let sink = in_namespace(dut.sink_host.name(), move || {
        crate::gen::latency_sink("eth0", &sink_stop, move || {
            let _ = ready_tx.send(());
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::anyhow!("latency sink did not start"))?;
    let forwarder = start_minimal(dut, &stop)?;
    std::thread::sleep(Duration::from_millis(200));
    let gen = generator(dut, case, rate, 0, seconds);
    let sent = joined(
        in_namespace(dut.node.pods[0].ns.name(), move || crate::gen::generate(&gen)),
        "generator",
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    if let Some(f) = forwarder {
        joined(f, "forwarder")?;
    }
    let measured = joined(sink, "latency sink")?;
    sent?;
    Ok(measured)
}

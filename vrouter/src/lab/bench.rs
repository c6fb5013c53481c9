//! `vrouter bench`: generator -> device under test -> counting sink, for each device
//! in the same run on the same machine, with the ratio of this vrouter to the kernel.
//!
//! Topology per device: a pod namespace whose veth the AF_XDP generator sends on; the
//! device (a vrouter node, or the same node namespace routing with the Linux kernel
//! into a `vxlan` device); a fabric bridge; a sink host whose XDP program counts and
//! drops what arrives. Traffic: UDP from the pod to 198.18.2.2, a pod behind the sink
//! host reached through the tunnel.

use super::node::{FabricLan, LabNode, NodeOptions, Pod};
use super::traffic_threads::in_namespace;
use crate::config::{PollMode, XdpMode};
use crate::gen::{GenOptions, GenReport, SinkReport};
use control_client::{RouteSpec, RouteTarget};
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::net::Ipv4Addr;
use std::time::Duration;

/// `vrouter bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Flow counts to test (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "1,1000")]
    pub flows: Vec<u32>,
    /// Frame sizes to test (comma separated).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub sizes: Vec<u16>,
    /// Seconds of traffic per case.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Offered rate in packets per second (0: flat out).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Offered rate of the latency run (64 B, 1000 flows); 0 skips it.
    #[arg(long, default_value_t = 50_000)]
    pub latency_rate: u64,
    /// Route updates per second during the vrouter runs (an unrelated /32 added and
    /// removed through the API); 0: none.
    #[arg(long, default_value_t = 0)]
    pub route_churn: u32,
}

/// Adds and removes an unrelated route at `rate` updates per second until `stop`;
/// returns the updates made.
fn churn(
    api: crate::api::ApiClient,
    rate: u32,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let mut done = 0u64;
        let prefix: ipnet::IpNet = "198.19.255.1/32".parse().expect("literal");
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let request = if done % 2 == 0 {
                crate::api::Request::AddRoute {
                    route: RouteSpec {
                        vrf: "red".into(),
                        prefix,
                        target: RouteTarget::Discard,
                    },
                }
            } else {
                crate::api::Request::RemoveRoute {
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

/// A device under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    Vrouter(Encap),
    Kernel,
    /// The minimal AF_XDP forwarder (copy and MAC rewrite): the ceiling of the path.
    Minimal,
}

impl Device {
    fn name(self) -> &'static str {
        match self {
            Device::Vrouter(Encap::MplsOverUdp) => "vrouter MPLSoUDP",
            Device::Vrouter(Encap::MplsOverGre) => "vrouter MPLSoGRE",
            Device::Vrouter(Encap::Vxlan) => "vrouter VXLAN",
            Device::Kernel => "kernel VXLAN",
            Device::Minimal => "minimal AF_XDP fwd",
        }
    }
}

const REMOTE_POD: Ipv4Addr = Ipv4Addr::new(198, 18, 2, 2);

fn node() -> anyhow::Result<LabNode> {
    LabNode::new(NodeOptions {
        binary: std::env::current_exe()?,
        workers: 1,
        xdp_mode: XdpMode::Native,
        poll_mode: PollMode::Busy,
        flows: crate::flows::FlowConfig {
            entries: 1 << 21,
            ..Default::default()
        },
        fabric_ip: Ipv4Addr::new(198, 18, 0, 1),
    })
}

/// Builds the device, returns the node and the MAC the generator sends to.
fn build(device: Device, lan: &FabricLan) -> anyhow::Result<(LabNode, MacAddr)> {
    let mut n = node()?;
    n.join(lan)?;
    match device {
        Device::Vrouter(encap) => {
            n.start_vrouter()?;
            n.add_pod("red", 0, 1, true)?;
            let api = n.api();
            let _: serde_json::Value = api.call(&crate::api::Request::SetVrfVni {
                vrf: "red".into(),
                vni: 100,
            })?;
            let label = if encap == Encap::Vxlan { 100 } else { 40 };
            let target = RouteTarget::Tunnel {
                remote: Ipv4Addr::new(198, 18, 0, 2),
                label,
                encaps: vec![encap],
                mac: None,
            };
            let route = RouteSpec {
                vrf: "red".into(),
                prefix: "198.18.2.0/24".parse()?,
                target,
            };
            let _: serde_json::Value = api.call(&crate::api::Request::AddRoute { route })?;
            Ok((n, MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, 0x00])))
        }
        Device::Minimal => {
            n.add_pod("red", 0, 1, false)?;
            let host_if = n.pods[0].host_if.clone();
            let mac = String::from_utf8_lossy(
                &n.ns
                    .exec("cat", &[&format!("/sys/class/net/{host_if}/address")])?
                    .stdout,
            )
            .trim()
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))?;
            Ok((n, mac))
        }
        Device::Kernel => {
            n.add_pod("red", 0, 1, false)?;
            let host_if = n.pods[0].host_if.clone();
            let ns = &n.ns;
            ns.ip(&["addr", "add", "198.18.1.1/24", "dev", &host_if])?;
            ns.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"])?;
            ns.ip(&[
                "link",
                "add",
                "vxlan0",
                "type",
                "vxlan",
                "id",
                "100",
                "local",
                "198.18.0.1",
                "remote",
                "198.18.0.2",
                "dstport",
                "4789",
                "dev",
                super::node::FABRIC_IF,
            ])?;
            ns.ip(&["addr", "add", "198.18.3.1/24", "dev", "vxlan0"])?;
            ns.ip(&["link", "set", "vxlan0", "up"])?;
            ns.ip(&[
                "neigh",
                "add",
                "198.18.3.2",
                "lladdr",
                "02:00:00:00:03:02",
                "dev",
                "vxlan0",
                "nud",
                "permanent",
            ])?;
            ns.ip(&["route", "add", "198.18.2.0/24", "via", "198.18.3.2", "dev", "vxlan0"])?;
            let mac = String::from_utf8_lossy(&ns.exec("cat", &[&format!("/sys/class/net/{host_if}/address")])?.stdout)
                .trim()
                .parse()
                .map_err(|e: String| anyhow::anyhow!(e))?;
            Ok((n, mac))
        }
    }
}

/// Resolves the tunnel's next hop before measuring (a vrouter solicits it itself).
fn warm_up(device: Device, n: &LabNode) -> anyhow::Result<()> {
    n.ns.succeeds("ping", &["-c", "1", "-w", "3", "-W", "1", "-q", "198.18.0.2"]);
    if let Device::Vrouter(_) = device {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            let nhs: Vec<crate::api::NextHopView> = n.api().call(&crate::api::Request::NextHops)?;
            if nhs
                .iter()
                .any(|h| matches!(h.nexthop, nexthop::NextHop::Tunnel { outer_mac, .. } if outer_mac.0 != [0; 6]))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// One-way delay through `device` at `rate` pps (64 B, 1000 flows), measured by an
/// AF_XDP sink on the sink host.
fn latency_case(device: Device, rate: u64, seconds: f64) -> anyhow::Result<crate::gen::Latency> {
    let lan = FabricLan::new()?;
    let sink_host = lan.add_host(2)?;
    let (n, dst_mac) = build(device, &lan)?;
    warm_up(device, &n)?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<()>(1);
    let sink_stop = std::sync::Arc::clone(&stop);
    let sink = in_namespace(sink_host.name(), move || {
        crate::gen::latency_sink("eth0", &sink_stop, move || {
            let _ = ready_tx.send(());
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::anyhow!("latency sink did not start"))?;
    let forwarder = start_minimal(device, &n, &sink_host, &stop)?;
    std::thread::sleep(Duration::from_millis(200));
    let pod = &n.pods[0];
    let gen = GenOptions {
        interface: "eth0".into(),
        src_mac: pod.mac,
        dst_mac,
        src_ip: pod.ipv4,
        dst_ip: REMOTE_POD,
        flows: 1000,
        size: 64,
        rate,
        count: 0,
        seconds,
    };
    let generator = in_namespace(pod.ns.name(), move || crate::gen::generate(&gen));
    generator.join().map_err(|_| anyhow::anyhow!("generator panicked"))??;
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(f) = forwarder {
        f.join().map_err(|_| anyhow::anyhow!("forwarder panicked"))??;
    }
    sink.join().map_err(|_| anyhow::anyhow!("latency sink panicked"))?
}

type ForwarderThread = std::thread::JoinHandle<anyhow::Result<crate::minfwd::Forwarded>>;

/// Starts the minimal forwarder in the node namespace, on the forwarding core, when
/// it is the device under test.
fn start_minimal(
    device: Device,
    n: &LabNode,
    sink_host: &super::netns::Netns,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> anyhow::Result<Option<ForwarderThread>> {
    if device != Device::Minimal {
        return Ok(None);
    }
    let read_mac = |ns: &super::netns::Netns, ifname: &str| -> anyhow::Result<MacAddr> {
        String::from_utf8_lossy(&ns.exec("cat", &[&format!("/sys/class/net/{ifname}/address")])?.stdout)
            .trim()
            .parse()
            .map_err(|e: String| anyhow::anyhow!(e))
    };
    let (sink_mac, fabric_mac) = (read_mac(sink_host, "eth0")?, read_mac(&n.ns, super::node::FABRIC_IF)?);
    let (stop, host_if) = (std::sync::Arc::clone(stop), n.pods[0].host_if.clone());
    let core = crate::run::available_cores().last().copied().unwrap_or(0);
    let ns = n.ns.name().to_string();
    Ok(Some(std::thread::spawn(move || {
        super::netns::enter_by_name(&ns)?;
        core_affinity::set_for_current(core_affinity::CoreId { id: core });
        crate::minfwd::forward(&host_if, super::node::FABRIC_IF, sink_mac, fabric_mac, &stop)
    })))
}

fn run_case(
    device: Device,
    flows: u32,
    size: u16,
    o: &BenchOptions,
) -> anyhow::Result<(GenReport, SinkReport, Option<f64>)> {
    let lan = FabricLan::new()?;
    let sink_host = lan.add_host(2)?;
    let (n, dst_mac) = build(device, &lan)?;
    warm_up(device, &n)?;
    let pod: &Pod = &n.pods[0];
    let seconds = o.seconds;
    let (ready_tx, ready_rx) = crossbeam_channel::bounded::<()>(1);
    let sink = in_namespace(sink_host.name(), move || {
        crate::gen::sink("eth0", XdpMode::Native, seconds + 5.0, 0, move || {
            let _ = ready_tx.send(());
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow::anyhow!("sink did not start"))?;
    let gen = GenOptions {
        interface: "eth0".into(),
        src_mac: pod.mac,
        dst_mac,
        src_ip: pod.ipv4,
        dst_ip: REMOTE_POD,
        flows,
        size,
        rate: o.rate,
        count: 0,
        seconds,
    };
    // The minimal forwarder runs here, in the node namespace, on the forwarding core.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let forwarder = start_minimal(device, &n, &sink_host, &stop)?;
    std::thread::sleep(Duration::from_millis(200));
    let churner = match device {
        Device::Vrouter(_) if o.route_churn > 0 => Some(churn(n.api(), o.route_churn, std::sync::Arc::clone(&stop))),
        _ => None,
    };
    let generator = in_namespace(pod.ns.name(), move || crate::gen::generate(&gen));
    let sent = generator.join().map_err(|_| anyhow::anyhow!("generator panicked"))??;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(c) = churner {
        let updates = c.join().map_err(|_| anyhow::anyhow!("route churn panicked"))?;
        tracing::info!(updates, "route updates during the run");
    }
    // Busy time per packet of the forwarding core, where there is one to ask.
    let mut busy_ns_per_packet = None;
    if let Some(f) = forwarder {
        let done = f.join().map_err(|_| anyhow::anyhow!("forwarder panicked"))??;
        busy_ns_per_packet = Some(done.busy_ns as f64 / done.packets.max(1) as f64);
    }
    if let Device::Vrouter(_) = device {
        let status: crate::api::StatusView = n.api().call(&crate::api::Request::Status)?;
        busy_ns_per_packet = status.workers.first().map(crate::api::WorkerView::busy_ns_per_packet);
    }
    let received = sink.join().map_err(|_| anyhow::anyhow!("sink panicked"))??;
    Ok((sent, received, busy_ns_per_packet))
}

/// Runs every case for every device and prints the table.
pub fn run(o: &BenchOptions) -> anyhow::Result<()> {
    let devices = [
        Device::Vrouter(Encap::MplsOverUdp),
        Device::Vrouter(Encap::Vxlan),
        Device::Kernel,
        Device::Minimal,
    ];
    let offered = if o.rate == 0 {
        "flat out".to_string()
    } else {
        format!("{} pps", o.rate)
    };
    println!(
        "== vrouter bench: AF_XDP generator -> device -> counting XDP sink, {} s per case, offered {offered}",
        o.seconds
    );
    if o.route_churn > 0 {
        println!(
            "   with {} route updates per second on the vrouters during the runs",
            o.route_churn
        );
    }
    println!(
        "{:<20} {:>7} {:>6} {:>12} {:>12} {:>7} {:>10} {:>10} {:>12}",
        "device", "flows", "size", "offered pps", "received pps", "loss %", "vs kernel", "vs limit", "busy ns/pkt"
    );
    for &size in &o.sizes {
        for &flows in &o.flows {
            let mut results = Vec::new();
            for d in devices {
                let (sent, got, busy) = run_case(d, flows, size, o)?;
                results.push((d, sent, got, busy));
            }
            let of = |dev: Device| results.iter().find(|r| r.0 == dev).map_or(0.0, |r| r.2.pps);
            let (kernel, limit) = (of(Device::Kernel), of(Device::Minimal));
            let ratio = |x: f64, base: f64| {
                if base > 0.0 {
                    format!("{:.2}x", x / base)
                } else {
                    "-".into()
                }
            };
            for (d, sent, got, busy) in &results {
                let loss = if sent.packets > 0 {
                    100.0 * (1.0 - got.packets as f64 / sent.packets as f64)
                } else {
                    0.0
                };
                let (vs_kernel, vs_limit) = (ratio(got.pps, kernel), ratio(got.pps, limit));
                let busy = busy.map_or_else(|| "-".to_string(), |b| format!("{b:.0}"));
                println!(
                    "{:<20} {:>7} {:>6} {:>12.0} {:>12.0} {:>7.1} {:>10} {:>10} {:>12}",
                    d.name(),
                    flows,
                    size,
                    sent.pps,
                    got.pps,
                    loss.max(0.0),
                    vs_kernel,
                    vs_limit,
                    busy
                );
            }
        }
    }
    if o.latency_rate > 0 {
        println!(
            "\n== one-way latency at {} pps offered (64 B, 1000 flows), microseconds",
            o.latency_rate
        );
        println!(
            "{:<20} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "device", "packets", "p50", "p90", "p99", "p99.9", "max"
        );
        for d in devices {
            let l = latency_case(d, o.latency_rate, o.seconds)?;
            println!(
                "{:<20} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                d.name(),
                l.packets,
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max
            );
        }
    }
    Ok(())
}

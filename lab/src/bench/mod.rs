//! `vrouter bench`: generator -> device under test -> sink, for each device in the
//! same run on the same machine, with the ratios of this vrouter to each peer and to
//! the limit of the path.
//!
//! Devices: this vrouter (MPLSoUDP, VXLAN), the Linux kernel (routing into `vxlan`),
//! Open vSwitch's userspace datapath with AF_XDP ports and VXLAN, and a minimal AF_XDP
//! forwarder (copy and MAC rewrite: the ceiling). Each case builds the device afresh
//! (`devices::Dut`), warms its flows up, then measures flat out (or at `--rate`);
//! `--zero-loss` adds an RFC 2544 style binary search for the highest rate without
//! loss, and a latency run measures one-way delay at a fixed rate.

pub(crate) mod devices;
pub(crate) mod ovs;
mod trial;

use crate::gen::{FrameSize, Latency, Proto};
use devices::Dut;
use nexthop::encap::Encap;
use trial::{Trial, TrialSpec};

/// `vrouter bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// Devices under test (comma separated).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "vrouter-mplsoudp,vrouter-vxlan,kernel,ovs,minimal"
    )]
    pub devices: Vec<Device>,
    /// Streams (comma separated): UDP or TCP SYN, IPv4 or IPv6.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "udp4")]
    pub traffic: Vec<Traffic>,
    /// Flow counts to test (comma separated; up to 1000000).
    #[arg(long, value_delimiter = ',', default_value = "1,1000")]
    pub flows: Vec<u32>,
    /// Frame sizes to test (comma separated; bytes, or `imix`).
    #[arg(long, value_delimiter = ',', default_value = "64")]
    pub sizes: Vec<FrameSize>,
    /// ECMP members (tunnel endpoints) to test (comma separated; 1..=16).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub ecmp: Vec<u8>,
    /// Seconds of traffic per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Offered rate in packets per second (0: flat out).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Also search for the highest rate without loss (binary search, 7 steps).
    #[arg(long)]
    pub zero_loss: bool,
    /// Loss (percent) the zero-loss search accepts as none.
    #[arg(long, default_value_t = 0.0)]
    pub loss_tolerance: f64,
    /// Offered rate of the latency run measured in every case; 0 skips it.
    #[arg(long, default_value_t = 50_000)]
    pub latency_rate: u64,
    /// Route updates per second during the vrouter runs (an unrelated /32 added and
    /// removed through the API); 0: none.
    #[arg(long, default_value_t = 0)]
    pub route_churn: u32,
}

/// A device under test, as `--devices` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// This vrouter, MPLS over UDP between nodes.
    VrouterMplsoudp,
    /// This vrouter, MPLS over GRE.
    VrouterMplsogre,
    /// This vrouter, VXLAN.
    VrouterVxlan,
    /// The Linux kernel: IP routing into a `vxlan` device.
    Kernel,
    /// Open vSwitch, userspace datapath, AF_XDP ports, VXLAN.
    Ovs,
    /// The minimal AF_XDP forwarder (copy and MAC rewrite): the ceiling of the path.
    Minimal,
}

impl Device {
    fn name(self) -> &'static str {
        match self {
            Device::VrouterMplsoudp => "vrouter MPLSoUDP",
            Device::VrouterMplsogre => "vrouter MPLSoGRE",
            Device::VrouterVxlan => "vrouter VXLAN",
            Device::Kernel => "kernel VXLAN",
            Device::Ovs => "OVS AF_XDP VXLAN",
            Device::Minimal => "minimal AF_XDP fwd",
        }
    }

    /// The encapsulation, when the device is this vrouter.
    pub fn vrouter_encap(self) -> Option<Encap> {
        match self {
            Device::VrouterMplsoudp => Some(Encap::MplsOverUdp),
            Device::VrouterMplsogre => Some(Encap::MplsOverGre),
            Device::VrouterVxlan => Some(Encap::Vxlan),
            Device::Kernel | Device::Ovs | Device::Minimal => None,
        }
    }
}

/// A stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Traffic {
    /// UDP over IPv4.
    Udp4,
    /// UDP over IPv6.
    Udp6,
    /// TCP SYN over IPv4.
    TcpSyn4,
    /// TCP SYN over IPv6.
    TcpSyn6,
}

impl Traffic {
    fn proto(self) -> Proto {
        match self {
            Traffic::Udp4 | Traffic::Udp6 => Proto::Udp,
            Traffic::TcpSyn4 | Traffic::TcpSyn6 => Proto::TcpSyn,
        }
    }

    fn v6(self) -> bool {
        matches!(self, Traffic::Udp6 | Traffic::TcpSyn6)
    }

    fn name(self) -> &'static str {
        match self {
            Traffic::Udp4 => "udp4",
            Traffic::Udp6 => "udp6",
            Traffic::TcpSyn4 => "syn4",
            Traffic::TcpSyn6 => "syn6",
        }
    }
}

/// One case of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The stream.
    pub traffic: Traffic,
    /// Distinct flows.
    pub flows: u32,
    /// Frame sizes.
    pub size: FrameSize,
    /// ECMP members.
    pub ecmp: u8,
}

/// What one device did in one case.
struct Outcome {
    device: Device,
    trial: Trial,
    zero_loss_pps: Option<f64>,
    latency: Option<Latency>,
}

fn check(o: &BenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(!o.devices.is_empty(), "--devices: name at least one device");
    for &m in &o.ecmp {
        anyhow::ensure!((1..=16).contains(&m), "--ecmp {m}: give 1..=16 members");
    }
    for &f in &o.flows {
        anyhow::ensure!((1..=1_000_000).contains(&f), "--flows {f}: give 1..=1000000");
    }
    anyhow::ensure!(o.seconds > 0.0 && o.seconds <= 600.0, "--seconds: give (0, 600]");
    Ok(())
}

/// Measures `device` in `case`: warm-up, the main trial, the zero-loss search and the
/// latency run if asked.
fn measure(binary: &std::path::Path, device: Device, case: &Case, o: &BenchOptions) -> anyhow::Result<Outcome> {
    let dut = Dut::build(binary, device, case)?;
    let spec = |rate: u64| TrialSpec {
        case: *case,
        rate,
        seconds: o.seconds,
        route_churn: o.route_churn,
    };
    trial::warm_up(&dut, case)?;
    let main = trial::run(&dut, &spec(o.rate))?;
    let zero_loss_pps = if o.zero_loss {
        Some(trial::zero_loss_search(
            &dut,
            &spec(0),
            main.received.pps,
            o.loss_tolerance,
        )?)
    } else {
        None
    };
    let latency = if o.latency_rate > 0 {
        Some(trial::latency(&dut, case, o.latency_rate, o.seconds)?)
    } else {
        None
    };
    Ok(Outcome {
        device,
        trial: main,
        zero_loss_pps,
        latency,
    })
}

fn ratio(x: f64, base: Option<f64>) -> String {
    match base {
        Some(b) if b > 0.0 => format!("{:.2}x", x / b),
        _ => "-".into(),
    }
}

/// Runs every case for every device and prints the table.
/// Runs the benchmark with the vrouter executable `binary`.
pub fn run(binary: &std::path::Path, o: &BenchOptions) -> anyhow::Result<()> {
    check(o)?;
    let offered = if o.rate == 0 {
        "flat out".to_string()
    } else {
        format!("{} pps", o.rate)
    };
    println!(
        "== vrouter bench: AF_XDP generator -> device -> counting XDP sink, {} s per case, offered {offered}",
        o.seconds
    );
    println!(
        "   busy cycles per packet: TSC cycles of the forwarding core in loop iterations that found packets \
         ({:.2} GHz); OVS: its pmd-stats-show",
        vrouter::cycles::cycles_per_second() / 1e9
    );
    if o.route_churn > 0 {
        println!(
            "   with {} route updates per second on the vrouters during the runs",
            o.route_churn
        );
    }
    let zl = if o.zero_loss { "zero-loss pps" } else { "" };
    println!(
        "{:<19} {:>5} {:>7} {:>5} {:>4} {:>10} {:>10} {:>6} {:>7} {:>7} {:>7} {:>9} {:>13}",
        "device",
        "proto",
        "flows",
        "size",
        "ecmp",
        "offered",
        "received",
        "loss%",
        "/kernel",
        "/ovs",
        "/limit",
        "cyc/pkt",
        zl
    );
    let mut latencies = Vec::new();
    for &traffic in &o.traffic {
        for &size in &o.sizes {
            for &flows in &o.flows {
                for &ecmp in &o.ecmp {
                    let case = Case {
                        traffic,
                        flows,
                        size,
                        ecmp,
                    };
                    let mut results = Vec::new();
                    for &d in &o.devices {
                        match measure(binary, d, &case, o) {
                            Ok(r) => results.push(r),
                            Err(e) => println!("{:<19} failed: {e:#}", d.name()),
                        }
                    }
                    print_case(&case, &results);
                    latencies.extend(results.iter().filter_map(|r| r.latency.map(|l| (case, r.device, l))));
                }
            }
        }
    }
    if o.latency_rate > 0 {
        print_latencies(o.latency_rate, &latencies);
    }
    Ok(())
}

fn print_case(case: &Case, results: &[Outcome]) {
    let of = |dev: Device| results.iter().find(|r| r.device == dev).map(|r| r.trial.received.pps);
    let (kernel, ovs, limit) = (of(Device::Kernel), of(Device::Ovs), of(Device::Minimal));
    for r in results {
        let got = r.trial.received.pps;
        let busy = r
            .trial
            .busy_cycles
            .map_or_else(|| "-".to_string(), |b| format!("{b:.0}"));
        let zero = r.zero_loss_pps.map_or_else(String::new, |z| format!("{z:.0}"));
        println!(
            "{:<19} {:>5} {:>7} {:>5} {:>4} {:>10.0} {:>10.0} {:>6.2} {:>7} {:>7} {:>7} {:>9} {:>13}",
            r.device.name(),
            case.traffic.name(),
            case.flows,
            case.size.to_string(),
            case.ecmp,
            r.trial.sent.pps,
            got,
            r.trial.loss_percent(),
            ratio(got, kernel),
            ratio(got, ovs),
            ratio(got, limit),
            busy,
            zero
        );
    }
}

fn print_latencies(rate: u64, latencies: &[(Case, Device, Latency)]) {
    println!("\n== one-way latency at {rate} pps offered, microseconds");
    println!(
        "{:<19} {:>5} {:>7} {:>5} {:>4} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "device", "proto", "flows", "size", "ecmp", "packets", "p50", "p90", "p99", "p99.9", "max"
    );
    for (case, device, l) in latencies {
        println!(
            "{:<19} {:>5} {:>7} {:>5} {:>4} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            device.name(),
            case.traffic.name(),
            case.flows,
            case.size.to_string(),
            case.ecmp,
            l.packets,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
    }
}

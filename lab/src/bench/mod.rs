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
use crate::spread::Spread;
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
    /// Runs of every case, the devices taking turns within each (each run builds the
    /// device afresh); rates, cycles and latency percentiles are the runs' medians,
    /// with the lowest and highest run beside the rate and the p99.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
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

/// What one device did in one case, over the runs.
struct Outcome {
    device: Device,
    trials: Vec<Trial>,
    zero_loss_pps: Option<f64>,
    latencies: Vec<Latency>,
}

impl Outcome {
    fn spread(&self, of: impl Fn(&Trial) -> Option<f64>) -> Spread {
        Spread {
            runs: self.trials.iter().filter_map(of).collect(),
        }
    }

    fn latency_spread(&self, of: impl Fn(&Latency) -> f64) -> Spread {
        Spread {
            runs: self.latencies.iter().map(of).collect(),
        }
    }
}

/// One run of one device in one case.
struct Run {
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

/// Measures `device` in `case` once: warm-up, the main trial, the zero-loss search
/// (when asked and `search`) and the latency run if asked.
fn measure(
    binary: &std::path::Path,
    device: Device,
    case: &Case,
    o: &BenchOptions,
    search: bool,
) -> anyhow::Result<Run> {
    let dut = Dut::build(binary, device, case)?;
    let spec = |rate: u64| TrialSpec {
        case: *case,
        rate,
        seconds: o.seconds,
        route_churn: o.route_churn,
    };
    trial::warm_up(&dut, case)?;
    let main = trial::run(&dut, &spec(o.rate))?;
    let zero_loss_pps = if o.zero_loss && search {
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
    Ok(Run {
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
        "== vrouter bench: AF_XDP generator -> device -> counting XDP sink, {} s per case, offered {offered}, \
         median of {} runs (received: lowest-highest run)",
        o.seconds, o.runs
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
        "{:<19} {:>5} {:>7} {:>5} {:>4} {:>10} {:>10} {:>6} {:>7} {:>7} {:>7} {:>9} {:>19} {:>13}",
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
        "received range",
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
                    let mut results: Vec<Outcome> = o
                        .devices
                        .iter()
                        .map(|&device| Outcome {
                            device,
                            trials: Vec::new(),
                            zero_loss_pps: None,
                            latencies: Vec::new(),
                        })
                        .collect();
                    for run in 0..o.runs {
                        for r in &mut results {
                            match measure(binary, r.device, &case, o, r.zero_loss_pps.is_none()) {
                                Ok(one) => {
                                    r.trials.push(one.trial);
                                    r.zero_loss_pps = r.zero_loss_pps.or(one.zero_loss_pps);
                                    r.latencies.extend(one.latency);
                                }
                                Err(e) => println!("{:<19} failed (run {}): {e:#}", r.device.name(), run + 1),
                            }
                        }
                    }
                    results.retain(|r| !r.trials.is_empty());
                    print_case(&case, &results);
                    latencies.extend(
                        results
                            .iter()
                            .filter(|r| !r.latencies.is_empty())
                            .map(|r| (case, r.device, latency_medians(r))),
                    );
                }
            }
        }
    }
    if o.latency_rate > 0 {
        print_latencies(o.latency_rate, &latencies);
    }
    Ok(())
}

fn received(t: &Trial) -> Option<f64> {
    Some(t.received.pps)
}

fn print_case(case: &Case, results: &[Outcome]) {
    let of = |dev: Device| {
        results
            .iter()
            .find(|r| r.device == dev)
            .map(|r| r.spread(received).median())
    };
    let (kernel, ovs, limit) = (of(Device::Kernel), of(Device::Ovs), of(Device::Minimal));
    for r in results {
        let got = r.spread(received);
        let busy = r.spread(|t| t.busy_cycles);
        let busy = if busy.runs.is_empty() {
            "-".to_string()
        } else {
            format!("{:.0}", busy.median())
        };
        let (lo, hi) = got.range();
        let zero = r.zero_loss_pps.map_or_else(String::new, |z| format!("{z:.0}"));
        println!(
            "{:<19} {:>5} {:>7} {:>5} {:>4} {:>10.0} {:>10.0} {:>6.2} {:>7} {:>7} {:>7} {:>9} {:>19} {:>13}",
            r.device.name(),
            case.traffic.name(),
            case.flows,
            case.size.to_string(),
            case.ecmp,
            r.spread(|t| Some(t.sent.pps)).median(),
            got.median(),
            r.spread(|t| Some(t.loss_percent())).median(),
            ratio(got.median(), kernel),
            ratio(got.median(), ovs),
            ratio(got.median(), limit),
            busy,
            format!("{lo:.0}-{hi:.0}"),
            zero
        );
    }
}

/// The runs' median of each percentile, and the p99's range.
fn latency_medians(r: &Outcome) -> (Latency, (f64, f64)) {
    let median = |of: fn(&Latency) -> f64| r.latency_spread(of).median();
    let latency = Latency {
        packets: r.latencies.iter().map(|l| l.packets).sum(),
        p50: median(|l| l.p50),
        p90: median(|l| l.p90),
        p99: median(|l| l.p99),
        p999: median(|l| l.p999),
        max: median(|l| l.max),
    };
    (latency, r.latency_spread(|l| l.p99).range())
}

/// A case's latency on one device: the runs' medians and the p99's range.
type LatencyRow = (Case, Device, (Latency, (f64, f64)));

fn print_latencies(rate: u64, latencies: &[LatencyRow]) {
    println!("\n== one-way latency at {rate} pps offered, microseconds (medians of the runs; p99: lowest-highest run)");
    println!(
        "{:<19} {:>5} {:>7} {:>5} {:>4} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>15}",
        "device", "proto", "flows", "size", "ecmp", "packets", "p50", "p90", "p99", "p99.9", "max", "p99 range"
    );
    for (case, device, (l, (lo, hi))) in latencies {
        println!(
            "{:<19} {:>5} {:>7} {:>5} {:>4} {:>9} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>15}",
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
            l.max,
            format!("{lo:.1}-{hi:.1}")
        );
    }
}

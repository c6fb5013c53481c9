//! `vrouter-lab tcp-bench`: pod-to-pod TCP as a Kubernetes user first measures it,
//! for this vrouter beside the Linux kernel's paths and Open vSwitch, in one run.
//! Each path is built in namespaces of its own ([`paths`]); on it, iperf3 with one
//! stream and with several, new connections per second and request/response
//! latency ([`measure`]), each repeated `--runs` times and reported as the median
//! with its spread (lowest-highest). Ratios compare each path with the kernel path
//! of its kind (one node: routed veth; two nodes: VXLAN), measured in the same run.

pub mod measure;
pub mod paths;

use crate::spread::Spread;
use anyhow::Context;
pub use paths::TcpPath;
use std::path::Path;
use std::time::{Duration, Instant};
use vrouter::config::PollMode;

/// `tcp-bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct TcpBenchOptions {
    /// Paths to measure, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "vrouter,kernel,ovs,vrouter-mplsoudp,vrouter-vxlan,kernel-vxlan"
    )]
    pub paths: Vec<TcpPath>,
    /// iperf3 stream counts, one measurement each.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub streams: Vec<u32>,
    /// Seconds each measurement runs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=60))]
    pub seconds: u32,
    /// Runs of each measurement (the median is reported, with the spread).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub runs: u32,
    /// How the vrouters' workers wait when idle (busy: the vrouter's default). Across
    /// two nodes, each node's worker has a core of its own, as on two machines.
    #[arg(long, value_enum, default_value = "busy")]
    pub poll_mode: PollMode,
}

/// One path's figures.
#[derive(Debug, Clone)]
pub struct PathFigures {
    /// The path.
    pub path: TcpPath,
    /// Gbit/s per stream count.
    pub throughput: Vec<(u32, Spread)>,
    /// New connections per second.
    pub connections: Spread,
    /// Request/response p50 latency, µs.
    pub rr_p50_us: Spread,
    /// Request/response p99 latency, µs.
    pub rr_p99_us: Spread,
}

/// Measures every path of `options` with the vrouter `binary`; prints the table and
/// the ratios.
pub fn run(binary: &Path, options: &TcpBenchOptions) -> anyhow::Result<Vec<PathFigures>> {
    let mut all = Vec::new();
    for &path in &options.paths {
        eprintln!("tcp-bench: {} ...", path.name());
        all.push(measure_path(binary, path, options).with_context(|| format!("path {}", path.name()))?);
    }
    print_table(options, &all);
    print_ratios(&all);
    Ok(all)
}

fn measure_path(binary: &Path, path: TcpPath, options: &TcpBenchOptions) -> anyhow::Result<PathFigures> {
    let built = paths::build(path, binary, options.poll_mode)?;
    let (client, server) = built.pods();
    // The first packets may wait for a tunnel endpoint's MAC: the path works first.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !crate::traffic::ping(client, server.ipv4.into(), 1) {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} does not reach {} after 15 s\n{}",
            client.name,
            server.name,
            built.logs()
        );
    }
    let mut figures = PathFigures {
        path,
        throughput: options.streams.iter().map(|s| (*s, Spread::default())).collect(),
        connections: Spread::default(),
        rr_p50_us: Spread::default(),
        rr_p99_us: Spread::default(),
    };
    for _ in 0..options.runs {
        for (streams, spread) in &mut figures.throughput {
            spread
                .runs
                .push(measure::iperf(client, server, *streams, options.seconds)?);
        }
        figures
            .connections
            .runs
            .push(measure::connection_rate(client, server, options.seconds)?);
        let (p50, p99) = measure::request_response(client, server, options.seconds)?;
        figures.rr_p50_us.runs.push(p50);
        figures.rr_p99_us.runs.push(p99);
    }
    Ok(figures)
}

fn print_table(options: &TcpBenchOptions, all: &[PathFigures]) {
    let mut header = vec!["path".to_string()];
    header.extend(options.streams.iter().map(|s| {
        let plural = if *s == 1 { "" } else { "s" };
        format!("{s} stream{plural}, Gbit/s")
    }));
    header.extend(["connections/s".into(), "RR p50 µs".into(), "RR p99 µs".into()]);
    println!(
        "\nTCP pod to pod: median of {} runs of {} s (lowest-highest)\n",
        options.runs, options.seconds
    );
    println!("| {} |", header.join(" | "));
    println!("|{}", " --- |".repeat(header.len()));
    for f in all {
        let mut row = vec![f.path.name().to_string()];
        row.extend(f.throughput.iter().map(|(_, s)| s.show(2)));
        row.extend([f.connections.show(0), f.rr_p50_us.show(1), f.rr_p99_us.show(1)]);
        println!("| {} |", row.join(" | "));
    }
}

/// Each path against its kind's kernel path (throughput and connections: higher is
/// better, so path / kernel; latency: kernel / path, so that above 1 is better too).
fn print_ratios(all: &[PathFigures]) {
    let find = |p: TcpPath| all.iter().find(|f| f.path == p);
    let mut printed = false;
    for f in all {
        let kernel = f.path.kernel_peer();
        let Some(k) = find(kernel).filter(|_| kernel != f.path) else {
            continue;
        };
        if !printed {
            println!("\nRatios to the kernel path of the same kind, same run (above 1: better than the kernel)\n");
            printed = true;
        }
        let mut parts: Vec<String> = f
            .throughput
            .iter()
            .zip(&k.throughput)
            .map(|((s, mine), (_, theirs))| format!("{s} stream(s) {:.2}x", mine.median() / theirs.median()))
            .collect();
        parts.push(format!(
            "connections {:.2}x",
            f.connections.median() / k.connections.median()
        ));
        parts.push(format!("RR p50 {:.2}x", k.rr_p50_us.median() / f.rr_p50_us.median()));
        parts.push(format!("RR p99 {:.2}x", k.rr_p99_us.median() / f.rr_p99_us.median()));
        println!("- {} / {}: {}", f.path.name(), kernel.name(), parts.join(", "));
    }
}

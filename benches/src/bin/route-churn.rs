//! Route churn against no churn, in one run: the in-memory port with 1M established
//! flows, taking turns between no publications, 1000 publications/s of an unrelated
//! route and 1000 publications/s of the flows' own route, so that the host's noise
//! falls on all three alike. Prints ns per packet (best and median of the rounds) and
//! each case's ratio to the run without churn.
//!
//! `cargo run --release -p benches --bin route-churn [ROUNDS]` (default 8).
#![forbid(unsafe_code)]

use benches::port::{Churn, InMemoryPort, Publisher, RING};
use std::sync::Arc;
use vrouter::flows::{FlowConfig, Flows};
use vrouter::packet::PipelineContext;

const FLOWS: u32 = 1 << 20;

fn main() -> anyhow::Result<()> {
    let rounds: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().map_err(|e| anyhow::anyhow!("ROUNDS {n:?}: {e}"))?,
        None => 8,
    };
    let config = FlowConfig {
        entries: 3 << 20,
        // One interface makes every flow here: no per-interface share.
        max_per_interface: Some(0),
        ..FlowConfig::default()
    };
    let mut engine = vrouter::batch::BatchProcessor::new(
        PipelineContext::new(Arc::new(Flows::new(&config, 16))),
        Arc::new(vrouter::stats::WorkerStats::new(16)),
    );
    let mut control = Publisher::new();
    let mut port = InMemoryPort::new(
        FLOWS,
        control.snapshot.interface(nexthop::Vif(1)).expect("pod a").clone(),
    );
    let cases = [
        ("no publications", None),
        ("1000 publications/s, unrelated route", Some(Churn::Unrelated)),
        ("1000 publications/s, the flows' route", Some(Churn::TheirRoute)),
    ];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..rounds.max(1) {
        for ((_, churn), times) in cases.iter().zip(&mut results) {
            // Every flow seen once under the current snapshot, untimed: each case
            // starts from established, up-to-date flows.
            port.establish(&mut engine, &control.snapshot);
            let timed = control.timed_passes(&mut port, &mut engine, *churn, u64::from(FLOWS) / RING as u64);
            times.push(timed.as_nanos() as f64 / f64::from(FLOWS));
        }
    }
    println!("1M established flows, 64 B, MPLSoUDP, in-memory port; {rounds} rounds of 1M packets per case");
    let baseline = best(&results[0]);
    for ((name, _), times) in cases.iter().zip(&mut results) {
        times.sort_by(f64::total_cmp);
        let (min, median) = (times[0], times[times.len() / 2]);
        println!(
            "{name:<40} best {min:6.1} ns/packet  median {median:6.1}  best vs no publications {:.2}x",
            min / baseline
        );
    }
    Ok(())
}

fn best(times: &[f64]) -> f64 {
    times.iter().copied().fold(f64::INFINITY, f64::min)
}

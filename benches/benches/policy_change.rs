//! A policy change with 1M flows in the table: the time until every flow's verdict
//! has been made again. Flows are re-decided on their next packet (the change
//! renews the flow epoch), so this is the time for one packet of each of the 1M
//! flows after the change, against the same packets when nothing changed. The
//! policies hold 10,000 rules; the change moves every rule's port.

use benches::policy::{frame_from, policy_state};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nexthop::Vif;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vrouter::flows::{FlowConfig, Flows};
use vrouter::packet::{process, PacketBuf, PipelineContext, Verdict};

const HEADROOM: usize = 256;
const FLOWS: u32 = 1 << 20;
const RULES: u32 = 10_000;

fn run(snap: &nexthop::Snapshot, ctx: &mut PipelineContext, buf: &mut [u8], frame: &[u8]) -> Verdict {
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(buf, HEADROOM, frame.len()).expect("fits");
    process(snap, Vif(1), &mut pkt, ctx)
}

fn policy_change(c: &mut Criterion) {
    // 1M flows from 256 sources x 4096 ports of pod a's subnet to pod b.
    let frames: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| frame_from(Ipv4Addr::new(198, 18, 1, (i >> 12) as u8), 10_000 + (i & 0xfff) as u16))
        // Not .0, .255, the gateway (.1) or pod b itself (.3).
        .filter(|f| ![0, 1, 3, 255].contains(&f[29]))
        .collect();
    let states = [policy_state(RULES, 0), policy_state(RULES, 1)];
    let mut builder = control_client::SnapshotBuilder::new(1);
    let mut snap = builder.build(&states[0], nexthop::MacAddr(benches::ROUTER));
    let flows = Arc::new(Flows::new(
        &FlowConfig {
            entries: 4 << 20,
            max_per_interface: Some(0),
            ..FlowConfig::default()
        },
        16,
    ));
    let mut ctx = PipelineContext::new(flows.clone());
    let mut buf = vec![0u8; 4096];
    for f in &frames {
        assert_eq!(run(&snap, &mut ctx, &mut buf, f), Verdict::Transmit(Vif(2)));
    }
    eprintln!(
        "{} flows in the table, {} policy rules",
        flows.table.stats().active / 2,
        RULES
    );
    let mut group = c.benchmark_group("policy_change_1M_flows");
    group.sample_size(10).measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(frames.len() as u64));
    let mut version = 0usize;
    group.bench_function("next packet of every flow after a policy change", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                version ^= 1;
                snap = builder.build(&states[version], nexthop::MacAddr(benches::ROUTER));
                let start = Instant::now();
                for f in &frames {
                    black_box(run(&snap, &mut ctx, &mut buf, f));
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.bench_function("next packet of every flow, nothing changed", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(run(&snap, &mut ctx, &mut buf, f));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, policy_change);
criterion_main!(benches);

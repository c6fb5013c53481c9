//! The whole packet pipeline over an in-memory buffer: established flows (lookup
//! hit, rewrite) and new flows (miss, route both ways, insert pair, rewrite).

use benches::{snapshot, udp_frame};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::sync::Arc;
use vrouter::flows::{FlowConfig, Flows};
use vrouter::packet::{process, PacketBuf, PipelineContext, Verdict};

const HEADROOM: usize = 256;

fn run(snap: &nexthop::Snapshot, ctx: &mut PipelineContext, buf: &mut [u8], frame: &[u8]) -> Verdict {
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(buf, HEADROOM, frame.len()).expect("fits");
    process(snap, 1, &mut pkt, ctx)
}

fn pipeline(c: &mut Criterion) {
    let snap = snapshot();
    let mut group = c.benchmark_group("pipeline_udp64");
    group
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(3));
    const FLOWS: u16 = 4096;
    let frames: Vec<Vec<u8>> = (0..FLOWS).map(|p| udp_frame(10_000 + p)).collect();
    group.throughput(Throughput::Elements(u64::from(FLOWS)));
    group.bench_function("established flows", |b| {
        let flows = Arc::new(Flows::new(
            &FlowConfig {
                entries: 1 << 16,
                ..FlowConfig::default()
            },
            16,
        ));
        let mut ctx = PipelineContext::new(flows);
        let mut buf = vec![0u8; 4096];
        for f in &frames {
            run(&snap, &mut ctx, &mut buf, f);
        }
        b.iter(|| {
            for f in &frames {
                black_box(run(&snap, &mut ctx, &mut buf, f));
            }
        })
    });
    group.bench_function("new flows (setup included)", |b| {
        let mut buf = vec![0u8; 4096];
        b.iter_batched(
            || {
                PipelineContext::new(Arc::new(Flows::new(
                    &FlowConfig {
                        entries: 1 << 14,
                        ..FlowConfig::default()
                    },
                    16,
                )))
            },
            |mut ctx| {
                for f in &frames {
                    black_box(run(&snap, &mut ctx, &mut buf, f));
                }
                ctx
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);

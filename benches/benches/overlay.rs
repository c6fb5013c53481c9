//! Overlay pieces: each encapsulation (field by field and from a tunnel's template)
//! and decapsulation, ECMP member selection, flow classification, and the whole
//! pipeline for established flows leaving through an MPLSoUDP tunnel: with 1M flows
//! from frames in DRAM, and from an in-memory port with 1K and 1M flows, with and
//! without route churn.

use benches::{tunnel_snapshot, udp_frame_to};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nexthop::encap::{self, Encap, Outer};
use nexthop::Vif;
use std::hint::black_box;
use std::sync::Arc;
use vrouter::flows::{FlowConfig, Flows};
use vrouter::packet::{process_classified, Classified, PacketBuf, PipelineContext};

const HEADROOM: usize = 256;

fn encapsulation(c: &mut Criterion) {
    let mut group = c.benchmark_group("encap");
    group
        .sample_size(30)
        .measurement_time(std::time::Duration::from_secs(2));
    let inner = [0x45u8; 50];
    for e in Encap::DEFAULT_PRIORITY {
        let outer = Outer {
            encap: e,
            src_mac: [2; 6],
            dst_mac: [4; 6],
            src: [198, 18, 0, 1].into(),
            dst: [198, 18, 0, 2].into(),
            label: 17,
            entropy: 50000,
            ttl: 64,
        };
        let mut frame = vec![0u8; e.outer_len() + inner.len()];
        frame[e.outer_len()..].copy_from_slice(&inner);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("write", e.name()), |b| {
            b.iter(|| {
                outer.write(black_box(&mut frame), inner.len());
            })
        });
        // What the pipeline does: the tunnel's template, with this packet's entropy
        // and TTL.
        let template = outer.template();
        group.bench_function(BenchmarkId::new("template", e.name()), |b| {
            b.iter(|| {
                template.write(black_box(&mut frame), inner.len(), black_box(50000), 64);
            })
        });
        outer.write(&mut frame, inner.len());
        group.bench_function(BenchmarkId::new("parse", e.name()), |b| {
            b.iter(|| black_box(encap::parse(black_box(&frame))))
        });
    }
    group.finish();
}

fn ecmp(c: &mut Criterion) {
    let mut group = c.benchmark_group("ecmp_select");
    for n in [2u64, 16, 128] {
        let members: Vec<u64> = (0..n).map(|i| nexthop::ecmp::member_id(&[i])).collect();
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(n), &members, |b, m| {
            let mut h = 0u64;
            b.iter(|| {
                h = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
                black_box(nexthop::ecmp::select(m, h))
            })
        });
    }
    group.finish();
}

fn established_into_tunnel(c: &mut Criterion) {
    let snap = tunnel_snapshot();
    let mut group = c.benchmark_group("pipeline_mplsoudp");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(5));
    const FLOWS: u32 = 1 << 20;
    let frames: Vec<Vec<u8>> = (0..FLOWS)
        .map(|i| udp_frame_to([198, 18, 2, (i >> 16) as u8 + 1], i as u16))
        .collect();
    let flows = Arc::new(Flows::new(
        &FlowConfig {
            entries: 3 << 20,
            // One interface makes every flow here: no per-interface share.
            max_per_interface: Some(0),
            ..FlowConfig::default()
        },
        16,
    ));
    let mut ctx = PipelineContext::new(flows);
    let mut buf = vec![0u8; 4096];
    let mut run = |ctx: &mut PipelineContext, f: &[u8], hint: Option<&Classified>| {
        buf[HEADROOM..HEADROOM + f.len()].copy_from_slice(f);
        let mut pkt = PacketBuf::new(&mut buf, HEADROOM, f.len()).expect("fits");
        process_classified(&snap, Vif(1), &mut pkt, ctx, hint)
    };
    for f in &frames {
        run(&mut ctx, f, None);
    }
    eprintln!(
        "pipeline_mplsoudp: {} flow entries active",
        ctx.flows.table.stats().active
    );
    group.throughput(Throughput::Elements(u64::from(FLOWS)));
    group.bench_function("1M established flows, 64 B, one at a time", |b| {
        b.iter(|| {
            for f in &frames {
                black_box(run(&mut ctx, f, None));
            }
        })
    });
    // As the worker does: a first pass over a batch of 32 hashes the flow keys and
    // prefetches their buckets, the second processes.
    let iface = snap.interface(Vif(1)).expect("pod a").clone();
    group.bench_function("1M established flows, 64 B, batches of 32 with prefetch", |b| {
        b.iter(|| {
            let mut classified = [None; 32];
            for batch in frames.chunks(32) {
                for (f, c) in batch.iter().zip(classified.iter_mut()) {
                    *c = vrouter::packet::classify(&ctx.flows, &iface, f);
                }
                for c in classified.iter().take(batch.len()).flatten() {
                    vrouter::packet::prefetch_flow_entry(&ctx.flows, c);
                }
                for (f, c) in batch.iter().zip(&classified) {
                    black_box(run(&mut ctx, f, c.as_ref()));
                }
            }
        })
    });
    group.finish();
}

/// An in-memory port ([`benches::port::InMemoryPort`]): only the worker's passes are
/// timed; the generator fills the ring before each. With 1K flows the flow table is in
/// cache (the pipeline's own work); with 1M it is not. With route churn, the control
/// side's builder publishes a changed state every 14,880 packets (1000/s at 14.88 Mpps).
fn in_memory_port(c: &mut Criterion) {
    use benches::port::{Churn, InMemoryPort, Publisher, RING};
    let mut group = c.benchmark_group("pipeline_mplsoudp");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(5));
    for (name, flows) in [("1K", 1u32 << 10), ("1M", 1 << 20)] {
        let ctx = PipelineContext::new(Arc::new(Flows::new(
            &FlowConfig {
                entries: 3 << 20,
                // One interface makes every flow here: no per-interface share.
                max_per_interface: Some(0),
                ..FlowConfig::default()
            },
            16,
        )));
        let mut engine = vrouter::batch::BatchProcessor::new(ctx, Arc::new(vrouter::stats::WorkerStats::new(16)));
        // One builder for all cases, as the control thread has one for its lifetime.
        let mut control = Publisher::new();
        let mut port = InMemoryPort::new(flows, control.snapshot.interface(Vif(1)).expect("pod a").clone());
        port.establish(&mut engine, &control.snapshot);
        assert_eq!(
            engine.ctx.flows.table.stats().active,
            2 * u64::from(flows),
            "every flow established"
        );
        group.throughput(Throughput::Elements(RING as u64));
        let churn: &[(&str, Option<Churn>)] = if flows < 1 << 20 {
            // The same with the checksums left as they came (no transmit metadata):
            // what asking the kernel to finish them costs, in the same run.
            port.set_checksum_offload(false);
            group.bench_function(
                format!("{name} established flows, 64 B, in-memory port, batches of 32, checksums as they came"),
                |b| b.iter_custom(|passes| control.timed_passes(&mut port, &mut engine, None, passes)),
            );
            port.set_checksum_offload(true);
            &[("batches of 32", None)]
        } else {
            &[
                ("batches of 32", None),
                ("1000 route publications/s", Some(Churn::Unrelated)),
                ("1000 publications/s of the flows' route", Some(Churn::TheirRoute)),
            ]
        };
        for (case, churn) in churn {
            group.bench_function(format!("{name} established flows, 64 B, in-memory port, {case}"), |b| {
                b.iter_custom(|passes| control.timed_passes(&mut port, &mut engine, *churn, passes))
            });
        }
    }
    group.finish();
}

fn classify(c: &mut Criterion) {
    let snap = tunnel_snapshot();
    let flows = Flows::new(
        &FlowConfig {
            entries: 1 << 16,
            // One interface makes every flow here: no per-interface share.
            max_per_interface: Some(0),
            ..FlowConfig::default()
        },
        16,
    );
    let frame = udp_frame_to([198, 18, 2, 1], 1234);
    let iface = snap.interface(Vif(1)).expect("pod a").clone();
    c.bench_function("classify (parse, flow key, hash, prefetch)", |b| {
        b.iter(|| vrouter::packet::classify(&flows, &iface, black_box(&frame)))
    });
}

criterion_group!(
    benches,
    encapsulation,
    ecmp,
    classify,
    established_into_tunnel,
    in_memory_port
);
criterion_main!(benches);

//! Flow table: lookup (single and batched with prefetch) at 1K, 64K, 1M and 4M
//! entries, pair insertion rate, and memory per entry.

use benches::{key, scrambled};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flow_table::{FlowKey, FlowRef, FlowTable, FlowValue};
use std::hint::black_box;

const BATCH: usize = 32;
const PROBES: usize = 1 << 16;

fn filled(entries: u32) -> FlowTable {
    let t = FlowTable::new(entries + entries / 8);
    let v = FlowValue {
        data: 1,
        generation: 1,
        owner: 1,
    };
    for n in 0..entries / 2 {
        let k = key(n);
        t.insert_pair((&k, v), (&k.reversed(), v));
    }
    eprintln!(
        "flow table with {entries} entries: {} MiB, {} bytes per entry",
        t.memory_bytes() >> 20,
        t.memory_bytes() / t.capacity() as usize
    );
    t
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_lookup");
    group
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(3));
    for entries in [1u32 << 10, 1 << 16, 1 << 20, 1 << 22] {
        let table = filled(entries);
        let keys: Vec<FlowKey> = scrambled(entries / 2, PROBES).into_iter().map(key).collect();
        group.throughput(Throughput::Elements(PROBES as u64));
        group.bench_with_input(BenchmarkId::new("single", entries), &keys, |b, keys| {
            b.iter(|| {
                let mut hits = 0u32;
                for k in keys {
                    hits += table.lookup(k, k.hash()).is_some() as u32;
                }
                black_box(hits)
            })
        });
        group.bench_with_input(BenchmarkId::new("batched", entries), &keys, |b, keys| {
            let mut hashes = [0u64; BATCH];
            let mut out: [Option<FlowRef>; BATCH] = [None; BATCH];
            b.iter(|| {
                let mut hits = 0u32;
                for chunk in keys.chunks_exact(BATCH) {
                    table.lookup_batch(chunk, &mut hashes, &mut out);
                    hits += out.iter().filter(|o| o.is_some()).count() as u32;
                }
                black_box(hits)
            })
        });
    }
    group.finish();
}

fn inserts(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_insert_pair");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(3));
    const PAIRS: u32 = 1 << 18;
    group.throughput(Throughput::Elements(u64::from(PAIRS)));
    group.bench_function("256K pairs into an empty 1M table", |b| {
        b.iter_batched(
            || FlowTable::new(1 << 20),
            |t| {
                let v = FlowValue {
                    data: 1,
                    generation: 1,
                    owner: 1,
                };
                for n in 0..PAIRS {
                    let k = key(n);
                    black_box(t.insert_pair((&k, v), (&k.reversed(), v)));
                }
                t
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, lookups, inserts);
criterion_main!(benches);

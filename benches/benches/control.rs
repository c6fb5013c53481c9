//! The control side's cost per publication: building a snapshot of a node's desired
//! state with many routes after one route changed, as the control thread does for
//! every change it publishes before route changes were patched, and patching the
//! previous snapshot instead (`Publication`), as it does now for a route change.
//! Routes spread over 16 remote nodes.

use control_client::{DesiredState, Publication, RouteSpec, RouteTarget, SnapshotBuilder, SnapshotPublisher};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::net::Ipv4Addr;

fn node_with_routes(routes: u32) -> DesiredState {
    let mut s = benches::tunnel_state();
    for n in 0..routes {
        let remote = Ipv4Addr::new(198, 18, 0, 10 + (n % 16) as u8);
        // /32s in 198.19.0.0/16, then /32s further up: distinct host routes.
        let prefix = format!("{}/32", Ipv4Addr::from(0xc613_0000 + n))
            .parse()
            .expect("prefix");
        let target = RouteTarget::Tunnel {
            remote,
            label: 100 + n % 16,
            encaps: vec![Encap::MplsOverUdp],
            mac: None,
        };
        s.add_route(RouteSpec {
            vrf: "red".into(),
            prefix,
            target,
        })
        .expect("valid route");
    }
    s
}

fn publication(c: &mut Criterion) {
    let mut group = c.benchmark_group("publication");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(5));
    let prefix: ipnet::IpNet = "198.18.77.0/24".parse().expect("prefix");
    // Adds the route on odd calls, removes it on even ones.
    let toggle = |model: &mut DesiredState, n: u64| {
        if n % 2 == 1 {
            let route = RouteSpec {
                vrf: "red".into(),
                prefix,
                target: RouteTarget::Discard,
            };
            model.add_route(route).expect("valid route");
        } else {
            model.remove_route("red", prefix).expect("present");
        }
    };
    for routes in [1_000u32, 10_000, 100_000] {
        let mut model = node_with_routes(routes);
        let mut builder = SnapshotBuilder::new(1);
        let mut publication = Publication::new(SnapshotPublisher::new(builder.build(&model, MacAddr(benches::ROUTER))));
        let mut n = 0u64;
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("patch after one route changed", routes),
            &routes,
            |b, _| {
                b.iter(|| {
                    n += 1;
                    toggle(&mut model, n);
                    let current = publication.publisher().load_full();
                    let patch = builder.patch_route(&model, "red", prefix, &current);
                    drop(current);
                    match patch {
                        Some(patch) => publication.publish_patch(patch),
                        None => publication.publish(builder.build(&model, MacAddr(benches::ROUTER))),
                    }
                })
            },
        );
        if n % 2 == 1 {
            toggle(&mut model, n + 1);
        }
        let mut n = 0u64;
        group.bench_with_input(
            BenchmarkId::new("build after one route changed", routes),
            &routes,
            |b, _| {
                b.iter(|| {
                    n += 1;
                    toggle(&mut model, n);
                    builder.build(&model, MacAddr(benches::ROUTER))
                })
            },
        );
    }
    group.finish();
}

/// A node with `services` services of `backends` backends each (backends cycle
/// through 198.18.0.0/15), each service with one TCP port.
fn node_with_services(services: u32, backends: u32) -> DesiredState {
    let mut s = benches::tunnel_state();
    for i in 0..services {
        s.add_service(service(i, backends, 0)).expect("valid service");
    }
    s
}

/// Service `i` with `backends` backends, the first `skip` of them left out.
fn service(i: u32, backends: u32, skip: u32) -> control_client::ServiceSpec {
    control_client::ServiceSpec {
        name: format!("ns/svc-{i}"),
        vrf: "red".into(),
        ip: Ipv4Addr::from(0xc613_0000 + i).into(),
        ports: vec![control_client::ServicePort {
            protocol: control_client::L4Protocol::Tcp,
            port: 80,
            target_port: 8080,
            node_port: None,
        }],
        backends: (skip..backends)
            .map(|b| Ipv4Addr::from(0xc612_0000 + (i * backends + b) % 130_000).into())
            .collect(),
        affinity_timeout_secs: None,
        external_ips: Vec::new(),
        health_check: None,
        load_balancer: false,
    }
}

/// A service's backends change (one endpoint goes, then comes back): the control
/// side's full build of the snapshot (what it publishes for a service change today;
/// the state directory's write is not included).
fn service_change(c: &mut Criterion) {
    let mut group = c.benchmark_group("service change");
    group
        .sample_size(10)
        .measurement_time(std::time::Duration::from_secs(10));
    for (services, backends) in [(1_000u32, 10u32), (5_000, 50)] {
        let mut model = node_with_services(services, backends);
        let mut builder = SnapshotBuilder::new(1);
        let _ = builder.build(&model, MacAddr(benches::ROUTER));
        let mut n = 0u32;
        backend_change_to_a_worker(services, backends);
        group.bench_function(
            BenchmarkId::new("build after one backend changed", format!("{services}x{backends}")),
            |b| {
                b.iter(|| {
                    n += 1;
                    model
                        .add_service(service(n % services, backends, n % 2))
                        .expect("valid service");
                    builder.build(&model, MacAddr(benches::ROUTER))
                })
            },
        );
    }
    group.finish();
}

/// A backend change until a worker has it, as percentiles (criterion gives none):
/// the model changed, the snapshot built and published as the control task does for
/// a service change, and a reader thread that loads the published snapshot in a
/// loop, as a worker does once per batch, sees its generation. 200 changes; printed.
fn backend_change_to_a_worker(services: u32, backends: u32) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let mut model = node_with_services(services, backends);
    let mut builder = SnapshotBuilder::new(1);
    let mut publication = Publication::new(SnapshotPublisher::new(builder.build(&model, MacAddr(benches::ROUTER))));
    let (seen, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let worker = {
        let (publisher, seen, stop) = (publication.publisher().clone(), Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                seen.store(publisher.load().generation, Ordering::Release);
                std::hint::spin_loop();
            }
        })
    };
    let mut micros = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for n in 1..=200u32 {
        let start = Instant::now();
        model
            .add_service(service(n % services, backends, n % 2))
            .expect("valid service");
        let snapshot = builder.build(&model, MacAddr(benches::ROUTER));
        let generation = snapshot.generation;
        publication.publish(snapshot);
        while seen.load(Ordering::Acquire) < generation {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the worker never saw the change"
            );
            std::hint::spin_loop();
        }
        micros.record(start.elapsed().as_micros() as u64).expect("in range");
    }
    stop.store(true, Ordering::Relaxed);
    worker.join().expect("reader thread");
    eprintln!(
        "{services} services x {backends} backends: a backend change reaches a worker in p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (200 changes)",
        micros.value_at_quantile(0.5) as f64 / 1000.0,
        micros.value_at_quantile(0.99) as f64 / 1000.0,
        micros.max() as f64 / 1000.0,
    );
}

criterion_group!(benches, publication, service_change);
criterion_main!(benches);

//! The control side's cost per publication: building a snapshot of a node's desired
//! state with many routes after one route changed, as the control thread does for
//! every change it publishes. Routes spread over 16 remote nodes.

use control_client::{DesiredState, RouteSpec, RouteTarget, SnapshotBuilder};
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
    for routes in [1_000u32, 10_000] {
        let mut model = node_with_routes(routes);
        let mut builder = SnapshotBuilder::new(1);
        let _ = builder.build(&model, MacAddr(benches::ROUTER));
        let prefix: ipnet::IpNet = "198.18.77.0/24".parse().expect("prefix");
        let mut n = 0u64;
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(
            BenchmarkId::new("build after one route changed", routes),
            &routes,
            |b, _| {
                b.iter(|| {
                    n += 1;
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
                    builder.build(&model, MacAddr(benches::ROUTER))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, publication);
criterion_main!(benches);

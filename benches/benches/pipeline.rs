//! The whole packet pipeline over an in-memory buffer: established flows (lookup
//! hit, rewrite) and new flows (miss, route both ways, insert pair, rewrite); new
//! connections to a service with 1 and with 10,000 services in the node.

use benches::{service_snapshot, snapshot, udp_frame, udp_frame_to, SERVICE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nexthop::Vif;
use std::hint::black_box;
use std::sync::Arc;
use vrouter::flows::{FlowConfig, Flows};
use vrouter::packet::{process, PacketBuf, PipelineContext, Verdict};

const HEADROOM: usize = 256;

fn run(snap: &nexthop::Snapshot, ctx: &mut PipelineContext, buf: &mut [u8], frame: &[u8]) -> Verdict {
    buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(buf, HEADROOM, frame.len()).expect("fits");
    process(snap, Vif(1), &mut pkt, ctx)
}

/// Established flows: every frame's flow set up first, then the frames again
/// (`finished_on_send`: as a worker whose frames leave with their transport checksums
/// finished by the kernel, the default where AF_XDP has transmit metadata).
fn established(b: &mut criterion::Bencher<'_>, snap: &nexthop::Snapshot, frames: &[Vec<u8>], finished_on_send: bool) {
    let flows = Arc::new(Flows::new(
        &FlowConfig {
            entries: 1 << 16,
            // One interface makes every flow here: no per-interface share.
            max_per_interface: Some(0),
            ..FlowConfig::default()
        },
        16,
    ));
    let mut ctx = PipelineContext::new(flows);
    ctx.transport_checksums_finished = finished_on_send;
    let mut buf = vec![0u8; 4096];
    for f in frames {
        run(snap, &mut ctx, &mut buf, f);
    }
    b.iter(|| {
        for f in frames {
            black_box(run(snap, &mut ctx, &mut buf, f));
        }
    })
}

/// New flows: every frame's flow set up, in a fresh table each pass.
fn new_flows(b: &mut criterion::Bencher<'_>, snap: &nexthop::Snapshot, frames: &[Vec<u8>]) {
    let mut buf = vec![0u8; 4096];
    b.iter_batched(
        || {
            PipelineContext::new(Arc::new(Flows::new(
                &FlowConfig {
                    entries: 1 << 14,
                    // One interface makes every flow here: no per-interface share.
                    max_per_interface: Some(0),
                    ..FlowConfig::default()
                },
                16,
            )))
        },
        |mut ctx| {
            for f in frames {
                black_box(run(snap, &mut ctx, &mut buf, f));
            }
            ctx
        },
        criterion::BatchSize::PerIteration,
    )
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
    group.bench_function("established flows", |b| established(b, &snap, &frames, true));
    // The same flows to a service: translated to pod b (destination address, port and
    // the IPv4 header checksum rewritten per packet; the UDP checksum too where the
    // kernel does not finish it on send).
    let nat_snap = service_snapshot();
    let nat_frames: Vec<Vec<u8>> = (0..FLOWS).map(|p| udp_frame_to(SERVICE, 10_000 + p)).collect();
    assert_eq!(
        run(
            &nat_snap,
            &mut PipelineContext::default(),
            &mut [0u8; 4096],
            &nat_frames[0]
        ),
        Verdict::Transmit(Vif(2)),
        "the service's flows reach pod b"
    );
    group.bench_function("established NAT flows (to a service)", |b| {
        established(b, &nat_snap, &nat_frames, true)
    });
    group.bench_function("established NAT flows (to a service), checksums updated here", |b| {
        established(b, &nat_snap, &nat_frames, false)
    });
    group.bench_function("new flows (setup included)", |b| new_flows(b, &snap, &frames));
    group.finish();
}

/// New connections to a service with 10 backends (a backend chosen, both directions
/// installed translated): with one service in the node, and with 10,000 services of
/// 10 backends each. The first packet's cost must not grow with the services.
fn service_setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_service_setup");
    group
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(3));
    const CONNECTIONS: u16 = 4096;
    let frames: Vec<Vec<u8>> = (0..CONNECTIONS)
        .map(|p| benches::tcp_syn_to(SERVICE, 10_000 + p))
        .collect();
    group.throughput(Throughput::Elements(u64::from(CONNECTIONS)));
    for services in [1u32, 10_000] {
        let snap = benches::services_snapshot(services, 10);
        assert_eq!(
            run(&snap, &mut PipelineContext::default(), &mut [0u8; 4096], &frames[0]),
            Verdict::Transmit(Vif(2)),
            "a connection to the service reaches a backend"
        );
        eprintln!(
            "{services} services x 10 backends: the services take {} KiB of the snapshot",
            benches::services_memory(&snap) / 1024
        );
        let name = format!("new connections, {services} services x 10 backends");
        group.bench_function(name, |b| new_flows(b, &snap, &frames));
    }
    group.finish();
}

/// New connections between two pods that network policies select (egress on the
/// sender, ingress on the receiver): with no policy, and with 10,000 rules on the
/// node. Matching is a prefix lookup in the pod's merged rules, not a scan.
fn policy_setup(c: &mut Criterion) {
    let mut group = c.benchmark_group("pipeline_policy_setup");
    group
        .sample_size(20)
        .measurement_time(std::time::Duration::from_secs(3));
    const CONNECTIONS: u16 = 4096;
    let frames: Vec<Vec<u8>> = (0..CONNECTIONS)
        .map(|p| benches::policy::frame_from(std::net::Ipv4Addr::new(198, 18, 1, 2), 10_000 + p))
        .collect();
    group.throughput(Throughput::Elements(u64::from(CONNECTIONS)));
    for rules in [0u32, 10_000] {
        let mut state = benches::policy::policy_state(rules, 0);
        if rules == 0 {
            for name in ["bench/a-out", "bench/b-in"] {
                state.remove_policy(name).expect("present");
            }
        }
        let snap = state.build(1, nexthop::MacAddr(benches::ROUTER));
        assert_eq!(
            run(&snap, &mut PipelineContext::default(), &mut [0u8; 4096], &frames[0]),
            Verdict::Transmit(Vif(2)),
            "the connection is allowed"
        );
        group.bench_function(format!("new connections, {rules} policy rules"), |b| {
            new_flows(b, &snap, &frames)
        });
    }
    group.finish();
}

/// Packets from another node: MPLS over UDP by the pod's label, taken apart and
/// delivered (the receiving node checks that the inner destination routes to the
/// label's interface in its VRF).
fn decapsulation(c: &mut Criterion) {
    let mut state = control_client::DesiredState::new(16);
    state.set_fabric("fabric0");
    state.set_fabric_info(nexthop::FabricInfo {
        ip: Some([198, 18, 0, 1].into()),
        mac: nexthop::MacAddr([2, 0, 0, 0, 0, 0xf1]),
        mtu: 1500,
    });
    state
        .add_interface(control_client::InterfaceSpec {
            name: "a".into(),
            vrf: "red".into(),
            mac: nexthop::MacAddr([2, 0, 0, 0, 0, 2]),
            ipv4: Some([198, 18, 1, 2].into()),
            ipv6: None,
            gateway4: Some([198, 18, 1, 1].into()),
            gateway6: None,
            allowed_address_pairs: Vec::new(),
            mtu: None,
            vlan: None,
            security_groups: Vec::new(),
            local_preference: None,
        })
        .expect("valid pod");
    let label = state.port_identity("a").expect("attached").label;
    let snap = state.build(1, nexthop::MacAddr(benches::ROUTER));
    let mut inner = Vec::new();
    etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], benches::ROUTER)
        .ipv4([198, 18, 9, 9], [198, 18, 1, 2], 64)
        .udp(10_000, 5000)
        .write(&mut inner, &[0u8; 18])
        .expect("in-memory write");
    let outer = nexthop::encap::Outer {
        encap: nexthop::encap::Encap::MplsOverUdp,
        src_mac: [2, 0, 0, 0, 0, 0xf2],
        dst_mac: [2, 0, 0, 0, 0, 0xf1],
        src: [198, 18, 0, 2].into(),
        dst: [198, 18, 0, 1].into(),
        label,
        entropy: 50000,
        ttl: 60,
    };
    let frame = outer.frame(&inner[14..]);
    let mut ctx = PipelineContext::default();
    let mut buf = vec![0u8; 4096];
    let mut deliver = |buf: &mut [u8]| {
        buf[HEADROOM..HEADROOM + frame.len()].copy_from_slice(&frame);
        let mut pkt = PacketBuf::new(buf, HEADROOM, frame.len()).expect("fits");
        process(&snap, Vif::FABRIC, &mut pkt, &mut ctx)
    };
    assert_eq!(deliver(&mut buf), Verdict::Transmit(Vif(1)), "the frame is delivered");
    let mut group = c.benchmark_group("pipeline_decap");
    group.throughput(Throughput::Elements(1));
    group.bench_function("MPLSoUDP by label to a pod, 64 B", |b| {
        b.iter(|| black_box(deliver(&mut buf)))
    });
    group.finish();
}

criterion_group!(benches, pipeline, service_setup, policy_setup, decapsulation);
criterion_main!(benches);

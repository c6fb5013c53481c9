//! Flows on a real node: 100K UDP flows set up inline with no setup drops, then the
//! table-full behaviour with a small table: new flows refused and counted,
//! established flows still forwarded.

use system_tests::{node_with_flows, serial};
use vrouter::api::{FlowActionView, FlowFilter, FlowStatsView, FlowView, Request};
use vrouter::flows::FlowConfig;
use vrouter_lab::traffic::{udp_probe, udp_spray};

const BIN: &str = env!("CARGO_BIN_EXE_vrouter-under-test");

#[test]
fn hundred_thousand_flows_set_up_without_setup_drops() {
    let _machine = serial();
    let mut n = node_with_flows(
        BIN,
        FlowConfig {
            entries: 1 << 19,
            // Pod a alone makes all 110K flows: no per-interface share here.
            max_per_interface: Some(0),
            ..FlowConfig::default()
        },
    );
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, false).unwrap();
    // The generator's second source address is allowed (anti-spoofing drops it
    // otherwise, as the next test checks).
    n.allow_subnet_sources(0).unwrap();
    n.attach(0).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    // 110K datagrams from the AF_XDP generator in pod a, each its own flow: source
    // ports 1024-61023, then the next source address. The kernel may lose a few before
    // the vrouter (copy-mode AF_XDP on veth), so at least 100K flows must result.
    let options = vrouter_lab::gen::GenOptions {
        flows: 110_000,
        rate: 50_000,
        count: 110_000,
        seconds: 20.0,
        ..vrouter_lab::gen::GenOptions::udp(
            "eth0",
            (a.mac, "00:00:5e:00:01:00".parse().unwrap()),
            a.ipv4.into(),
            b.ipv4.into(),
        )
    };
    let pod_ns = a.ns.name().to_string();
    let sent = std::thread::spawn(move || {
        vrouter_lab::netns::enter_by_name(&pod_ns).unwrap();
        vrouter_lab::gen::generate(&options)
    })
    .join()
    .unwrap()
    .unwrap();
    assert_eq!(sent.packets, 110_000);
    let api = n.api();
    let stats: FlowStatsView = api.call(&Request::FlowStats).unwrap();
    let drops = n.drop_stats().unwrap();
    assert_eq!(
        drops.get("flow_table_full") + drops.get("flow_limit"),
        0,
        "setup drops: {drops:?}"
    );
    let vifs = n.interfaces().unwrap();
    let a_vif = vifs.iter().find(|i| i.name == a.host_if).unwrap();
    let b_vif = vifs.iter().find(|i| i.name == b.host_if).unwrap();
    assert!(
        stats.active_entries >= 2 * 100_000,
        "fewer than 100K flows: {stats:?}, pod side {:?}",
        a_vif.counters
    );
    // Everything that reached the vrouter was forwarded (a few ND/multicast frames
    // from the pod's stack are the only drops).
    assert!(a_vif.counters.drops < 20, "{:?}", a_vif.counters);
    assert!(
        b_vif.counters.tx_packets + a_vif.counters.drops >= a_vif.counters.rx_packets,
        "received {:?}, forwarded {:?}",
        a_vif.counters,
        b_vif.counters
    );
    // The flow view finds a given flow and shows its cached decision.
    let filter = FlowFilter {
        dst: Some(b.ipv4.into()),
        port: Some(1024 + 55_000),
        ..Default::default()
    };
    let flows: Vec<FlowView> = api
        .call(&Request::Flows {
            filter,
            limit: 10,
            from_index: 0,
        })
        .unwrap();
    assert_eq!(flows.len(), 1, "{flows:?}");
    assert!(
        matches!(flows[0].action, FlowActionView::ToInterface { vif, .. } if vif == b_vif.vif)
            && flows[0].reverse.is_some(),
        "{flows:?}"
    );
    // An answer is bounded whatever the request asks; the rest comes page by page.
    let page = |from_index: u32| -> Vec<FlowView> {
        api.call(&Request::Flows {
            filter: FlowFilter::default(),
            limit: 100_000_000,
            from_index,
        })
        .unwrap()
    };
    let first = page(0);
    assert_eq!(first.len(), vrouter::api::MAX_FLOWS_PER_ANSWER);
    let next = page(first.last().unwrap().index + 1);
    assert_eq!(next.len(), vrouter::api::MAX_FLOWS_PER_ANSWER);
    assert!(next[0].index > first.last().unwrap().index, "pages do not overlap");
}

#[test]
fn full_table_refuses_new_flows_and_keeps_established_ones() {
    let _machine = serial();
    let mut n = node_with_flows(
        BIN,
        FlowConfig {
            entries: 16,
            ..FlowConfig::default()
        },
    );
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    let (a, b) = (&n.pods[0], &n.pods[1]);
    let dst = b.ipv4.into();
    assert!(
        udp_probe(a, b, dst, 7000, 7001).unwrap(),
        "established flow not forwarded\n{}",
        n.log()
    );
    udp_spray(a, dst, 200, 10_000).unwrap();
    let full = n.drop_stats().unwrap().get("flow_table_full");
    assert!(full > 0, "a 16-entry table took 200 new flows");
    assert!(
        udp_probe(a, b, dst, 7000, 7001).unwrap(),
        "established flow lost when the table filled"
    );
    assert!(
        !udp_probe(a, b, dst, 7002, 7003).unwrap(),
        "a new flow got through a full table"
    );
    assert!(n.drop_stats().unwrap().get("flow_table_full") > full);
    let stats: FlowStatsView = n.api().call(&Request::FlowStats).unwrap();
    assert_eq!(stats.capacity, 16);
    assert!(stats.refused_table_full > 0);
}

#[test]
fn by_default_one_pod_cannot_fill_the_table_for_the_others() {
    let _machine = serial();
    // 16384 entries: 8192 flows; by default one interface may hold a quarter, 2048.
    let mut n = node_with_flows(
        BIN,
        FlowConfig {
            entries: 1 << 14,
            ..FlowConfig::default()
        },
    );
    n.start_vrouter().unwrap();
    n.add_pod("red", 0, 1, true).unwrap();
    n.add_pod("red", 0, 2, true).unwrap();
    n.add_pod("red", 0, 3, true).unwrap();
    let (a, b, c) = (&n.pods[0], &n.pods[1], &n.pods[2]);
    udp_spray(a, b.ipv4.into(), 6000, 30_000).unwrap();
    let drops = n.drop_stats().unwrap();
    assert!(
        drops.get("flow_limit") > 0,
        "pod a was not held to its share: {drops:?}"
    );
    assert_eq!(drops.get("flow_table_full"), 0, "{drops:?}");
    // Another pod still opens new connections.
    for port in 0..20 {
        assert!(
            udp_probe(c, b, b.ipv4.into(), 7100 + port, 7200 + port).unwrap(),
            "pod c's new flow {port} was refused\n{drops:?}"
        );
    }
}

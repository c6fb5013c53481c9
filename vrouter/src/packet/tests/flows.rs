//! Flow setup, hits, re-evaluation and limits in the pipeline.

use super::*;
use nexthop::MacAddr;

fn ctx_with(entries: u32, per_interface: u32) -> PipelineContext {
    let config = crate::flows::FlowConfig {
        entries,
        max_per_interface: Some(per_interface),
        ..Default::default()
    };
    PipelineContext::new(std::sync::Arc::new(crate::flows::Flows::new(&config, 16)))
}

#[test]
fn first_packet_sets_up_both_directions_later_packets_hit() {
    let snap = snapshot();
    let mut ctx = ctx_with(64, 0);
    let out = udp4(MAC_A, ROUTER, A4, B4, 64, b"one");
    assert_eq!(run_in(&snap, Vif(1), &out, &mut ctx).0, Verdict::Transmit(Vif(2)));
    assert_eq!(ctx.flows.table.stats().created, 2, "forward and reverse entries");
    assert_eq!(
        run_in(&snap, Vif(1), &out, &mut ctx),
        (Verdict::Transmit(Vif(2)), udp4(ROUTER, MAC_B, A4, B4, 63, b"one"))
    );
    // The reply uses the reverse entry made with the first packet.
    let back = PacketBuilder::ethernet2(MAC_B, ROUTER).ipv4(B4, A4, 64).udp(5000, 4000);
    let mut reply = Vec::new();
    back.write(&mut reply, b"two").unwrap();
    assert_eq!(run_in(&snap, Vif(2), &reply, &mut ctx).0, Verdict::Transmit(Vif(1)));
    assert_eq!(ctx.flows.table.stats().created, 2, "no new flow for the reply");
    let key = flow_table::FlowKey::v4(1, A4.into(), B4.into(), 17, 4000, 5000);
    let f = ctx.flows.table.lookup(&key, key.hash()).unwrap();
    assert_eq!(ctx.flows.table.activity(f.index).packets, 2);
    assert_eq!(ctx.flows.table.activity(f.reverse.unwrap()).packets, 1);
    // Isolation is cached as a drop flow.
    assert_eq!(
        run_in(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, C4, 64, b"x"), &mut ctx).0,
        Verdict::Drop(DropReason::OtherVrf)
    );
    assert_eq!(ctx.flows.table.stats().created, 4);
}

/// A publication re-evaluates the flows whose route it changed, and only those.
#[test]
fn flows_are_re_evaluated_when_their_route_changes_and_only_then() {
    let mut model = state();
    let mut builder = control_client::SnapshotBuilder::new(1);
    let first = builder.build(&model, MacAddr(ROUTER));
    let mut ctx = ctx_with(64, 0);
    let pkt = udp4(MAC_A, ROUTER, A4, B4, 64, b"x");
    assert_eq!(run_in(&first, Vif(1), &pkt, &mut ctx).0, Verdict::Transmit(Vif(2)));
    let key = flow_table::FlowKey::v4(1, A4.into(), B4.into(), 17, 4000, 5000);
    let made_in = |ctx: &PipelineContext| ctx.flows.table.lookup(&key, key.hash()).unwrap().value.generation;
    // An unrelated route: the flow's decision still holds and is not touched.
    let route = |prefix: &str| control_client::RouteSpec {
        vrf: "red".into(),
        prefix: prefix.parse().unwrap(),
        target: control_client::RouteTarget::Discard,
    };
    model.add_route(route("198.18.50.0/24")).unwrap();
    let second = builder.build(&model, MacAddr(ROUTER));
    assert_eq!(run_in(&second, Vif(1), &pkt, &mut ctx).0, Verdict::Transmit(Vif(2)));
    assert_eq!(made_in(&ctx), 1, "not re-evaluated");
    // b's address blackholed: the flow follows, updated in place.
    model.add_route(route("198.18.1.3/32")).unwrap();
    let third = builder.build(&model, MacAddr(ROUTER));
    assert_eq!(
        run_in(&third, Vif(1), &pkt, &mut ctx).0,
        Verdict::Drop(DropReason::Discard)
    );
    assert_eq!(
        made_in(&ctx),
        3,
        "re-evaluated in the generation that changed its route"
    );
    assert_eq!(ctx.flows.table.stats().created, 2, "no new entries");
}

#[test]
fn full_table_drops_new_flows_and_keeps_established_ones() {
    let snap = snapshot();
    let mut ctx = ctx_with(2, 0);
    let first = udp4(MAC_A, ROUTER, A4, B4, 64, b"x");
    assert_eq!(run_in(&snap, Vif(1), &first, &mut ctx).0, Verdict::Transmit(Vif(2)));
    let b = PacketBuilder::ethernet2(MAC_A, ROUTER).ipv4(A4, B4, 64).udp(4001, 5000);
    let mut second = Vec::new();
    b.write(&mut second, b"y").unwrap();
    assert_eq!(
        run_in(&snap, Vif(1), &second, &mut ctx).0,
        Verdict::Drop(DropReason::FlowTableFull)
    );
    assert_eq!(
        run_in(&snap, Vif(1), &first, &mut ctx).0,
        Verdict::Transmit(Vif(2)),
        "established flow still forwarded"
    );
    assert_eq!(ctx.flows.refused_full.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Local answers need no flow.
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv4(A4, GW4, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"p")
        .unwrap();
    assert_eq!(run_in(&snap, Vif(1), &ping, &mut ctx).0, Verdict::Transmit(Vif(1)));
}

#[test]
fn interface_flow_limit_is_enforced_per_interface() {
    let snap = snapshot();
    let mut ctx = ctx_with(64, 1);
    assert_eq!(
        run_in(&snap, Vif(1), &udp4(MAC_A, ROUTER, A4, B4, 64, b"x"), &mut ctx).0,
        Verdict::Transmit(Vif(2))
    );
    let b = PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv6(v6("2001:2:0:1::2"), v6("2001:2:0:1::3"), 64)
        .udp(1, 2);
    let mut other = Vec::new();
    b.write(&mut other, b"y").unwrap();
    assert_eq!(
        run_in(&snap, Vif(1), &other, &mut ctx).0,
        Verdict::Drop(DropReason::FlowLimit)
    );
    // Pod b has its own quota.
    let b = PacketBuilder::ethernet2(MAC_B, ROUTER).ipv4(B4, A4, 64).udp(7, 8);
    let mut from_b = Vec::new();
    b.write(&mut from_b, b"z").unwrap();
    assert_eq!(run_in(&snap, Vif(2), &from_b, &mut ctx).0, Verdict::Transmit(Vif(1)));
}

/// The batch's first pass hands its hash to the pipeline: the flow it finds is the
/// one the packet's own key finds, and a hint that belongs to another packet (a
/// caller's mistake) costs a hash, never another flow's decision.
#[test]
fn classified_hints_are_reused_only_for_their_own_key() {
    let snap = snapshot();
    let mut ctx = ctx_with(64, 0);
    let iface = snap.interface(Vif(1)).unwrap().clone();
    let to_b = udp4(MAC_A, ROUTER, A4, B4, 64, b"b");
    let to_c = udp4(MAC_A, ROUTER, A4, C4, 64, b"c");
    let hint_b = classify(&ctx.flows, &iface, &to_b).expect("an IPv4 frame is classified");
    let run_hinted = |ctx: &mut PipelineContext, frame: &[u8], hint: &Classified| {
        let mut buf = vec![0u8; 512];
        buf[128..128 + frame.len()].copy_from_slice(frame);
        let mut pkt = PacketBuf::new(&mut buf, 128, frame.len()).unwrap();
        process_classified(&snap, Vif(1), &mut pkt, ctx, Some(hint)).verdict
    };
    assert_eq!(run_hinted(&mut ctx, &to_b, &hint_b), Verdict::Transmit(Vif(2)));
    assert_eq!(run_hinted(&mut ctx, &to_b, &hint_b), Verdict::Transmit(Vif(2)));
    assert_eq!(
        ctx.flows.table.stats().created,
        2,
        "one pair: the hinted hash is the key's"
    );
    let key_b = flow_table::FlowKey::v4(1, A4.into(), B4.into(), 17, 4000, 5000);
    let f = ctx
        .flows
        .table
        .lookup(&key_b, key_b.hash())
        .expect("found by its own hash");
    assert_eq!(ctx.flows.table.activity(f.index).packets, 2);
    // c is in another VRF: with b's hint the packet still gets c's verdict.
    assert_eq!(
        run_hinted(&mut ctx, &to_c, &hint_b),
        Verdict::Drop(DropReason::OtherVrf)
    );
    let key_c = flow_table::FlowKey::v4(1, A4.into(), C4.into(), 17, 4000, 5000);
    assert!(
        ctx.flows.table.lookup(&key_c, key_c.hash()).is_some(),
        "c's flow is where its key hashes"
    );
    assert_eq!(ctx.flows.table.activity(f.index).packets, 2, "b's flow not counted");
    // Non-IP frames have no flow key.
    assert_eq!(classify(&ctx.flows, &iface, &[0u8; 60]), None);
}

//! Flow setup, hits, re-evaluation and limits in the pipeline.

use super::*;

fn ctx_with(entries: u32, per_interface: u32) -> PipelineContext {
    let config = crate::flows::FlowConfig {
        entries,
        max_per_interface: per_interface,
        ..Default::default()
    };
    PipelineContext::new(std::sync::Arc::new(crate::flows::Flows::new(&config, 16)))
}

#[test]
fn first_packet_sets_up_both_directions_later_packets_hit() {
    let snap = snapshot();
    let mut ctx = ctx_with(64, 0);
    let out = udp4(MAC_A, ROUTER, A4, B4, 64, b"one");
    assert_eq!(run_in(&snap, 1, &out, &mut ctx).0, Verdict::Transmit(2));
    assert_eq!(ctx.flows.table.stats().created, 2, "forward and reverse entries");
    assert_eq!(
        run_in(&snap, 1, &out, &mut ctx),
        (Verdict::Transmit(2), udp4(ROUTER, MAC_B, A4, B4, 63, b"one"))
    );
    // The reply uses the reverse entry made with the first packet.
    let back = PacketBuilder::ethernet2(MAC_B, ROUTER).ipv4(B4, A4, 64).udp(5000, 4000);
    let mut reply = Vec::new();
    back.write(&mut reply, b"two").unwrap();
    assert_eq!(run_in(&snap, 2, &reply, &mut ctx).0, Verdict::Transmit(1));
    assert_eq!(ctx.flows.table.stats().created, 2, "no new flow for the reply");
    let key = flow_table::FlowKey::v4(1, A4.into(), B4.into(), 17, 4000, 5000);
    let f = ctx.flows.table.lookup(&key, key.hash()).unwrap();
    assert_eq!(ctx.flows.table.activity(f.index).packets, 2);
    assert_eq!(ctx.flows.table.activity(f.reverse.unwrap()).packets, 1);
    // Isolation is cached as a drop flow.
    assert_eq!(
        run_in(&snap, 1, &udp4(MAC_A, ROUTER, A4, C4, 64, b"x"), &mut ctx).0,
        Verdict::Drop(DropReason::OtherVrf)
    );
    assert_eq!(ctx.flows.table.stats().created, 4);
}

#[test]
fn flows_made_under_an_old_snapshot_are_re_evaluated() {
    let snap = snapshot();
    let mut ctx = ctx_with(64, 0);
    let pkt = udp4(MAC_A, ROUTER, A4, B4, 64, b"x");
    assert_eq!(run_in(&snap, 1, &pkt, &mut ctx).0, Verdict::Transmit(2));
    // A new snapshot where b's address is blackholed.
    let mut next = snapshot();
    next.generation = 2;
    let red = next.vrf_by_name("red").unwrap().id as usize;
    next.vrfs[red].v4.insert(nexthop::v4_key(B4.into()), 32, 0);
    assert_eq!(run_in(&next, 1, &pkt, &mut ctx).0, Verdict::Drop(DropReason::Discard));
    let key = flow_table::FlowKey::v4(1, A4.into(), B4.into(), 17, 4000, 5000);
    let f = ctx.flows.table.lookup(&key, key.hash()).unwrap();
    assert_eq!(f.value.generation, 2, "entry updated in place");
    assert_eq!(ctx.flows.table.stats().created, 2, "no new entries");
}

#[test]
fn full_table_drops_new_flows_and_keeps_established_ones() {
    let snap = snapshot();
    let mut ctx = ctx_with(2, 0);
    let first = udp4(MAC_A, ROUTER, A4, B4, 64, b"x");
    assert_eq!(run_in(&snap, 1, &first, &mut ctx).0, Verdict::Transmit(2));
    let b = PacketBuilder::ethernet2(MAC_A, ROUTER).ipv4(A4, B4, 64).udp(4001, 5000);
    let mut second = Vec::new();
    b.write(&mut second, b"y").unwrap();
    assert_eq!(
        run_in(&snap, 1, &second, &mut ctx).0,
        Verdict::Drop(DropReason::FlowTableFull)
    );
    assert_eq!(
        run_in(&snap, 1, &first, &mut ctx).0,
        Verdict::Transmit(2),
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
    assert_eq!(run_in(&snap, 1, &ping, &mut ctx).0, Verdict::Transmit(1));
}

#[test]
fn interface_flow_limit_is_enforced_per_interface() {
    let snap = snapshot();
    let mut ctx = ctx_with(64, 1);
    assert_eq!(
        run_in(&snap, 1, &udp4(MAC_A, ROUTER, A4, B4, 64, b"x"), &mut ctx).0,
        Verdict::Transmit(2)
    );
    let b = PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv6(v6("2001:2:0:1::2"), v6("2001:2:0:1::3"), 64)
        .udp(1, 2);
    let mut other = Vec::new();
    b.write(&mut other, b"y").unwrap();
    assert_eq!(
        run_in(&snap, 1, &other, &mut ctx).0,
        Verdict::Drop(DropReason::FlowLimit)
    );
    // Pod b has its own quota.
    let b = PacketBuilder::ethernet2(MAC_B, ROUTER).ipv4(B4, A4, 64).udp(7, 8);
    let mut from_b = Vec::new();
    b.write(&mut from_b, b"z").unwrap();
    assert_eq!(run_in(&snap, 2, &from_b, &mut ctx).0, Verdict::Transmit(1));
}

//! Two service addresses balancing one client port to one backend: the second
//! connection's replies would have the first's key (backend port to client port),
//! and be translated for the first. While the first is open the second is refused,
//! counted; once it closed (FIN both ways) the second takes the key and its replies
//! come back from its own service address. A datagram flow gives its key up once
//! idle a moment.

use super::services::{with_services, SVC4};
use super::*;

const SVC2: [u8; 4] = [198, 18, 100, 11];

/// A TCP segment with `flags` ("S", "F" with an ACK, "A").
fn segment(src_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ports: (u16, u16), flags: &str) -> Vec<u8> {
    tcp4_flagged(src_mac, ROUTER, (src, dst), ports, 64, flags, b"")
}

#[test]
fn a_connection_whose_replies_would_be_another_open_ones_is_refused_until_that_one_closed() {
    let (mut state, _) = with_services(&[B4], false);
    state
        .add_service(super::web_service("default/other", SVC2, B4))
        .unwrap();
    let snap = state.build(2, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let (a, b) = (Vif(1), Vif(2));
    let first = segment(MAC_A, A4, SVC4, (40000, 80), "S");
    assert_eq!(run_in(&snap, a, &first, &mut ctx).0, Verdict::Transmit(b));

    // The same client port to the other address, while the first is open: refused
    // out loud (port unreachable back to the client), counted.
    let second = segment(MAC_A, A4, SVC2, (40000, 80), "S");
    assert_eq!(
        run_in(&snap, a, &second, &mut ctx).0,
        Verdict::DropWithError(DropReason::NatClash)
    );
    assert_eq!(ctx.flows.nat_clashes.load(std::sync::atomic::Ordering::Relaxed), 1);
    // Nothing of it is left: no entry standing alone, no reservation kept.
    assert_eq!(ctx.flows.table.stats().active, 2, "the first connection's pair only");
    assert_eq!(ctx.flows.count_of(a), 1, "the client's interface holds one connection");
    // The first still gets its replies from its own address.
    let (v, out) = run_in(&snap, b, &segment(MAC_B, B4, A4, (9376, 40000), "A"), &mut ctx);
    assert_eq!(v, Verdict::Transmit(a));
    assert_eq!(&out[ETH_LEN + 12..ETH_LEN + 16], &SVC4, "from the first service");

    // The first closes, FIN both ways; the port reused takes the key.
    run_in(&snap, a, &segment(MAC_A, A4, SVC4, (40000, 80), "F"), &mut ctx);
    run_in(&snap, b, &segment(MAC_B, B4, A4, (9376, 40000), "F"), &mut ctx);
    assert_eq!(run_in(&snap, a, &second, &mut ctx).0, Verdict::Transmit(b));
    let (v, out) = run_in(&snap, b, &segment(MAC_B, B4, A4, (9376, 40000), "A"), &mut ctx);
    assert_eq!(v, Verdict::Transmit(a));
    assert_eq!(&out[ETH_LEN + 12..ETH_LEN + 16], &SVC2, "from the second service now");
}

#[test]
fn a_datagram_flow_gives_its_reply_key_up_once_idle() {
    let (mut state, _) = with_services(&[B4], false);
    let mut other = super::web_service("default/dns", SVC2, B4);
    other.ports[0].protocol = control_client::L4Protocol::Udp;
    other.ports[0].port = 53;
    other.ports[0].target_port = 5353;
    state.add_service(other).unwrap();
    let snap = state.build(2, MacAddr(ROUTER));
    let mut ctx = PipelineContext::default();
    let (a, b) = (Vif(1), Vif(2));
    // with_services' UDP port: 53 -> 5353 on SVC4.
    let to = |svc: [u8; 4]| super::services::udp4p(MAC_A, ROUTER, A4, svc, (40000, 53), 64);
    assert_eq!(run_in(&snap, a, &to(SVC4), &mut ctx).0, Verdict::Transmit(b));
    assert_eq!(
        run_in(&snap, a, &to(SVC2), &mut ctx).0,
        Verdict::DropWithError(DropReason::NatClash),
        "the first exchange is going on"
    );
    ctx.flows.table.set_now(ctx.flows.table.now() + 3);
    assert_eq!(run_in(&snap, a, &to(SVC2), &mut ctx).0, Verdict::Transmit(b));
    let answer = super::services::udp4p(MAC_B, ROUTER, B4, A4, (5353, 40000), 64);
    let (v, out) = run_in(&snap, b, &answer, &mut ctx);
    assert_eq!(v, Verdict::Transmit(a));
    assert_eq!(
        &out[ETH_LEN + 12..ETH_LEN + 16],
        &SVC2,
        "answered from the second service"
    );
}

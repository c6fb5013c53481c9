//! Fragments of a datagram follow its first fragment's flow: a service's translation
//! both ways, its backend (one ECMP member for the whole datagram), fabric source
//! NAT out and back, with exact bytes; a later fragment whose first never came goes
//! by its addresses alone, counted.

use super::node_ports::{with_node, CLIENT_MAC, FABRIC_IP, FABRIC_MAC, HOST_MAC, OUTSIDE};
use super::services::{udp4p, with_services, D4, SVC4};
use super::*;
use std::sync::atomic::Ordering;

#[test]
fn fragments_to_a_service_and_back_are_translated_as_their_datagram() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    // The first fragment carries the UDP header, the second the payload.
    let (first, second) = fragmented(&udp4p(MAC_A, ROUTER, A4, SVC4, (5000, 53), 64), 0x1234, 8);
    let (want_first, want_second) = fragmented(&udp4p(ROUTER, MAC_B, A4, B4, (5000, 5353), 63), 0x1234, 8);
    let (v, out) = run_in(&snap, Vif(1), &first, &mut ctx);
    assert_eq!((v, out), (Verdict::Transmit(Vif(2)), want_first));
    let (v, out) = run_in(&snap, Vif(1), &second, &mut ctx);
    assert_eq!(
        (v, out),
        (Verdict::Transmit(Vif(2)), want_second),
        "to the backend's address"
    );
    // The backend's fragmented answer comes back from the service's address.
    let (first, second) = fragmented(&udp4p(MAC_B, ROUTER, B4, A4, (5353, 5000), 64), 0x99, 8);
    let (want_first, want_second) = fragmented(&udp4p(ROUTER, MAC_A, SVC4, A4, (53, 5000), 63), 0x99, 8);
    assert_eq!(run_in(&snap, Vif(2), &first, &mut ctx).1, want_first);
    let (v, out) = run_in(&snap, Vif(2), &second, &mut ctx);
    assert_eq!(
        (v, out),
        (Verdict::Transmit(Vif(1)), want_second),
        "from the service's address"
    );
    let frags = std::sync::Arc::clone(&ctx.flows);
    let frags = &frags.fragments;
    assert_eq!(frags.recorded.load(Ordering::Relaxed), 2);
    assert_eq!(frags.followed.load(Ordering::Relaxed), 2);
    assert_eq!(frags.unmatched.load(Ordering::Relaxed), 0);
    // A later fragment whose first never came has no ports: it is not taken to a
    // backend (nothing routes the service's address as such), and it is counted.
    let (_, orphan) = fragmented(&udp4p(MAC_A, ROUTER, A4, SVC4, (5001, 53), 64), 0x4321, 8);
    let (v, _) = run_in(&snap, Vif(1), &orphan, &mut ctx);
    assert!(!matches!(v, Verdict::Transmit(_)), "{v:?}");
    assert_eq!(frags.unmatched.load(Ordering::Relaxed), 1);
}

#[test]
fn every_fragment_of_a_datagram_goes_to_its_first_fragments_backend() {
    let (_, snap) = with_services(&[B4, D4], true);
    let mut ctx = PipelineContext::default();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..64u16 {
        let (first, second) = fragmented(&udp4p(MAC_A, ROUTER, A4, SVC4, (20_000 + i, 53), 64), i, 8);
        let (v1, out1) = run_in(&snap, Vif(1), &first, &mut ctx);
        let (v2, out2) = run_in(&snap, Vif(1), &second, &mut ctx);
        assert_eq!(v1, v2, "datagram {i}");
        // Both translated to the same backend address.
        assert_eq!(
            out1[ETH_LEN + 16..ETH_LEN + 20],
            out2[ETH_LEN + 16..ETH_LEN + 20],
            "datagram {i}"
        );
        assert_eq!(out1[..6], out2[..6], "datagram {i}");
        seen.insert(out1[ETH_LEN + 16..ETH_LEN + 20].to_vec());
    }
    assert_eq!(seen.len(), 2, "the datagrams spread over both backends");
    assert!(seen.contains(D4.as_slice()) && seen.contains(B4.as_slice()));
}

#[test]
fn fragments_leave_through_source_nat_and_their_answer_comes_back() {
    let (snap, host) = with_node();
    let mut ctx = PipelineContext::default();
    let (first, second) = fragmented(&udp4p(MAC_A, ROUTER, A4, OUTSIDE, (5000, 53), 64), 0x777, 8);
    let (v, out) = run_in(&snap, Vif(1), &first, &mut ctx);
    assert_eq!(v, Verdict::Transmit(host));
    let port = u16::from_be_bytes([out[ETH_LEN + 20], out[ETH_LEN + 21]]);
    assert!((61_000..=61_049).contains(&port), "{port}");
    let (want_first, want_second) = fragmented(&udp4p(ROUTER, HOST_MAC, FABRIC_IP, OUTSIDE, (port, 53), 63), 0x777, 8);
    assert_eq!(out, want_first);
    let (v, out) = run_in(&snap, Vif(1), &second, &mut ctx);
    assert_eq!(
        (v, out),
        (Verdict::Transmit(host), want_second),
        "from the node's address"
    );
    // The answer arrives on the fabric in fragments, to the node's address and port.
    let (first, second) = fragmented(
        &udp4p(CLIENT_MAC, FABRIC_MAC, OUTSIDE, FABRIC_IP, (53, port), 64),
        0x888,
        8,
    );
    let (want_first, want_second) = fragmented(&udp4p(ROUTER, MAC_A, OUTSIDE, A4, (53, 5000), 63), 0x888, 8);
    assert_eq!(
        run_in(&snap, Vif(0), &first, &mut ctx),
        (Verdict::Transmit(Vif(1)), want_first)
    );
    assert_eq!(
        run_in(&snap, Vif(0), &second, &mut ctx),
        (Verdict::Transmit(Vif(1)), want_second),
        "to the pod"
    );
    // A later fragment to the node's address that no first fragment announced is
    // not the vrouter's.
    let (_, orphan) = fragmented(
        &udp4p(CLIENT_MAC, FABRIC_MAC, OUTSIDE, FABRIC_IP, (53, port), 64),
        0x889,
        8,
    );
    assert_eq!(
        run_in(&snap, Vif(0), &orphan, &mut ctx).0,
        Verdict::Drop(DropReason::FabricUnclaimed)
    );
}

//! IPv6 datagrams with extension headers: the flow is the upper layer's, past
//! destination options and the fragment header; a fragmented datagram's later
//! fragments follow its first to a service's backend and back, with exact bytes.

use super::services::{udp6p, with_services, SVC6};
use super::*;
use std::sync::atomic::Ordering;

const A6: &str = "2001:2:0:1::2";
const B6: &str = "2001:2:0:1::3";

/// `frame` (Ethernet, IPv6, payload) with `ext` inserted after the fixed header as
/// an extension header of type `kind` (its first byte is set to the old next header).
fn with_extension(frame: &[u8], kind: u8, mut ext: Vec<u8>) -> Vec<u8> {
    let ip = ETH_LEN;
    ext[0] = frame[ip + 6];
    let mut out = frame[..ip + 40].to_vec();
    out[ip + 6] = kind;
    let len = u16::from_be_bytes([frame[ip + 4], frame[ip + 5]]) + ext.len() as u16;
    out[ip + 4..ip + 6].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&ext);
    out.extend_from_slice(&frame[ip + 40..]);
    out
}

/// Destination options holding one PadN option (8 bytes).
fn destination_options(frame: &[u8]) -> Vec<u8> {
    with_extension(frame, 60, vec![0, 0, 1, 4, 0, 0, 0, 0])
}

/// `frame` (Ethernet, IPv6, payload) as two fragments with identification `ident`:
/// the first `first_len` bytes of the payload (a multiple of 8), then the rest.
fn fragmented6(frame: &[u8], ident: u32, first_len: usize) -> (Vec<u8>, Vec<u8>) {
    let payload = &frame[ETH_LEN + 40..];
    let fragment = |offset: usize, more: bool, data: &[u8]| {
        let word = ((offset / 8) as u16) << 3 | u16::from(more);
        let mut ext = vec![0, 0];
        ext.extend_from_slice(&word.to_be_bytes());
        ext.extend_from_slice(&ident.to_be_bytes());
        let mut whole = frame[..ETH_LEN + 40].to_vec();
        whole[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&(data.len() as u16).to_be_bytes());
        whole.extend_from_slice(data);
        with_extension(&whole, 44, ext)
    };
    (
        fragment(0, true, &payload[..first_len]),
        fragment(first_len, false, &payload[first_len..]),
    )
}

#[test]
fn an_ipv6_datagram_with_destination_options_is_translated_past_them() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    let to_service = destination_options(&udp6p(MAC_A, ROUTER, A6, SVC6, (5000, 53), 64));
    let (v, out) = run_in(&snap, Vif(1), &to_service, &mut ctx);
    assert_eq!(v, Verdict::Transmit(Vif(2)));
    assert_eq!(
        out,
        destination_options(&udp6p(ROUTER, MAC_B, A6, B6, (5000, 5353), 63))
    );
    // Cut short: a counted drop, not a guess.
    let mut cut = to_service.clone();
    cut[ETH_LEN + 40 + 1] = 200;
    assert_eq!(
        run_in(&snap, Vif(1), &cut, &mut ctx).0,
        Verdict::Drop(DropReason::BadIpHeader)
    );
}

#[test]
fn ipv6_fragments_to_a_service_and_back_are_translated_as_their_datagram() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    // The first fragment carries the UDP header, the second the payload.
    let (first, second) = fragmented6(&udp6p(MAC_A, ROUTER, A6, SVC6, (5000, 53), 64), 0xdead_beef, 8);
    let (want_first, want_second) = fragmented6(&udp6p(ROUTER, MAC_B, A6, B6, (5000, 5353), 63), 0xdead_beef, 8);
    assert_eq!(
        run_in(&snap, Vif(1), &first, &mut ctx),
        (Verdict::Transmit(Vif(2)), want_first)
    );
    assert_eq!(
        run_in(&snap, Vif(1), &second, &mut ctx),
        (Verdict::Transmit(Vif(2)), want_second),
        "to the backend's address"
    );
    // The backend's fragmented answer comes back from the service's address.
    let (first, second) = fragmented6(&udp6p(MAC_B, ROUTER, B6, A6, (5353, 5000), 64), 7, 8);
    let (want_first, want_second) = fragmented6(&udp6p(ROUTER, MAC_A, SVC6, A6, (53, 5000), 63), 7, 8);
    assert_eq!(run_in(&snap, Vif(2), &first, &mut ctx).1, want_first);
    assert_eq!(
        run_in(&snap, Vif(2), &second, &mut ctx),
        (Verdict::Transmit(Vif(1)), want_second),
        "from the service's address"
    );
    let flows = std::sync::Arc::clone(&ctx.flows);
    let frags = &flows.fragments;
    assert_eq!(frags.recorded.load(Ordering::Relaxed), 2);
    assert_eq!(frags.followed.load(Ordering::Relaxed), 2);
    // A later fragment whose first never came is not taken to a backend.
    let (_, orphan) = fragmented6(&udp6p(MAC_A, ROUTER, A6, SVC6, (5001, 53), 64), 9, 8);
    assert!(!matches!(
        run_in(&snap, Vif(1), &orphan, &mut ctx).0,
        Verdict::Transmit(_)
    ));
    assert_eq!(frags.unmatched.load(Ordering::Relaxed), 1);
}

/// A datagram with destination options after its fragment header (only the first
/// fragment carries them): its later fragment still follows the first's flow.
#[test]
fn ipv6_fragments_with_options_after_the_fragment_header_follow_their_first() {
    let (_, snap) = with_services(&[B4], false);
    let mut ctx = PipelineContext::default();
    // Fragmentable part: destination options (8), UDP header (8), then data.
    let whole =
        |src_mac, dst_mac, src, dst, ports, hops| destination_options(&udp6p(src_mac, dst_mac, src, dst, ports, hops));
    let (first, second) = fragmented6(&whole(MAC_A, ROUTER, A6, SVC6, (5000, 53), 64), 11, 16);
    let (want_first, want_second) = fragmented6(&whole(ROUTER, MAC_B, A6, B6, (5000, 5353), 63), 11, 16);
    assert_eq!(
        run_in(&snap, Vif(1), &first, &mut ctx),
        (Verdict::Transmit(Vif(2)), want_first)
    );
    assert_eq!(
        run_in(&snap, Vif(1), &second, &mut ctx),
        (Verdict::Transmit(Vif(2)), want_second)
    );
}

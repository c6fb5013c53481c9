//! The IPv4 rewrite of a translated flow, for any packet: the address and port land
//! on the side the translation names, nothing else moves, and both checksums verify
//! afterwards (the rewrite sums fields as they lie in memory, which only holds if
//! one's-complement arithmetic is as byte-order independent as RFC 1071 says), the
//! TTL too when the forward stage's decrement is done in the same update. Where the
//! kernel finishes transport checksums on send, the forward stage's rewrite leaves
//! them to it, and the frame leaves the same.

use super::super::forward::Family;
use super::super::nat::{translate, v4_aged};
use super::super::tx_checksum::prepare;
use nexthop::{Nat, NatSide, NatTarget, NatWord, Snapshot};
use proptest::prelude::*;
use std::net::Ipv4Addr;
use wire::{checksum, ip_proto};

/// An IPv4 packet with `options` 32-bit option words, carrying a TCP or UDP header
/// and `payload`, every checksum right (a UDP one left 0 if `udp_zero`).
fn packet(
    src: [u8; 4],
    dst: [u8; 4],
    options: usize,
    tcp: bool,
    ports: (u16, u16),
    payload: &[u8],
    udp_zero: bool,
) -> Vec<u8> {
    let header_len = 20 + options * 4;
    let l4_len = if tcp { 20 } else { 8 } + payload.len();
    let mut p = vec![0u8; header_len + l4_len];
    p[0] = 0x40 | (header_len / 4) as u8;
    p[2..4].copy_from_slice(&((header_len + l4_len) as u16).to_be_bytes());
    p[8] = 64;
    p[9] = if tcp { ip_proto::TCP } else { ip_proto::UDP };
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    for (i, b) in p[20..header_len].iter_mut().enumerate() {
        *b = if i % 4 == 0 { 1 } else { 0 }; // NOPs and zeros: the checksum covers them
    }
    let check = checksum::checksum(&p[..header_len]);
    p[10..12].copy_from_slice(&check.to_be_bytes());
    let l4 = &mut p[header_len..];
    l4[0..2].copy_from_slice(&ports.0.to_be_bytes());
    l4[2..4].copy_from_slice(&ports.1.to_be_bytes());
    let (body, check_at) = if tcp {
        l4[12] = 5 << 4;
        (20, 16)
    } else {
        l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        (8, 6)
    };
    l4[body..].copy_from_slice(payload);
    if tcp || !udp_zero {
        let c = l4_checksum(src.into(), dst.into(), tcp, l4);
        l4[check_at..check_at + 2].copy_from_slice(&(if c == 0 && !tcp { 0xffff } else { c }).to_be_bytes());
    }
    p
}

fn l4_checksum(src: Ipv4Addr, dst: Ipv4Addr, tcp: bool, l4: &[u8]) -> u16 {
    let proto = if tcp { ip_proto::TCP } else { ip_proto::UDP };
    checksum::finish(checksum::sum(
        l4,
        checksum::ipv4_pseudo_sum(src, dst, proto, l4.len() as u16),
    ))
}

/// Rewrites `packet` as `nat` says: as the forward stage does (with its TTL less one,
/// `aged`), or as any other caller (decapsulated packets) does.
fn rewrite(packet: &mut [u8], nat: Nat, aged: bool) -> bool {
    let word = NatWord::of(nat);
    match word.v4_one_end() {
        Some(end) if aged => v4_aged(packet, end, false),
        None if aged => false,
        _ => translate(
            &Snapshot::default(),
            &flow_table::FlowTable::new(16),
            packet,
            Family::V4,
            word,
        ),
    }
}

const SIDES: [NatSide; 6] = NatSide::ONE_END;

proptest! {
    #[test]
    fn an_ipv4_rewrite_keeps_every_checksum_right(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), to in any::<[u8; 4]>(),
        ports in any::<(u16, u16)>(), port in any::<u16>(), side in 0usize..SIDES.len(),
        options in 0usize..=10, tcp in any::<bool>(), udp_zero in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64), aged in any::<bool>(),
    ) {
        let before = packet(src, dst, options, tcp, ports, &payload, udp_zero);
        let mut after = before.clone();
        let nat = Nat { side: SIDES[side], target: NatTarget::V4(to.into()), port };
        prop_assert!(rewrite(&mut after, nat, aged));

        let destination = nat.side.rewrites_destination();
        let header_len = 20 + options * 4;
        let (addr_at, port_at) = if destination { (16, header_len + 2) } else { (12, header_len) };
        prop_assert_eq!(&after[addr_at..addr_at + 4], &to[..]);
        prop_assert_eq!(&after[port_at..port_at + 2], &port.to_be_bytes()[..]);
        prop_assert_eq!(checksum::checksum(&after[..header_len]), 0, "IPv4 header checksum");

        let check_at = header_len + if tcp { 16 } else { 6 };
        let mut expected = before.clone();
        expected[addr_at..addr_at + 4].copy_from_slice(&to);
        expected[port_at..port_at + 2].copy_from_slice(&port.to_be_bytes());
        if aged {
            expected[8] = before[8] - 1;
        }
        // Nothing else moved (the checksums aside).
        for at in [10, 11, check_at, check_at + 1] {
            expected[at] = after[at];
        }
        prop_assert_eq!(&after, &expected);

        let stored = u16::from_be_bytes([after[check_at], after[check_at + 1]]);
        if udp_zero && !tcp {
            prop_assert_eq!(stored, 0, "a UDP datagram without a checksum keeps going without one");
        } else {
            let src = Ipv4Addr::new(after[12], after[13], after[14], after[15]);
            let dst = Ipv4Addr::new(after[16], after[17], after[18], after[19]);
            let verify = l4_checksum(src, dst, tcp, &after[header_len..]);
            prop_assert_eq!(verify, 0, "transport checksum");
            prop_assert!(tcp || stored != 0, "a computed UDP checksum of 0 is sent as 0xffff");
        }
    }

    #[test]
    fn a_later_fragment_gets_its_address_and_keeps_its_payload(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), to in any::<[u8; 4]>(),
        offset in 1u16..0x1fff, port in any::<u16>(), side in 0usize..SIDES.len(),
        payload in proptest::collection::vec(any::<u8>(), 8..64), aged in any::<bool>(),
    ) {
        let mut before = packet(src, dst, 0, false, (1, 2), &payload, false);
        before[6..8].copy_from_slice(&offset.to_be_bytes());
        before[10..12].copy_from_slice(&[0, 0]);
        let check = checksum::checksum(&before[..20]);
        before[10..12].copy_from_slice(&check.to_be_bytes());
        let mut after = before.clone();
        let nat = Nat { side: SIDES[side], target: NatTarget::V4(to.into()), port };
        prop_assert!(rewrite(&mut after, nat, aged));
        prop_assert_eq!(checksum::checksum(&after[..20]), 0);
        prop_assert_eq!(after[8], if aged { before[8] - 1 } else { before[8] }, "TTL");
        prop_assert_eq!(&after[20..], &before[20..], "a later fragment's bytes are payload, not ports");
    }
}

/// `packet` behind an Ethernet header, as it leaves: where [`prepare`] asks, its
/// transport checksum finished as the kernel does (summed from the transport header
/// to the end, the field holding the pseudo-header's sum).
fn as_sent(packet: &[u8]) -> Vec<u8> {
    let mut frame = [&[0u8; 12][..], &[0x08, 0x00], packet].concat();
    if let Some(r) = prepare(&mut frame, false) {
        let (start, at) = (usize::from(r.start), usize::from(r.start + r.offset));
        let sum = checksum::finish(checksum::sum(&frame[start..], 0));
        frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
    frame
}

proptest! {
    #[test]
    fn a_rewrite_that_leaves_the_transport_checksum_to_the_kernel_sends_the_same_bytes(
        src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), to in any::<[u8; 4]>(),
        ports in any::<(u16, u16)>(), port in any::<u16>(), side in 0usize..SIDES.len(),
        options in 0usize..=10, tcp in any::<bool>(), udp_zero in any::<bool>(),
        payload in proptest::collection::vec(any::<u8>(), 0..64), first_fragment in any::<bool>(),
    ) {
        let mut before = packet(src, dst, options, tcp, ports, &payload, udp_zero);
        if first_fragment {
            // More fragments: the checksum spans them all, the kernel cannot finish it.
            before[6] |= 0x20;
            before[10..12].fill(0);
            let check = checksum::checksum(&before[..20 + options * 4]);
            before[10..12].copy_from_slice(&check.to_be_bytes());
        }
        let end = NatWord::of(Nat { side: SIDES[side], target: NatTarget::V4(to.into()), port })
            .v4_one_end()
            .expect("one end");
        let (mut updated, mut left) = (before.clone(), before.clone());
        prop_assert!(v4_aged(&mut updated, end, false));
        prop_assert!(v4_aged(&mut left, end, true));
        prop_assert_eq!(as_sent(&left), as_sent(&updated));
        if first_fragment || (udp_zero && !tcp) {
            prop_assert_eq!(&left, &updated, "no request: the update is done here");
        } else if options == 0 {
            // The common case (IP options take the general path, which updates it).
            let at = 20 + if tcp { 16 } else { 6 };
            prop_assert_eq!(&left[at..at + 2], &before[at..at + 2], "left to the kernel");
        }
    }
}

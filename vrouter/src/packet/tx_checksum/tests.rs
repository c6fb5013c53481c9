//! Every shape of frame the vrouter sends, checked the way a receiver checks it: the
//! kernel's finishing step (sum from the start it was given to the end, complement,
//! store at the offset) applied after [`prepare`] gives exactly the checksum a sender
//! computing it in full would have written, whether the field held that full
//! checksum or only the pseudo-header's sum (a pod with checksum offload on).

use super::*;
use etherparse::{IpNumber, PacketBuilder};

const MACS: ([u8; 6], [u8; 6]) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
const PAYLOAD: &[u8] = b"a payload of odd length.";

fn tcp4() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4([198, 18, 1, 2], [198, 18, 2, 3], 64)
        .tcp(40000, 80, 7, 1000)
        .ack(9)
        .write(&mut out, PAYLOAD)
        .unwrap();
    out
}

fn udp4() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4([198, 18, 1, 2], [198, 18, 2, 3], 64)
        .udp(40000, 53)
        .write(&mut out, PAYLOAD)
        .unwrap();
    out
}

fn tcp6() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6([0x20; 16], [0x21; 16], 64)
        .tcp(40000, 443, 7, 1000)
        .write(&mut out, PAYLOAD)
        .unwrap();
    out
}

fn udp6() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv6([0x20; 16], [0x21; 16], 64)
        .udp(40000, 53)
        .write(&mut out, PAYLOAD)
        .unwrap();
    out
}

/// `inner` (Ethernet + IP) in the vrouter's outer headers of `encap`.
fn encapsulated(inner: &[u8], encap: &str) -> Vec<u8> {
    let ip = &inner[ETH_LEN..];
    let mut out = Vec::new();
    let outer = PacketBuilder::ethernet2(MACS.0, MACS.1).ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64);
    match encap {
        "mplsoudp" => {
            let payload = [&[0, 0, 0x21, 0x40][..], ip].concat();
            outer.udp(49152, MPLS_UDP_PORT).write(&mut out, &payload).unwrap();
        }
        "vxlan" => {
            let payload = [&[8, 0, 0, 0, 0, 0, 5, 0][..], inner].concat();
            outer.udp(49152, VXLAN_PORT).write(&mut out, &payload).unwrap();
        }
        _ => {
            let payload = [&[0, 0, 0x88, 0x47, 0, 0, 0x21, 0x40][..], ip].concat();
            outer.write(&mut out, IpNumber::GRE, &payload).unwrap();
        }
    }
    out
}

/// What the kernel does with a `CHECKSUM_PARTIAL` frame it must finish.
fn finish_as_the_kernel_does(frame: &mut [u8], request: ChecksumRequest) {
    let (start, at) = (usize::from(request.start), usize::from(request.start + request.offset));
    let sum = checksum::finish(checksum::sum(&frame[start..], 0));
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
}

fn check(frame: Vec<u8>, encapsulated: bool, start: usize, field: usize) {
    // Complete on entry, and partial on entry: both leave right.
    let mut from_complete = frame.clone();
    let request = prepare(&mut from_complete, encapsulated).expect("a request");
    assert_eq!(
        (usize::from(request.start), usize::from(request.offset)),
        (start, field)
    );
    let mut partial = from_complete.clone();
    finish_as_the_kernel_does(&mut from_complete, request);
    assert_eq!(from_complete, frame, "finished from a complete checksum");
    let again = prepare(&mut partial, encapsulated).expect("a request");
    finish_as_the_kernel_does(&mut partial, again);
    assert_eq!(partial, frame, "finished from the pseudo-header's sum");
}

#[test]
fn plain_tcp_and_udp_over_ipv4_and_ipv6_finish_to_the_full_checksum() {
    check(tcp4(), false, ETH_LEN + 20, 16);
    check(udp4(), false, ETH_LEN + 20, 6);
    check(tcp6(), false, ETH_LEN + 40, 16);
    check(udp6(), false, ETH_LEN + 40, 6);
}

#[test]
fn the_inner_packet_of_each_encapsulation_is_the_one_finished() {
    for (encap, inner_l3) in [
        ("mplsoudp", 14 + 20 + 8 + 4),
        ("vxlan", 14 + 20 + 8 + 8 + 14),
        ("mplsogre", 14 + 20 + 4 + 4),
    ] {
        for (inner, l4, field) in [(tcp4(), 20, 16), (udp6(), 40, 6)] {
            check(encapsulated(&inner, encap), true, inner_l3 + l4, field);
        }
    }
}

#[test]
fn a_vlan_tag_moves_the_headers() {
    let plain = tcp4();
    let tagged = [&plain[..12], &[0x81, 0x00, 0x00, 0x05], &plain[12..]].concat();
    check(tagged, false, ETH_LEN + 4 + 20, 16);
}

#[test]
fn frames_the_kernel_cannot_finish_are_left_alone() {
    let untouched = |mut frame: Vec<u8>, encapsulated: bool| {
        let before = frame.clone();
        assert_eq!(prepare(&mut frame, encapsulated), None);
        assert_eq!(frame, before);
    };
    // A fragment (more fragments set), a UDP datagram without checksum, ICMP.
    let mut fragment = udp4();
    fragment[ETH_LEN + 6] |= 0x20;
    untouched(fragment, false);
    let mut no_checksum = udp4();
    no_checksum[ETH_LEN + 20 + 6..ETH_LEN + 20 + 8].fill(0);
    untouched(no_checksum, false);
    let mut icmp = Vec::new();
    PacketBuilder::ethernet2(MACS.0, MACS.1)
        .ipv4([198, 18, 1, 2], [198, 18, 2, 3], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut icmp, PAYLOAD)
        .unwrap();
    untouched(icmp, false);
    // Ethernet padding after the packet; a truncated transport header.
    let mut padded = tcp4();
    padded.extend_from_slice(&[0xaa; 6]);
    untouched(padded, false);
    let mut short = tcp4();
    short.truncate(ETH_LEN + 20 + 10);
    untouched(short, false);
    // Not one of the vrouter's encapsulations; an ARP frame.
    let mut other = encapsulated(&tcp4(), "mplsoudp");
    other[ETH_LEN + 20 + 2..ETH_LEN + 20 + 4].copy_from_slice(&53u16.to_be_bytes());
    untouched(other, true);
    untouched(vec![0; 42], false);
    // Any frame at all: no panic, whatever it holds.
    for len in 0..80 {
        let mut junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        junk[..len.min(14)].fill(0x45);
        let _ = prepare(&mut junk.clone(), false);
        let _ = prepare(&mut junk, true);
    }
}

#[test]
fn complete_computes_the_full_checksum_from_a_partial_one() {
    let plain = [tcp4(), udp4(), tcp6(), udp6()].map(|frame| (frame, false));
    let inner = ["mplsoudp", "vxlan", "mplsogre"].map(|encap| (encapsulated(&tcp4(), encap), true));
    for (frame, encapsulated) in plain.into_iter().chain(inner) {
        let mut partial = frame.clone();
        prepare(&mut partial, encapsulated).unwrap();
        assert_ne!(partial, frame);
        assert!(complete(&mut partial, encapsulated));
        assert_eq!(partial, frame, "{frame:02x?}");
        // A stale checksum (a translation that left it) comes out right too.
        let mut stale = frame.clone();
        let at = usize::from(
            prepare(&mut stale.clone(), encapsulated)
                .map(|r| r.start + r.offset)
                .unwrap(),
        );
        stale[at] ^= 0x5a;
        assert!(complete(&mut stale, encapsulated));
        assert_eq!(stale, frame);
    }
    let mut icmp = vec![0; 42];
    assert!(!complete(&mut icmp, false), "nothing to finish");
}

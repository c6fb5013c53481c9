//! Transport checksums on the way out, for pods that keep their checksum offload on.
//!
//! A pod whose interface offloads checksums hands its veth frames whose TCP or UDP
//! checksum holds only the pseudo-header's sum: the kernel marks them
//! `CHECKSUM_PARTIAL` and would have the device finish them. AF_XDP in copy mode
//! delivers the bytes without that mark, so the vrouter cannot tell such a frame from
//! a complete one. It need not: every TCP or UDP frame it sends gets its checksum
//! field set to the pseudo-header's sum of the packet as it leaves ([`prepare`]) and
//! asks the kernel, through the frame's transmit metadata, to finish it. A veth
//! passes the mark on (the receiving pod trusts it, as it trusts any local sender);
//! a NIC computes the sum in hardware, or the kernel in software for one that cannot.
//! Either way the result is right whatever the sender left in the field, complete or
//! partial, and address and port translations need no checksum update of their own
//! to be right on the wire.
//!
//! Frames the kernel cannot finish are finished here ([`complete`]): an IPv4 packet
//! the vrouter cuts into fragments (each fragment's bytes leave separately). So is
//! a capture's copy of a sent frame, to show the bytes the wire carries.

use super::{ETHERTYPE_VLAN, ETH_LEN};
use nexthop::encap::{MPLS_UDP_LEGACY_PORT, MPLS_UDP_PORT, VXLAN_PORT};
use wire::{checksum, gre, ip_proto, ipv4, ipv6, mpls, tcp, udp, vxlan};

/// Where the kernel is to finish a frame's checksum: from byte `start` (the
/// transport header) to the frame's end, the result stored `offset` bytes after
/// `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumRequest {
    /// Offset of the transport header in the frame.
    pub start: u16,
    /// Offset of the checksum field in the transport header.
    pub offset: u16,
}

/// The transport header of the packet a frame carries: where it starts, where its
/// checksum field is, and the pseudo-header's sum, folded, in native byte order (as
/// the bytes lie in memory).
struct Transport {
    start: usize,
    field: usize,
    pseudo: u16,
}

/// Readies the TCP or UDP checksum of `frame` (Ethernet first, as it will leave;
/// `encapsulated`: the vrouter's own outer headers in front, the checksum to finish
/// is the inner packet's) for the kernel to finish: the field becomes the
/// pseudo-header's sum. `None`, and the frame untouched, for anything else: not TCP
/// or UDP, a fragment, IPv6 extension headers, an IPv4 UDP datagram sent without a
/// checksum (0), bytes after the IP packet (Ethernet padding, which the kernel's sum
/// would take in), a truncated header. Every sent frame comes here: headers are read
/// as fixed-size arrays and summed as they lie in memory (one's-complement sums do
/// not depend on byte order, RFC 1071 section 2(B)).
#[inline]
pub fn prepare(frame: &mut [u8], encapsulated: bool) -> Option<ChecksumRequest> {
    let l3 = if encapsulated {
        inner_l3(frame)?
    } else {
        plain_l3(frame)?
    };
    let t = transport(frame, l3)?;
    // The pseudo-header's sum, not complemented (as a sender's stack leaves it).
    let at = t.start + t.field;
    frame[at..at + 2].copy_from_slice(&t.pseudo.to_ne_bytes());
    Some(ChecksumRequest {
        // Within a frame's headers: far below 2^16.
        start: t.start as u16,
        offset: t.field as u16,
    })
}

/// Finishes the TCP or UDP checksum of `frame` (as [`prepare`] takes it) in
/// software, from its bytes, as the kernel would; false (untouched) where
/// [`prepare`] would not ask.
pub fn complete(frame: &mut [u8], encapsulated: bool) -> bool {
    let l3 = if encapsulated { inner_l3(frame) } else { plain_l3(frame) };
    let Some(t) = l3.and_then(|l3| transport(frame, l3)) else {
        return false;
    };
    let at = t.start + t.field;
    frame[at..at + 2].fill(0);
    // The native sum's bytes read as network order: [`checksum::sum`]'s order.
    let pseudo = u32::from(u16::from_be_bytes(t.pseudo.to_ne_bytes()));
    let sum = checksum::finish(checksum::sum(&frame[t.start..], pseudo));
    // UDP sends a computed 0 as all ones (0 means "no checksum"); TCP has no such
    // rule, and 0xffff is the same sum in one's complement.
    let sum = if sum == 0 { 0xffff } else { sum };
    frame[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    true
}

/// The IP header's offset in a frame the pipeline routed: after the Ethernet header
/// and, on a sub-interface, its 802.1Q tag.
#[inline]
fn plain_l3(frame: &[u8]) -> Option<usize> {
    let eth: &[u8; ETH_LEN] = frame.first_chunk()?;
    match u16::from_be_bytes([eth[12], eth[13]]) {
        ETHERTYPE_VLAN => Some(ETH_LEN + 4),
        _ => Some(ETH_LEN),
    }
}

/// The inner IP header's offset in a frame the vrouter encapsulated: its outer IPv4
/// header has no options, then UDP and MPLS or VXLAN (with the inner Ethernet
/// header), or GRE and MPLS.
#[inline]
fn inner_l3(frame: &[u8]) -> Option<usize> {
    const OUTER: usize = ETH_LEN + ipv4::HEADER_LEN;
    let outer: &[u8; OUTER + udp::HEADER_LEN] = frame.first_chunk()?;
    match outer[ETH_LEN + 9] {
        ip_proto::UDP => match u16::from_be_bytes([outer[OUTER + 2], outer[OUTER + 3]]) {
            MPLS_UDP_PORT | MPLS_UDP_LEGACY_PORT => Some(OUTER + udp::HEADER_LEN + mpls::HEADER_LEN),
            VXLAN_PORT => Some(OUTER + udp::HEADER_LEN + vxlan::HEADER_LEN + ETH_LEN),
            _ => None,
        },
        ip_proto::GRE => Some(OUTER + gre::HEADER_LEN + mpls::HEADER_LEN),
        _ => None,
    }
}

/// The 16-bit word holding `a` then `b` in memory, as a native integer.
#[inline(always)]
fn word(a: u8, b: u8) -> u64 {
    u64::from(u16::from_ne_bytes([a, b]))
}

/// The 32-bit word at `at` of `bytes`, as a native integer.
#[inline(always)]
fn word32(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32::from_ne_bytes([
        bytes[at],
        bytes[at + 1],
        bytes[at + 2],
        bytes[at + 3],
    ]))
}

/// Folds a sum of at most eleven 32-bit words (IPv6's pseudo-header) to 16 bits.
#[inline(always)]
fn fold(acc: u64) -> u16 {
    // Below 2^36: three folds of 16 bits reach 16.
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    ((acc & 0xffff) + (acc >> 16)) as u16
}

/// The TCP or UDP header of the IP packet at `l3`, which must end where the frame
/// does.
#[inline]
fn transport(frame: &[u8], l3: usize) -> Option<Transport> {
    let ip: &[u8; ipv4::HEADER_LEN] = frame.get(l3..)?.first_chunk()?;
    let (v4, header_len, total, proto, addresses) = match ip[0] >> 4 {
        4 => {
            // More fragments, or an offset: the kernel cannot sum a part.
            if (ip[6] & 0x3f) | ip[7] != 0 {
                return None;
            }
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            (true, header_len, total, ip[9], word32(ip, 12) + word32(ip, 16))
        }
        6 => {
            let h: &[u8; ipv6::HEADER_LEN] = frame.get(l3..)?.first_chunk()?;
            let total = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([h[4], h[5]]));
            let addresses = (8..40).step_by(4).map(|at| word32(h, at)).sum::<u64>();
            (false, ipv6::HEADER_LEN, total, h[6], addresses)
        }
        _ => return None,
    };
    let (field, min) = match proto {
        ip_proto::TCP => (16, tcp::HEADER_LEN),
        ip_proto::UDP => (6, udp::HEADER_LEN),
        _ => return None,
    };
    let start = l3 + header_len;
    let transport = frame.get(start..)?;
    // Exactly the packet (no padding after it), a whole header, an IPv4 header of at
    // least its fixed part.
    if transport.len() + header_len != total || transport.len() < min || header_len < ipv4::HEADER_LEN {
        return None;
    }
    // An IPv4 UDP datagram without a checksum keeps going without one.
    if v4 && proto == ip_proto::UDP && transport[6] | transport[7] == 0 {
        return None;
    }
    // The upper-layer length fits 16 bits: `total` does.
    let upper = (transport.len() as u16).to_be_bytes();
    let pseudo = fold(addresses + word(0, proto) + word(upper[0], upper[1]));
    Some(Transport { start, field, pseudo })
}

#[cfg(test)]
mod tests;

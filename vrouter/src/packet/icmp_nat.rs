//! ICMP errors about a translated flow (a service's, a floating IP's) are translated
//! as the flow is: an error carries the start of the packet it is about, as its
//! sender saw it (after translation), so the client's stack would not match it to
//! its connection. The flow entry of the reply direction (the quoted packet's key,
//! reversed) says how: its translation applies to the quoted packet's other end
//! (address and port), and to the error's own header when the error comes from (or
//! goes to) the translated endpoint itself; every checksum is kept right (the error's
//! in full, the quoted headers' incrementally). Cold: only ICMP errors get here.

use super::forward::Family;
use flow_table::{FlowKey, FlowTable};
use nexthop::{Nat, NatSide, Snapshot};
use std::net::IpAddr;
use wire::{checksum, icmp, ip_proto, ipv4, ipv6};

/// Translates ICMP error `ip` (a whole IP packet of `family`, checked by its parse
/// stage) seen in VRF `vrf`, if it is about a translated flow; true if it changed.
#[cold]
#[inline(never)]
pub(super) fn translate_error(snap: &Snapshot, table: &FlowTable, vrf: u16, ip: &mut [u8], family: Family) -> bool {
    match family {
        Family::V4 => translate_v4(snap, table, vrf, ip),
        Family::V6 => translate_v6(snap, table, vrf, ip),
    }
}

/// True for an ICMP (or ICMPv6) error type, whose payload quotes a packet.
pub(super) fn is_error(msg_type: u8, v6: bool) -> bool {
    if v6 {
        matches!(msg_type, 1..=4)
    } else {
        matches!(msg_type, 3 | 4 | 5 | 11 | 12)
    }
}

/// Where the quoted packet's fields are: header length and transport offsets.
pub(super) struct Quoted {
    pub(super) header_len: usize,
    pub(super) proto: u8,
}

/// How the quoted packet (`quoted`, its key) is rewritten, if its flow is
/// translated: the reply entry's translation, the address it puts in, and whether it
/// is the quoted source (the reply entry rewrites its destination) or destination.
fn what_to_rewrite(snap: &Snapshot, table: &FlowTable, quoted: FlowKey) -> Option<(Nat, IpAddr, bool)> {
    let reply = quoted.reversed();
    let found = table.lookup(&reply, reply.hash())?;
    let nat = Nat::decode(table.transform(found.index))?;
    let quoted_source = match nat.side {
        NatSide::Destination | NatSide::FloatingDestination | NatSide::FabricBack => true,
        NatSide::Source | NatSide::FloatingSource | NatSide::FabricSource => false,
        // Errors about a hairpin are not translated (they reach the pod as sent);
        // those about a both-ends flow are rewritten before routing (`icmp_both`).
        NatSide::HairpinOut | NatSide::HairpinBack | NatSide::Both => return None,
    };
    Some((nat, snap.nat_target(nat.target)?, quoted_source))
}

/// The quoted packet's ports (TCP, UDP: source, destination; ICMP echo: the
/// identifier twice) from its transport bytes, if they are there.
fn quoted_ports(l4: &[u8], proto: u8, v6: bool) -> Option<(u16, u16)> {
    let word = |at: usize| Some(u16::from_be_bytes([*l4.get(at)?, *l4.get(at + 1)?]));
    match proto {
        ip_proto::TCP | ip_proto::UDP => Some((word(0)?, word(2)?)),
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            let echo_request = if v6 {
                icmp::v6::ECHO_REQUEST
            } else {
                icmp::v4::ECHO_REQUEST
            };
            let echo_reply = if v6 { icmp::v6::ECHO_REPLY } else { icmp::v4::ECHO_REPLY };
            let t = *l4.first()?;
            (t == echo_request || t == echo_reply).then_some(())?;
            let id = word(4)?;
            Some((id, id))
        }
        _ => None,
    }
}

/// Rewrites the quoted transport's port on `source` side (or destination) to `port`,
/// updating its checksum by `delta` (the address change) where the quote holds it.
pub(super) fn rewrite_quoted_port(
    l4: &mut [u8],
    q: &Quoted,
    source: bool,
    port: u16,
    address_delta: (&[u8], &[u8]),
    v6: bool,
) {
    let (at, check_at) = match q.proto {
        ip_proto::TCP => (if source { 0 } else { 2 }, 16),
        ip_proto::UDP => (if source { 0 } else { 2 }, 6),
        ip_proto::ICMP | ip_proto::ICMPV6 => (4, 2),
        _ => return,
    };
    if l4.len() < at + 2 {
        return;
    }
    let old = u16::from_be_bytes([l4[at], l4[at + 1]]);
    l4[at..at + 2].copy_from_slice(&port.to_be_bytes());
    if l4.len() < check_at + 2 {
        return;
    }
    let old_check = u16::from_be_bytes([l4[check_at], l4[check_at + 1]]);
    if q.proto == ip_proto::UDP && old_check == 0 && !v6 {
        return;
    }
    let mut check = checksum::update16(old_check, old, port);
    // ICMPv4's checksum does not cover addresses; the others' pseudo-headers do.
    if q.proto != ip_proto::ICMP {
        check = checksum::update(check, address_delta.0, address_delta.1);
    }
    l4[check_at..check_at + 2].copy_from_slice(&check.to_be_bytes());
}

fn translate_v4(snap: &Snapshot, table: &FlowTable, vrf: u16, ip: &mut [u8]) -> bool {
    let outer = ipv4::Packet::new_unchecked(&*ip);
    let (outer_len, hl) = (usize::from(outer.total_len()).min(ip.len()), outer.header_len());
    if outer.protocol() != ip_proto::ICMP || outer.is_later_fragment() || outer_len < hl + icmp::HEADER_LEN + 20 {
        return false;
    }
    if !is_error(ip[hl], false) {
        return false;
    }
    let (outer_src, outer_dst) = (outer.src_addr(), outer.dst_addr());
    let inner_at = hl + icmp::HEADER_LEN;
    let inner = &ip[inner_at..outer_len];
    let inner_hl = usize::from(inner[0] & 0x0f) * 4;
    if inner[0] >> 4 != 4 || inner_hl < 20 || inner.len() < inner_hl {
        return false;
    }
    let q = Quoted {
        header_len: inner_hl,
        proto: inner[9],
    };
    let src = std::net::Ipv4Addr::new(inner[12], inner[13], inner[14], inner[15]);
    let dst = std::net::Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
    let Some((sport, dport)) = quoted_ports(&inner[inner_hl..], q.proto, false) else {
        return false;
    };
    let quoted = FlowKey::v4(vrf, src, dst, q.proto, sport, dport);
    let Some((nat, IpAddr::V4(to), quoted_source)) = what_to_rewrite(snap, table, quoted) else {
        return false;
    };
    let old = if quoted_source { src } else { dst };
    {
        let inner = &mut ip[inner_at..outer_len];
        let field = if quoted_source { 12 } else { 16 };
        inner[field..field + 4].copy_from_slice(&to.octets());
        // The quoted IP header's checksum, recomputed over the quoted header.
        inner[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&inner[..q.header_len]);
        inner[10..12].copy_from_slice(&c.to_be_bytes());
        let (header, l4) = inner.split_at_mut(q.header_len);
        let _ = header;
        rewrite_quoted_port(l4, &q, quoted_source, nat.port, (&old.octets(), &to.octets()), false);
    }
    // The error's own header, when it comes from (or goes to) the translated end.
    let mut outer = ipv4::Packet::new_unchecked(&mut *ip);
    if quoted_source && outer_dst == old {
        outer.set_dst_addr(to);
    } else if !quoted_source && outer_src == old {
        outer.set_src_addr(to);
    }
    outer.fill_checksum();
    let mut message = icmp::Packet::new_unchecked(&mut ip[hl..outer_len]);
    message.fill_checksum_v4();
    true
}

fn translate_v6(snap: &Snapshot, table: &FlowTable, vrf: u16, ip: &mut [u8]) -> bool {
    let outer = ipv6::Packet::new_unchecked(&*ip);
    let outer_len = outer.total_len().min(ip.len());
    let hl = ipv6::HEADER_LEN;
    if outer.next_header() != ip_proto::ICMPV6 || outer_len < hl + icmp::HEADER_LEN + hl {
        return false;
    }
    if !is_error(ip[hl], true) {
        return false;
    }
    let (outer_src, outer_dst) = (outer.src_addr(), outer.dst_addr());
    let inner_at = hl + icmp::HEADER_LEN;
    let inner = &ip[inner_at..outer_len];
    if inner[0] >> 4 != 6 {
        return false;
    }
    let q = Quoted {
        header_len: hl,
        proto: inner[6],
    };
    let addr = |at: usize| {
        let mut a = [0u8; 16];
        a.copy_from_slice(&inner[at..at + 16]);
        std::net::Ipv6Addr::from(a)
    };
    let (src, dst) = (addr(8), addr(24));
    let Some((sport, dport)) = quoted_ports(&inner[hl..], q.proto, true) else {
        return false;
    };
    let quoted = FlowKey::v6(vrf, src, dst, q.proto, sport, dport);
    let Some((nat, IpAddr::V6(to), quoted_source)) = what_to_rewrite(snap, table, quoted) else {
        return false;
    };
    let old = if quoted_source { src } else { dst };
    {
        let inner = &mut ip[inner_at..outer_len];
        let field = if quoted_source { 8 } else { 24 };
        inner[field..field + 16].copy_from_slice(&to.octets());
        let (_, l4) = inner.split_at_mut(q.header_len);
        rewrite_quoted_port(l4, &q, quoted_source, nat.port, (&old.octets(), &to.octets()), true);
    }
    let mut outer = ipv6::Packet::new_unchecked(&mut *ip);
    if quoted_source && outer_dst == old {
        outer.set_dst_addr(to);
    } else if !quoted_source && outer_src == old {
        outer.set_src_addr(to);
    }
    let (s, d) = (outer.src_addr().octets(), outer.dst_addr().octets());
    let pseudo = checksum::ipv6_pseudo_sum(&s, &d, (outer_len - hl) as u32, ip_proto::ICMPV6);
    let mut message = icmp::Packet::new_unchecked(&mut ip[hl..outer_len]);
    message.fill_checksum_v6(pseudo);
    true
}

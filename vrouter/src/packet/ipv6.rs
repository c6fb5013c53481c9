//! IPv6's parse stage (RFC 8200: header checks, neighbour discovery, anti-spoofing,
//! the flow key) and what only IPv6 does: echo replies from the gateway, ICMPv6
//! errors (RFC 4443).

use super::forward::{self, Family, Outcome, Parsed};
use super::{flow, icmp, ndp, write_eth, DropReason, PacketBuf, PipelineContext, Verdict, ETHERTYPE_IPV6, ETH_LEN};
use flow_table::FlowKey;
use nexthop::{Interface, Snapshot};
use wire::icmp::v6;
use wire::{ip_proto, ipv6};

/// The ICMPv6 message of a checked IPv6 packet, if it carries one with a right
/// checksum (extension headers are not walked).
pub(super) fn icmpv6_message<'a>(ip: &ipv6::Packet<&'a [u8]>) -> Option<wire::icmp::Packet<&'a [u8]>> {
    if ip.next_header() != ip_proto::ICMPV6 {
        return None;
    }
    let payload: &'a [u8] = ip.into_inner().get(ipv6::HEADER_LEN..ip.total_len())?;
    let message = wire::icmp::Packet::new_checked(payload).ok()?;
    message
        .verify_checksum_v6(ip.pseudo_sum(ip_proto::ICMPV6, payload.len() as u32))
        .then_some(message)
}

pub(super) fn handle(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    hint: Option<&flow::Classified>,
) -> Outcome {
    let ip = match ipv6::Packet::new_checked(&pkt.data()[ETH_LEN..]) {
        Ok(ip) => ip,
        Err(wire::Error::Truncated) => return Verdict::Drop(DropReason::Truncated).into(),
        Err(wire::Error::Malformed) => return Verdict::Drop(DropReason::BadIpHeader).into(),
    };
    let total = ip.total_len();
    let (next_header, hop_limit, src, dst) = (ip.next_header(), ip.hop_limit(), ip.src_addr(), ip.dst_addr());
    let neighbor_discovery = match ip.payload() {
        [msg_type, _, _, _, ..] if next_header == ip_proto::ICMPV6 => (v6::ROUTER_SOLICIT..=ndp::REDIRECT)
            .contains(msg_type)
            .then_some(*msg_type),
        _ => None,
    };
    let (sport, dport, tcp_flags) = flow::l4_ports(ip.payload(), next_header, false);
    // Ethernet padding of short frames is not part of the packet.
    pkt.truncate(ETH_LEN + total);
    match neighbor_discovery {
        Some(_) if !ctx.exceptions.allow(iface.vif) => return Verdict::Drop(DropReason::ExceptionRate).into(),
        Some(v6::NEIGHBOR_SOLICIT) => return ndp::solicitation(snap, iface, pkt).into(),
        Some(_) => return Verdict::Drop(DropReason::NdUnhandled).into(),
        None => {}
    }
    if dst.is_multicast() {
        return Verdict::Drop(DropReason::Multicast).into();
    }
    if dst.is_unicast_link_local() {
        return Verdict::Drop(DropReason::NoRoute).into();
    }
    if iface.ipv6 != Some(src) && !super::other_source_allowed(snap, iface, src.into()) {
        return Verdict::Drop(DropReason::SourceMismatch).into();
    }
    let key = FlowKey::v6(iface.vrf.0, src, dst, next_header, sport, dport);
    let parsed = Parsed {
        family: Family::V6,
        key,
        hash: flow::hash_of(&key, hint),
        ip_len: total,
        ttl: hop_limit,
        tcp_flags,
    };
    forward::route(snap, iface, pkt, ctx, parsed)
}

/// Echo requests to a gateway address are answered; nothing else is served.
pub(super) fn echo(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
    let d = pkt.data();
    let ip = ipv6::Packet::new_unchecked(&d[ETH_LEN..]);
    let is_request = |m: &wire::icmp::Packet<&[u8]>| m.msg_type() == v6::ECHO_REQUEST && m.code() == 0;
    let carries_request = ip.next_header() == ip_proto::ICMPV6
        && wire::icmp::Packet::new_checked(ip.payload()).is_ok_and(|m| is_request(&m));
    if !carries_request {
        return Verdict::Drop(DropReason::NoLocalService);
    }
    if icmpv6_message(&ip).is_none() {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let pod_mac = wire::ethernet::Frame::new_unchecked(d).src_addr();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let f = pkt.data_mut();
    write_eth(f, pod_mac, snap.router_mac.0, ETHERTYPE_IPV6);
    let mut ip = ipv6::Packet::new_unchecked(&mut f[ETH_LEN..]);
    ip.set_hop_limit(64);
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    // Swapping addresses leaves the pseudo-header sum unchanged; only the type moves.
    wire::icmp::Packet::new_unchecked(ip.payload_mut()).set_type_and_code_updating_checksum(v6::ECHO_REPLY, 0);
    Verdict::Transmit(iface.vif)
}

/// Replaces the packet with an ICMPv6 error unless RFC 4443 2.4 (e) forbids one.
pub(super) fn send_error(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    message: icmp::Message,
    reason: DropReason,
) -> Verdict {
    let ip = ipv6::Packet::new_unchecked(&pkt.data()[ETH_LEN..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let is_icmp_error = ip.next_header() == ip_proto::ICMPV6 && ip.payload().first().is_some_and(|t| *t < 128);
    if is_icmp_error || src.is_multicast() || src.is_unspecified() {
        return Verdict::Drop(reason);
    }
    let from = iface.gateway6.unwrap_or(dst);
    if icmp::ipv6_error(pkt, &mut ctx.icmp, snap.router_mac.0, from, message) {
        Verdict::DropWithError(reason)
    } else {
        Verdict::Drop(reason)
    }
}

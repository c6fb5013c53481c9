//! IPv6's parse stage (RFC 8200: header checks, neighbour discovery, anti-spoofing,
//! the flow key) and what only IPv6 does: echo replies from the gateway, ICMPv6
//! errors (RFC 4443).

use super::forward::{self, Family, Outcome, Parsed};
use super::{flow, ndp, DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use nexthop::{Interface, Snapshot};
use wire::icmp::v6;
use wire::{ip_proto, ipv6};

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
    // Type, code and checksum at least (RFC 4443 2.1), as neighbour discovery's.
    let neighbor_discovery = wire::icmp::message_type(ip.payload())
        .filter(|_| next_header == ip_proto::ICMPV6 && ip.payload().len() >= 4)
        .filter(|t| (v6::ROUTER_SOLICIT..=ndp::REDIRECT).contains(t));
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
    // The upper layer past any extension headers (a fragment: its datagram's flow).
    let ip = ipv6::Packet::new_unchecked(&pkt.data()[ETH_LEN..]);
    let Some((key, tcp_flags)) = flow::v6_flow_key(&ctx.flows.fragments, iface.vrf.0, &ip) else {
        return Verdict::Drop(DropReason::BadIpHeader).into();
    };
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

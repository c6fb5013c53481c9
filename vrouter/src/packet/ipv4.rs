//! IPv4's parse stage (RFC 791, RFC 1812: header checks, anti-spoofing, the flow
//! key) and what only IPv4 does: echo replies from the gateway, ICMP errors.

use super::forward::{self, Family, Outcome, Parsed};
use super::{flow, DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use flow_table::FlowKey;
use nexthop::{Interface, Snapshot};
use wire::ipv4;

/// The IPv4 header of Ethernet frame `frame`, checked (lengths, checksum), or the
/// reason to drop the frame.
#[inline(always)]
pub(super) fn checked(frame: &[u8]) -> Result<ipv4::Packet<&[u8]>, DropReason> {
    let ip = match ipv4::Packet::new_checked(frame.get(ETH_LEN..).unwrap_or_default()) {
        Ok(ip) => ip,
        Err(wire::Error::Truncated) => return Err(DropReason::Truncated),
        Err(wire::Error::Malformed) => return Err(DropReason::BadIpHeader),
    };
    if !ip.verify_checksum() {
        return Err(DropReason::BadChecksum);
    }
    Ok(ip)
}

#[inline(always)]
pub(super) fn handle(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    l2_group: bool,
    ctx: &mut PipelineContext,
    hint: Option<&flow::Classified>,
) -> Outcome {
    let ip = match checked(pkt.data()) {
        Ok(ip) => ip,
        Err(reason) => return Verdict::Drop(reason).into(),
    };
    let total = usize::from(ip.total_len());
    let dst = ip.dst_addr();
    if l2_group || dst.is_multicast() || dst.is_broadcast() {
        return Verdict::Drop(DropReason::Multicast).into();
    }
    let (ttl, proto, src) = (ip.ttl(), ip.protocol(), ip.src_addr());
    let (sport, dport, tcp_flags) = flow::l4_ports(ip.payload(), proto, ip.is_later_fragment());
    // Anti-spoofing: the pod's own address (one compare); otherwise not martian, and
    // an allowed pair or a prefix the VRF routes back to this pod.
    if iface.ipv4 != Some(src) && !super::other_source_allowed(snap, iface, src.into()) {
        return Verdict::Drop(DropReason::SourceMismatch).into();
    }
    let mut key = FlowKey::v4(iface.vrf.0, src, dst, proto, sport, dport);
    if ip.is_fragment() {
        key = flow::v4_fragment_key(&ctx.flows.fragments, key, &ip);
    }
    // Ethernet padding of short frames is not part of the packet.
    pkt.truncate(ETH_LEN + total);
    let parsed = Parsed {
        family: Family::V4,
        key,
        hash: flow::hash_of(&key, hint),
        ip_len: total,
        ttl,
        tcp_flags,
    };
    forward::route(snap, iface, pkt, ctx, parsed)
}

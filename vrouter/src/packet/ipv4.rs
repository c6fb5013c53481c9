//! IPv4's parse stage (RFC 791, RFC 1812: header checks, anti-spoofing, the flow
//! key) and what only IPv4 does: echo replies from the gateway, ICMP errors.

use super::forward::{self, Family, Outcome, Parsed};
use super::{flow, DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use flow_table::FlowKey;
use nexthop::{Interface, Snapshot};
use wire::ipv4;

#[inline(always)]
pub(super) fn handle(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    l2_group: bool,
    ctx: &mut PipelineContext,
    hint: Option<&flow::Classified>,
) -> Outcome {
    let ip = match ipv4::Packet::new_checked(&pkt.data()[ETH_LEN..]) {
        Ok(ip) => ip,
        Err(wire::Error::Truncated) => return Verdict::Drop(DropReason::Truncated).into(),
        Err(wire::Error::Malformed) => return Verdict::Drop(DropReason::BadIpHeader).into(),
    };
    if !ip.verify_checksum() {
        return Verdict::Drop(DropReason::BadChecksum).into();
    }
    let total = usize::from(ip.total_len());
    let dst = ip.dst_addr();
    if l2_group || dst.is_multicast() || dst.is_broadcast() {
        return Verdict::Drop(DropReason::Multicast).into();
    }
    let (ttl, proto, src) = (ip.ttl(), ip.protocol(), ip.src_addr());
    let (sport, dport, tcp_flags) = flow::l4_ports(ip.payload(), proto, ip.is_later_fragment());
    // Ethernet padding of short frames is not part of the packet.
    pkt.truncate(ETH_LEN + total);
    // Anti-spoofing: the pod's own address (one compare); otherwise not martian, and
    // an allowed pair or a prefix the VRF routes back to this pod.
    if iface.ipv4 != Some(src) && !super::other_source_allowed(snap, iface, src.into()) {
        return Verdict::Drop(DropReason::SourceMismatch).into();
    }
    let key = FlowKey::v4(iface.vrf.0, src, dst, proto, sport, dport);
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

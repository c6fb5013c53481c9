//! IPv4's parse stage (RFC 791, RFC 1812: header checks, anti-spoofing, the flow
//! key) and what only IPv4 does: echo replies from the gateway, ICMP errors.

use super::forward::{self, Family, Outcome, Parsed};
use super::{flow, icmp, write_eth, DropReason, PacketBuf, PipelineContext, Verdict, ETHERTYPE_IPV4, ETH_LEN};
use flow_table::FlowKey;
use nexthop::{Interface, Snapshot};
use std::net::Ipv4Addr;
use wire::icmp::v4;
use wire::{ip_proto, ipv4};

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

/// Packets for the vrouter's own (gateway) addresses: echo requests are answered.
pub(super) fn local(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
    let d = pkt.data();
    let ip = ipv4::Packet::new_unchecked(&d[ETH_LEN..]);
    let echo = wire::icmp::Packet::new_checked(ip.payload())
        .ok()
        .filter(|e| e.msg_type() == v4::ECHO_REQUEST && e.code() == 0);
    let Some(echo) = echo.filter(|_| ip.protocol() == ip_proto::ICMP && !ip.is_fragment()) else {
        return Verdict::Drop(DropReason::NoLocalService);
    };
    if !echo.verify_checksum_v4() {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let pod_mac = wire::ethernet::Frame::new_unchecked(d).src_addr();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let f = pkt.data_mut();
    write_eth(f, pod_mac, snap.router_mac.0, ETHERTYPE_IPV4);
    let mut ip = ipv4::Packet::new_unchecked(&mut f[ETH_LEN..]);
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(64);
    ip.fill_checksum();
    wire::icmp::Packet::new_unchecked(ip.payload_mut()).set_type_and_code_updating_checksum(v4::ECHO_REPLY, 0);
    Verdict::Transmit(iface.vif)
}

/// Replaces the packet with an ICMP error unless RFC 1812 4.3.2.7 forbids one: not for
/// ICMP errors, non-first fragments, or group/unspecified sources.
pub(super) fn send_error(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    message: icmp::Message,
    reason: DropReason,
) -> Verdict {
    let ip = ipv4::Packet::new_unchecked(&pkt.data()[ETH_LEN..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let is_icmp_error =
        ip.protocol() == ip_proto::ICMP && ip.payload().first().is_some_and(|t| !v4::is_informational(*t));
    if ip.is_later_fragment() || is_icmp_error || src.is_multicast() || src.is_broadcast() || src.is_unspecified() {
        return Verdict::Drop(reason);
    }
    let from: Ipv4Addr = iface.gateway4.unwrap_or(dst);
    if icmp::ipv4_error(pkt, &mut ctx.icmp, snap.router_mac.0, from, message) {
        Verdict::DropWithError(reason)
    } else {
        Verdict::Drop(reason)
    }
}

//! IPv4 routing within a VRF (RFC 791, RFC 1812): header checks, TTL, MAC rewrite,
//! echo replies from the gateway, ICMP errors.

use super::icmp::{self, ICMP4_TIME_EXCEEDED, ICMP4_UNREACHABLE};
use super::{
    checksum, flow, too_big_for, tunnel, write_eth, DropReason, PacketBuf, PipelineContext, Verdict, ETHERTYPE_IPV4,
    ETH_LEN,
};
use flow::Decision;
use flow_table::FlowKey;
use nexthop::{Interface, Snapshot};
use std::net::Ipv4Addr;

const PROTO_ICMP: u8 = 1;

#[inline(always)]
pub(super) fn handle(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    l2_group: bool,
    ctx: &mut PipelineContext,
    hint: Option<&flow::Classified>,
) -> Verdict {
    let d = pkt.data();
    let Some(ip) = d.get(ETH_LEN..ETH_LEN + 20) else {
        return Verdict::Drop(DropReason::Truncated);
    };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || ihl < 20 || total < ihl {
        return Verdict::Drop(DropReason::BadIpHeader);
    }
    if ETH_LEN + total > d.len() {
        return Verdict::Drop(DropReason::Truncated);
    }
    if checksum::checksum(&d[ETH_LEN..ETH_LEN + ihl]) != 0 {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    // Ethernet padding of short frames is not part of the packet.
    pkt.truncate(ETH_LEN + total);
    let d = pkt.data();
    let dst = Ipv4Addr::new(d[30], d[31], d[32], d[33]);
    if l2_group || dst.is_multicast() || dst.is_broadcast() {
        return Verdict::Drop(DropReason::Multicast);
    }
    let ttl = d[ETH_LEN + 8];
    let proto = d[ETH_LEN + 9];
    let later_fragment = u16::from_be_bytes([d[ETH_LEN + 6], d[ETH_LEN + 7]]) & 0x1fff != 0;
    let (sport, dport, tcp_flags) = flow::l4_ports(d, ETH_LEN + ihl, proto, later_fragment);
    let src = Ipv4Addr::new(d[26], d[27], d[28], d[29]);
    // Anti-spoofing: the pod's own address (one compare); otherwise not martian, and
    // an allowed pair or a prefix the VRF routes back to this pod.
    if iface.ipv4 != Some(src) && !super::other_source_allowed(snap, iface, src.into()) {
        return Verdict::Drop(DropReason::SourceMismatch);
    }
    let key = FlowKey::v4(iface.vrf.0, src, dst, proto, sport, dport);
    let hash = flow::hash_of(&key, hint);
    match flow::decide(snap, ctx, iface, &key, hash, total as u32, tcp_flags) {
        Decision::Forward(nh) => {
            let Some(out) = tunnel::Egress::of(snap, nh) else {
                return Verdict::Drop(DropReason::NoRoute);
            };
            if ttl <= 1 {
                return send_error(
                    snap,
                    iface,
                    pkt,
                    ctx,
                    icmp::Message::new(ICMP4_TIME_EXCEEDED, 0),
                    DropReason::TtlExceeded,
                );
            }
            let f = pkt.data_mut();
            let ip = &mut f[ETH_LEN..];
            let old = u16::from_be_bytes([ip[8], ip[9]]);
            ip[8] = ttl - 1;
            let new = u16::from_be_bytes([ip[8], ip[9]]);
            let c = checksum::update16(u16::from_be_bytes([ip[10], ip[11]]), old, new);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            match out {
                tunnel::Egress::Local { vif, dst_mac } => {
                    if let Some(mtu) = too_big_for(snap, vif, total) {
                        // RFC 1191: DF set gets the MTU back; without DF the packet
                        // would need fragmenting for a local pod: a counted drop.
                        if dont_fragment(pkt.data()) {
                            let message = icmp::fragmentation_needed(mtu);
                            return send_error(snap, iface, pkt, ctx, message, DropReason::Mtu);
                        }
                        return Verdict::Drop(DropReason::Mtu);
                    }
                    write_eth(pkt.data_mut(), dst_mac, snap.router_mac.0, ETHERTYPE_IPV4);
                    Verdict::Transmit(vif)
                }
                tunnel::Egress::Remote(t) => tunnel::encapsulate(snap, iface, pkt, ctx, t, hash),
            }
        }
        Decision::Local if !ctx.exceptions.allow(iface.vif) => Verdict::Drop(DropReason::ExceptionRate),
        Decision::Local => local(snap, iface, pkt, ihl),
        Decision::Drop(reason) => Verdict::Drop(reason),
        Decision::NoRoute => send_error(
            snap,
            iface,
            pkt,
            ctx,
            icmp::Message::new(ICMP4_UNREACHABLE, 0),
            DropReason::NoRoute,
        ),
    }
}

/// Packets for the vrouter's own (gateway) addresses: echo requests are answered.
fn local(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>, ihl: usize) -> Verdict {
    let d = pkt.data();
    let frag = u16::from_be_bytes([d[ETH_LEN + 6], d[ETH_LEN + 7]]);
    let is_fragment = frag & 0x3fff != 0;
    let l4 = ETH_LEN + ihl;
    if d[ETH_LEN + 9] != PROTO_ICMP || is_fragment || d.len() < l4 + 8 || d[l4] != 8 || d[l4 + 1] != 0 {
        return Verdict::Drop(DropReason::NoLocalService);
    }
    if checksum::checksum(&d[l4..]) != 0 {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let mut pod_mac = [0u8; 6];
    pod_mac.copy_from_slice(&d[6..12]);
    let f = pkt.data_mut();
    write_eth(f, pod_mac, snap.router_mac.0, ETHERTYPE_IPV4);
    let ip = &mut f[ETH_LEN..];
    let mut src = [0u8; 4];
    src.copy_from_slice(&ip[12..16]);
    ip.copy_within(16..20, 12);
    ip[16..20].copy_from_slice(&src);
    ip[8] = 64;
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::checksum(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let icmp = &mut ip[ihl..];
    icmp[0] = 0;
    let c = checksum::update16(u16::from_be_bytes([icmp[2], icmp[3]]), 0x0800, 0x0000);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Verdict::Transmit(iface.vif)
}

/// Replaces the packet with an ICMP error unless RFC 1812 4.3.2.7 forbids one: not for
/// ICMP errors, non-first fragments, or group/unspecified sources.
fn send_error(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    message: icmp::Message,
    reason: DropReason,
) -> Verdict {
    let d = pkt.data();
    let ip = &d[ETH_LEN..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let non_first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0;
    let is_icmp_error = ip[9] == PROTO_ICMP
        && ip
            .get(ihl)
            .is_some_and(|t| !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18));
    if non_first_fragment || is_icmp_error || src.is_multicast() || src.is_broadcast() || src.is_unspecified() {
        return Verdict::Drop(reason);
    }
    let from = iface.gateway4.unwrap_or(dst);
    if icmp::ipv4_error(pkt, &mut ctx.icmp, snap.router_mac.0, from, message) {
        Verdict::DropWithError(reason)
    } else {
        Verdict::Drop(reason)
    }
}

/// True if the IPv4 packet in `frame` has Don't Fragment set.
fn dont_fragment(frame: &[u8]) -> bool {
    frame.get(ETH_LEN + 6).is_some_and(|f| f & 0x40 != 0)
}

//! IPv6 routing within a VRF (RFC 8200): header checks, hop limit, MAC rewrite, echo
//! replies from the gateway, ICMPv6 errors (RFC 4443).

use super::icmp::{self, ICMP6_TIME_EXCEEDED, ICMP6_UNREACHABLE};
use super::{
    checksum, flow, ndp, too_big_for, tunnel, write_eth, DropReason, PacketBuf, PipelineContext, Verdict,
    ETHERTYPE_IPV6, ETH_LEN,
};
use flow::Decision;
use flow_table::FlowKey;
use nexthop::{Interface, Snapshot};
use std::net::Ipv6Addr;

pub(super) const NEXT_HEADER_ICMP6: u8 = 58;
const ICMP6_ECHO_REQUEST: u8 = 128;
const ICMP6_ECHO_REPLY: u8 = 129;
/// Offset of the upper-layer header in a frame without extension headers.
pub(super) const L4: usize = ETH_LEN + 40;

pub(super) fn addr(d: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[at..at + 16]);
    a
}

/// Checks the ICMPv6 checksum of a frame without extension headers.
pub(super) fn icmp6_checksum_ok(d: &[u8]) -> bool {
    let (src, dst) = (addr(d, ETH_LEN + 8), addr(d, ETH_LEN + 24));
    let len = (d.len() - L4) as u32;
    checksum::finish(checksum::sum(
        &d[L4..],
        checksum::ipv6_pseudo_sum(&src, &dst, len, NEXT_HEADER_ICMP6),
    )) == 0
}

pub(super) fn handle(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    hint: Option<&flow::Classified>,
) -> Verdict {
    let d = pkt.data();
    if d.len() < L4 {
        return Verdict::Drop(DropReason::Truncated);
    }
    if d[ETH_LEN] >> 4 != 6 {
        return Verdict::Drop(DropReason::BadIpHeader);
    }
    let payload = usize::from(u16::from_be_bytes([d[ETH_LEN + 4], d[ETH_LEN + 5]]));
    if L4 + payload > d.len() {
        return Verdict::Drop(DropReason::Truncated);
    }
    pkt.truncate(L4 + payload);
    let d = pkt.data();
    let next_header = d[ETH_LEN + 6];
    let hop_limit = d[ETH_LEN + 7];
    let dst = Ipv6Addr::from(addr(d, ETH_LEN + 24));
    if next_header == NEXT_HEADER_ICMP6 && payload >= 4 {
        match d[L4] {
            ndp::ROUTER_SOLICITATION..=ndp::REDIRECT if !ctx.exceptions.allow(iface.vif) => {
                return Verdict::Drop(DropReason::ExceptionRate)
            }
            ndp::NEIGHBOR_SOLICITATION => return ndp::solicitation(snap, iface, pkt),
            ndp::ROUTER_SOLICITATION..=ndp::REDIRECT => return Verdict::Drop(DropReason::NdUnhandled),
            _ => {}
        }
    }
    if dst.is_multicast() {
        return Verdict::Drop(DropReason::Multicast);
    }
    if dst.is_unicast_link_local() {
        return Verdict::Drop(DropReason::NoRoute);
    }
    let (sport, dport, tcp_flags) = flow::l4_ports(d, L4, next_header, false);
    let src = Ipv6Addr::from(addr(d, ETH_LEN + 8));
    if iface.ipv6 != Some(src) && !super::other_source_allowed(snap, iface, src.into()) {
        return Verdict::Drop(DropReason::SourceMismatch);
    }
    let key = FlowKey::v6(iface.vrf.0, src, dst, next_header, sport, dport);
    let hash = flow::hash_of(&key, hint);
    match flow::decide(snap, ctx, iface, &key, hash, (L4 + payload - ETH_LEN) as u32, tcp_flags) {
        Decision::Forward(nh) => {
            let Some(out) = tunnel::Egress::of(snap, nh) else {
                return Verdict::Drop(DropReason::NoRoute);
            };
            if hop_limit <= 1 {
                return send_error(
                    snap,
                    iface,
                    pkt,
                    ctx,
                    icmp::Message::new(ICMP6_TIME_EXCEEDED, 0),
                    DropReason::TtlExceeded,
                );
            }
            pkt.data_mut()[ETH_LEN + 7] = hop_limit - 1;
            match out {
                tunnel::Egress::Local { vif, dst_mac } => {
                    if let Some(mtu) = too_big_for(snap, vif, L4 + payload - ETH_LEN) {
                        // RFC 8201: routers never fragment IPv6; tell the sender.
                        let message = icmp::packet_too_big(mtu);
                        return send_error(snap, iface, pkt, ctx, message, DropReason::Mtu);
                    }
                    write_eth(pkt.data_mut(), dst_mac, snap.router_mac.0, ETHERTYPE_IPV6);
                    Verdict::Transmit(vif)
                }
                tunnel::Egress::Remote(t) => tunnel::encapsulate(snap, iface, pkt, ctx, t, hash),
            }
        }
        Decision::Local if !ctx.exceptions.allow(iface.vif) => Verdict::Drop(DropReason::ExceptionRate),
        Decision::Local => echo(snap, iface, pkt),
        Decision::Drop(reason) => Verdict::Drop(reason),
        Decision::NoRoute => send_error(
            snap,
            iface,
            pkt,
            ctx,
            icmp::Message::new(ICMP6_UNREACHABLE, 0),
            DropReason::NoRoute,
        ),
    }
}

/// Echo requests to a gateway address are answered; nothing else is served.
fn echo(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
    let d = pkt.data();
    if d[ETH_LEN + 6] != NEXT_HEADER_ICMP6 || d.len() < L4 + 8 || d[L4] != ICMP6_ECHO_REQUEST || d[L4 + 1] != 0 {
        return Verdict::Drop(DropReason::NoLocalService);
    }
    if !icmp6_checksum_ok(d) {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let mut pod_mac = [0u8; 6];
    pod_mac.copy_from_slice(&d[6..12]);
    let (src, dst) = (addr(d, ETH_LEN + 8), addr(d, ETH_LEN + 24));
    let f = pkt.data_mut();
    write_eth(f, pod_mac, snap.router_mac.0, ETHERTYPE_IPV6);
    f[ETH_LEN + 7] = 64;
    f[ETH_LEN + 8..ETH_LEN + 24].copy_from_slice(&dst);
    f[ETH_LEN + 24..ETH_LEN + 40].copy_from_slice(&src);
    // Swapping addresses leaves the pseudo-header sum unchanged; only the type moves.
    let icmp = &mut f[L4..];
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = ICMP6_ECHO_REPLY;
    let new = u16::from_be_bytes([icmp[0], icmp[1]]);
    let c = checksum::update16(u16::from_be_bytes([icmp[2], icmp[3]]), old, new);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Verdict::Transmit(iface.vif)
}

/// Replaces the packet with an ICMPv6 error unless RFC 4443 2.4 (e) forbids one.
fn send_error(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    message: icmp::Message,
    reason: DropReason,
) -> Verdict {
    let d = pkt.data();
    let src = Ipv6Addr::from(addr(d, ETH_LEN + 8));
    let dst = Ipv6Addr::from(addr(d, ETH_LEN + 24));
    let is_icmp_error = d[ETH_LEN + 6] == NEXT_HEADER_ICMP6 && d.get(L4).is_some_and(|t| *t < 128);
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

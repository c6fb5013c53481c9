//! Neighbour discovery (RFC 4861): the vrouter answers solicitations for every
//! address its VRF routes with its own MAC, the IPv6 side of proxy ARP.

use super::icmp::write_ipv6_header;
use super::ipv6::{addr, icmp6_checksum_ok, L4, NEXT_HEADER_ICMP6};
use super::{checksum, in_other_vrf, write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_IPV6, ETH_LEN};
use nexthop::{Interface, NextHop, Snapshot};
use std::net::Ipv6Addr;

pub(super) const ROUTER_SOLICITATION: u8 = 133;
pub(super) const NEIGHBOR_SOLICITATION: u8 = 135;
const NEIGHBOR_ADVERTISEMENT: u8 = 136;
pub(super) const REDIRECT: u8 = 137;
/// ICMPv6 header + reserved + target.
const NS_MIN: usize = 24;
/// Advertisement with a target link-layer address option.
const NA_LEN: usize = 32;
const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

pub(super) fn solicitation(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
    let d = pkt.data();
    // RFC 4861 7.1.1: hop limit 255, code 0, at least 24 octets, valid checksum.
    if d[ETH_LEN + 7] != 255 || d.len() < L4 + NS_MIN || d[L4 + 1] != 0 {
        return Verdict::Drop(DropReason::NdUnhandled);
    }
    if !icmp6_checksum_ok(d) {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let src = addr(d, ETH_LEN + 8);
    let target_bytes = addr(d, L4 + 8);
    let target = Ipv6Addr::from(target_bytes);
    // Duplicate address detection comes from "::"; it must go unanswered.
    if Ipv6Addr::from(src).is_unspecified() || iface.ipv6 == Some(target) {
        return Verdict::Drop(DropReason::SelfSolicitation);
    }
    let router_flag = match snap.route6(iface.vrf, target) {
        Some(NextHop::Receive) => FLAG_ROUTER,
        Some(NextHop::Interface { .. } | NextHop::Tunnel { .. } | NextHop::Composite { .. }) => 0,
        _ if in_other_vrf(iface, snap.owner6.get(&target)) => return Verdict::Drop(DropReason::OtherVrf),
        _ => return Verdict::Drop(DropReason::NeighborUnknown),
    };
    let mut pod_mac = [0u8; 6];
    pod_mac.copy_from_slice(&d[6..12]);
    if !pkt.set_len(L4 + NA_LEN) {
        return Verdict::Drop(DropReason::Truncated);
    }
    let router = snap.router_mac.0;
    let f = pkt.data_mut();
    write_eth(f, pod_mac, router, ETHERTYPE_IPV6);
    write_ipv6_header(&mut f[ETH_LEN..L4], NA_LEN as u16, 255, &target_bytes, &src);
    let na = &mut f[L4..];
    na[0..8].copy_from_slice(&[
        NEIGHBOR_ADVERTISEMENT,
        0,
        0,
        0,
        router_flag | FLAG_SOLICITED | FLAG_OVERRIDE,
        0,
        0,
        0,
    ]);
    na[8..24].copy_from_slice(&target_bytes);
    na[24] = 2; // target link-layer address option
    na[25] = 1; // length in units of 8 octets
    na[26..32].copy_from_slice(&router);
    let sum = checksum::ipv6_pseudo_sum(&target_bytes, &src, NA_LEN as u32, NEXT_HEADER_ICMP6);
    let c = checksum::finish(checksum::sum(na, sum));
    na[2..4].copy_from_slice(&c.to_be_bytes());
    Verdict::Transmit(iface.vif)
}

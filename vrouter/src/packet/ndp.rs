//! Neighbour discovery (RFC 4861): the vrouter answers solicitations for every
//! address its VRF routes with its own MAC, the IPv6 side of proxy ARP.

use super::icmp::{icmpv6_header, icmpv6_message};
use super::{in_other_vrf, write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_IPV6, ETH_LEN};
use nexthop::{Interface, NextHop, Snapshot};
use wire::ndp::{self, AdvertRepr};
use wire::{ip_proto, ipv6};

/// The last neighbour discovery message type (RFC 4861: 133 to 137).
pub(super) const REDIRECT: u8 = 137;

pub(super) fn solicitation(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
    let d = pkt.data();
    let ip = ipv6::Packet::new_unchecked(&d[ETH_LEN..]);
    // RFC 4861 7.1.1: hop limit 255, code 0, at least 24 octets, valid checksum.
    let solicit = ndp::Message::new_checked(ip.payload()).ok().filter(|m| m.code() == 0);
    let Some(solicit) = solicit.filter(|_| ip.hop_limit() == 255) else {
        return Verdict::Drop(DropReason::NdUnhandled);
    };
    if icmpv6_message(&ip).is_none() {
        return Verdict::Drop(DropReason::BadChecksum);
    }
    let (target, src) = (solicit.target(), ip.src_addr());
    // Duplicate address detection comes from "::"; it must go unanswered.
    if src.is_unspecified() || iface.ipv6 == Some(target) {
        return Verdict::Drop(DropReason::SelfSolicitation);
    }
    let router = match snap.route6(iface.vrf, target) {
        Some(NextHop::Receive) => true,
        Some(NextHop::Interface { .. } | NextHop::Tunnel { .. } | NextHop::Composite { .. }) => false,
        _ if in_other_vrf(iface, snap.owner6.get(&target)) => return Verdict::Drop(DropReason::OtherVrf),
        _ => return Verdict::Drop(DropReason::NeighborUnknown),
    };
    let pod_mac = wire::ethernet::Frame::new_unchecked(d).src_addr();
    if !pkt.set_len(ETH_LEN + ipv6::HEADER_LEN + ndp::ADVERT_LEN) {
        return Verdict::Drop(DropReason::Truncated);
    }
    let f = pkt.data_mut();
    write_eth(f, pod_mac, snap.router_mac.0, ETHERTYPE_IPV6);
    let mut ip = ipv6::Packet::new_unchecked(&mut f[ETH_LEN..]);
    icmpv6_header(target, src, ndp::ADVERT_LEN as u16, 255).emit(&mut ip);
    let pseudo = ip.pseudo_sum(ip_proto::ICMPV6, ndp::ADVERT_LEN as u32);
    let advert = AdvertRepr {
        router,
        solicited: true,
        override_: true,
        target,
        target_mac: snap.router_mac.0,
    };
    advert.emit(ip.payload_mut(), pseudo);
    Verdict::Transmit(iface.vif)
}

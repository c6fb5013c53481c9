//! What the vrouter answers itself at its gateway addresses: echo requests, ICMP
//! (RFC 792) and ICMPv6 (RFC 4443); nothing else is served there.

use super::icmp::icmpv6_message;
use super::{write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN};
use nexthop::{Interface, Snapshot};
use wire::icmp::{v4, v6};
use wire::{ip_proto, ipv4, ipv6};

/// An IPv4 packet for a gateway address: an echo request is answered in place.
pub(super) fn echo_v4(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
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

/// An IPv6 packet for a gateway address: an echo request is answered in place.
pub(super) fn echo_v6(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
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

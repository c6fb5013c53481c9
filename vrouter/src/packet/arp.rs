//! ARP (RFC 826): the vrouter answers every request for an address its VRF routes,
//! with its own MAC, so all pod traffic comes to it (proxy ARP, as Contrail does).

use super::{in_other_vrf, write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_ARP, ETH_LEN};
use nexthop::{Interface, NextHop, Snapshot};
use wire::arp::{self, OP_REPLY, OP_REQUEST};

pub(super) fn handle(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
    let request = match arp::Packet::new_checked(&pkt.data()[ETH_LEN..]) {
        Ok(a) => arp::Repr::parse(&a),
        Err(wire::Error::Truncated) => return Verdict::Drop(DropReason::Truncated),
        // Not Ethernet / IPv4 / hlen 6 / plen 4.
        Err(wire::Error::Malformed) => return Verdict::Drop(DropReason::InvalidArp),
    };
    if request.operation != OP_REQUEST {
        // Replies and gratuitous announcements from pods need no answer.
        return Verdict::Drop(if request.operation == OP_REPLY {
            DropReason::SelfSolicitation
        } else {
            DropReason::InvalidArp
        });
    }
    let target = request.target_ip;
    if iface.ipv4 == Some(target) || request.sender_ip == target {
        return Verdict::Drop(DropReason::SelfSolicitation);
    }
    match snap.route4(iface.vrf, target) {
        Some(NextHop::Interface { .. } | NextHop::Receive | NextHop::Tunnel { .. } | NextHop::Composite { .. }) => {}
        _ if in_other_vrf(iface, snap.owner4.get(&target)) => return Verdict::Drop(DropReason::OtherVrf),
        _ => return Verdict::Drop(DropReason::NeighborUnknown),
    }
    let router = snap.router_mac.0;
    pkt.truncate(ETH_LEN + arp::PACKET_LEN);
    let f = pkt.data_mut();
    write_eth(f, request.sender_mac, router, ETHERTYPE_ARP);
    let reply = arp::Repr {
        operation: OP_REPLY,
        sender_mac: router,
        sender_ip: target,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    };
    reply.emit(&mut arp::Packet::new_unchecked(&mut f[ETH_LEN..]));
    Verdict::Transmit(iface.vif)
}

//! ARP (RFC 826): the vrouter answers every request for an address its VRF routes,
//! with its own MAC, so all pod traffic comes to it (proxy ARP, as Contrail does).

use super::{in_other_vrf, write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_ARP, ETH_LEN};
use nexthop::{Interface, NextHop, Snapshot};
use std::net::Ipv4Addr;

const ARP_LEN: usize = 28;
const OP_REQUEST: u16 = 1;
const OP_REPLY: u16 = 2;

pub(super) fn handle(snap: &Snapshot, iface: &Interface, pkt: &mut PacketBuf<'_>) -> Verdict {
    let d = pkt.data();
    if d.len() < ETH_LEN + ARP_LEN {
        return Verdict::Drop(DropReason::Truncated);
    }
    let a = &d[ETH_LEN..ETH_LEN + ARP_LEN];
    // Ethernet (1) / IPv4 (0x0800) / hlen 6 / plen 4.
    if a[0..6] != [0, 1, 8, 0, 6, 4] {
        return Verdict::Drop(DropReason::InvalidArp);
    }
    let op = u16::from_be_bytes([a[6], a[7]]);
    if op != OP_REQUEST {
        // Replies and gratuitous announcements from pods need no answer.
        return Verdict::Drop(if op == OP_REPLY {
            DropReason::SelfSolicitation
        } else {
            DropReason::InvalidArp
        });
    }
    let mut sender_mac = [0u8; 6];
    sender_mac.copy_from_slice(&a[8..14]);
    let sender_ip: [u8; 4] = [a[14], a[15], a[16], a[17]];
    let target_ip: [u8; 4] = [a[24], a[25], a[26], a[27]];
    let target = Ipv4Addr::from(target_ip);
    if iface.ipv4 == Some(target) || sender_ip == target_ip {
        return Verdict::Drop(DropReason::SelfSolicitation);
    }
    match snap.route4(iface.vrf, target) {
        Some(NextHop::Interface { .. } | NextHop::Receive | NextHop::Tunnel { .. } | NextHop::Composite { .. }) => {}
        _ if in_other_vrf(iface, snap.owner4.get(&target)) => return Verdict::Drop(DropReason::OtherVrf),
        _ => return Verdict::Drop(DropReason::NeighborUnknown),
    }
    let router = snap.router_mac.0;
    pkt.truncate(ETH_LEN + ARP_LEN);
    let f = pkt.data_mut();
    write_eth(f, sender_mac, router, ETHERTYPE_ARP);
    let a = &mut f[ETH_LEN..];
    a[6..8].copy_from_slice(&OP_REPLY.to_be_bytes());
    a[8..14].copy_from_slice(&router);
    a[14..18].copy_from_slice(&target_ip);
    a[18..24].copy_from_slice(&sender_mac);
    a[24..28].copy_from_slice(&sender_ip);
    Verdict::Transmit(iface.vif)
}

//! Sending a routed packet to another compute node: MTU check, outer headers.

use super::icmp;
use super::{DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use nexthop::encap::{entropy_port, Encap, Outer};
use nexthop::{Interface, MacAddr, Snapshot};
use std::net::Ipv4Addr;

/// The tunnel fields of a next hop.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tunnel {
    pub encap: Encap,
    pub remote: Ipv4Addr,
    pub label: u32,
    pub outer_mac: MacAddr,
    pub inner_mac: MacAddr,
}

/// Where a routed packet leaves this node.
#[derive(Debug, Clone, Copy)]
pub(super) enum Egress {
    /// On a local interface, to this MAC.
    Local { vif: nexthop::Vif, dst_mac: [u8; 6] },
    /// Through a tunnel to another node.
    Remote(Tunnel),
}

impl Egress {
    /// The egress of a forwarding next hop (interfaces and tunnels; composites were
    /// resolved to a member when the flow was set up).
    pub(super) fn of(nh: Option<&nexthop::NextHop>) -> Option<Self> {
        match nh? {
            nexthop::NextHop::Interface { vif, dst_mac } => Some(Egress::Local {
                vif: *vif,
                dst_mac: dst_mac.0,
            }),
            nexthop::NextHop::Tunnel {
                encap,
                remote,
                label,
                outer_mac,
                inner_mac,
            } => Some(Egress::Remote(Tunnel {
                encap: *encap,
                remote: *remote,
                label: *label,
                outer_mac: *outer_mac,
                inner_mac: *inner_mac,
            })),
            _ => None,
        }
    }
}

/// Encapsulates the routed frame in `pkt` (TTL already decremented) towards the
/// tunnel's remote and returns the verdict (transmit on the fabric, or a drop with an
/// ICMP error when it does not fit the MTU and may not be fragmented).
pub(super) fn encapsulate(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    t: Tunnel,
    flow_hash: u64,
) -> Verdict {
    let Some(src) = snap.fabric.ip else {
        return Verdict::Drop(DropReason::TunnelUnresolved);
    };
    if t.outer_mac.0 == [0; 6] {
        return Verdict::Drop(DropReason::TunnelUnresolved);
    }
    let d = pkt.data();
    let ip_len = d.len() - ETH_LEN;
    // The outer IP packet carries the outer headers past Ethernet, the inner packet,
    // and for VXLAN the inner Ethernet header.
    let inner_eth = if t.encap == Encap::Vxlan { ETH_LEN } else { 0 };
    let outer_ip_len = (t.encap.outer_len() - ETH_LEN) + inner_eth + ip_len;
    let mtu = usize::from(snap.fabric.mtu.max(576));
    if outer_ip_len > mtu {
        // RFC 1191 / RFC 8201: tell the sender the largest inner packet that fits.
        let fits = (mtu - (outer_ip_len - ip_len)) as u16;
        let is_v4 = d[ETH_LEN] >> 4 == 4;
        let dont_fragment = !is_v4 || d[ETH_LEN + 6] & 0x40 != 0;
        if !dont_fragment {
            // Fragmenting before encapsulation is not implemented: the packet is
            // dropped and counted; TCP never gets here thanks to MSS clamping.
            return Verdict::Drop(DropReason::Mtu);
        }
        let sent = if is_v4 {
            let from = iface.gateway4.unwrap_or(Ipv4Addr::new(d[30], d[31], d[32], d[33]));
            icmp::ipv4_error(
                pkt,
                &mut ctx.icmp,
                snap.router_mac.0,
                from,
                icmp::fragmentation_needed(fits),
            )
        } else {
            let dst: [u8; 16] = d[ETH_LEN + 24..ETH_LEN + 40].try_into().expect("16 bytes");
            let from = iface.gateway6.unwrap_or(dst.into());
            icmp::ipv6_error(pkt, &mut ctx.icmp, snap.router_mac.0, from, icmp::packet_too_big(fits))
        };
        return if sent {
            Verdict::DropWithError(DropReason::Mtu)
        } else {
            Verdict::Drop(DropReason::Mtu)
        };
    }
    let ttl = if d[ETH_LEN] >> 4 == 4 {
        d[ETH_LEN + 8]
    } else {
        d[ETH_LEN + 7]
    };
    // TCP must never meet the MTU: lower the MSS a SYN announces to what fits.
    let (l4, tcp) = match d[ETH_LEN] >> 4 {
        4 => (
            ETH_LEN + usize::from(d[ETH_LEN] & 0x0f) * 4,
            d[ETH_LEN + 9] == 6 && d[ETH_LEN + 6] & 0x1f == 0 && d[ETH_LEN + 7] == 0,
        ),
        _ => (ETH_LEN + 40, d[ETH_LEN + 6] == 6),
    };
    if tcp {
        let max = mtu - (outer_ip_len - ip_len) - (l4 - ETH_LEN) - 20;
        clamp_mss(pkt.data_mut(), l4, max.min(usize::from(u16::MAX)) as u16);
    }
    if !pkt.grow_front(t.encap.grow()) {
        return Verdict::Drop(DropReason::NoFrame);
    }
    let outer = Outer {
        encap: t.encap,
        src_mac: snap.fabric.mac.0,
        dst_mac: t.outer_mac.0,
        src,
        dst: t.remote,
        label: t.label,
        entropy: entropy_port(flow_hash),
        ttl,
    };
    let olen = t.encap.outer_len();
    let payload = pkt.len() - olen;
    let f = pkt.data_mut();
    outer.write(f, payload);
    if t.encap == Encap::Vxlan {
        f[olen..olen + 6].copy_from_slice(&t.inner_mac.0);
        f[olen + 6..olen + 12].copy_from_slice(&snap.router_mac.0);
    }
    Verdict::Transmit(0)
}

/// Lowers the MSS option of a TCP SYN at `l4` to `max` (RFC 879, RFC 6691), fixing
/// the checksum incrementally. Anything that is not a well-formed SYN is left alone.
pub(super) fn clamp_mss(frame: &mut [u8], l4: usize, max: u16) {
    let Some(tcp) = frame.get_mut(l4..) else { return };
    if tcp.len() < 20 || tcp[13] & 0x02 == 0 {
        return;
    }
    let header = (usize::from(tcp[12] >> 4) * 4).min(tcp.len());
    let mut i = 20;
    while i < header {
        match tcp[i] {
            0 => return,
            1 => i += 1,
            kind => {
                let Some(&len) = tcp.get(i + 1) else { return };
                let len = usize::from(len);
                if len < 2 || i + len > header {
                    return;
                }
                if kind == 2 && len == 4 {
                    let mss = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
                    if mss > max {
                        tcp[i + 2..i + 4].copy_from_slice(&max.to_be_bytes());
                        let c = super::checksum::update16(u16::from_be_bytes([tcp[16], tcp[17]]), mss, max);
                        tcp[16..18].copy_from_slice(&c.to_be_bytes());
                    }
                    return;
                }
                i += len;
            }
        }
    }
}

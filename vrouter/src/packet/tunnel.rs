//! Sending a routed packet to another compute node: MTU check, outer headers.

use super::icmp;
use super::outer_cache::OuterCache;
use super::{DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use nexthop::encap::{entropy_port, Encap, Outer};
use nexthop::{Interface, MacAddr, Snapshot};
use std::net::Ipv4Addr;

/// The tunnel fields of a next hop.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tunnel {
    /// The next hop it came from (names its cached outer headers).
    pub nh: nexthop::NextHopId,
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
    pub(super) fn of(snap: &Snapshot, id: nexthop::NextHopId) -> Option<Self> {
        match snap.nexthops.get(id as usize)? {
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
                nh: id,
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
    if snap.fabric.ip.is_none() || t.outer_mac.0 == [0; 6] {
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
            // RFC 791: fragment the inner packet so that every fragment fits once
            // encapsulated; the worker builds each fragment in a frame of its own.
            let ihl = usize::from(d[ETH_LEN] & 0x0f) * 4;
            let per_fragment = (usize::from(fits) - ihl) & !7;
            if per_fragment == 0 {
                return Verdict::Drop(DropReason::Mtu);
            }
            let count = (ip_len - ihl).div_ceil(per_fragment);
            ctx.fragments = Some(FragmentPlan {
                tunnel: t,
                flow_hash,
                per_fragment,
                count,
            });
            return Verdict::Fragment(count as u16);
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
    ctx.tunnel = Some((t.remote, true));
    write_outer(snap, pkt, t, flow_hash, ttl, Some(&mut ctx.outer))
}

/// Puts the tunnel headers in front of the routed frame in `pkt`.
/// With a worker's `cache`, from the tunnel's template.
fn write_outer(
    snap: &Snapshot,
    pkt: &mut PacketBuf<'_>,
    t: Tunnel,
    flow_hash: u64,
    ttl: u8,
    cache: Option<&mut OuterCache>,
) -> Verdict {
    let Some(src) = snap.fabric.ip else {
        return Verdict::Drop(DropReason::TunnelUnresolved);
    };
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
    match cache {
        Some(cache) => cache
            .template(snap.generation, t.nh, || outer)
            .write(f, payload, outer.entropy, ttl),
        None => outer.write(f, payload),
    }
    if t.encap == Encap::Vxlan {
        f[olen..olen + 6].copy_from_slice(&t.inner_mac.0);
        f[olen + 6..olen + 12].copy_from_slice(&snap.router_mac.0);
    }
    Verdict::Transmit(0)
}

/// How to cut an IPv4 packet that does not fit its tunnel.
#[derive(Debug, Clone, Copy)]
pub struct FragmentPlan {
    tunnel: Tunnel,
    flow_hash: u64,
    /// Inner payload bytes per fragment (a multiple of 8).
    per_fragment: usize,
    /// Number of fragments.
    pub count: usize,
}

/// Builds fragment `index` of the routed IPv4 frame `original` (Ethernet + IPv4, TTL
/// already decremented), encapsulated, into `out` (whose start leaves headroom for
/// the outer headers). False if the inputs do not describe such a fragment.
pub fn build_fragment(
    snap: &Snapshot,
    plan: &FragmentPlan,
    original: &[u8],
    index: usize,
    out: &mut PacketBuf<'_>,
) -> bool {
    let Some(ip) = original.get(ETH_LEN..) else {
        return false;
    };
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let payload = &ip[ihl.min(total)..total];
    let from = index * plan.per_fragment;
    if from >= payload.len() || ihl < 20 {
        return false;
    }
    let chunk = &payload[from..(from + plan.per_fragment).min(payload.len())];
    let last = from + chunk.len() == payload.len();
    if !out.set_len(ETH_LEN + ihl + chunk.len()) {
        return false;
    }
    let f = out.data_mut();
    f[..ETH_LEN].copy_from_slice(&original[..ETH_LEN]);
    f[ETH_LEN..ETH_LEN + ihl].copy_from_slice(&ip[..ihl]);
    f[ETH_LEN + ihl..].copy_from_slice(chunk);
    let h = &mut f[ETH_LEN..ETH_LEN + ihl];
    let flags_offset = u16::from_be_bytes([h[6], h[7]]);
    let more = !last || flags_offset & 0x2000 != 0;
    let offset = (flags_offset & 0x1fff) + (from / 8) as u16;
    let word = if more { 0x2000 } else { 0 } | offset;
    h[2..4].copy_from_slice(&((ihl + chunk.len()) as u16).to_be_bytes());
    h[6..8].copy_from_slice(&word.to_be_bytes());
    h[10..12].copy_from_slice(&[0, 0]);
    let c = super::checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    let ttl = h[8];
    matches!(
        write_outer(snap, out, plan.tunnel, plan.flow_hash, ttl, None),
        Verdict::Transmit(_)
    )
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

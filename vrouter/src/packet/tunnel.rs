//! Sending a routed packet to another compute node: MTU check, outer headers.

use super::outer_cache::OuterCache;
use super::{DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use nexthop::encap::{entropy_port, Encap, Outer};
use nexthop::Vif;
use nexthop::{MacAddr, Snapshot};
use std::net::Ipv4Addr;
use wire::{ethernet, ip_proto, ipv4, ipv6};

/// The tunnel fields of a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        match snap.nexthop(id)? {
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

/// The routed packet does not fit the tunnel: this many bytes of inner IP packet
/// would (the caller answers with the ICMP error its family calls for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TooBig(pub u16);

/// Encapsulates the routed frame in `pkt` (TTL already decremented; IPv4 if `is_v4`,
/// else IPv6) towards the tunnel's remote: transmit on the fabric, fragment (IPv4
/// without DF), a drop, or [`TooBig`] when it does not fit and may not be fragmented.
pub(super) fn encapsulate(
    snap: &Snapshot,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    t: Tunnel,
    flow_hash: u64,
    is_v4: bool,
) -> Result<Verdict, TooBig> {
    if snap.fabric.ip.is_none() || t.outer_mac.0 == [0; 6] {
        return Ok(Verdict::Drop(DropReason::TunnelUnresolved));
    }
    let d = pkt.data();
    let ip_len = d.len() - ETH_LEN;
    // The routed frame was checked by the IPv4 or IPv6 stage.
    let inner = &d[ETH_LEN..];
    let v4 = is_v4.then(|| ipv4::Packet::new_unchecked(inner));
    // The outer IP packet carries the outer headers past Ethernet, the inner packet,
    // and for VXLAN the inner Ethernet header.
    let inner_eth = if t.encap == Encap::Vxlan { ETH_LEN } else { 0 };
    let outer_ip_len = (t.encap.outer_len() - ETH_LEN) + inner_eth + ip_len;
    let mtu = usize::from(snap.fabric.mtu.max(576));
    if outer_ip_len > mtu {
        // RFC 1191 / RFC 8201: tell the sender the largest inner packet that fits.
        let fits = (mtu - (outer_ip_len - ip_len)) as u16;
        if let Some(ip) = v4.filter(|ip| !ip.dont_frag()) {
            // RFC 791: fragment the inner packet so that every fragment fits once
            // encapsulated; the worker builds each fragment in a frame of its own
            // (its plan: [`fragment_plan`]).
            return Ok(match per_fragment(fits, ip.header_len()) {
                Some(_) => Verdict::Fragment(t.nh),
                None => Verdict::Drop(DropReason::Mtu),
            });
        }
        return Err(TooBig(fits));
    }
    // TCP must never meet the MTU: lower the MSS a SYN announces to what fits.
    let (ttl, ip_header, tcp) = match v4 {
        Some(ip) => (
            ip.ttl(),
            ip.header_len(),
            ip.protocol() == ip_proto::TCP && !ip.is_later_fragment(),
        ),
        None => {
            let ip = ipv6::Packet::new_unchecked(inner);
            (ip.hop_limit(), ipv6::HEADER_LEN, ip.next_header() == ip_proto::TCP)
        }
    };
    if tcp {
        let max = mtu - (outer_ip_len - ip_len) - ip_header - wire::tcp::HEADER_LEN;
        if let Ok(mut segment) = wire::tcp::Packet::new_checked(&mut pkt.data_mut()[ETH_LEN + ip_header..]) {
            segment.clamp_mss(max.min(usize::from(u16::MAX)) as u16);
        }
    }
    Ok(write_outer(snap, pkt, t, flow_hash, ttl, Some(&mut ctx.outer)))
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
        let mut inner = ethernet::Frame::new_unchecked(&mut f[olen..]);
        inner.set_dst_addr(t.inner_mac.0);
        inner.set_src_addr(snap.router_mac.0);
    }
    Verdict::Transmit(Vif(0))
}

/// Inner payload bytes per fragment when `fits` bytes of inner IP packet fit the
/// tunnel and its header is `ihl` bytes (a multiple of 8; `None` if nothing fits).
fn per_fragment(fits: u16, ihl: usize) -> Option<usize> {
    Some((usize::from(fits).checked_sub(ihl)?) & !7).filter(|n| *n > 0)
}

/// The plan for cutting the routed IPv4 frame `frame` (received on `in_vif`, given
/// [`Verdict::Fragment`] with the tunnel next hop `nh`) into fragments that fit the
/// tunnel once encapsulated, each fragment's frame at most `max_frame` bytes (the
/// buffer it is built in). `None` if the inputs do not describe such a frame.
pub fn fragment_plan(
    snap: &Snapshot,
    in_vif: nexthop::Vif,
    nh: nexthop::NextHopId,
    frame: &[u8],
    max_frame: usize,
) -> Option<FragmentPlan> {
    let Some(Egress::Remote(t)) = Egress::of(snap, nh) else {
        return None;
    };
    let ip = ipv4::Packet::new_checked(frame.get(ETH_LEN..)?).ok()?;
    let ip_len = usize::from(ip.total_len());
    let inner_eth = if t.encap == Encap::Vxlan { ETH_LEN } else { 0 };
    let overhead = (t.encap.outer_len() - ETH_LEN) + inner_eth;
    // The fabric's MTU, or less if a fragment's frame must fit a smaller buffer.
    let mtu = usize::from(snap.fabric.mtu.max(576)).min(max_frame.saturating_sub(ETH_LEN));
    let fits = mtu.checked_sub(overhead)?;
    let per_fragment = per_fragment(fits.min(usize::from(u16::MAX)) as u16, ip.header_len())?;
    // The entropy of the flow's other packets, so that its fragments take their path.
    let (key, _, _) = super::flow::ip_flow_key(snap.interface(in_vif)?.vrf.0, &wire::ip::Packet::V4(ip));
    Some(FragmentPlan {
        tunnel: t,
        flow_hash: key.hash(),
        per_fragment,
        count: (ip_len - ip.header_len()).div_ceil(per_fragment),
    })
}

/// How to cut an IPv4 packet that does not fit its tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    let Some(ip) = original
        .get(ETH_LEN..)
        .and_then(|ip| ipv4::Packet::new_checked(ip).ok())
    else {
        return false;
    };
    let (ihl, payload) = (ip.header_len(), ip.payload());
    let from = index * plan.per_fragment;
    if from >= payload.len() {
        return false;
    }
    let chunk = &payload[from..(from + plan.per_fragment).min(payload.len())];
    let last = from + chunk.len() == payload.len();
    if !out.set_len(ETH_LEN + ihl + chunk.len()) {
        return false;
    }
    let mut frame = ethernet::Frame::new_unchecked(out.data_mut());
    ethernet::Repr::parse(&ethernet::Frame::new_unchecked(original)).emit(&mut frame);
    let f = frame.payload_mut();
    f[..ihl].copy_from_slice(ip.header());
    f[ihl..].copy_from_slice(chunk);
    let mut fragment = ipv4::Packet::new_unchecked(f);
    // A fragment of a fragment keeps the original's offset base and its MF.
    fragment.set_fragment(!last || ip.more_frags(), usize::from(ip.frag_offset()) + from);
    fragment.set_total_len((ihl + chunk.len()) as u16);
    fragment.fill_checksum();
    let ttl = fragment.ttl();
    matches!(
        write_outer(snap, out, plan.tunnel, plan.flow_hash, ttl, None),
        Verdict::Transmit(_)
    )
}

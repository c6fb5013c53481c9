//! Packets from other compute nodes: take the tunnel apart, find the local interface
//! by MPLS label or by VNI and inner route, pass the inner packet through the flow
//! table (so the receiving node holds a flow for it, where policy will run), deliver
//! within the pod's MTU (or tell the sender, through the tunnel, what fits).

use super::flow::{self, Decision};
use super::forward::{self, Family, Outcome, TunnelUse};
use super::{icmp, too_big_for, DropReason, PacketBuf, Verdict, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN};
use nexthop::encap::{self, DecapError, Encap};
use nexthop::{v4_key, v6_key, Interface, NextHop, NextHopId, Snapshot, Vif, VrfId};
use std::net::IpAddr;
use wire::{ethernet, ipv4};

/// The decapsulated packet after the flow stage.
struct Inner {
    /// The flow's next hop.
    nh: NextHopId,
    /// The inner flow key's hash (tunnel entropy for an error sent back).
    hash: u64,
    /// Its IP length.
    ip_len: usize,
    family: Family,
    /// Its translation (a service flow's reply, or a flow to a service).
    nat: Option<nexthop::NatWord>,
    /// Its VRF.
    vrf: u16,
}

/// Looks the decapsulated packet up in the flow table of its VRF (setting the flow
/// up on a miss, owned by the fabric); `Err` with the drop reason its decision says.
#[inline(always)]
fn through_flow_table(
    snap: &Snapshot,
    fabric: &Interface,
    vrf: VrfId,
    ip: &wire::ip::Packet<&[u8]>,
    ctx: &mut super::PipelineContext,
) -> Result<Inner, DropReason> {
    let (key, bytes, flags) = flow::flow_key_of(&ctx.flows.fragments, vrf.0, ip).ok_or(DropReason::BadIpHeader)?;
    let hash = key.hash();
    let (nh, nat) = match flow::decide(snap, ctx, fabric, &key, hash, bytes, flags) {
        Decision::Forward(nh) => (nh, None),
        Decision::ForwardNat(nh, nat) => (nh, Some(nat)),
        Decision::Drop(reason) | Decision::Reject(reason) => return Err(reason),
        Decision::Local | Decision::NoRoute => return Err(DropReason::NoRoute),
    };
    Ok(Inner {
        nh,
        hash,
        ip_len: bytes as usize,
        family: if key.family() == 4 { Family::V4 } else { Family::V6 },
        nat,
        vrf: key.vrf(),
    })
}

pub(super) fn handle(
    snap: &Snapshot,
    fabric: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut super::PipelineContext,
) -> Outcome {
    let t = match encap::parse(pkt.data()) {
        Ok(t) => t,
        // A node port, an external IP, a reply to a connection that left the cluster.
        Err(DecapError::NotTunnel) if snap.host.is_some() => return super::native::handle(snap, pkt, ctx),
        Err(DecapError::Truncated) => return Verdict::Drop(DropReason::Truncated).into(),
        Err(_) => return Verdict::Drop(DropReason::BadTunnel).into(),
    };
    if Some(t.dst) != snap.fabric.ip {
        return Verdict::Drop(DropReason::BadTunnel).into();
    }
    Outcome {
        verdict: deliver(snap, fabric, pkt, ctx, &t),
        tunnel: Some(TunnelUse::Received(t.src)),
    }
}

/// An ICMP error from another node (`key`, the IP packet of `ip_len` bytes at
/// `at`) about a both-ends flow of this node, rewritten for its pod and routed to it
/// without a flow of its own (see `icmp_both`); `None`: not one, nothing changed;
/// `Err` if the pod has no route.
#[cold]
fn both_error(
    snap: &Snapshot,
    ctx: &mut super::PipelineContext,
    pkt: &mut PacketBuf<'_>,
    at: usize,
    ip_len: usize,
    key: &flow_table::FlowKey,
) -> Option<Result<Inner, DropReason>> {
    let family = if key.family() == 4 { Family::V4 } else { Family::V6 };
    let ip = pkt.data_mut().get_mut(at..at + ip_len)?;
    let to_pod = super::icmp_both::rewrite(&ctx.flows.table, key.vrf(), ip, family)?;
    let hash = to_pod.hash();
    let Decision::Forward(nh) = flow::resolve(snap, &mut ctx.routes, &to_pod).0 else {
        return Some(Err(DropReason::NoRoute));
    };
    Some(Ok(Inner {
        nh,
        hash,
        ip_len,
        family,
        nat: None,
        vrf: to_pod.vrf(),
    }))
}

/// Delivers the payload of a tunnel packet for this node to its local interface.
#[inline(always)]
fn deliver(
    snap: &Snapshot,
    fabric: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut super::PipelineContext,
    t: &encap::Decapsulated,
) -> Verdict {
    pkt.truncate(t.payload + t.payload_len);
    match t.encap {
        Encap::MplsOverUdp | Encap::MplsOverGre => {
            let Some(&nh) = snap.mpls.get(&t.label) else {
                return Verdict::Drop(DropReason::InvalidLabel);
            };
            let Some(NextHop::Interface { vif, dst_mac }) = snap.nexthop(nh) else {
                return Verdict::Drop(DropReason::InvalidLabel);
            };
            let Some(iface) = snap.interface(*vif) else {
                return Verdict::Drop(DropReason::InvalidLabel);
            };
            let inner = match checked_inner(&pkt.data()[t.payload..]) {
                Ok(ip) => ip,
                Err(reason) => return Verdict::Drop(reason),
            };
            // A label names an interface, and the interface a VRF: the inner
            // destination must route to that interface there, or a stale or forged
            // label would carry the packet across VRFs. The pod's own address (most
            // packets) needs no route lookup: its host route is the interface's.
            let routed_here = match inner.dst_addr() {
                IpAddr::V4(dst) => {
                    iface.ipv4 == Some(dst) || {
                        let found = snap.vrf(iface.vrf).and_then(|v| v.v4.lookup(v4_key(dst)));
                        found.is_some_and(|(_, r)| reaches(snap, r.nexthop, nh))
                    }
                }
                IpAddr::V6(dst) => {
                    iface.ipv6 == Some(dst) || {
                        let found = snap.vrf(iface.vrf).and_then(|v| v.v6.lookup(v6_key(dst)));
                        found.is_some_and(|(_, r)| reaches(snap, r.nexthop, nh))
                    }
                }
            };
            // Or it is one of the interface's floating addresses: the flow is then in
            // the floating address's VRF (translated to the pod there).
            let vrf = if routed_here {
                iface.vrf
            } else {
                match floating_vrf(snap, iface, inner.dst_addr()) {
                    Some(vrf) => vrf,
                    None => return Verdict::Drop(DropReason::LabelMismatch),
                }
            };
            // Delivered to the label's interface (the sender chose it, ECMP included);
            // the flow is set up or hit in its VRF all the same. (An ICMP error to a
            // floating address may be about a both-ends flow: rewritten for its pod.)
            let error_key = (!routed_here)
                .then(|| flow::ip_flow_key(vrf.0, &inner))
                .filter(|(key, ..)| forward::may_quote_a_translated_flow(snap, key));
            let flow = if let Some((key, ip_len, _)) = error_key {
                match both_error(snap, ctx, pkt, t.payload, ip_len as usize, &key) {
                    Some(flow) => flow,
                    None => checked_inner(&pkt.data()[t.payload..])
                        .and_then(|inner| through_flow_table(snap, fabric, vrf, &inner, ctx)),
                }
            } else {
                through_flow_table(snap, fabric, vrf, &inner, ctx)
            };
            let flow = match flow {
                Ok(flow) => flow,
                Err(reason) => return Verdict::Drop(reason),
            };
            // The inner IP packet gets an Ethernet header where the outer headers end.
            pkt.pull_front(t.payload - ETH_LEN);
            to_interface(snap, iface, dst_mac.0, pkt, ctx, &flow)
        }
        Encap::Vxlan => {
            let Some(&vrf) = snap.vxlan.get(&t.label) else {
                return Verdict::Drop(DropReason::InvalidVni);
            };
            pkt.pull_front(t.payload);
            let Ok(eth) = ethernet::Frame::new_checked(pkt.data()) else {
                return Verdict::Drop(DropReason::Truncated);
            };
            if !matches!(eth.ethertype(), ETHERTYPE_IPV4 | ETHERTYPE_IPV6) {
                return Verdict::Drop(DropReason::UnsupportedEtherType);
            }
            let inner = match checked_inner(eth.payload()) {
                Ok(ip) => ip,
                Err(reason) => return Verdict::Drop(reason),
            };
            // The flow stage routes it in the VNI's VRF; only a local interface takes
            // it (a VXLAN packet is never sent back into the fabric).
            let flow = match through_flow_table(snap, fabric, vrf, &inner, ctx) {
                Ok(flow) => flow,
                Err(reason) => return Verdict::Drop(reason),
            };
            match snap.nexthop(flow.nh) {
                Some(NextHop::Interface { vif, dst_mac }) => match snap.interface(*vif) {
                    Some(iface) => to_interface(snap, iface, dst_mac.0, pkt, ctx, &flow),
                    None => Verdict::Drop(DropReason::NoRoute),
                },
                _ => Verdict::Drop(DropReason::NoRoute),
            }
        }
    }
}

/// The egress stage of a decapsulated packet, now an Ethernet frame: out of the local
/// interface `iface` to `dst_mac`, unless it is larger than the interface's MTU.
#[inline(always)]
fn to_interface(
    snap: &Snapshot,
    iface: &Interface,
    dst_mac: [u8; 6],
    pkt: &mut PacketBuf<'_>,
    ctx: &mut super::PipelineContext,
    flow: &Inner,
) -> Verdict {
    if let Some(nat) = flow.nat {
        if !translate_inner(snap, &ctx.flows.table, pkt, flow, nat) {
            return Verdict::Drop(DropReason::NoRoute);
        }
    } else if is_icmp(pkt.data(), flow.family) && super::forward::translates(snap) {
        let ip = &mut pkt.data_mut()[ETH_LEN..];
        let len = flow.ip_len.min(ip.len());
        super::icmp_nat::translate_error(snap, &ctx.flows.table, flow.vrf, &mut ip[..len], flow.family);
    }
    if let Some(mtu) = too_big_for(snap, iface.vif, flow.ip_len) {
        return too_big(snap, iface, pkt, ctx, flow, mtu);
    }
    let mut eth = ethernet::Frame::new_unchecked(pkt.data_mut());
    eth.set_dst_addr(dst_mac);
    eth.set_src_addr(snap.router_mac.0);
    eth.set_ethertype(flow.family.ethertype());
    Verdict::Transmit(iface.vif)
}

/// True if the decapsulated frame `frame` carries ICMP (or ICMPv6): maybe an error
/// about a translated flow (the protocol byte, already in cache, decides).
#[inline(always)]
fn is_icmp(frame: &[u8], family: Family) -> bool {
    match family {
        Family::V4 => frame.get(ETH_LEN + 9) == Some(&wire::ip_proto::ICMP),
        Family::V6 => frame.get(ETH_LEN + 6) == Some(&wire::ip_proto::ICMPV6),
    }
}

/// Translates the decapsulated packet as its flow says (a service's reply, or a
/// flow to a service, from another node).
#[cold]
fn translate_inner(
    snap: &Snapshot,
    table: &flow_table::FlowTable,
    pkt: &mut PacketBuf<'_>,
    flow: &Inner,
    nat: nexthop::NatWord,
) -> bool {
    let ip = &mut pkt.data_mut()[ETH_LEN..];
    let len = flow.ip_len.min(ip.len());
    super::nat::translate(snap, table, &mut ip[..len], flow.family, nat)
}

/// A packet from another node too big for the pod's MTU: as a router on the path, the
/// vrouter tells the sender (IPv4 with DF: fragmentation needed, RFC 1191; IPv6:
/// packet too big, RFC 8201) through the tunnel it came by; IPv4 without DF is a
/// counted drop (a local pod is not fragmented for).
#[cold]
fn too_big(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut super::PipelineContext,
    flow: &Inner,
    mtu: u16,
) -> Verdict {
    let answered = match flow.family {
        Family::V4 => {
            let ip = ipv4::Packet::new_unchecked(&pkt.data()[ETH_LEN..]);
            if !ip.dont_frag() {
                return Verdict::Drop(DropReason::Mtu);
            }
            icmp::send_error_v4(snap, iface, pkt, ctx, icmp::fragmentation_needed(mtu), DropReason::Mtu)
        }
        Family::V6 => icmp::send_error_v6(snap, iface, pkt, ctx, icmp::packet_too_big(mtu), DropReason::Mtu),
    };
    if answered != Verdict::DropWithError(DropReason::Mtu) {
        return answered;
    }
    // The error goes back out of the fabric, which the packet came in by.
    match forward::originate(snap, iface.vrf, pkt, ctx, flow.family, flow.hash) {
        Verdict::Transmit(Vif::FABRIC) => answered,
        _ => Verdict::Drop(DropReason::Mtu),
    }
}

/// The decapsulated IP packet of either family (by its version), checked.
#[inline]
fn checked_inner(ip: &[u8]) -> Result<wire::ip::Packet<&[u8]>, DropReason> {
    wire::ip::Packet::new_checked(ip).map_err(|e| match e {
        wire::Error::Truncated => DropReason::Truncated,
        wire::Error::Malformed => DropReason::BadIpHeader,
    })
}

/// The VRF of `iface`'s floating address `dst`, if it is one.
#[cold]
fn floating_vrf(snap: &Snapshot, iface: &Interface, dst: IpAddr) -> Option<nexthop::VrfId> {
    snap.floating
        .of(iface.vif)
        .iter()
        .find(|e| e.address == dst)
        .map(|e| e.vrf)
}

/// True if a route's next hop `route_nh` is `nh` or an ECMP group with `nh` in it.
fn reaches(snap: &Snapshot, route_nh: NextHopId, nh: NextHopId) -> bool {
    route_nh == nh
        || match snap.nexthop(route_nh) {
            Some(NextHop::Composite { id }) => snap
                .composites
                .get(*id as usize)
                .is_some_and(|c| c.members.contains(&nh)),
            _ => false,
        }
}

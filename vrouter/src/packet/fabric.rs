//! Packets from other compute nodes: take the tunnel apart, find the local interface
//! by MPLS label or by VNI and inner route, pass the inner packet through the flow
//! table (so the receiving node holds a flow for it, where policy will run), deliver.

use super::flow::{self, Decision};
use super::forward::{Outcome, TunnelUse};
use super::{write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN};
use nexthop::encap::{self, DecapError, Encap};
use nexthop::{v4_key, v6_key, Interface, NextHop, NextHopId, Snapshot, VrfId};
use std::net::IpAddr;
use wire::{ethernet, ipv4, ipv6};

/// Looks the decapsulated packet up in the flow table of its VRF (setting the flow
/// up on a miss, owned by the fabric); `Err` with the drop reason its decision says.
#[inline]
fn through_flow_table(
    snap: &Snapshot,
    fabric: &Interface,
    vrf: VrfId,
    ip: &[u8],
    ctx: &mut super::PipelineContext,
) -> Result<NextHopId, DropReason> {
    let Some((key, bytes, flags)) = flow::ip_flow_key(vrf.0, ip) else {
        return Err(DropReason::Truncated);
    };
    match flow::decide(snap, ctx, fabric, &key, key.hash(), bytes, flags) {
        Decision::Forward(nh) => Ok(nh),
        Decision::Drop(reason) => Err(reason),
        Decision::Local | Decision::NoRoute => Err(DropReason::NoRoute),
    }
}

pub(super) fn handle(
    snap: &Snapshot,
    fabric: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut super::PipelineContext,
) -> Outcome {
    let t = match encap::parse(pkt.data()) {
        Ok(t) => t,
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
            let inner = &pkt.data()[t.payload..];
            // A label names an interface, and the interface a VRF: the inner
            // destination must route to that interface there, or a stale or forged
            // label would carry the packet across VRFs. The pod's own address (most
            // packets) needs no route lookup: its host route is the interface's.
            let (ethertype, routed_here) = match inner_destination(inner) {
                Ok(IpAddr::V4(dst)) => {
                    let routed_here = iface.ipv4 == Some(dst) || {
                        let found = snap.vrf(iface.vrf).and_then(|v| v.v4.lookup(v4_key(dst)));
                        found.is_some_and(|(_, r)| reaches(snap, r.nexthop, nh))
                    };
                    (ETHERTYPE_IPV4, routed_here)
                }
                Ok(IpAddr::V6(dst)) => {
                    let routed_here = iface.ipv6 == Some(dst) || {
                        let found = snap.vrf(iface.vrf).and_then(|v| v.v6.lookup(v6_key(dst)));
                        found.is_some_and(|(_, r)| reaches(snap, r.nexthop, nh))
                    };
                    (ETHERTYPE_IPV6, routed_here)
                }
                Err(reason) => return Verdict::Drop(reason),
            };
            if !routed_here {
                return Verdict::Drop(DropReason::LabelMismatch);
            }
            // Delivered to the label's interface (the sender chose it, ECMP included);
            // the flow is set up or hit in its VRF all the same.
            if let Err(reason) = through_flow_table(snap, fabric, iface.vrf, inner, ctx) {
                return Verdict::Drop(reason);
            }
            // The inner IP packet gets an Ethernet header where the outer headers end.
            pkt.pull_front(t.payload - ETH_LEN);
            write_eth(pkt.data_mut(), dst_mac.0, snap.router_mac.0, ethertype);
            Verdict::Transmit(*vif)
        }
        Encap::Vxlan => {
            let Some(&vrf) = snap.vxlan.get(&t.label) else {
                return Verdict::Drop(DropReason::InvalidVni);
            };
            pkt.pull_front(t.payload);
            let Ok(eth) = ethernet::Frame::new_checked(pkt.data()) else {
                return Verdict::Drop(DropReason::Truncated);
            };
            let nh = match eth.ethertype() {
                ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => match inner_destination(eth.payload()) {
                    Ok(IpAddr::V4(dst)) => snap.route4(vrf, dst),
                    Ok(IpAddr::V6(dst)) => snap.route6(vrf, dst),
                    Err(reason) => return Verdict::Drop(reason),
                },
                _ => return Verdict::Drop(DropReason::UnsupportedEtherType),
            };
            let delivered = match nh {
                Some(NextHop::Interface { .. }) => through_flow_table(snap, fabric, vrf, &pkt.data()[ETH_LEN..], ctx),
                _ => Err(DropReason::NoRoute),
            };
            let nh = match delivered {
                Ok(id) => snap.nexthop(id),
                Err(reason) => return Verdict::Drop(reason),
            };
            match nh {
                Some(NextHop::Interface { vif, dst_mac }) => {
                    let mut eth = ethernet::Frame::new_unchecked(pkt.data_mut());
                    eth.set_dst_addr(dst_mac.0);
                    eth.set_src_addr(snap.router_mac.0);
                    Verdict::Transmit(*vif)
                }
                _ => Verdict::Drop(DropReason::NoRoute),
            }
        }
    }
}

/// The destination of a decapsulated IP packet of either family (by its version).
#[inline]
fn inner_destination(ip: &[u8]) -> Result<IpAddr, DropReason> {
    let checked = match ip.first().map(|v| v >> 4) {
        Some(4) => ipv4::Packet::new_checked(ip).map(|p| IpAddr::V4(p.dst_addr())),
        Some(6) => ipv6::Packet::new_checked(ip).map(|p| IpAddr::V6(p.dst_addr())),
        None => Err(wire::Error::Truncated),
        Some(_) => Err(wire::Error::Malformed),
    };
    checked.map_err(|e| match e {
        wire::Error::Truncated => DropReason::Truncated,
        wire::Error::Malformed => DropReason::BadIpHeader,
    })
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

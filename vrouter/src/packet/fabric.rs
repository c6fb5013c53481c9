//! Packets from other compute nodes: take the tunnel apart, find the local interface
//! by MPLS label or by VNI and inner route, pass the inner packet through the flow
//! table (so the receiving node holds a flow for it, where policy will run), deliver.

use super::flow::{self, Decision};
use super::{write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN};
use flow_table::FlowKey;
use nexthop::encap::{self, DecapError, Encap};
use nexthop::{v4_key, v6_key, Interface, NextHop, NextHopId, Snapshot, VrfId};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The flow key, length and TCP flags of the inner IP packet `ip` in `vrf`; `None`
/// if its header is short.
#[inline]
fn inner_key(vrf: VrfId, ip: &[u8]) -> Option<(FlowKey, u32, u8)> {
    match ip.first()? >> 4 {
        4 => {
            let h = ip.get(..20)?;
            let ihl = usize::from(h[0] & 0x0f) * 4;
            let later = u16::from_be_bytes([h[6], h[7]]) & 0x1fff != 0;
            let (sp, dp, flags) = flow::l4_ports(ip, ihl, h[9], later);
            let src = Ipv4Addr::new(h[12], h[13], h[14], h[15]);
            let dst = Ipv4Addr::new(h[16], h[17], h[18], h[19]);
            Some((FlowKey::v4(vrf.0, src, dst, h[9], sp, dp), ip.len() as u32, flags))
        }
        6 => {
            let h = ip.get(..40)?;
            let (sp, dp, flags) = flow::l4_ports(ip, 40, h[6], false);
            let src: [u8; 16] = h[8..24].try_into().ok()?;
            let dst: [u8; 16] = h[24..40].try_into().ok()?;
            Some((
                FlowKey::v6(vrf.0, src.into(), dst.into(), h[6], sp, dp),
                ip.len() as u32,
                flags,
            ))
        }
        _ => None,
    }
}

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
    let Some((key, bytes, flags)) = inner_key(vrf, ip) else {
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
) -> Verdict {
    let t = match encap::parse(pkt.data()) {
        Ok(t) => t,
        Err(DecapError::Truncated) => return Verdict::Drop(DropReason::Truncated),
        Err(_) => return Verdict::Drop(DropReason::BadTunnel),
    };
    if Some(t.dst) != snap.fabric.ip {
        return Verdict::Drop(DropReason::BadTunnel);
    }
    ctx.tunnel = Some((t.src, false));
    pkt.truncate(t.payload + t.payload_len);
    match t.encap {
        Encap::MplsOverUdp | Encap::MplsOverGre => {
            let Some(&nh) = snap.mpls.get(&t.label) else {
                return Verdict::Drop(DropReason::InvalidLabel);
            };
            let Some(NextHop::Interface { vif, dst_mac }) = snap.nexthops.get(nh as usize) else {
                return Verdict::Drop(DropReason::InvalidLabel);
            };
            let Some(iface) = snap.interface(*vif) else {
                return Verdict::Drop(DropReason::InvalidLabel);
            };
            let inner = &pkt.data()[t.payload..];
            let Some(&version) = inner.first() else {
                return Verdict::Drop(DropReason::Truncated);
            };
            // A label names an interface, and the interface a VRF: the inner
            // destination must route to that interface there, or a stale or forged
            // label would carry the packet across VRFs.
            let (ethertype, routed_here) = match version >> 4 {
                4 if inner.len() >= 20 => {
                    let dst = Ipv4Addr::new(inner[16], inner[17], inner[18], inner[19]);
                    // The pod's own address (most packets) needs no route lookup: its
                    // host route is the interface's.
                    let routed_here = iface.ipv4 == Some(dst) || {
                        let found = snap.vrf(iface.vrf).and_then(|v| v.v4.lookup(v4_key(dst)));
                        found.is_some_and(|(_, r)| reaches(snap, r.nexthop, nh))
                    };
                    (ETHERTYPE_IPV4, routed_here)
                }
                6 if inner.len() >= 40 => {
                    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&inner[24..40]).expect("16 bytes"));
                    let routed_here = iface.ipv6 == Some(dst) || {
                        let found = snap.vrf(iface.vrf).and_then(|v| v.v6.lookup(v6_key(dst)));
                        found.is_some_and(|(_, r)| reaches(snap, r.nexthop, nh))
                    };
                    (ETHERTYPE_IPV6, routed_here)
                }
                4 | 6 => return Verdict::Drop(DropReason::Truncated),
                _ => return Verdict::Drop(DropReason::BadIpHeader),
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
            let d = pkt.data();
            let nh = match u16::from_be_bytes([d[12], d[13]]) {
                ETHERTYPE_IPV4 if d.len() >= ETH_LEN + 20 => {
                    snap.route4(vrf, Ipv4Addr::new(d[30], d[31], d[32], d[33]))
                }
                ETHERTYPE_IPV6 if d.len() >= ETH_LEN + 40 => {
                    let dst: [u8; 16] = d[ETH_LEN + 24..ETH_LEN + 40].try_into().expect("16 bytes");
                    snap.route6(vrf, Ipv6Addr::from(dst))
                }
                ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => return Verdict::Drop(DropReason::Truncated),
                _ => return Verdict::Drop(DropReason::UnsupportedEtherType),
            };
            let delivered = match nh {
                Some(NextHop::Interface { .. }) => through_flow_table(snap, fabric, vrf, &pkt.data()[ETH_LEN..], ctx),
                _ => Err(DropReason::NoRoute),
            };
            let nh = match delivered {
                Ok(id) => snap.nexthops.get(id as usize),
                Err(reason) => return Verdict::Drop(reason),
            };
            match nh {
                Some(NextHop::Interface { vif, dst_mac }) => {
                    let (vif, mac) = (*vif, dst_mac.0);
                    let f = pkt.data_mut();
                    f[0..6].copy_from_slice(&mac);
                    f[6..12].copy_from_slice(&snap.router_mac.0);
                    Verdict::Transmit(vif)
                }
                _ => Verdict::Drop(DropReason::NoRoute),
            }
        }
    }
}

/// True if a route's next hop `route_nh` is `nh` or an ECMP group with `nh` in it.
fn reaches(snap: &Snapshot, route_nh: NextHopId, nh: NextHopId) -> bool {
    route_nh == nh
        || match snap.nexthops.get(route_nh as usize) {
            Some(NextHop::Composite { id }) => snap
                .composites
                .get(*id as usize)
                .is_some_and(|c| c.members.contains(&nh)),
            _ => false,
        }
}

//! Packets from other compute nodes: take the tunnel apart, find the local interface
//! by MPLS label or by VNI and inner route, deliver.

use super::{write_eth, DropReason, PacketBuf, Verdict, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN};
use nexthop::encap::{self, DecapError, Encap};
use nexthop::{v4_key, v6_key, NextHop, NextHopId, Snapshot};
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) fn handle(snap: &Snapshot, pkt: &mut PacketBuf<'_>, ctx: &mut super::PipelineContext) -> Verdict {
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

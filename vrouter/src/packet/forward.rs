//! The stages every routed packet goes through after its family's parse stage, the
//! same for IPv4 and IPv6: flow lookup (setup on a miss: route now; service load
//! balancing, policy and NAT join here), then TTL, rewrite and egress (a local
//! interface, a tunnel, fragments), with the outcome returned by value. Packets
//! decapsulated from the fabric take the same lookup ([`flow::decide`]) with their
//! inner headers.

use super::flow::{self, Decision};
use super::icmp::{self, send_error_v4, send_error_v6};
use super::{gateway, too_big_for, tunnel, write_eth, DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use flow_table::FlowKey;
use nexthop::{v4_key, v6_key, Interface, NextHop, Snapshot, VrfId};
use std::net::Ipv4Addr;

/// Which IP family a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The EtherType of a frame carrying this family.
    pub(super) fn ethertype(self) -> u16 {
        match self {
            Family::V4 => super::ETHERTYPE_IPV4,
            Family::V6 => super::ETHERTYPE_IPV6,
        }
    }
}

/// A packet after its parse stage: what the shared stages need, both families.
#[derive(Debug, Clone, Copy)]
pub(super) struct Parsed {
    pub family: Family,
    pub key: FlowKey,
    /// `key.hash()`, from the batch's first pass when it saw the same key.
    pub hash: u64,
    /// IP length (header and payload, without Ethernet padding).
    pub ip_len: usize,
    /// TTL or hop limit as received.
    pub ttl: u8,
    /// TCP flags, for connection tracking (0 for other protocols).
    pub tcp_flags: u8,
}

/// What a processed frame comes to: the verdict, and the tunnel it used (for the
/// per-remote counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// What to do with the frame.
    pub verdict: Verdict,
    /// The remote node it was encapsulated to or decapsulated from.
    pub tunnel: Option<TunnelUse>,
}

/// How a frame used a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelUse {
    /// Encapsulated towards this remote node.
    Sent(Ipv4Addr),
    /// Received from this remote node (counted whatever became of it).
    Received(Ipv4Addr),
}

impl From<Verdict> for Outcome {
    fn from(verdict: Verdict) -> Self {
        Self { verdict, tunnel: None }
    }
}

/// An ICMP error the vrouter may answer a packet with, in either family.
#[derive(Debug, Clone, Copy)]
enum Error {
    /// TTL or hop limit exhausted.
    TimeExceeded,
    /// No route.
    Unreachable,
    /// Nothing takes the connection (a service without backends).
    PortUnreachable,
    /// Larger than the egress MTU (IPv4 with DF: fragmentation needed; IPv6: packet
    /// too big; IPv4 without DF: a counted drop, a local pod is not fragmented for).
    TooBig(u16),
}

/// The flow stage and everything after it.
#[inline(always)]
pub(super) fn route(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    p: Parsed,
) -> Outcome {
    if may_quote_a_translated_flow(snap, &p.key) && !snap.floating.is_empty() {
        let ip = &mut pkt.data_mut()[ETH_LEN..ETH_LEN + p.ip_len];
        if let Some(key) = super::icmp_both::rewrite(&ctx.flows.table, p.key.vrf(), ip, p.family) {
            return match flow::resolve(snap, &mut ctx.routes, &key).0 {
                Decision::Forward(nh) => forward(
                    snap,
                    iface,
                    pkt,
                    ctx,
                    &Parsed {
                        key,
                        hash: key.hash(),
                        ..p
                    },
                    nh,
                    Rewritten::No,
                ),
                _ => Verdict::Drop(DropReason::NoRoute).into(),
            };
        }
    }
    let (nh, translation) = match flow::decide(snap, ctx, iface, &p.key, p.hash, p.ip_len as u32, p.tcp_flags) {
        Decision::Forward(nh) => (nh, None),
        Decision::ForwardNat(nh, translation) => (nh, Some(translation)),
        Decision::Reject(reason) => {
            return error(snap, iface, pkt, ctx, p.family, Error::PortUnreachable, reason).into()
        }
        Decision::Local if !ctx.exceptions.allow(iface.vif) => return Verdict::Drop(DropReason::ExceptionRate).into(),
        Decision::Local => {
            return match p.family {
                Family::V4 => gateway::echo_v4(snap, iface, pkt),
                Family::V6 => gateway::echo_v6(snap, iface, pkt),
            }
            .into()
        }
        Decision::Drop(reason) => return Verdict::Drop(reason).into(),
        Decision::NoRoute => {
            return error(snap, iface, pkt, ctx, p.family, Error::Unreachable, DropReason::NoRoute).into()
        }
    };
    // The rewrite stage: a flow to a service, or its reply, translated (IPv4, one
    // end, TTL to spare: inline, with the TTL's decrement in the same checksum update).
    let mut rewritten = Rewritten::No;
    if let Some(translation) = translation {
        let ip = &mut pkt.data_mut()[ETH_LEN..ETH_LEN + p.ip_len];
        let translated = match translation.v4_one_end() {
            Some(end) if p.family == Family::V4 && p.ttl > 1 => {
                rewritten = Rewritten::TranslatedAndAged;
                super::nat::v4_aged(ip, end, ctx.transport_checksums_finished)
            }
            _ => {
                rewritten = Rewritten::Translated;
                super::nat::translate(snap, &ctx.flows.table, ip, p.family, translation)
            }
        };
        if !translated {
            return Verdict::Drop(DropReason::NoRoute).into();
        }
    } else if may_quote_a_translated_flow(snap, &p.key) {
        let ip = &mut pkt.data_mut()[ETH_LEN..ETH_LEN + p.ip_len];
        super::icmp_nat::translate_error(snap, &ctx.flows.table, p.key.vrf(), ip, p.family);
    }
    forward(snap, iface, pkt, ctx, &p, nh, rewritten)
}

/// What the rewrite stage did to a packet before [`forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rewritten {
    /// Nothing.
    No,
    /// Translated (addresses, ports).
    Translated,
    /// Translated, and its TTL taken down in the same checksum update.
    TranslatedAndAged,
}

/// True for an ICMP message that is not an echo (its key has no ports) while some
/// translation exists: it may be an error about a translated flow.
#[inline(always)]
pub(super) fn may_quote_a_translated_flow(snap: &Snapshot, key: &flow_table::FlowKey) -> bool {
    key.src_port() == 0 && matches!(key.proto(), wire::ip_proto::ICMP | wire::ip_proto::ICMPV6) && translates(snap)
}

/// True if some flow may be translated (a service or a floating IP exists).
#[inline(always)]
pub(super) fn translates(snap: &Snapshot) -> bool {
    !snap.services.by_key.is_empty() || !snap.floating.is_empty()
}

/// TTL, rewrite and egress of a packet the flow stage forwards through `nh`, after
/// what the rewrite stage did to it (`rewritten`).
#[inline(always)]
fn forward(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    p: &Parsed,
    nh: nexthop::NextHopId,
    rewritten: Rewritten,
) -> Outcome {
    let Some(out) = tunnel::Egress::of(snap, nh) else {
        return Verdict::Drop(DropReason::NoRoute).into();
    };
    // An ICMP error about the packet quotes it as it arrived (see `nat::restore`).
    let about = (p, rewritten != Rewritten::No);
    if p.ttl <= 1 {
        return error_about(
            snap,
            iface,
            pkt,
            ctx,
            about,
            Error::TimeExceeded,
            DropReason::TtlExceeded,
        )
        .into();
    }
    let ip = &mut pkt.data_mut()[ETH_LEN..];
    match p.family {
        _ if rewritten == Rewritten::TranslatedAndAged => {}
        Family::V4 => wire::ipv4::Packet::new_unchecked(ip).decrement_ttl(),
        Family::V6 => wire::ipv6::Packet::new_unchecked(ip).set_hop_limit(p.ttl - 1),
    }
    match out {
        tunnel::Egress::Local { vif, dst_mac } => {
            if let Some(mtu) = too_big_for(snap, vif, p.ip_len) {
                return error_about(snap, iface, pkt, ctx, about, Error::TooBig(mtu), DropReason::Mtu).into();
            }
            write_eth(pkt.data_mut(), dst_mac, snap.router_mac.0, p.family.ethertype());
            Verdict::Transmit(vif).into()
        }
        tunnel::Egress::Remote(t) => {
            match tunnel::encapsulate(snap, pkt, ctx, t, p.hash, p.family == Family::V4) {
                Ok(verdict) => {
                    let sent = matches!(verdict, Verdict::Transmit(_)).then_some(TunnelUse::Sent(t.remote));
                    Outcome { verdict, tunnel: sent }
                }
                // RFC 1191 / RFC 8201: tell the sender the largest inner packet that fits.
                Err(tunnel::TooBig(fits)) => {
                    error_about(snap, iface, pkt, ctx, about, Error::TooBig(fits), DropReason::Mtu).into()
                }
            }
        }
    }
}

/// Sends a packet the vrouter originates in VRF `vrf` (an Ethernet frame of `family`,
/// such as an ICMP error for a packet from another node): routed by its destination
/// without a flow (what the router itself says is no pod's connection), out of a local
/// interface or through a tunnel. `hash` picks the ECMP member and the tunnel entropy.
#[cold]
pub(super) fn originate(
    snap: &Snapshot,
    vrf: VrfId,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    family: Family,
    hash: u64,
) -> Verdict {
    let ip = &pkt.data()[ETH_LEN..];
    let routes = snap.vrf(vrf);
    let found = match family {
        Family::V4 => {
            let dst = wire::ipv4::Packet::new_unchecked(ip).dst_addr();
            routes.and_then(|v| v.v4.lookup(v4_key(dst))).map(|(_, r)| r.nexthop)
        }
        Family::V6 => {
            let dst = wire::ipv6::Packet::new_unchecked(ip).dst_addr();
            routes.and_then(|v| v.v6.lookup(v6_key(dst))).map(|(_, r)| r.nexthop)
        }
    };
    let nh = match found.map(|id| (id, snap.nexthop(id))) {
        Some((_, Some(NextHop::Composite { id }))) => flow::ecmp_member(snap, *id, hash),
        Some((id, _)) => Some(id),
        None => None,
    };
    match nh.and_then(|nh| tunnel::Egress::of(snap, nh)) {
        Some(tunnel::Egress::Local { vif, dst_mac }) => {
            write_eth(pkt.data_mut(), dst_mac, snap.router_mac.0, family.ethertype());
            Verdict::Transmit(vif)
        }
        Some(tunnel::Egress::Remote(t)) => {
            tunnel::encapsulate(snap, pkt, ctx, t, hash, family == Family::V4).unwrap_or(Verdict::Drop(DropReason::Mtu))
        }
        None => Verdict::Drop(DropReason::NoRoute),
    }
}

/// Answers the packet `p` with an ICMP error of its family where the RFCs allow
/// one, quoting it as it arrived if the rewrite stage translated it (`translated`).
#[cold]
fn error_about(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    (p, translated): (&Parsed, bool),
    kind: Error,
    reason: DropReason,
) -> Verdict {
    if translated {
        if let Some(ip) = pkt.data_mut().get_mut(ETH_LEN..) {
            super::nat::restore(ip, p.family, &p.key);
        }
    }
    error(snap, iface, pkt, ctx, p.family, kind, reason)
}

/// Answers the packet with an ICMP error of its family where the RFCs allow one.
#[cold]
fn error(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    family: Family,
    error: Error,
    reason: DropReason,
) -> Verdict {
    use wire::icmp::{v4, v6};
    match (family, error) {
        (Family::V4, Error::TimeExceeded) => {
            send_error_v4(snap, iface, pkt, ctx, icmp::message(v4::TIME_EXCEEDED, 0), reason)
        }
        (Family::V4, Error::Unreachable) => {
            send_error_v4(snap, iface, pkt, ctx, icmp::message(v4::UNREACHABLE, 0), reason)
        }
        (Family::V4, Error::PortUnreachable) => send_error_v4(
            snap,
            iface,
            pkt,
            ctx,
            icmp::message(v4::UNREACHABLE, v4::CODE_PORT_UNREACHABLE),
            reason,
        ),
        (Family::V6, Error::PortUnreachable) => send_error_v6(
            snap,
            iface,
            pkt,
            ctx,
            icmp::message(v6::UNREACHABLE, v6::CODE_PORT_UNREACHABLE),
            reason,
        ),
        (Family::V4, Error::TooBig(mtu)) => {
            // RFC 1191: DF set gets the MTU back; without DF the packet would need
            // fragmenting for a local pod: a counted drop.
            if wire::ipv4::Packet::new_unchecked(&pkt.data()[ETH_LEN..]).dont_frag() {
                send_error_v4(snap, iface, pkt, ctx, icmp::fragmentation_needed(mtu), reason)
            } else {
                Verdict::Drop(reason)
            }
        }
        (Family::V6, Error::TimeExceeded) => {
            send_error_v6(snap, iface, pkt, ctx, icmp::message(v6::TIME_EXCEEDED, 0), reason)
        }
        (Family::V6, Error::Unreachable) => {
            send_error_v6(snap, iface, pkt, ctx, icmp::message(v6::UNREACHABLE, 0), reason)
        }
        // RFC 8201: routers never fragment IPv6; tell the sender.
        (Family::V6, Error::TooBig(mtu)) => send_error_v6(snap, iface, pkt, ctx, icmp::packet_too_big(mtu), reason),
    }
}

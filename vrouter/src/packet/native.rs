//! Packets on the fabric that are no tunnel: what outside the cluster sends to a node
//! port on the node's fabric address or to an external IP, and the replies to
//! connections that left the cluster. The steering program sends only those; here
//! they enter as if from the node's own interface (in the external service's VRF, or
//! the node interface's), and only a flow the vrouter holds or a new connection to
//! an external service port goes further: anything else on the fabric is not the
//! vrouter's to route (a packet crafted past the steering program gets no path to
//! the pods). Replies leave through the node's interface: the node's kernel routes
//! them to the client, as it routes everything of its own. An echo reply with an
//! identifier of the source NAT range that no pod's ping awaits is the node's own
//! (its ping took that identifier: identifiers cannot be reserved as ports are), and
//! is handed to the node's kernel through the node's interface, unchanged.

use super::forward::{self, Family, Outcome, Parsed};
use super::{flow, DropReason, PacketBuf, PipelineContext, Verdict, ETH_LEN};
use flow_table::FlowKey;
use nexthop::{Snapshot, VrfId};

/// Handles IPv4 frame `pkt` from the fabric that is no tunnel (`Drop` without a
/// node interface). Out of line: the tunnel path stays small.
#[cold]
#[inline(never)]
pub(super) fn handle(snap: &Snapshot, pkt: &mut PacketBuf<'_>, ctx: &mut PipelineContext) -> Outcome {
    let Some(host) = snap.host.and_then(|h| snap.interface(h.vif)) else {
        return Verdict::Drop(DropReason::FabricUnclaimed).into();
    };
    let Ok(eth) = wire::ethernet::Frame::new_checked(pkt.data()) else {
        return Verdict::Drop(DropReason::Truncated).into();
    };
    if eth.ethertype() != super::ETHERTYPE_IPV4 {
        return Verdict::Drop(DropReason::FabricUnclaimed).into();
    }
    if eth.dst_addr() != snap.fabric.mac.0 {
        return Verdict::Drop(DropReason::WrongDestMac).into();
    }
    let ip = match super::ipv4::checked(pkt.data()) {
        Ok(ip) => ip,
        Err(reason) => return Verdict::Drop(reason).into(),
    };
    let total = usize::from(ip.total_len());
    let (ttl, proto, src, dst) = (ip.ttl(), ip.protocol(), ip.src_addr(), ip.dst_addr());
    // Outside the cluster is no pod, no address of this node, nothing martian: a
    // spoofed source would plant flows that meet a pod's own.
    if snap.owner4.contains_key(&src) || Some(src) == snap.fabric.ip || control_client::is_martian(src.into()) {
        return Verdict::Drop(DropReason::SourceMismatch).into();
    }
    let (sport, mut dport, tcp_flags) = flow::l4_ports(ip.payload(), proto, ip.is_later_fragment());
    let mut key = FlowKey::v4(host.vrf.0, src, dst, proto, sport, dport);
    if ip.is_fragment() {
        // Recorded in the node interface's VRF: the destination port, which picks
        // an external service's VRF, is what a later fragment does not carry.
        key = flow::v4_fragment_key(&ctx.flows.fragments, key, &ip);
        dport = key.dst_port();
    }
    pkt.truncate(ETH_LEN + total);
    // An ICMP error about a pod's connection that left through source NAT (a
    // router's fragmentation needed, the host's port unreachable): translated as
    // its flow is, to the pod, and routed there.
    let error_for_pod = (proto == wire::ip_proto::ICMP && key.src_port() == 0 && Some(dst) == snap.fabric.ip)
        .then(|| error_to_pod(snap, ctx, host.vrf, pkt, total))
        .flatten();
    let dst = error_for_pod.unwrap_or(dst);
    let external = snap.services.external.get(&(dst.into(), proto, dport)).copied();
    let vrf = external.unwrap_or(host.vrf);
    let key = FlowKey::v4(vrf.0, src, dst, proto, key.src_port(), dport);
    let hash = key.hash();
    if error_for_pod.is_none() && !claimed(snap, ctx, &key, hash, external) {
        if proto == wire::ip_proto::ICMP && Some(dst) == snap.fabric.ip {
            return to_kernel(snap, pkt).into();
        }
        return Verdict::Drop(DropReason::FabricUnclaimed).into();
    }
    let parsed = Parsed {
        family: Family::V4,
        key,
        hash,
        ip_len: total,
        ttl,
        tcp_flags,
    };
    forward::route(snap, host, pkt, ctx, parsed)
}

/// Translates ICMP error `pkt` (IP length `total`) if it is about a source NAT
/// flow of VRF `vrf`; the pod's address it now goes to.
#[cold]
fn error_to_pod(
    snap: &Snapshot,
    ctx: &PipelineContext,
    vrf: VrfId,
    pkt: &mut PacketBuf<'_>,
    total: usize,
) -> Option<std::net::Ipv4Addr> {
    let ip = pkt.data_mut().get_mut(ETH_LEN..ETH_LEN + total)?;
    if !super::icmp_nat::translate_error(snap, &ctx.flows.table, vrf.0, ip, Family::V4) {
        return None;
    }
    let to = wire::ipv4::Packet::new_unchecked(&*ip).dst_addr();
    (Some(to) != snap.fabric.ip).then_some(to)
}

/// Hands frame `pkt` to the node's kernel through the node's interface, as it came.
fn to_kernel(snap: &Snapshot, pkt: &mut PacketBuf<'_>) -> Verdict {
    let host = snap.host.and_then(|h| super::tunnel::Egress::of(snap, h.nexthop));
    let Some(super::tunnel::Egress::Local { vif, dst_mac }) = host else {
        return Verdict::Drop(DropReason::FabricUnclaimed);
    };
    super::write_eth(pkt.data_mut(), dst_mac, snap.router_mac.0, super::ETHERTYPE_IPV4);
    Verdict::Transmit(vif)
}

/// True if the vrouter holds a flow for `key` or it is a new connection to a service
/// port reached from outside (in VRF `external`).
#[inline]
fn claimed(snap: &Snapshot, ctx: &PipelineContext, key: &FlowKey, hash: u64, external: Option<VrfId>) -> bool {
    external.is_some_and(|vrf| {
        snap.service(vrf, key.dst_addr(), key.proto(), key.dst_port())
            .is_some_and(|s| s.external)
    }) || ctx.flows.table.lookup(key, hash).is_some()
}

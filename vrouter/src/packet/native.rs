//! Packets on the fabric that are no tunnel: what outside the cluster sends to a node
//! port on the node's fabric address or to an external IP, and the replies to
//! connections that left the cluster. The steering program sends only those; here
//! they enter as if from the node's own interface (in the external service's VRF, or
//! the node interface's), and only a flow the vrouter holds or a new connection to
//! an external service port goes further: anything else on the fabric is not the
//! vrouter's to route (a packet crafted past the steering program gets no path to
//! the pods). Replies leave through the node's interface: the node's kernel routes
//! them to the client, as it routes everything of its own.

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
        key = flow::fragment_key(&ctx.flows.fragments, key, &ip);
        dport = key.dst_port();
    }
    pkt.truncate(ETH_LEN + total);
    let external = snap.services.external.get(&(dst.into(), proto, dport)).copied();
    let vrf = external.unwrap_or(host.vrf);
    let key = FlowKey::v4(vrf.0, src, dst, proto, key.src_port(), dport);
    let hash = key.hash();
    if !claimed(snap, ctx, &key, hash, external) {
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

/// True if the vrouter holds a flow for `key` or it is a new connection to a service
/// port reached from outside (in VRF `external`).
#[inline]
fn claimed(snap: &Snapshot, ctx: &PipelineContext, key: &FlowKey, hash: u64, external: Option<VrfId>) -> bool {
    external.is_some_and(|vrf| {
        snap.service(vrf, key.dst_addr(), key.proto(), key.dst_port())
            .is_some_and(|s| s.external)
    }) || ctx.flows.table.lookup(key, hash).is_some()
}

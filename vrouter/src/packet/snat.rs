//! Fabric source NAT on the packet path (see [`nexthop::Snat`]): a pod's new TCP or
//! UDP connection, or ping (ICMP echo, its identifier as the port), to an address
//! nothing in its VRF routes leaves through the node's interface from the node's
//! fabric address and a port (identifier) of the protocol's range; the reply arrives
//! on the fabric (the steering program sends the ranges to the vrouter) and takes
//! the reverse entry back to the pod.
//!
//! The port is the first free one from a point the flow's hash picks, free meaning
//! that no flow holds the reply's key (destination, fabric address, port): ports are
//! reused per destination, and a port goes back to the range when its flow is
//! removed (aged or closed). Two workers that pick the same port for two connections
//! to one destination in the same instant collide in the table: the loser's entry,
//! left without its reverse, is removed and it tries the next port.

use super::flow::{self, Decision};
use super::{DropReason, PipelineContext};
use crate::flows::{FlowAction, FLAG_NAT};
use flow_table::{FlowKey, FlowValue, Insert};
use nexthop::{Interface, InterfaceKind, Nat, NatSide, NatTarget, NatWord, RouteSlot, Snapshot};
use std::net::IpAddr;

/// How many ports a new connection tries before it is refused as exhausted.
const PROBES: u32 = 64;

/// The fabric source NAT that applies to a new flow `key` from `iface` that nothing
/// routes: a pod's TCP, UDP or ICMP echo over IPv4 in the NAT's VRF, with the node's
/// interface. (An ICMP key without ports is no echo: an error, not translated here;
/// an echo with identifier 0, which ping never sends, is taken for one.)
#[inline]
pub(super) fn applies<'s>(snap: &'s Snapshot, iface: &Interface, key: &FlowKey) -> Option<&'s nexthop::Snat> {
    let snat = snap.snat.as_ref()?;
    let echo_or_port = key.proto() != wire::ip_proto::ICMP || key.src_port() != 0;
    let ours = iface.kind == InterfaceKind::Pod && key.vrf() == snat.vrf.0 && key.family() == 4 && echo_or_port;
    (ours && snat.range(key.proto()).is_some() && snap.host.is_some()).then_some(snat)
}

/// A pod's connection leaving the cluster: a port is taken and the pair installed
/// translated (out through the node's interface; the reply back to the pod). `slot`
/// is the slot of the missing route (the decision holds until a route comes).
#[cold]
#[inline(never)]
pub(super) fn setup(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    slot: RouteSlot,
    bytes: u32,
    tracked: u8,
) -> Decision {
    let (Some(snat), Some(host)) = (applies(snap, iface, key), snap.host) else {
        return Decision::NoRoute;
    };
    let (IpAddr::V4(pod), IpAddr::V4(remote)) = (key.src_addr(), key.dst_addr()) else {
        return Decision::NoRoute;
    };
    let Some(range) = snat.range(key.proto()) else {
        return Decision::NoRoute;
    };
    // Egress policy (ipBlock rules name addresses outside the cluster); a denied
    // connection takes no port and is not cached.
    let now = ctx.flows.table.now();
    if !snap.policies.is_empty() && super::policy::denies(snap, &mut ctx.deny_log, now, key, key) {
        return Decision::Drop(DropReason::Policy);
    }
    // The reply goes to the pod: its route now, as the reverse entry's.
    let (back, back_slot) = flow::resolve(snap, &mut ctx.routes, &key.reversed());
    let Some(back) = flow::cacheable(back) else {
        return Decision::NoRoute;
    };
    let (vrf, proto) = (key.vrf(), key.proto());
    let generation = snap.generation as u32;
    let value = |a: FlowAction, slot: RouteSlot, rev: bool| FlowValue {
        data: a.encode(slot, rev) | FLAG_NAT,
        generation,
        owner: iface.vif.0,
    };
    let reply = Nat {
        side: NatSide::FabricBack,
        target: NatTarget::V4(pod),
        port: key.src_port(),
    };
    let start = (key.hash() % u64::from(range.len())) as u32;
    for probe in 0..PROBES.min(range.len()) {
        let port = range.first + ((start + probe) % range.len()) as u16;
        // An echo's key has its identifier as both ports (the reply carries it too).
        let remote_port = if proto == wire::ip_proto::ICMP {
            port
        } else {
            key.dst_port()
        };
        let reverse = FlowKey::v4(vrf, remote, snat.addr, proto, remote_port, port);
        if ctx.flows.table.lookup(&reverse, reverse.hash()).is_some() {
            continue;
        }
        if !ctx.flows.reserve_for(iface) {
            return Decision::Drop(DropReason::FlowLimit);
        }
        let nat = Nat {
            side: NatSide::FabricSource,
            target: NatTarget::V4(snat.addr),
            port,
        };
        let inserted = ctx.flows.table.insert_pair_transformed(
            (key, value(FlowAction::Forward(host.nexthop), slot, false)),
            (&reverse, value(back, back_slot, true)),
            (nat.encode(), reply.encode()),
        );
        match inserted {
            // Its reply key was taken meanwhile: the entry stands alone; next port.
            Insert::Alone(f) => {
                ctx.flows.table.remove(&f);
                ctx.flows.unreserve(iface.vif);
            }
            other => {
                let decision = Decision::ForwardNat(host.nexthop, NatWord::of(nat));
                return flow::installed(ctx, iface, other, decision, bytes, tracked);
            }
        }
    }
    ctx.flows
        .snat_exhausted
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Decision::Drop(DropReason::SnatExhausted)
}

/// The key the reply of a fabric source NAT flow (reverse entry `key`, translation
/// `back`) is routed by: to the pod.
pub(super) fn reply_route(key: &FlowKey, back: Nat) -> Option<FlowKey> {
    let (IpAddr::V4(remote), NatTarget::V4(pod)) = (key.src_addr(), back.target) else {
        return None;
    };
    let remote_port = if key.proto() == wire::ip_proto::ICMP {
        back.port
    } else {
        key.src_port()
    };
    Some(FlowKey::v4(key.vrf(), remote, pod, key.proto(), remote_port, back.port))
}

/// A fabric source NAT flow (forward entry `f`, translation `nat`) after a change:
/// it keeps its port while nothing in its VRF routes its destination, and is set up
/// anew (routed, or refused) when something does.
#[allow(clippy::too_many_arguments)]
pub(super) fn decide_again(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    f: flow_table::FlowRef,
    nat: Nat,
    bytes: u32,
    tracked: u8,
) -> Decision {
    let (route, slot) = flow::resolve(snap, &mut ctx.routes, key);
    let allowed = snap.policies.is_empty() || super::policy::verdict(snap, key, key).allowed();
    match snap.host {
        Some(host) if allowed && route == Decision::NoRoute && applies(snap, iface, key).is_some() => {
            let value = FlowValue {
                data: FlowAction::Forward(host.nexthop).encode(slot, false) | FLAG_NAT,
                generation: snap.generation as u32,
                ..f.value
            };
            ctx.flows.table.update(&f, value);
            Decision::ForwardNat(host.nexthop, NatWord::of(nat))
        }
        _ => {
            ctx.flows.remove_pair(&f);
            flow::setup(snap, ctx, iface, key, bytes, tracked)
        }
    }
}

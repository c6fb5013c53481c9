//! The setup of a translated flow (to a service: a backend chosen, both directions
//! installed translated; from a pod with a floating IP to a service of another VRF:
//! both ends translated), and its decision made again after a change: a connection
//! keeps its backend while its service lists it.

use super::flow::{self, Decision};
use super::nat::linked_pair;
use super::{DropReason, PipelineContext};
use crate::flows::{FlowAction, FLAG_NAT};
use flow_table::{FlowKey, FlowRef, FlowTable, FlowValue, Insert};
use nexthop::{Interface, Nat, NatSide, NatTarget, NatWord, RouteSlot, ServiceEntry, Snapshot};
use std::net::IpAddr;

/// Where a translated flow goes (to a service, or through a floating IP).
pub(super) struct Target {
    /// The forward entry's translation.
    pub(super) nat: Nat,
    /// The key its route is looked up by (the translated packet's, in the VRF it is
    /// routed in).
    pub(super) route: FlowKey,
    /// The reverse entry's key: the reply as its sender sends it.
    pub(super) reverse: FlowKey,
    /// The key the reply's route is looked up by (the client as destination).
    pub(super) reverse_route: FlowKey,
    /// The reverse entry's translation.
    pub(super) reply: Nat,
}

/// Where a flow to `service` goes: to `backend`, with the translations both ways and
/// the keys. A client that is its own backend is a
/// hairpin: the addresses swap. `None` without backends.
fn target(snap: &Snapshot, key: &FlowKey, service: &ServiceEntry, backend: nexthop::NatAddr) -> Option<Target> {
    let service_ip = service.ip?;
    let (sport, port, vrf, proto) = (key.src_port(), service.target_port, key.vrf(), key.proto());
    let (client, service_addr) = (key.src_addr(), key.dst_addr());
    let backend_addr = snap.nat_address(backend)?;
    if let Some(e) = snap.floating.get(nexthop::VrfId(vrf), backend_addr) {
        let service_target = match service_addr {
            IpAddr::V4(svc) => NatTarget::V4(svc),
            IpAddr::V6(_) => NatTarget::V6(service_ip),
        };
        return through_floating(key, e, port, service_target);
    }
    let (route, target, service_target) = match (client, backend_addr, service_addr) {
        (IpAddr::V4(src), IpAddr::V4(to), IpAddr::V4(svc)) => (
            FlowKey::v4(vrf, src, to, proto, sport, port),
            NatTarget::V4(to),
            NatTarget::V4(svc),
        ),
        (IpAddr::V6(src), IpAddr::V6(to), IpAddr::V6(_)) => (
            FlowKey::v6(vrf, src, to, proto, sport, port),
            NatTarget::V6(backend),
            NatTarget::V6(service_ip),
        ),
        _ => return None,
    };
    if backend_addr == client {
        // The reply comes from the pod (its target port) to the service's address.
        let reverse = match (client, service_addr) {
            (IpAddr::V4(c), IpAddr::V4(s)) => FlowKey::v4(vrf, c, s, proto, port, sport),
            (IpAddr::V6(c), IpAddr::V6(s)) => FlowKey::v6(vrf, c, s, proto, port, sport),
            _ => return None,
        };
        return Some(Target {
            nat: Nat {
                side: NatSide::HairpinOut,
                target: service_target,
                port,
            },
            route,
            reverse,
            reverse_route: key.reversed(),
            reply: Nat {
                side: NatSide::HairpinBack,
                target: service_target,
                port: key.dst_port(),
            },
        });
    }
    Some(Target {
        nat: Nat {
            side: NatSide::Destination,
            target,
            port,
        },
        route,
        reverse: route.reversed(),
        reverse_route: route.reversed(),
        reply: Nat {
            side: NatSide::Source,
            target: service_target,
            port: key.dst_port(),
        },
    })
}

/// A backend named by a floating address of the service's VRF (an isolated
/// namespace's pod, which the cluster network reaches only through its services):
/// the connection goes straight to the pod, routed in the pod's VRF, and its
/// replies come back from the service's address (`service_target`).
fn through_floating(key: &FlowKey, e: &nexthop::FloatingEntry, port: u16, service_target: NatTarget) -> Option<Target> {
    let (vrf, proto, sport) = (e.pod_vrf.0, key.proto(), key.src_port());
    let route = match (key.src_addr(), e.pod) {
        (IpAddr::V4(c), IpAddr::V4(p)) => FlowKey::v4(vrf, c, p, proto, sport, port),
        (IpAddr::V6(c), IpAddr::V6(p)) => FlowKey::v6(vrf, c, p, proto, sport, port),
        _ => return None,
    };
    Some(Target {
        nat: Nat {
            side: NatSide::Destination,
            target: e.pod_target,
            port,
        },
        route,
        reverse: route.reversed(),
        reverse_route: key.reversed(),
        reply: Nat {
            side: NatSide::Source,
            target: service_target,
            port: key.dst_port(),
        },
    })
}

/// The route key of a flow to `service` that `kept` translated, if the service still
/// has that backend on that target port: a connection stays on its backend whatever
/// else changed (a backend added takes new connections only). `None` sends the flow
/// to be set up anew (its backend is gone: the next packet goes to another).
fn kept_backend_route(snap: &Snapshot, key: &FlowKey, service: &ServiceEntry, kept: Nat) -> Option<FlowKey> {
    let backend = match kept.side {
        NatSide::Destination => snap.nat_target(kept.target)?,
        NatSide::HairpinOut => key.src_addr(),
        _ => return None,
    };
    backend_route(snap, key, service, backend, kept.port)
}

/// The route key of `key` (a flow to `service`, in the service's VRF) to `backend`
/// on `port`, if the service still lists that backend on that target port.
fn backend_route(
    snap: &Snapshot,
    key: &FlowKey,
    service: &ServiceEntry,
    backend: IpAddr,
    port: u16,
) -> Option<FlowKey> {
    // The backend as the service lists it: its own address (routed in the service's
    // VRF), or a floating address of that VRF standing for it (routed in its pod's).
    let service_vrf = nexthop::VrfId(key.vrf());
    let listed = service
        .backends
        .iter()
        .filter_map(|b| snap.nat_address(*b))
        .find_map(|a| match snap.floating.get(service_vrf, a) {
            Some(e) if e.pod == backend => Some(e.pod_vrf),
            // A floating address that became local since: set up anew, to the pod.
            Some(_) => None,
            None if a == backend => Some(service_vrf),
            None => None,
        });
    let vrf = match listed {
        Some(vrf) if port == service.target_port => vrf.0,
        _ => return None,
    };
    let (proto, sport) = (key.proto(), key.src_port());
    match (key.src_addr(), backend) {
        (IpAddr::V4(src), IpAddr::V4(to)) => Some(FlowKey::v4(vrf, src, to, proto, sport, port)),
        (IpAddr::V6(src), IpAddr::V6(to)) => Some(FlowKey::v6(vrf, src, to, proto, sport, port)),
        _ => None,
    }
}

/// The route key of forward entry `f` (`key`, from a pod with a floating IP to a
/// service of another VRF, translated at both ends) while the floating IP stands and
/// the service still lists its backend: the key its pair entry answers, turned round.
fn kept_both_route(
    snap: &Snapshot,
    table: &FlowTable,
    iface: &Interface,
    key: &FlowKey,
    f: &FlowRef,
) -> Option<FlowKey> {
    let route = linked_pair(table, f)?.key.reversed();
    let (floating, service) = super::floating::service_elsewhere(snap, iface, key)?;
    let as_floating = super::floating::rekeyed(key, floating.vrf, floating.address, key.dst_addr())?;
    (backend_route(snap, &as_floating, service, route.dst_addr(), route.dst_port()) == Some(route)).then_some(route)
}

/// The route key of forward entry `key` translated as `kept` (to a service's
/// backend) while the service still has that backend: the service of the key's VRF,
/// or (a pod with a floating IP reaching a backend in its own VRF) the service of
/// the floating address's VRF.
fn kept_route(snap: &Snapshot, iface: &Interface, key: &FlowKey, kept: Nat) -> Option<FlowKey> {
    if let Some(service) = flow::service_of(snap, key) {
        return kept_backend_route(snap, key, service, kept);
    }
    let (floating, service) = super::floating::service_elsewhere(snap, iface, key)?;
    let as_pod = super::floating::rekeyed(key, floating.vrf, key.src_addr(), key.dst_addr())?;
    kept_backend_route(snap, &as_pod, service, kept).filter(|route| route.vrf() == key.vrf())
}

/// The backend a new flow to `service` goes to: with client-address affinity the
/// client's recent choice; else placed by the flow's own hash.
fn chosen_backend(ctx: &mut PipelineContext, key: &FlowKey, service: &ServiceEntry) -> Option<nexthop::NatAddr> {
    if service.affinity_timeout_secs != 0 {
        ctx.flows.affinity.backend(key, service)
    } else {
        service.backend(key.hash())
    }
}

/// A new flow to a service: a backend is chosen, the flow is routed to it and
/// installed translated both ways (its replies come back from the service's address
/// and port). Without backends: refused (ICMP port unreachable), not cached.
pub(super) fn setup(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    service: &ServiceEntry,
    bytes: u32,
    tracked: u8,
) -> Decision {
    let Some(t) = chosen_backend(ctx, key, service).and_then(|b| target(snap, key, service, b)) else {
        return Decision::Reject(DropReason::ServiceNoBackend);
    };
    setup_translated(snap, ctx, iface, key, t, bytes, tracked)
}

/// A new flow from a pod with a floating IP to a service of the floating address's
/// VRF (the seed's rule d: an isolated namespace's pods reach every service): a
/// backend is chosen as for any client; a backend in the pod's own VRF is reached
/// from the pod's address (only the destination translated), any other from the
/// floating address (both ends translated). The floating entry and the service come
/// as one pair, as the lookup found them.
pub(super) fn setup_from_floating(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    (floating, service): (&nexthop::FloatingEntry, &ServiceEntry),
    bytes: u32,
    tracked: u8,
) -> Decision {
    let Some(t) = chosen_backend(ctx, key, service).and_then(|b| from_floating(snap, key, floating, service, b)) else {
        return Decision::Reject(DropReason::ServiceNoBackend);
    };
    setup_translated(snap, ctx, iface, key, t, bytes, tracked)
}

/// The translation of [`setup_from_floating`]'s flow to `backend`.
fn from_floating(
    snap: &Snapshot,
    key: &FlowKey,
    floating: &nexthop::FloatingEntry,
    service: &ServiceEntry,
    backend: nexthop::NatAddr,
) -> Option<Target> {
    let as_pod = super::floating::rekeyed(key, floating.vrf, key.src_addr(), key.dst_addr())?;
    let t = target(snap, &as_pod, service, backend)?;
    if t.route.vrf() == key.vrf() {
        // The pod's own network (its namespace's service): replies come back to it
        // in its VRF.
        return Some(Target {
            reverse_route: key.reversed(),
            ..t
        });
    }
    let as_floating = super::floating::rekeyed(key, floating.vrf, floating.address, key.dst_addr())?;
    let t = target(snap, &as_floating, service, backend)?;
    let both = Nat {
        side: NatSide::Both,
        target: NatTarget::Pair(u32::MAX),
        port: 0,
    };
    Some(Target {
        nat: both,
        route: t.route,
        reverse: t.reverse,
        reverse_route: key.reversed(),
        reply: both,
    })
}

/// A new translated flow: routed as `t` says and installed translated both ways.
pub(super) fn setup_translated(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    t: Target,
    bytes: u32,
    tracked: u8,
) -> Decision {
    let PipelineContext {
        flows,
        routes,
        deny_log,
        ..
    } = ctx;
    let (route, slot) = flow::resolve(snap, routes, &t.route);
    let Decision::Forward(nh) = route else {
        // No route to the backend (or it is dropped): as routing says, not cached.
        return route;
    };
    if !flows.reserve_for(iface) {
        return Decision::Drop(DropReason::FlowLimit);
    }
    // A pod reaching itself through its service (a hairpin) is always allowed.
    let hairpin = t.nat.side == NatSide::HairpinOut;
    if !hairpin && !snap.policies.is_empty() && super::policy::denies(snap, deny_log, flows.table.now(), key, &t.route)
    {
        // Cached as an untranslated drop, both ways: when policies change, the flow
        // to the service is set up anew (see `decide_again`).
        let value = |rev: bool| FlowValue {
            data: FlowAction::Drop(DropReason::Policy).encode(slot, rev),
            generation: snap.generation as u32,
            owner: iface.vif.0,
        };
        let inserted = flows.table.insert_pair((key, value(false)), (&t.reverse, value(true)));
        return flow::installed(ctx, iface, inserted, Decision::Drop(DropReason::Policy), bytes, tracked);
    }
    // Replies: from the backend to the client, translated back to the service.
    let (reverse_route, reverse_slot) = flow::resolve(snap, routes, &t.reverse_route);
    let reverse_route = flow::or_host(snap, iface.vif, reverse_route);
    let reverse_action = flow::cacheable(reverse_route).unwrap_or(FlowAction::Drop(DropReason::NoRoute));
    let generation = snap.generation as u32;
    let value = |a: FlowAction, slot: RouteSlot, rev: bool| FlowValue {
        data: a.encode(slot, rev) | FLAG_NAT,
        generation,
        owner: iface.vif.0,
    };
    let insert = || {
        flows.table.insert_pair_transformed(
            (key, value(FlowAction::Forward(nh), slot, false)),
            (&t.reverse, value(reverse_action, reverse_slot, true)),
            (t.nat.encode(), t.reply.encode()),
        )
    };
    // Another entry holds the reply's key (found by the insert's own probe: the
    // flows that clash with nothing pay no lookup more). The entry standing alone is
    // taken back; the holder gives the key way if it is over, and the insert is
    // tried again (a bounded number of times: other workers may take the key
    // meanwhile); else the new connection is refused out loud (port unreachable),
    // so that the client fails at once and retries from another port.
    let mut inserted = insert();
    let mut tries = NAT_CLASH_TRIES;
    while let Insert::Alone(alone) = inserted {
        flows.table.remove(&alone);
        tries -= 1;
        let freed = tries > 0
            && flows
                .table
                .lookup(&t.reverse, t.reverse.hash())
                .is_none_or(|holder| reply_key_given_way(flows, &holder, key));
        if !freed {
            flows.unreserve(iface.vif);
            flows.nat_clashes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Decision::Reject(DropReason::NatClash);
        }
        inserted = insert();
    }
    flow::installed(
        ctx,
        iface,
        inserted,
        Decision::ForwardNat(nh, NatWord::of(t.nat)),
        bytes,
        tracked,
    )
}

/// How many times a new translated connection's insert is tried while other
/// entries take its reply key (each time the holder gave way).
const NAT_CLASH_TRIES: u32 = 3;

/// How long a datagram flow (UDP, ICMP) holding a new flow's reply key must have
/// been idle, both ways, to give it up: its exchange is over (a DNS answer comes in
/// milliseconds), though its entries wait for the idle timeout.
const DATAGRAM_GIVES_WAY_SECS: u32 = 2;

/// The key a new flow's replies need (`found` has it) is free to take: it is this
/// very flow's (another worker set it up this instant: the insert finds it), or what
/// holds it is over: a closed TCP connection (FIN both ways or a reset, which the
/// client's reused port replaces), a datagram flow idle for
/// [`DATAGRAM_GIVES_WAY_SECS`], an entry whose pair is gone, or a cached drop (a
/// policy's, which translates nothing). Its entries are removed now. False for a
/// live connection's: the new flow must not take its replies.
fn reply_key_given_way(flows: &crate::flows::Flows, found: &FlowRef, key: &FlowKey) -> bool {
    let table = &flows.table;
    // Read whole: a lookup's copy leaves out the owner, whose reservation a removal
    // gives back. Changed meanwhile: removed or replaced, look again.
    let Some(holder) = table.get(found.index).filter(|h| h.version == found.version) else {
        return table.lookup(&found.key, found.key.hash()).is_none();
    };
    let pair = linked_pair(table, &holder);
    if pair.is_some_and(|p| p.key == *key) {
        return true;
    }
    let (these, those) = (
        table.activity(holder.index),
        pair.map(|p| table.activity(p.index)).unwrap_or_default(),
    );
    let over = if holder.key.proto() == wire::ip_proto::TCP {
        crate::flows::tcp_closed(these.tcp_flags, those.tcp_flags)
    } else {
        table.now().saturating_sub(these.last_seen.max(those.last_seen)) >= DATAGRAM_GIVES_WAY_SECS
    };
    let dropped = matches!(FlowAction::decode(holder.value.data), Some(FlowAction::Drop(_)));
    if !(over || pair.is_none() || dropped) {
        return false;
    }
    // A pair goes through its forward entry (which holds its interface's
    // reservation); an orphaned reply entry alone.
    match (pair, FlowAction::is_reverse(holder.value.data)) {
        (Some(forward), true) => flows.remove_pair(&forward),
        (None, true) => table.remove(&holder),
        (_, false) => flows.remove_pair(&holder),
    };
    table.lookup(&holder.key, holder.key.hash()).is_none()
}

/// A translated flow (or one a service now claims) whose decision no longer holds:
/// a flow to a service keeps its backend while the service still has it, backends
/// added or not (its route to it made again), and starts over otherwise (removed, the next packet sets it up anew:
/// another backend, or a refusal); a reply entry keeps its translation, its route to
/// the client made again.
pub(super) fn decide_again(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    f: FlowRef,
    bytes: u32,
    tracked: u8,
) -> Decision {
    let table = &ctx.flows.table;
    let kept = Nat::decode(table.transform(f.index));
    let reverse = FlowAction::is_reverse(f.value.data);
    let both = kept.is_some_and(|n| n.side == NatSide::Both);
    if !reverse && !both && kept.is_some_and(|n| n.side.is_floating()) {
        // A flow through a floating IP is set up anew from its first end: the same
        // translation while the floating IP stands and routes the same way.
        ctx.flows.remove_pair(&f);
        return flow::setup(snap, ctx, iface, key, bytes, tracked);
    }
    let generation = snap.generation as u32;
    let (route, slot, nat) = if reverse {
        // A hairpin's reply goes to the pod it came from (the key's source); a
        // floating reply is routed in the other VRF, as long as its floating IP
        // stands (else the pair starts over).
        let hairpin = kept.is_some_and(|n| n.side == NatSide::HairpinBack);
        let fabric_back = kept.filter(|n| n.side == NatSide::FabricBack);
        let to_client = match kept.filter(|n| n.side.is_floating() && !both) {
            // Both ends': the reply goes back as its pair came, turned round (in the
            // pod's VRF, from the service's address); a pair gone starts over.
            None if both => match linked_pair(&ctx.flows.table, &f) {
                Some(forward) => forward.key.reversed(),
                None => {
                    ctx.flows.remove_pair(&f);
                    return Decision::Drop(DropReason::NoRoute);
                }
            },
            // Fabric source NAT's reply goes to the pod it translates to.
            None if fabric_back.is_some() => match fabric_back.map(|n| super::snat::reply_route(key, n)) {
                Some(Some(route_key)) => route_key,
                _ => return Decision::NoRoute,
            },
            Some(nat) => match super::floating::reply_route(snap, iface, key, nat) {
                Some(route_key) => route_key,
                None => {
                    ctx.flows.remove_pair(&f);
                    return flow::setup(snap, ctx, iface, key, bytes, tracked);
                }
            },
            None if hairpin => key.reversed(),
            // A reply in another VRF than its connection's (a service backend behind
            // a floating address answers in its own VRF): routed in the client's,
            // the VRF of the pair's forward entry.
            // (Only a forward entry still linked to this one is its pair: a slot
            // reused by another flow must not lend its VRF.)
            None => match linked_pair(&ctx.flows.table, &f) {
                Some(forward) if forward.key.vrf() != key.vrf() => {
                    let vrf = nexthop::VrfId(forward.key.vrf());
                    super::floating::rekeyed(key, vrf, key.src_addr(), key.dst_addr()).unwrap_or(*key)
                }
                _ => *key,
            },
        };
        let (route, slot) = flow::resolve(snap, &mut ctx.routes, &to_client);
        // The connection as its client opened it, for policy: as sent, the route to
        // the client turned round; as delivered, this entry's key turned round (a
        // hairpin is a pod reaching itself: always allowed).
        let denied = !hairpin
            && !snap.policies.is_empty()
            && !super::policy::verdict(snap, &to_client.reversed(), &key.reversed()).allowed();
        if denied {
            store(table, &f, FlowAction::Drop(DropReason::Policy), slot, generation);
            return Decision::Drop(DropReason::Policy);
        }
        (flow::or_host(snap, nexthop::Vif(f.value.owner), route), slot, kept)
    } else if let Some(nat) = kept.filter(|n| n.side == NatSide::FabricSource) {
        return super::snat::decide_again(snap, ctx, iface, key, f, nat, bytes, tracked);
    } else {
        let kept_route = match kept.filter(|_| FlowAction::is_translated(f.value.data)) {
            Some(_) if both => kept_both_route(snap, table, iface, key, &f),
            Some(nat) => kept_route(snap, iface, key, nat),
            None => None,
        };
        match kept_route {
            // A policy change that now denies it: set up anew, as a drop.
            Some(route_key)
                if !snap.policies.is_empty()
                    && kept.is_some_and(|n| n.side != NatSide::HairpinOut)
                    && super::policy::verdict(snap, key, &route_key).denied_by().is_some() =>
            {
                ctx.flows.remove_pair(&f);
                return flow::setup(snap, ctx, iface, key, bytes, tracked);
            }
            Some(route_key) => {
                let (route, slot) = flow::resolve(snap, &mut ctx.routes, &route_key);
                (route, slot, kept)
            }
            None => {
                ctx.flows.remove_pair(&f);
                return flow::setup(snap, ctx, iface, key, bytes, tracked);
            }
        }
    };
    match (route, nat) {
        (Decision::Forward(nh), Some(_)) => {
            store(table, &f, FlowAction::Forward(nh), slot, generation);
            super::nat::cached(&ctx.flows.table, &f, FlowAction::Forward(nh))
        }
        _ => route,
    }
}

/// Stores `action` as translated entry `f`'s decision, made in `generation` from the
/// route in `slot` (the entry keeps its direction and translation).
fn store(table: &flow_table::FlowTable, f: &FlowRef, action: FlowAction, slot: RouteSlot, generation: u32) {
    let data = action.encode(slot, FlowAction::is_reverse(f.value.data)) | FLAG_NAT;
    table.update(
        f,
        FlowValue {
            data,
            generation,
            ..f.value
        },
    );
}

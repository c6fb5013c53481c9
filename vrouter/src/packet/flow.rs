//! Flow lookup and inline flow setup for routed packets.
//!
//! A hit whose decision still holds (made in this generation, or since then no
//! publication changed the route that decided it: [`Snapshot::decision_holds`]) reuses
//! the cached decision; any other hit is re-evaluated and updated in place; a miss
//! resolves the route once, in both directions, and installs the linked pair on this
//! worker (no trap to a slow path, no hold queue).

use super::route_cache::{RouteCache, RouteLookup};
use super::{DropReason, PipelineContext};
use crate::flows::{FlowAction, Flows, TCP_FIN, TCP_RST, TCP_SYN};
use flow_table::{FlowKey, FlowValue, Insert};
use nexthop::{Interface, NatWord, NextHop, NextHopId, RouteSlot, Snapshot};
use std::net::IpAddr;
use wire::{icmp, ip_proto, tcp, udp};

/// What routing decided for a packet (two words: returned in registers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Decision {
    /// Through this next hop (an interface next hop).
    Forward(NextHopId),
    /// Translated, then through this next hop (a flow to a service, or its reply).
    ForwardNat(NextHopId, NatWord),
    /// Refused with an ICMP port unreachable, counted under the reason (a service
    /// without backends); not cached.
    Reject(DropReason),
    /// For the vrouter itself.
    Local,
    /// Nothing routes it: the caller sends an ICMP error (not cached as a flow).
    NoRoute,
    /// Dropped for this reason (cached as a drop flow).
    Drop(DropReason),
}

/// Resolves the route of a flow key's destination in its VRF; also returns the route
/// slot whose stamp says how long the decision holds.
pub(super) fn resolve(snap: &Snapshot, routes: &mut RouteCache, key: &FlowKey) -> (Decision, RouteSlot) {
    let route = match routes.lookup(snap, key) {
        RouteLookup::Found(route) => route,
        RouteLookup::OtherVrf(slot) => return (Decision::Drop(DropReason::OtherVrf), slot),
        RouteLookup::Missing(slot) => return (Decision::NoRoute, slot),
    };
    (through(snap, route.nexthop, key), route.slot)
}

/// The decision for a flow whose route names next hop `id`.
fn through(snap: &Snapshot, id: NextHopId, key: &FlowKey) -> Decision {
    match snap.nexthop(id) {
        Some(NextHop::Interface { .. } | NextHop::Tunnel { .. }) => Decision::Forward(id),
        // The member is chosen once per flow (and again only when the forwarding state
        // changes), by rendezvous hashing: removing a member moves only its flows.
        Some(NextHop::Composite { id }) => match ecmp_member(snap, *id, key.hash()) {
            Some(member) => Decision::Forward(member),
            None => Decision::Drop(DropReason::Discard),
        },
        Some(NextHop::Receive) => Decision::Local,
        Some(NextHop::Discard) => Decision::Drop(DropReason::Discard),
        None => Decision::NoRoute,
    }
}

/// The member of composite (ECMP group) `id` a flow with hash `hash` goes to.
#[inline]
pub(super) fn ecmp_member(snap: &Snapshot, id: u32, hash: u64) -> Option<NextHopId> {
    let group = snap.composites.get(id as usize)?;
    nexthop::ecmp::select(&group.ids, hash).map(|i| group.members[i])
}

/// `route`, or for the reply of a flow that came in through the node's own
/// interface (`owner`: from the node's kernel, or from outside the cluster) back
/// through that interface, whatever the VRF routes: the node's kernel knows the way
/// (a default route in the VRF, to an SDN gateway, must not take a node port's reply).
#[inline]
pub(super) fn or_host(snap: &Snapshot, owner: nexthop::Vif, route: Decision) -> Decision {
    match snap.host {
        Some(h) if h.vif == owner => Decision::Forward(h.nexthop),
        _ => route,
    }
}

pub(super) fn cacheable(route: Decision) -> Option<FlowAction> {
    match route {
        Decision::Forward(nh) => Some(FlowAction::Forward(nh)),
        Decision::Drop(r) => Some(FlowAction::Drop(r)),
        Decision::ForwardNat(..) | Decision::Reject(_) | Decision::Local | Decision::NoRoute => None,
    }
}

pub(super) fn from_action(action: FlowAction) -> Decision {
    match action {
        FlowAction::Forward(nh) => Decision::Forward(nh),
        FlowAction::Drop(r) => Decision::Drop(r),
    }
}

/// Ports (or ICMP echo identifier twice, so replies match the reverse key) and TCP
/// flags of the transport header `l4` of protocol `proto`; zeros when there is none
/// (too short, another protocol) or the packet is a later fragment.
#[inline(always)]
pub(super) fn l4_ports(l4: &[u8], proto: u8, later_fragment: bool) -> (u16, u16, u8) {
    if later_fragment {
        return (0, 0, 0);
    }
    match proto {
        ip_proto::TCP => tcp::Packet::new_checked(l4).map_or((0, 0, 0), |t| (t.src_port(), t.dst_port(), t.flags())),
        ip_proto::UDP => udp::Packet::new_checked(l4).map_or((0, 0, 0), |u| (u.src_port(), u.dst_port(), 0)),
        ip_proto::SCTP => wire::sctp::Packet::new_checked(l4).map_or((0, 0, 0), |s| (s.src_port(), s.dst_port(), 0)),
        ip_proto::ICMP | ip_proto::ICMPV6 => match icmp::Packet::new_checked(l4) {
            Ok(m) if m.is_echo(proto == ip_proto::ICMPV6) => (m.echo_ident(), m.echo_ident(), 0),
            _ => (0, 0, 0),
        },
        _ => (0, 0, 0),
    }
}

/// The flow key of a fragment of datagram `ident` (IPv4's identification, or IPv6's
/// fragment header's) whose fragments all carry protocol `proto` (IPv4's; IPv6's
/// fragment header's next header), from `key` as its own headers give it (a later
/// fragment's has no ports): a first fragment's transport protocol and ports are
/// recorded for the fragments after it, and a later fragment takes them, so that
/// every fragment of a datagram is decided by its flow (see [`crate::fragments`]).
/// Datagrams of protocols without ports pass unchanged.
#[cold]
#[inline(never)]
pub(super) fn fragment_key(
    frags: &crate::fragments::Fragments,
    key: FlowKey,
    proto: u8,
    ident: u32,
    later: bool,
) -> FlowKey {
    let with_ports = |p: u8| {
        matches!(
            p,
            ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP | ip_proto::ICMP | ip_proto::ICMPV6
        )
    };
    // (An IPv6 extension header after the fragment header: the first fragment says
    // what follows it.)
    let v6_options_follow = key.family() == 6 && wire::ipv6_ext::is_extension(proto);
    if !with_ports(proto) && !v6_options_follow {
        return key;
    }
    let datagram = crate::fragments::Datagram {
        vrf: key.vrf(),
        src: key.src_addr(),
        dst: key.dst_addr(),
        proto,
        ident,
    };
    let ports = (key.src_port(), key.dst_port());
    if !later {
        // An ICMP error (no identifier) has no ports to hand on.
        if with_ports(key.proto()) && ports != (0, 0) {
            frags.record(&datagram, key.proto(), ports);
        }
        return key;
    }
    match frags.follow(&datagram) {
        Some((upper, sport, dport)) => match (datagram.src, datagram.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => FlowKey::v4(key.vrf(), s, d, upper, sport, dport),
            (IpAddr::V6(s), IpAddr::V6(d)) => FlowKey::v6(key.vrf(), s, d, upper, sport, dport),
            _ => key,
        },
        None => key,
    }
}

/// [`fragment_key`] of IPv4 fragment `ip` (the caller checked `ip.is_fragment()`).
pub(super) fn v4_fragment_key(
    frags: &crate::fragments::Fragments,
    key: FlowKey,
    ip: &wire::ipv4::Packet<&[u8]>,
) -> FlowKey {
    fragment_key(frags, key, ip.protocol(), u32::from(ip.ident()), ip.is_later_fragment())
}

/// The flow key in VRF `vrf` of IPv6 packet `p` (its upper layer's protocol and
/// ports, past any extension headers; a fragment's as [`fragment_key`] gives it)
/// and its TCP flags; `None` if its extension headers are malformed.
#[inline(always)]
pub(super) fn v6_flow_key(
    frags: &crate::fragments::Fragments,
    vrf: u16,
    p: &wire::ipv6::Packet<&[u8]>,
) -> Option<(FlowKey, u8)> {
    let payload = p.payload();
    let upper = wire::ipv6_ext::upper_layer(p.next_header(), payload)?;
    let later = upper.fragment.is_some_and(|f| f.is_later());
    let (sp, dp, flags) = l4_ports(&payload[upper.offset..], upper.proto, later);
    let key = FlowKey::v6(vrf, p.src_addr(), p.dst_addr(), upper.proto, sp, dp);
    Some(match upper.fragment {
        Some(f) => (fragment_key(frags, key, f.next_header, f.ident, later), flags),
        None => (key, flags),
    })
}

/// The flow key in VRF `vrf` of the checked IP packet `ip` (either family) as its
/// own headers give it, its length and its TCP flags: a hint (the batch's first
/// pass, a tunnel fragment's entropy), with no fragment followed or recorded.
#[inline(always)]
pub(super) fn ip_flow_key(vrf: u16, ip: &wire::ip::Packet<&[u8]>) -> (FlowKey, u32, u8) {
    match ip {
        wire::ip::Packet::V4(p) => {
            let (sp, dp, flags) = l4_ports(p.payload(), p.protocol(), p.is_later_fragment());
            let key = FlowKey::v4(vrf, p.src_addr(), p.dst_addr(), p.protocol(), sp, dp);
            (key, u32::from(p.total_len()), flags)
        }
        wire::ip::Packet::V6(p) => {
            let (sp, dp, flags) = l4_ports(p.payload(), p.next_header(), false);
            let key = FlowKey::v6(vrf, p.src_addr(), p.dst_addr(), p.next_header(), sp, dp);
            (key, p.total_len() as u32, flags)
        }
    }
}

/// The flow key in VRF `vrf` of the checked IP packet `ip` (either family; a
/// fragment's as [`fragment_key`] gives it), its length and its TCP flags, as the
/// flow stage decides it; `None` if its IPv6 extension headers are malformed.
#[inline(always)]
pub(super) fn flow_key_of(
    frags: &crate::fragments::Fragments,
    vrf: u16,
    ip: &wire::ip::Packet<&[u8]>,
) -> Option<(FlowKey, u32, u8)> {
    match ip {
        wire::ip::Packet::V4(p) => {
            let (key, len, flags) = ip_flow_key(vrf, ip);
            let key = if p.is_fragment() {
                v4_fragment_key(frags, key, p)
            } else {
                key
            };
            Some((key, len, flags))
        }
        wire::ip::Packet::V6(p) => {
            let (key, flags) = v6_flow_key(frags, vrf, p)?;
            Some((key, p.total_len() as u32, flags))
        }
    }
}

/// Decides a routed packet through the flow table (see the module doc); `hash` is
/// `key.hash()`, computed once by the caller, who needs it again for tunnel entropy.
/// The established-flow hit is inlined into the caller; setup and re-evaluation are not.
#[inline(always)]
pub(super) fn decide(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    hash: u64,
    bytes: u32,
    tcp_flags: u8,
) -> Decision {
    let table = &ctx.flows.table;
    let tracked = tcp_flags & (TCP_FIN | TCP_SYN | TCP_RST);
    let found = table.lookup(key, hash);
    if let Some(f) = &found {
        table.touch(f.index, bytes);
        if tracked != 0 {
            table.mark_tcp_flags(f.index, tracked);
        }
        if snap.decision_holds(f.value.generation, FlowAction::slot(f.value.data)) {
            if let Some(a) = FlowAction::decode(f.value.data) {
                if FlowAction::is_translated(f.value.data) {
                    return super::nat::cached(table, f, a);
                }
                return from_action(a);
            }
        }
    }
    decide_slow(snap, ctx, iface, key, found, bytes, tracked)
}

/// A flow seen first, or one whose route changed since its decision.
#[cold]
#[inline(never)]
fn decide_slow(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    found: Option<flow_table::FlowRef>,
    bytes: u32,
    tracked: u8,
) -> Decision {
    let generation = snap.generation as u32;
    let Some(f) = found else {
        return setup(snap, ctx, iface, key, bytes, tracked);
    };
    let word = f.value.data;
    let claimed = !FlowAction::is_reverse(word)
        && (service_of(snap, key).is_some()
            || (!snap.floating.is_empty() && super::floating::target(snap, iface, key).is_some()));
    if FlowAction::is_translated(word) || claimed {
        return super::service_flow::decide_again(snap, ctx, iface, key, f, bytes, tracked);
    }
    let (mut route, slot) = resolve(snap, &mut ctx.routes, key);
    let reverse = FlowAction::is_reverse(word);
    if matches!(route, Decision::Forward(_)) && super::policy::denies_again(snap, key, reverse) {
        // An open connection a policy change now denies: counted and logged once, as
        // its policy's, when its opening side's entry is decided again (a flow denied
        // before is not counted again).
        if !reverse && matches!(FlowAction::decode(word), Some(FlowAction::Forward(_))) {
            let now = ctx.flows.table.now();
            super::policy::denies(snap, &mut ctx.deny_log, now, key, key);
        }
        route = Decision::Drop(DropReason::Policy);
    }
    if let Some(a) = cacheable(route) {
        let value = FlowValue {
            data: a.encode(slot, reverse),
            generation,
            ..f.value
        };
        ctx.flows.table.update(&f, value);
    }
    route
}

/// The service port a new flow with `key` is for, if any.
#[inline]
pub(super) fn service_of<'s>(snap: &'s Snapshot, key: &FlowKey) -> Option<&'s nexthop::ServiceEntry> {
    snap.service(nexthop::VrfId(key.vrf()), key.dst_addr(), key.proto(), key.dst_port())
}

/// A flow's first packet: routed both ways and installed as a pair (a flow to a
/// service: translated, see `nat.rs`).
pub(super) fn setup(
    snap: &Snapshot,
    ctx: &mut PipelineContext,
    iface: &Interface,
    key: &FlowKey,
    bytes: u32,
    tracked: u8,
) -> Decision {
    if let Some(service) = service_of(snap, key) {
        return super::service_flow::setup(snap, ctx, iface, key, service, bytes, tracked);
    }
    if !snap.floating.is_empty() {
        if let Some(through) = super::floating::service_elsewhere(snap, iface, key) {
            return super::service_flow::setup_from_floating(snap, ctx, iface, key, through, bytes, tracked);
        }
        match super::floating::target(snap, iface, key) {
            Some(Ok(t)) => return super::service_flow::setup_translated(snap, ctx, iface, key, t, bytes, tracked),
            Some(Err(reason)) => return Decision::Drop(reason),
            None => {}
        }
    }
    let PipelineContext {
        flows,
        routes,
        deny_log,
        ..
    } = ctx;
    let table = &flows.table;
    let generation = snap.generation as u32;
    let (mut route, slot) = resolve(snap, routes, key);
    if route == Decision::NoRoute && super::snat::applies(snap, iface, key).is_some() {
        return super::snat::setup(snap, ctx, iface, key, slot, bytes, tracked);
    }
    let Some(mut action) = cacheable(route) else {
        return route;
    };
    // A denied connection is cached as a drop, both ways.
    let denied = !snap.policies.is_empty()
        && matches!(action, FlowAction::Forward(_))
        && super::policy::denies(snap, deny_log, table.now(), key, key);
    if denied {
        (action, route) = (FlowAction::Drop(DropReason::Policy), Decision::Drop(DropReason::Policy));
    }
    if !flows.reserve_for(iface) {
        return Decision::Drop(DropReason::FlowLimit);
    }
    let reverse_key = key.reversed();
    let (reverse_route, reverse_slot) = resolve(snap, routes, &reverse_key);
    let reverse_route = or_host(snap, iface.vif, reverse_route);
    let reverse_action = match cacheable(reverse_route) {
        _ if denied => FlowAction::Drop(DropReason::Policy),
        Some(a) => a,
        None => FlowAction::Drop(DropReason::NoRoute),
    };
    let value = |a: FlowAction, slot: RouteSlot, rev: bool| FlowValue {
        data: a.encode(slot, rev),
        generation,
        owner: iface.vif.0,
    };
    let forward_value = value(action, slot, false);
    let inserted = table.insert_pair(
        (key, forward_value),
        (&reverse_key, value(reverse_action, reverse_slot, true)),
    );
    installed(ctx, iface, inserted, route, bytes, tracked)
}

/// The decision after an attempt to install a pair: `route` if it went in (counted
/// and marked), the other worker's if it was first, a drop if the table is full.
pub(super) fn installed(
    ctx: &mut PipelineContext,
    iface: &Interface,
    inserted: Insert,
    route: Decision,
    bytes: u32,
    tracked: u8,
) -> Decision {
    let flows = &ctx.flows;
    let counted = |forward: &flow_table::FlowRef| {
        flows.table.touch(forward.index, bytes);
        if tracked != 0 {
            flows.table.mark_tcp_flags(forward.index, tracked);
        }
    };
    match inserted {
        Insert::Inserted { forward, reverse } => {
            counted(&forward);
            match route {
                // Both ends' translation reads the pair it was just given.
                Decision::ForwardNat(nh, t) if t.is_both() => Decision::ForwardNat(nh, t.with_pair(reverse.index)),
                route => route,
            }
        }
        // The flow seen from the other side in the same instant: the entry is ours
        // (its reservation kept), linked to nothing. Both ends' translation has no
        // pair to read: dropped, as a hit on it would be.
        Insert::Alone(forward) => {
            counted(&forward);
            match route {
                Decision::ForwardNat(_, t) if t.is_both() => Decision::Drop(DropReason::NoRoute),
                route => route,
            }
        }
        Insert::Exists(f) => {
            flows.unreserve(iface.vif);
            match FlowAction::decode(f.value.data) {
                Some(a) if FlowAction::is_translated(f.value.data) => super::nat::cached(&flows.table, &f, a),
                Some(a) => from_action(a),
                None => route,
            }
        }
        Insert::Full => {
            flows.unreserve(iface.vif);
            flows.refused_full.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Decision::Drop(DropReason::FlowTableFull)
        }
    }
}

/// A frame's flow key and its hash, as the first pass over a batch computed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    key: FlowKey,
    hash: u64,
}

/// The first pass over a batch: computes the flow key and hash of a frame received on
/// `iface` and prefetches the key's bucket, so that lookups in the last pass hit the
/// cache. Hand the result to [`prefetch_entry`], then to
/// [`process_classified`](super::process_classified), which reuses the hash.
#[inline(always)]
pub fn classify(flows: &Flows, iface: &Interface, d: &[u8]) -> Option<Classified> {
    let key = key_of(iface, d)?;
    let hash = key.hash();
    flows.table.prefetch(hash);
    Some(Classified { key, hash })
}

/// The second pass over a batch: with the buckets in cache, prefetch the entries.
#[inline]
pub fn prefetch_entry(flows: &Flows, classified: &Classified) {
    flows.table.prefetch_entry(classified.hash);
}

/// The hash of `key`: the first pass's, when it classified the same key. The pipeline
/// builds its key from the validated (and padding-trimmed) packet either way, so a
/// hint for another packet, or one computed before trimming, costs a hash, never a
/// wrong lookup.
#[inline(always)]
pub(super) fn hash_of(key: &FlowKey, hint: Option<&Classified>) -> u64 {
    match hint {
        Some(c) if c.key == *key => c.hash,
        _ => key.hash(),
    }
}

/// The flow key of an IPv4 or IPv6 frame received on a pod interface.
#[inline(always)]
fn key_of(iface: &Interface, d: &[u8]) -> Option<FlowKey> {
    let eth = wire::ethernet::Frame::new_checked(d).ok()?;
    match eth.ethertype() {
        super::ETHERTYPE_IPV4 | super::ETHERTYPE_IPV6 => wire::ip::Packet::new_checked(eth.payload())
            .ok()
            .map(|ip| ip_flow_key(iface.vrf.0, &ip).0),
        _ => None,
    }
}

const _: () = assert!(std::mem::size_of::<Decision>() <= 16);

//! Address and port translation of a flow's packets (services: the flow to a service
//! gets its destination rewritten to the backend, the backend's replies their source
//! rewritten to the service), with every checksum kept right incrementally (RFC 1624):
//! the IPv4 header's, and the transport's, whose pseudo-header covers the addresses
//! (TCP, UDP, ICMPv6; not ICMPv4, whose echo identifier is its "port"); and the flow
//! setup of a flow to a service (a backend chosen, both directions installed
//! translated), and its decision made again after a change.

use super::flow::{self, Decision};
use super::forward::Family;
use super::{DropReason, PipelineContext};
use crate::flows::{FlowAction, FLAG_NAT};
use flow_table::{FlowKey, FlowRef, FlowTable, FlowValue};
use nexthop::{Interface, Nat, NatSide, NatTarget, RouteSlot, ServiceEntry, Snapshot};
use std::net::IpAddr;
use wire::{checksum, icmp, ip_proto, ipv4, ipv6, tcp, udp};

/// Rewrites one end of the IP packet `ip` (of `family`, checked by its parse stage and
/// trimmed to its length) as `nat` says (both ends: as its pair entry in `table`
/// says). False (nothing changed) if the translation names no address or one of the
/// other family. Out of line: plain forwarding keeps its hot path small.
#[inline(never)]
pub(super) fn translate(snap: &Snapshot, table: &FlowTable, ip: &mut [u8], family: Family, nat: Nat) -> bool {
    match nat.side {
        NatSide::HairpinOut | NatSide::HairpinBack => return hairpin(ip, family, nat),
        NatSide::Both => return both(table, ip, family, nat.target),
        _ => {}
    }
    match (family, nat.target) {
        (Family::V4, NatTarget::V4(to)) => v4(ip, nat.side.rewrites_destination(), to, nat),
        _ => v6(snap, ip, family, nat),
    }
}

/// IPv4's translation, the one every established service flow takes. One's-complement
/// sums do not depend on byte order (RFC 1071, section 2(B)): fields are read and
/// summed as they lie in memory, with no byte swaps, and the headers are fixed-size
/// arrays, so nothing is bounds-checked twice.
#[inline(always)]
fn v4(ip: &mut [u8], destination: bool, to: std::net::Ipv4Addr, nat: Nat) -> bool {
    let Some((header, rest)) = ip.split_first_chunk_mut::<{ ipv4::HEADER_LEN }>() else {
        return false;
    };
    let h = &*header;
    let (src, dst) = (
        u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        u32::from_ne_bytes([h[16], h[17], h[18], h[19]]),
    );
    let new = to.octets();
    let delta = Delta::v4(if destination { dst } else { src }, u32::from_ne_bytes(new));
    let check = delta.apply(u16::from_ne_bytes([h[10], h[11]]));
    let (later_fragment, proto, options) = ((h[6] & 0x1f) | h[7] != 0, h[9], usize::from(h[0] & 0x0f) * 4);
    if destination {
        header[16..20].copy_from_slice(&new);
    } else {
        header[12..16].copy_from_slice(&new);
    }
    header[10..12].copy_from_slice(&check.to_ne_bytes());
    if later_fragment {
        return true;
    }
    let Some(l4) = options.checked_sub(ipv4::HEADER_LEN).and_then(|o| rest.get_mut(o..)) else {
        return true;
    };
    // The port as it lies in memory (network order).
    let port = u16::from_ne_bytes(nat.port.to_be_bytes());
    let port_at = if destination { 2 } else { 0 };
    match proto {
        ip_proto::TCP => {
            if let Some(t) = l4.first_chunk_mut::<{ tcp::HEADER_LEN }>() {
                let old_port = u16::from_ne_bytes([t[port_at], t[port_at + 1]]);
                let c = delta.and16(old_port, port).apply(u16::from_ne_bytes([t[16], t[17]]));
                t[16..18].copy_from_slice(&c.to_ne_bytes());
                t[port_at..port_at + 2].copy_from_slice(&port.to_ne_bytes());
            }
        }
        ip_proto::UDP => {
            if let Some(u) = l4.first_chunk_mut::<{ udp::HEADER_LEN }>() {
                let old_port = u16::from_ne_bytes([u[port_at], u[port_at + 1]]);
                let old_check = u16::from_ne_bytes([u[6], u[7]]);
                // A UDP datagram without a checksum (0) keeps going without one; a
                // computed 0 is sent as its other form, all ones (0xffff either way).
                if old_check != 0 {
                    let c = delta.and16(old_port, port).apply(old_check);
                    u[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_ne_bytes());
                }
                u[port_at..port_at + 2].copy_from_slice(&port.to_ne_bytes());
            }
        }
        // ICMPv4's checksum covers no pseudo-header: the address change is no part of it.
        _ => transport(l4, proto, nat, Delta(0), false),
    }
    true
}

/// IPv6's translation, and any translation naming the other family (false). Out of
/// line: IPv4's stays small.
#[inline(never)]
fn v6(snap: &Snapshot, ip: &mut [u8], family: Family, nat: Nat) -> bool {
    let destination = nat.side.rewrites_destination();
    match (family, nat.target) {
        (Family::V6, NatTarget::V6(index)) => {
            let Some(IpAddr::V6(to)) = snap.nat_address(index) else {
                return false;
            };
            let mut p = ipv6::Packet::new_unchecked(&mut *ip);
            let old = if destination { p.dst_addr() } else { p.src_addr() };
            if destination {
                p.set_dst_addr(to);
            } else {
                p.set_src_addr(to);
            }
            let proto = p.next_header();
            let delta = Delta::of(&old.octets(), &to.octets());
            transport(p.payload_mut(), proto, nat, delta, true);
            true
        }
        _ => false,
    }
}

/// A hairpin: source and destination addresses swap (no checksum changes: the same
/// two addresses are summed), then the port.
#[cold]
fn hairpin(ip: &mut [u8], family: Family, nat: Nat) -> bool {
    let (proto, l4, v6) = match family {
        Family::V4 => {
            let mut p = ipv4::Packet::new_unchecked(&mut *ip);
            let (src, dst) = (p.src_addr(), p.dst_addr());
            p.set_src_addr(dst);
            p.set_dst_addr(src);
            if p.is_later_fragment() {
                return true;
            }
            let proto = p.protocol();
            let start = p.header_len();
            let end = usize::from(p.total_len());
            (proto, &mut ip[start..end], false)
        }
        Family::V6 => {
            let mut p = ipv6::Packet::new_unchecked(&mut *ip);
            let (src, dst) = (p.src_addr(), p.dst_addr());
            p.set_src_addr(dst);
            p.set_dst_addr(src);
            let proto = p.next_header();
            let end = p.total_len();
            (proto, &mut ip[ipv6::HEADER_LEN..end], true)
        }
    };
    transport(l4, proto, nat, Delta(0), v6);
    true
}

/// Both ends: the packet takes the addresses and ports of its flow's pair entry's
/// key turned round (the reply as its sender sends it is that key; this direction
/// is its mirror). The IPv4 header checksum is recomputed, the transport's updated
/// incrementally for the pseudo-header's addresses and the ports. False if the pair
/// is gone or of the other family.
#[cold]
fn both(table: &FlowTable, ip: &mut [u8], family: Family, pair: NatTarget) -> bool {
    let NatTarget::Pair(index) = pair else {
        return false;
    };
    let Some(pair) = table.get(index) else {
        return false;
    };
    let k = pair.key;
    let (sport, dport) = (k.dst_port(), k.src_port());
    // Old and new addresses, source then destination, as they lie in the packet.
    let (mut old, mut new, len) = ([0u8; 32], [0u8; 32], if family == Family::V4 { 8 } else { 32 });
    let (proto, l4_at, end, later_fragment) = match (family, k.dst_addr(), k.src_addr()) {
        (Family::V4, IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut p = ipv4::Packet::new_unchecked(&mut *ip);
            old[..4].copy_from_slice(&p.src_addr().octets());
            old[4..8].copy_from_slice(&p.dst_addr().octets());
            new[..4].copy_from_slice(&s.octets());
            new[4..8].copy_from_slice(&d.octets());
            p.set_src_addr(s);
            p.set_dst_addr(d);
            p.fill_checksum();
            (
                p.protocol(),
                p.header_len(),
                usize::from(p.total_len()),
                p.is_later_fragment(),
            )
        }
        (Family::V6, IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut p = ipv6::Packet::new_unchecked(&mut *ip);
            old[..16].copy_from_slice(&p.src_addr().octets());
            old[16..].copy_from_slice(&p.dst_addr().octets());
            new[..16].copy_from_slice(&s.octets());
            new[16..].copy_from_slice(&d.octets());
            p.set_src_addr(s);
            p.set_dst_addr(d);
            (p.next_header(), ipv6::HEADER_LEN, p.total_len(), false)
        }
        _ => return false,
    };
    let end = end.min(ip.len());
    let Some(l4) = ip.get_mut(l4_at..end).filter(|_| !later_fragment) else {
        return true;
    };
    let (old, new) = (&old[..len], &new[..len]);
    let v6 = family == Family::V6;
    // The checksum `check` after `old_fields` became `new_fields` (RFC 1624).
    let update = |check: u16, old_fields: [&[u8]; 2], new_fields: [&[u8]; 2]| {
        let was = old_fields.iter().fold(0, |acc, f| checksum::sum(f, acc));
        let is = new_fields.iter().fold(0, |acc, f| checksum::sum(f, acc));
        checksum::finish(u32::from(!check) + u32::from(checksum::finish(was)) + is)
    };
    let ports = [sport.to_be_bytes(), dport.to_be_bytes()];
    match proto {
        ip_proto::TCP | ip_proto::UDP => {
            let check_at = if proto == ip_proto::TCP { 16 } else { 6 };
            let Some(header) = l4.get_mut(..check_at + 2) else {
                return true;
            };
            let old_ports = [header[0], header[1], header[2], header[3]];
            let old_check = u16::from_be_bytes([header[check_at], header[check_at + 1]]);
            header[0..2].copy_from_slice(&ports[0]);
            header[2..4].copy_from_slice(&ports[1]);
            // IPv4 UDP without a checksum (0) keeps going without one.
            if proto == ip_proto::TCP || old_check != 0 || v6 {
                let c = update(old_check, [old, &old_ports], [new, ports.as_flattened()]);
                let c = if c == 0 && proto == ip_proto::UDP { 0xffff } else { c };
                header[check_at..check_at + 2].copy_from_slice(&c.to_be_bytes());
            }
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            let Ok(mut m) = icmp::Packet::new_checked(&mut *l4) else {
                return true;
            };
            if !m.is_echo(v6) {
                return true;
            }
            // The echo identifier is the key's port on both ends; ICMPv4's checksum
            // covers no pseudo-header.
            let (was, is) = (m.echo_ident().to_be_bytes(), sport.to_be_bytes());
            let (old, new) = if v6 { (old, new) } else { (&[][..], &[][..]) };
            m.set_checksum(update(m.checksum(), [old, &was], [new, &is]));
            m.set_echo_ident(sport);
        }
        _ => {}
    }
    true
}

/// How a checksum changes when a field changes (RFC 1624 eqn. 3, `~m + m'`, kept
/// unfolded): computed once per packet for the address, applied to the IPv4 header's
/// checksum and to the transport's (whose pseudo-header holds the address).
#[derive(Clone, Copy)]
struct Delta(u32);

impl Delta {
    /// A 32-bit field (an IPv4 address) from `old` to `new`.
    #[inline(always)]
    fn v4(old: u32, new: u32) -> Self {
        let old = !old;
        Delta((old >> 16) + (old & 0xffff) + (new >> 16) + (new & 0xffff))
    }

    /// Any even-length field from `old` to `new` (an IPv6 address).
    #[inline(always)]
    fn of(old: &[u8], new: &[u8]) -> Self {
        Delta(u32::from(checksum::finish(checksum::sum(old, 0))) + checksum::sum(new, 0))
    }

    /// Also a 16-bit field (a port) from `old` to `new`.
    #[inline(always)]
    fn and16(self, old: u16, new: u16) -> Self {
        Delta(self.0 + u32::from(!old) + u32::from(new))
    }

    /// The checksum `check` after the change.
    #[inline(always)]
    fn apply(self, check: u16) -> u16 {
        checksum::finish(u32::from(!check) + self.0)
    }
}

/// The transport header's port (or echo identifier) and checksum after its address
/// changed by `address` (in the pseudo-header of all but ICMPv4); a header too short
/// to hold them is left alone. Each header is viewed as a fixed-size array, so its
/// accessors need no bounds checks.
#[inline(always)]
fn transport(l4: &mut [u8], proto: u8, nat: Nat, address: Delta, v6: bool) {
    let destination = nat.side.rewrites_destination();
    match proto {
        ip_proto::TCP => {
            let Some(header) = l4.first_chunk_mut::<{ tcp::HEADER_LEN }>() else {
                return;
            };
            let mut t = tcp::Packet::new_unchecked(header);
            let old_port = if destination { t.dst_port() } else { t.src_port() };
            t.set_checksum(address.and16(old_port, nat.port).apply(t.checksum()));
            if destination {
                t.set_dst_port(nat.port);
            } else {
                t.set_src_port(nat.port);
            }
        }
        ip_proto::UDP => {
            let Some(header) = l4.first_chunk_mut::<{ udp::HEADER_LEN }>() else {
                return;
            };
            let mut u = udp::Packet::new_unchecked(header);
            let old_port = if destination { u.dst_port() } else { u.src_port() };
            if destination {
                u.set_dst_port(nat.port);
            } else {
                u.set_src_port(nat.port);
            }
            // IPv4 UDP may go without a checksum (0), and keeps going without one.
            if u.checksum() != 0 || v6 {
                let c = address.and16(old_port, nat.port).apply(u.checksum());
                u.set_checksum(if c == 0 { 0xffff } else { c });
            }
        }
        ip_proto::ICMP | ip_proto::ICMPV6 => {
            let Ok(mut m) = icmp::Packet::new_checked(l4) else {
                return;
            };
            if !m.is_echo(v6) {
                return;
            }
            let old_ident = m.echo_ident();
            let change = if v6 { address } else { Delta(0) };
            m.set_checksum(change.and16(old_ident, nat.port).apply(m.checksum()));
            m.set_echo_ident(nat.port);
        }
        _ => {}
    }
}

/// The decision a translated entry (`f`) caches: its action, with its translation
/// (both ends': through the pair entry `f` is linked with, while that links back).
#[inline(always)]
pub(super) fn cached(table: &FlowTable, f: &FlowRef, action: FlowAction) -> Decision {
    match (action, Nat::decode(table.transform(f.index))) {
        (FlowAction::Forward(nh), Some(nat)) if nat.side == NatSide::Both => both_ends(table, f, nh, nat),
        (FlowAction::Forward(nh), Some(nat)) => Decision::ForwardNat(nh, nat),
        (action, _) => flow::from_action(action),
    }
}

/// A both-ends entry's decision: its pair named, if the pair still links back (else
/// a drop: an entry whose pair went is gone too, soon).
#[cold]
fn both_ends(table: &FlowTable, f: &FlowRef, nh: nexthop::NextHopId, nat: Nat) -> Decision {
    match f
        .reverse
        .and_then(|i| table.get(i))
        .filter(|p| p.reverse == Some(f.index))
    {
        Some(pair) => Decision::ForwardNat(nh, nat.with_pair(pair.index)),
        None => Decision::Drop(DropReason::NoRoute),
    }
}

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
        Some(vrf) if kept.port == service.target_port => vrf.0,
        _ => return None,
    };
    let (proto, sport) = (key.proto(), key.src_port());
    match (key.src_addr(), backend) {
        (IpAddr::V4(src), IpAddr::V4(to)) => Some(FlowKey::v4(vrf, src, to, proto, sport, kept.port)),
        (IpAddr::V6(src), IpAddr::V6(to)) => Some(FlowKey::v6(vrf, src, to, proto, sport, kept.port)),
        _ => None,
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
    // With client-address affinity the client's recent choice stands; else each
    // flow is placed by its own hash.
    let backend = if service.affinity_timeout_secs != 0 {
        ctx.flows.affinity.backend(key, service)
    } else {
        service.backend(key.hash())
    };
    let Some(t) = backend.and_then(|b| target(snap, key, service, b)) else {
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
    let backend = if service.affinity_timeout_secs != 0 {
        ctx.flows.affinity.backend(key, service)
    } else {
        service.backend(key.hash())
    };
    let Some(t) = backend.and_then(|b| from_floating(snap, key, floating, service, b)) else {
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
    let inserted = flows.table.insert_pair_transformed(
        (key, value(FlowAction::Forward(nh), slot, false)),
        (&t.reverse, value(reverse_action, reverse_slot, true)),
        (t.nat.encode(), t.reply.encode()),
    );
    flow::installed(ctx, iface, inserted, Decision::ForwardNat(nh, t.nat), bytes, tracked)
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
    if !reverse && kept.is_some_and(|n| n.side.is_floating()) {
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
        let both = kept.is_some_and(|n| n.side == NatSide::Both);
        let to_client = match kept.filter(|n| n.side.is_floating() && !both) {
            // Both ends': the reply goes back as its pair came, turned round (in the
            // pod's VRF, from the service's address); a pair gone starts over.
            None if both => match linked_forward(&ctx.flows.table, &f) {
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
            None => match linked_forward(&ctx.flows.table, &f) {
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
        let still = flow::service_of(snap, key).zip(kept.filter(|_| FlowAction::is_translated(f.value.data)));
        match still.and_then(|(service, nat)| kept_backend_route(snap, key, service, nat)) {
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
        (Decision::Forward(nh), Some(nat)) => {
            store(table, &f, FlowAction::Forward(nh), slot, generation);
            let table = &ctx.flows.table;
            match linked_forward(table, &f) {
                Some(pair) if nat.side == NatSide::Both => Decision::ForwardNat(nh, nat.with_pair(pair.index)),
                _ if nat.side == NatSide::Both => Decision::Drop(DropReason::NoRoute),
                _ => Decision::ForwardNat(nh, nat),
            }
        }
        _ => route,
    }
}

/// The forward entry reply entry `f` is linked with, while it links back (a slot
/// reused by another flow is not its pair).
fn linked_forward(table: &FlowTable, f: &FlowRef) -> Option<FlowRef> {
    f.reverse
        .and_then(|i| table.get(i))
        .filter(|fw| fw.reverse == Some(f.index) && !FlowAction::is_reverse(fw.value.data))
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

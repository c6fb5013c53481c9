//! Address and port translation of a flow's packets (services: the flow to a service
//! gets its destination rewritten to the backend, the backend's replies their source
//! rewritten to the service), with every checksum kept right incrementally (RFC 1624):
//! the IPv4 header's, and the transport's, whose pseudo-header covers the addresses
//! (TCP, UDP, ICMPv6; not ICMPv4, whose echo identifier is its "port"). Flows are
//! set up translated in `service_flow.rs`.

use super::flow::{self, Decision};
use super::forward::Family;
use super::DropReason;
use crate::flows::FlowAction;
use flow_table::{FlowKey, FlowRef, FlowTable};
use nexthop::{Nat, NatSide, NatTarget, NatWord, Snapshot, V4OneEnd};
use std::net::{IpAddr, Ipv6Addr};
use wire::{checksum, icmp, ip_proto, ipv4, ipv6, tcp, udp};

/// Rewrites one end of the IP packet `ip` (of `family`, checked by its parse stage and
/// trimmed to its length) as `t` says (both ends: as its pair entry in `table` says).
/// False (nothing changed) if the translation names no address or one of the other
/// family. Out of line: plain forwarding keeps its hot path small, and the IPv4
/// rewrite of one end, which established flows take, goes by [`v4_aged`] instead.
#[inline(never)]
pub(super) fn translate(snap: &Snapshot, table: &FlowTable, ip: &mut [u8], family: Family, t: NatWord) -> bool {
    let Some(nat) = t.nat() else {
        return false;
    };
    match nat.side {
        NatSide::HairpinOut | NatSide::HairpinBack => return hairpin(ip, family, nat),
        NatSide::Both => return both(table, ip, family, nat.target),
        _ => {}
    }
    match (family, t.v4_one_end()) {
        (Family::V4, Some(end)) => v4(ip, end, false, false),
        _ => v6(snap, ip, family, nat),
    }
}

/// The IPv4 rewrite of one end, with the TTL taken down by one in the same header
/// checksum update (the forward stage's, done here: the caller checked the TTL is
/// above 1). `finished_on_send`: the packet, the frame's last bytes, leaves with its
/// TCP or UDP checksum set anew and finished by the kernel
/// ([`super::PipelineContext::transport_checksums_finished`]), so an unfragmented
/// one's needs no update here. Inlined into the forward stage: every established
/// translated IPv4 packet takes it.
#[inline(always)]
pub(super) fn v4_aged(ip: &mut [u8], end: V4OneEnd, finished_on_send: bool) -> bool {
    v4(ip, end, true, finished_on_send)
}

/// IPv4's translation of one end (`aged`: and its TTL less one; `finished_on_send`:
/// as [`v4_aged`] says). One's-complement sums do not depend on byte order (RFC
/// 1071, section 2(B)): fields are read and summed as they lie in memory, with no
/// byte swaps, and the headers are fixed-size arrays, so nothing is bounds-checked
/// twice.
#[inline(always)]
fn v4(ip: &mut [u8], end: V4OneEnd, aged: bool, finished_on_send: bool) -> bool {
    let V4OneEnd {
        destination,
        address: new,
        port,
    } = end;
    let Some((header, rest)) = ip.split_first_chunk_mut::<{ ipv4::HEADER_LEN }>() else {
        return false;
    };
    let at = if destination { 16 } else { 12 };
    let h = &*header;
    let old = u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let delta = Delta::v4(old, u32::from_ne_bytes(new));
    let (ihl, proto, ttl, old_check) = (h[0], h[9], h[8], u16::from_ne_bytes([h[10], h[11]]));
    let (more_fragments, offset) = (h[6] & 0x20 != 0, (h[6] & 0x1f) | h[7] != 0);
    let check = if aged {
        header[8] = ttl.wrapping_sub(1);
        delta.plus(TTL_LESS_ONE).apply(old_check)
    } else {
        delta.apply(old_check)
    };
    header[at..at + 4].copy_from_slice(&new);
    header[10..12].copy_from_slice(&check.to_ne_bytes());
    if offset {
        // A later fragment: its bytes are payload, not ports.
        return true;
    }
    let port_at = if destination { 2 } else { 0 };
    // The common case where the kernel finishes the transport checksum on send: a
    // whole TCP or UDP header right after an IPv4 header without options, not a
    // first fragment (whose sum spans the others). Only the port changes here.
    let transport_len = match proto {
        ip_proto::TCP => tcp::HEADER_LEN,
        ip_proto::UDP => udp::HEADER_LEN,
        _ => usize::MAX,
    };
    if finished_on_send && !more_fragments && ihl == 0x45 && rest.len() >= transport_len {
        if let Some(ports) = rest.first_chunk_mut::<4>() {
            ports[port_at..port_at + 2].copy_from_slice(&port);
        }
        return true;
    }
    let options = usize::from(ihl & 0x0f) * 4;
    if let Some(l4) = options.checked_sub(ipv4::HEADER_LEN).and_then(|o| rest.get_mut(o..)) {
        v4_transport(l4, proto, port_at, port, delta);
    }
    true
}

/// The transport header's port (or ICMP echo identifier) at `port_at` and its
/// checksum, after the address in its pseudo-header changed by `delta`: what
/// [`v4`] leaves to no one else.
#[inline(always)]
fn v4_transport(l4: &mut [u8], proto: u8, port_at: usize, port: [u8; 2], delta: Delta) {
    // The port as it lies in memory (network order).
    let port_ne = u16::from_ne_bytes(port);
    match proto {
        ip_proto::TCP => {
            if let Some(t) = l4.first_chunk_mut::<{ tcp::HEADER_LEN }>() {
                let old_port = u16::from_ne_bytes([t[port_at], t[port_at + 1]]);
                let c = delta.and16(old_port, port_ne).apply(u16::from_ne_bytes([t[16], t[17]]));
                t[16..18].copy_from_slice(&c.to_ne_bytes());
                t[port_at..port_at + 2].copy_from_slice(&port);
            }
        }
        ip_proto::UDP => {
            if let Some(u) = l4.first_chunk_mut::<{ udp::HEADER_LEN }>() {
                let old_port = u16::from_ne_bytes([u[port_at], u[port_at + 1]]);
                let old_check = u16::from_ne_bytes([u[6], u[7]]);
                // A UDP datagram without a checksum (0) keeps going without one; a
                // computed 0 is sent as its other form, all ones (0xffff either way).
                if old_check != 0 {
                    let c = delta.and16(old_port, port_ne).apply(old_check);
                    u[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_ne_bytes());
                }
                u[port_at..port_at + 2].copy_from_slice(&port);
            }
        }
        // ICMPv4's checksum covers no pseudo-header: the address change is no part of it.
        _ => transport(l4, proto, (port_at == 2, u16::from_be_bytes(port)), Delta(0), false),
    }
}

/// IPv6's translation, and any translation naming the other family (false). Out of
/// line: IPv4's stays small.
#[inline(never)]
fn v6(snap: &Snapshot, ip: &mut [u8], family: Family, nat: Nat) -> bool {
    match (family, nat.target) {
        (Family::V6, NatTarget::V6(index)) => {
            let Some(IpAddr::V6(to)) = snap.nat_address(index) else {
                return false;
            };
            v6_end(ip, nat.side.rewrites_destination(), to, nat.port);
            true
        }
        _ => false,
    }
}

/// IPv6's translation of one end (`destination`, else the source) to `to` and
/// `port`, the transport checksum kept right.
fn v6_end(ip: &mut [u8], destination: bool, to: Ipv6Addr, port: u16) {
    let mut p = ipv6::Packet::new_unchecked(&mut *ip);
    let old = if destination { p.dst_addr() } else { p.src_addr() };
    if destination {
        p.set_dst_addr(to);
    } else {
        p.set_src_addr(to);
    }
    let end = p.total_len().min(ip.len());
    let delta = Delta::of(&old.octets(), &to.octets());
    if let Some((proto, at)) = v6_upper(ip) {
        if let Some(l4) = ip.get_mut(at..end) {
            transport(l4, proto, (destination, port), delta, true);
        }
    }
}

/// Puts the addresses and ports the packet `ip` (of `family`, checked by its parse
/// stage) arrived with, its flow key's, back in place of a translation's, every
/// checksum kept right: an ICMP error the vrouter answers a translated packet with
/// (its TTL out, too big for the way on) then quotes what the sender sent, and goes
/// to the sender, whose stack finds the connection it is about.
#[cold]
#[inline(never)]
pub(super) fn restore(ip: &mut [u8], family: Family, key: &FlowKey) {
    let ends = [
        (false, key.src_addr(), key.src_port()),
        (true, key.dst_addr(), key.dst_port()),
    ];
    for (destination, address, port) in ends {
        match (family, address) {
            (Family::V4, IpAddr::V4(address)) => {
                let end = V4OneEnd {
                    destination,
                    address: address.octets(),
                    port: port.to_be_bytes(),
                };
                v4(ip, end, false, false);
            }
            (Family::V6, IpAddr::V6(address)) if ip.len() >= ipv6::HEADER_LEN => {
                v6_end(ip, destination, address, port);
            }
            _ => {}
        }
    }
}

/// An IPv6 packet's upper layer: its protocol and where its header starts in `ip`,
/// past any extension headers; `None` for a later fragment (it has no transport
/// header: only its addresses change) or malformed extension headers (which the
/// parse stage dropped).
fn v6_upper(ip: &[u8]) -> Option<(u8, usize)> {
    let p = ipv6::Packet::new_unchecked(ip);
    let payload = ip.get(ipv6::HEADER_LEN..p.total_len().min(ip.len()))?;
    let upper = wire::ipv6_ext::upper_layer(p.next_header(), payload)?;
    let later = upper.fragment.is_some_and(|f| f.is_later());
    (!later).then_some((upper.proto, ipv6::HEADER_LEN + upper.offset))
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
            let end = p.total_len().min(ip.len());
            let Some((proto, at)) = v6_upper(ip) else {
                return true;
            };
            (proto, &mut ip[at.min(end)..end], true)
        }
    };
    transport(l4, proto, (nat.side.rewrites_destination(), nat.port), Delta(0), v6);
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
            let upper = v6_upper(ip);
            let mut p = ipv6::Packet::new_unchecked(&mut *ip);
            old[..16].copy_from_slice(&p.src_addr().octets());
            old[16..].copy_from_slice(&p.dst_addr().octets());
            new[..16].copy_from_slice(&s.octets());
            new[16..].copy_from_slice(&d.octets());
            p.set_src_addr(s);
            p.set_dst_addr(d);
            match upper {
                Some((proto, at)) => (proto, at, p.total_len(), false),
                None => (p.next_header(), ipv6::HEADER_LEN, p.total_len(), true),
            }
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
/// unfolded as a one's-complement sum of 32-bit words: the carry out of the top is
/// added back in, RFC 1071's end-around carry): computed once per packet for the
/// address, applied to the IPv4 header's checksum and to the transport's (whose
/// pseudo-header holds the address).
#[derive(Clone, Copy)]
struct Delta(u32);

/// The change of the IPv4 header's TTL-and-protocol word (as it lies in memory)
/// when the TTL, above 0, goes down by one: `~m + m'` with `m' = m - 1` in the TTL's
/// byte is the same for every `m`.
const TTL_LESS_ONE: u32 = 0xffff - u16::from_ne_bytes([1, 0]) as u32;

impl Delta {
    /// A 32-bit field (an IPv4 address) from `old` to `new`.
    #[inline(always)]
    fn v4(old: u32, new: u32) -> Self {
        Delta(!old).plus(new)
    }

    /// Any even-length field from `old` to `new` (an IPv6 address).
    #[inline(always)]
    fn of(old: &[u8], new: &[u8]) -> Self {
        Delta(u32::from(checksum::finish(checksum::sum(old, 0)))).plus(checksum::sum(new, 0))
    }

    /// And `word` added to the sum.
    #[inline(always)]
    fn plus(self, word: u32) -> Self {
        let (sum, carry) = self.0.overflowing_add(word);
        // With a carry the sum is at most 2^32 - 2: adding it back cannot overflow.
        Delta(sum + u32::from(carry))
    }

    /// Also a 16-bit field (a port) from `old` to `new`.
    #[inline(always)]
    fn and16(self, old: u16, new: u16) -> Self {
        self.plus(u32::from(!old) + u32::from(new))
    }

    /// The checksum `check` after the change.
    #[inline(always)]
    fn apply(self, check: u16) -> u16 {
        checksum::finish(self.plus(u32::from(!check)).0)
    }
}

/// The transport header's port (or echo identifier) and checksum after its address
/// changed by `address` (in the pseudo-header of all but ICMPv4); a header too short
/// to hold them is left alone. Each header is viewed as a fixed-size array, so its
/// accessors need no bounds checks.
#[inline(always)]
fn transport(l4: &mut [u8], proto: u8, (destination, port): (bool, u16), address: Delta, v6: bool) {
    match proto {
        ip_proto::TCP => {
            let Some(header) = l4.first_chunk_mut::<{ tcp::HEADER_LEN }>() else {
                return;
            };
            let mut t = tcp::Packet::new_unchecked(header);
            let old_port = if destination { t.dst_port() } else { t.src_port() };
            t.set_checksum(address.and16(old_port, port).apply(t.checksum()));
            if destination {
                t.set_dst_port(port);
            } else {
                t.set_src_port(port);
            }
        }
        ip_proto::UDP => {
            let Some(header) = l4.first_chunk_mut::<{ udp::HEADER_LEN }>() else {
                return;
            };
            let mut u = udp::Packet::new_unchecked(header);
            let old_port = if destination { u.dst_port() } else { u.src_port() };
            if destination {
                u.set_dst_port(port);
            } else {
                u.set_src_port(port);
            }
            // IPv4 UDP may go without a checksum (0), and keeps going without one.
            if u.checksum() != 0 || v6 {
                let c = address.and16(old_port, port).apply(u.checksum());
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
            m.set_checksum(change.and16(old_ident, port).apply(m.checksum()));
            m.set_echo_ident(port);
        }
        _ => {}
    }
}

/// The decision a translated entry (`f`) caches: its action, with its translation
/// as its transform word holds it (both ends': through the pair entry `f` is linked
/// with, while that links back).
#[inline(always)]
pub(super) fn cached(table: &FlowTable, f: &FlowRef, action: FlowAction) -> Decision {
    match (action, NatWord::stored(table.transform(f.index))) {
        (FlowAction::Forward(nh), Some(t)) if t.is_both() => both_ends(table, f, nh, t),
        (FlowAction::Forward(nh), Some(t)) => Decision::ForwardNat(nh, t),
        (action, _) => flow::from_action(action),
    }
}

/// A both-ends entry's decision: its pair named, if the pair still links back (else
/// a drop: an entry whose pair went is gone too, soon).
#[cold]
fn both_ends(table: &FlowTable, f: &FlowRef, nh: nexthop::NextHopId, t: NatWord) -> Decision {
    match linked_pair(table, f) {
        Some(pair) => Decision::ForwardNat(nh, t.with_pair(pair.index)),
        None => Decision::Drop(DropReason::NoRoute),
    }
}

/// The entry of the other direction that entry `f` is linked with, while it links
/// back (a slot reused by another flow is not its pair).
pub(super) fn linked_pair(table: &FlowTable, f: &FlowRef) -> Option<FlowRef> {
    let reverse = FlowAction::is_reverse(f.value.data);
    f.reverse
        .and_then(|i| table.get(i))
        .filter(|p| p.reverse == Some(f.index) && FlowAction::is_reverse(p.value.data) != reverse)
}

//! ICMP errors the vrouter originates (RFC 792 / RFC 1812 section 4.3.2, RFC 4443):
//! when the RFCs allow one, built in place in front of the offending packet; their
//! rate limit; and reading an ICMPv6 message out of its IPv6 packet.

use super::{write_eth, DropReason, PacketBuf, PipelineContext, Verdict, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN};
use nexthop::{Interface, Snapshot};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;
use wire::icmp::{self, v4, v6};
use wire::{ip_proto, ipv4, ipv6};

/// Largest IPv4 error datagram (RFC 1812 4.3.2.3).
const ICMP4_ERROR_MAX: usize = 576;
/// Largest IPv6 error datagram (RFC 4443 2.4 (c): the minimum MTU).
const ICMP6_ERROR_MAX: usize = 1280;
/// Bytes an IPv4 error puts in front of the quoted packet.
const V4_ERROR_HEADERS: usize = ipv4::HEADER_LEN + icmp::HEADER_LEN;
/// Bytes an IPv6 error puts in front of the quoted packet.
const V6_ERROR_HEADERS: usize = ipv6::HEADER_LEN + icmp::HEADER_LEN;

/// The type, code and second word of an ICMP error.
pub(super) type Message = icmp::Repr;

/// An error without a type-specific word.
pub(super) fn message(msg_type: u8, code: u8) -> Message {
    Message {
        msg_type,
        code,
        rest: 0,
    }
}

/// ICMPv4 "fragmentation needed" with the next-hop MTU (RFC 1191).
pub(super) fn fragmentation_needed(mtu: u16) -> Message {
    Message {
        msg_type: v4::UNREACHABLE,
        code: v4::CODE_FRAG_NEEDED,
        rest: u32::from(mtu),
    }
}

/// ICMPv6 "packet too big" with the MTU (RFC 4443 3.2).
pub(super) fn packet_too_big(mtu: u16) -> Message {
    Message {
        msg_type: v6::PACKET_TOO_BIG,
        code: 0,
        rest: u32::from(mtu),
    }
}

/// A token bucket for generated ICMP errors (RFC 1812 4.3.2.8, RFC 4443 2.4 (f)).
#[derive(Debug)]
pub struct IcmpLimiter {
    tokens: u32,
    per_second: u32,
    last: Option<Instant>,
    /// Errors sent.
    pub sent: u64,
    /// Errors suppressed by the limit.
    pub suppressed: u64,
}

impl Default for IcmpLimiter {
    fn default() -> Self {
        Self::new(1000)
    }
}

impl IcmpLimiter {
    /// At most `per_second` errors per second, with a burst of as many.
    pub fn new(per_second: u32) -> Self {
        Self {
            tokens: per_second,
            per_second,
            last: None,
            sent: 0,
            suppressed: 0,
        }
    }

    /// Adds the tokens earned since the last call; workers call it once per batch.
    pub fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let earned =
                now.saturating_duration_since(last).as_micros() as u64 * u64::from(self.per_second) / 1_000_000;
            if earned == 0 {
                return;
            }
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(self.per_second)) as u32;
        }
        self.last = Some(now);
    }

    fn take(&mut self) -> bool {
        if self.tokens == 0 {
            self.suppressed += 1;
            return false;
        }
        self.tokens -= 1;
        self.sent += 1;
        true
    }
}

/// Turns the IPv4 packet in `pkt` (a checked Ethernet + IPv4 frame) into an ICMP
/// error to its source, sent from `from`. False (packet untouched in meaning) if the
/// limit or the buffer says no.
pub(super) fn ipv4_error(
    pkt: &mut PacketBuf<'_>,
    limiter: &mut IcmpLimiter,
    router_mac: [u8; 6],
    from: Ipv4Addr,
    msg: Message,
) -> bool {
    let d = pkt.data();
    let pod_mac = wire::ethernet::Frame::new_unchecked(d).src_addr();
    let quoted = (d.len() - ETH_LEN).min(ICMP4_ERROR_MAX - V4_ERROR_HEADERS);
    let orig_src = ipv4::Packet::new_unchecked(&d[ETH_LEN..]).src_addr();
    if !limiter.take() || !pkt.grow_front(V4_ERROR_HEADERS) {
        return false;
    }
    pkt.truncate(ETH_LEN + V4_ERROR_HEADERS + quoted);
    let f = pkt.data_mut();
    write_eth(f, pod_mac, router_mac, ETHERTYPE_IPV4);
    let header = ipv4::Repr {
        src: from,
        dst: orig_src,
        protocol: ip_proto::ICMP,
        payload_len: (icmp::HEADER_LEN + quoted) as u16,
        ttl: 64,
        tos: 0,
        ident: 0,
        dont_frag: false,
    };
    header.emit(&mut ipv4::Packet::new_unchecked(&mut f[ETH_LEN..]));
    let mut error = icmp::Packet::new_unchecked(&mut f[ETH_LEN + ipv4::HEADER_LEN..]);
    msg.emit(&mut error);
    error.fill_checksum_v4();
    true
}

/// Turns the IPv6 packet in `pkt` (a checked Ethernet + IPv6 frame) into an ICMPv6
/// error to its source, sent from `from`.
pub(super) fn ipv6_error(
    pkt: &mut PacketBuf<'_>,
    limiter: &mut IcmpLimiter,
    router_mac: [u8; 6],
    from: Ipv6Addr,
    msg: Message,
) -> bool {
    let d = pkt.data();
    let pod_mac = wire::ethernet::Frame::new_unchecked(d).src_addr();
    let quoted = (d.len() - ETH_LEN).min(ICMP6_ERROR_MAX - V6_ERROR_HEADERS);
    let orig_src = ipv6::Packet::new_unchecked(&d[ETH_LEN..]).src_addr();
    if !limiter.take() || !pkt.grow_front(V6_ERROR_HEADERS) {
        return false;
    }
    pkt.truncate(ETH_LEN + V6_ERROR_HEADERS + quoted);
    let icmp_len = (icmp::HEADER_LEN + quoted) as u16;
    let f = pkt.data_mut();
    write_eth(f, pod_mac, router_mac, ETHERTYPE_IPV6);
    let mut ip = ipv6::Packet::new_unchecked(&mut f[ETH_LEN..]);
    icmpv6_header(from, orig_src, icmp_len, 64).emit(&mut ip);
    let pseudo = ip.pseudo_sum(ip_proto::ICMPV6, u32::from(icmp_len));
    let mut error = icmp::Packet::new_unchecked(ip.payload_mut());
    msg.emit(&mut error);
    error.fill_checksum_v6(pseudo);
    true
}

/// An IPv6 header carrying `len` bytes of ICMPv6.
pub(super) fn icmpv6_header(src: Ipv6Addr, dst: Ipv6Addr, len: u16, hop_limit: u8) -> ipv6::Repr {
    ipv6::Repr {
        src,
        dst,
        next_header: ip_proto::ICMPV6,
        payload_len: len,
        hop_limit,
        traffic_class: 0,
        flow_label: 0,
    }
}

/// The ICMPv6 message of a checked IPv6 packet, if it carries one with a right
/// checksum (extension headers are not walked).
pub(super) fn icmpv6_message<'a>(ip: &ipv6::Packet<&'a [u8]>) -> Option<wire::icmp::Packet<&'a [u8]>> {
    if ip.next_header() != ip_proto::ICMPV6 {
        return None;
    }
    let payload: &'a [u8] = ip.into_inner().get(ipv6::HEADER_LEN..ip.total_len())?;
    let message = wire::icmp::Packet::new_checked(payload).ok()?;
    message
        .verify_checksum_v6(ip.pseudo_sum(ip_proto::ICMPV6, payload.len() as u32))
        .then_some(message)
}

/// Replaces the packet with an ICMP error unless RFC 1812 4.3.2.7 forbids one: not for
/// ICMP errors, non-first fragments, or group/unspecified sources.
pub(super) fn send_error_v4(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    message: Message,
    reason: DropReason,
) -> Verdict {
    let ip = ipv4::Packet::new_unchecked(&pkt.data()[ETH_LEN..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let is_icmp_error =
        ip.protocol() == ip_proto::ICMP && icmp::message_type(ip.payload()).is_some_and(|t| !v4::is_informational(t));
    if ip.is_later_fragment() || is_icmp_error || src.is_multicast() || src.is_broadcast() || src.is_unspecified() {
        return Verdict::Drop(reason);
    }
    let from: Ipv4Addr = iface.gateway4.unwrap_or(dst);
    answered(ipv4_error(pkt, &mut ctx.icmp, snap.router_mac.0, from, message), reason)
}

/// The verdict for a packet dropped for `reason`, with or without an error sent back.
fn answered(sent: bool, reason: DropReason) -> Verdict {
    if sent {
        Verdict::DropWithError(reason)
    } else {
        Verdict::Drop(reason)
    }
}

/// Replaces the packet with an ICMPv6 error unless RFC 4443 2.4 (e) forbids one.
pub(super) fn send_error_v6(
    snap: &Snapshot,
    iface: &Interface,
    pkt: &mut PacketBuf<'_>,
    ctx: &mut PipelineContext,
    message: Message,
    reason: DropReason,
) -> Verdict {
    let ip = ipv6::Packet::new_unchecked(&pkt.data()[ETH_LEN..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let is_icmp_error =
        ip.next_header() == ip_proto::ICMPV6 && icmp::message_type(ip.payload()).is_some_and(|t| t < 128);
    if is_icmp_error || src.is_multicast() || src.is_unspecified() {
        return Verdict::Drop(reason);
    }
    let from = iface.gateway6.unwrap_or(dst);
    answered(ipv6_error(pkt, &mut ctx.icmp, snap.router_mac.0, from, message), reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn limiter_refills_with_time_and_caps_the_burst() {
        let mut l = IcmpLimiter::new(10);
        let t0 = Instant::now();
        l.refill(t0);
        for _ in 0..10 {
            assert!(l.take());
        }
        assert!(!l.take());
        l.refill(t0 + Duration::from_millis(250));
        assert!(l.take() && l.take());
        assert!(!l.take());
        l.refill(t0 + Duration::from_secs(100));
        assert_eq!(l.tokens, 10);
        assert_eq!((l.sent, l.suppressed), (12, 2));
    }
}

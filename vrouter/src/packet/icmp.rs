//! ICMP errors the vrouter originates (RFC 792 / RFC 1812 section 4.3.2, RFC 4443),
//! built in place in front of the offending packet, and their rate limit.

use super::checksum;
use super::{write_eth, PacketBuf, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETH_LEN};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// ICMPv4 destination unreachable.
pub const ICMP4_UNREACHABLE: u8 = 3;
/// ICMPv4 time exceeded.
pub const ICMP4_TIME_EXCEEDED: u8 = 11;
/// ICMPv6 destination unreachable.
pub const ICMP6_UNREACHABLE: u8 = 1;
/// ICMPv6 time exceeded.
pub const ICMP6_TIME_EXCEEDED: u8 = 3;

/// Largest IPv4 error datagram (RFC 1812 4.3.2.3).
const ICMP4_ERROR_MAX: usize = 576;
/// Largest IPv6 error datagram (RFC 4443 2.4 (c): the minimum MTU).
const ICMP6_ERROR_MAX: usize = 1280;

/// The type, code and second word of an ICMP error.
#[derive(Debug, Clone, Copy)]
pub(super) struct Message {
    pub kind: u8,
    pub code: u8,
    /// Unused (0), or the MTU for "fragmentation needed" / "packet too big".
    pub rest: u32,
}

impl Message {
    pub(super) fn new(kind: u8, code: u8) -> Self {
        Self { kind, code, rest: 0 }
    }
}

/// ICMPv4 "fragmentation needed" with the next-hop MTU (RFC 1191).
pub(super) fn fragmentation_needed(mtu: u16) -> Message {
    Message {
        kind: ICMP4_UNREACHABLE,
        code: 4,
        rest: u32::from(mtu),
    }
}

/// ICMPv6 "packet too big" with the MTU (RFC 4443 3.2).
pub(super) fn packet_too_big(mtu: u16) -> Message {
    Message {
        kind: 2,
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

/// Turns the IPv4 packet in `pkt` into an ICMP error to its source, sent from
/// `from`. False (packet untouched in meaning) if the limit or the buffer says no.
pub(super) fn ipv4_error(
    pkt: &mut PacketBuf<'_>,
    limiter: &mut IcmpLimiter,
    router_mac: [u8; 6],
    from: Ipv4Addr,
    msg: Message,
) -> bool {
    let Message {
        kind: icmp_type,
        code,
        rest,
    } = msg;
    let d = pkt.data();
    let mut pod_mac = [0u8; 6];
    pod_mac.copy_from_slice(&d[6..12]);
    let quoted = (d.len() - ETH_LEN).min(ICMP4_ERROR_MAX - 28);
    let mut orig_src = [0u8; 4];
    orig_src.copy_from_slice(&d[ETH_LEN + 12..ETH_LEN + 16]);
    if !limiter.take() || !pkt.grow_front(28) {
        return false;
    }
    pkt.truncate(ETH_LEN + 28 + quoted);
    let total = (20 + 8 + quoted) as u16;
    let f = pkt.data_mut();
    write_eth(f, pod_mac, router_mac, ETHERTYPE_IPV4);
    let ip = &mut f[ETH_LEN..ETH_LEN + 20];
    ip.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[12..16].copy_from_slice(&from.octets());
    ip[16..20].copy_from_slice(&orig_src);
    let c = checksum::checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let icmp = &mut f[ETH_LEN + 20..];
    icmp[0..4].copy_from_slice(&[icmp_type, code, 0, 0]);
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    let c = checksum::checksum(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

/// Turns the IPv6 packet in `pkt` into an ICMPv6 error to its source, sent from `from`.
pub(super) fn ipv6_error(
    pkt: &mut PacketBuf<'_>,
    limiter: &mut IcmpLimiter,
    router_mac: [u8; 6],
    from: Ipv6Addr,
    msg: Message,
) -> bool {
    let Message {
        kind: icmp_type,
        code,
        rest,
    } = msg;
    let d = pkt.data();
    let mut pod_mac = [0u8; 6];
    pod_mac.copy_from_slice(&d[6..12]);
    let quoted = (d.len() - ETH_LEN).min(ICMP6_ERROR_MAX - 48);
    let mut orig_src = [0u8; 16];
    orig_src.copy_from_slice(&d[ETH_LEN + 8..ETH_LEN + 24]);
    if !limiter.take() || !pkt.grow_front(48) {
        return false;
    }
    pkt.truncate(ETH_LEN + 48 + quoted);
    let icmp_len = (8 + quoted) as u16;
    let f = pkt.data_mut();
    write_eth(f, pod_mac, router_mac, ETHERTYPE_IPV6);
    let from = from.octets();
    write_ipv6_header(&mut f[ETH_LEN..ETH_LEN + 40], icmp_len, 64, &from, &orig_src);
    let icmp = &mut f[ETH_LEN + 40..];
    icmp[0..4].copy_from_slice(&[icmp_type, code, 0, 0]);
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    let c = checksum::finish(checksum::sum(
        icmp,
        checksum::ipv6_pseudo_sum(&from, &orig_src, u32::from(icmp_len), 58),
    ));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    true
}

/// Writes an IPv6 header carrying ICMPv6.
pub(super) fn write_ipv6_header(h: &mut [u8], payload_len: u16, hop_limit: u8, src: &[u8; 16], dst: &[u8; 16]) {
    h[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    h[4..6].copy_from_slice(&payload_len.to_be_bytes());
    h[6] = 58;
    h[7] = hop_limit;
    h[8..24].copy_from_slice(src);
    h[24..40].copy_from_slice(dst);
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

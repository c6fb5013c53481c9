//! The flow key: VRF, addresses, protocol, ports, packed in 40 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Identifies one direction of a flow. IPv4 addresses are stored IPv4-mapped, so
/// both families share one layout. For ICMP echo, `src_port` holds the identifier
/// and `dst_port` is 0 (both directions then differ only by addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct FlowKey {
    /// Source address (IPv4-mapped for IPv4).
    pub src: [u8; 16],
    /// Destination address.
    pub dst: [u8; 16],
    /// Source port (or ICMP identifier).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// VRF the packet was received in.
    pub vrf: u16,
    /// IP protocol number.
    pub proto: u8,
    /// 4 or 6.
    pub family: u8,
}

fn mapped(a: Ipv4Addr) -> [u8; 16] {
    a.to_ipv6_mapped().octets()
}

impl FlowKey {
    /// An IPv4 key.
    pub fn v4(vrf: u16, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, src_port: u16, dst_port: u16) -> Self {
        Self {
            src: mapped(src),
            dst: mapped(dst),
            src_port,
            dst_port,
            vrf,
            proto,
            family: 4,
        }
    }

    /// An IPv6 key.
    pub fn v6(vrf: u16, src: Ipv6Addr, dst: Ipv6Addr, proto: u8, src_port: u16, dst_port: u16) -> Self {
        Self {
            src: src.octets(),
            dst: dst.octets(),
            src_port,
            dst_port,
            vrf,
            proto,
            family: 6,
        }
    }

    /// The key of the other direction of the same flow.
    pub fn reversed(&self) -> Self {
        Self {
            src: self.dst,
            dst: self.src,
            src_port: self.dst_port,
            dst_port: self.src_port,
            ..*self
        }
    }

    fn addr(&self, a: [u8; 16]) -> IpAddr {
        if self.family == 4 {
            IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
        } else {
            IpAddr::V6(Ipv6Addr::from(a))
        }
    }

    /// Source address.
    pub fn src_addr(&self) -> IpAddr {
        self.addr(self.src)
    }

    /// Destination address.
    pub fn dst_addr(&self) -> IpAddr {
        self.addr(self.dst)
    }

    /// The five words the table stores.
    #[inline]
    pub(crate) fn words(&self) -> [u64; 5] {
        let w = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        let tail = u64::from(self.src_port)
            | u64::from(self.dst_port) << 16
            | u64::from(self.vrf) << 32
            | u64::from(self.proto) << 48
            | u64::from(self.family) << 56;
        [
            w(&self.src[..8]),
            w(&self.src[8..]),
            w(&self.dst[..8]),
            w(&self.dst[8..]),
            tail,
        ]
    }

    #[inline]
    pub(crate) fn from_words(words: [u64; 5]) -> Self {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..8].copy_from_slice(&words[0].to_le_bytes());
        src[8..].copy_from_slice(&words[1].to_le_bytes());
        dst[..8].copy_from_slice(&words[2].to_le_bytes());
        dst[8..].copy_from_slice(&words[3].to_le_bytes());
        let t = words[4];
        Self {
            src,
            dst,
            src_port: t as u16,
            dst_port: (t >> 16) as u16,
            vrf: (t >> 32) as u16,
            proto: (t >> 48) as u8,
            family: (t >> 56) as u8,
        }
    }

    /// A 64-bit hash (multiply-xorshift over the five words; fast, well mixed).
    #[inline]
    pub fn hash(&self) -> u64 {
        let mut h: u64 = 0x243f_6a88_85a3_08d3;
        for w in self.words() {
            h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            h ^= h >> 29;
        }
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn words_round_trip(src in any::<[u8; 16]>(), dst in any::<[u8; 16]>(), sp in any::<u16>(), dp in any::<u16>(), vrf in any::<u16>(), proto in any::<u8>(), fam in prop::sample::select(vec![4u8, 6])) {
            let k = FlowKey { src, dst, src_port: sp, dst_port: dp, vrf, proto, family: fam };
            prop_assert_eq!(FlowKey::from_words(k.words()), k);
            prop_assert_eq!(k.reversed().reversed(), k);
        }
    }

    #[test]
    fn v4_addresses_read_back() {
        let k = FlowKey::v4(
            3,
            Ipv4Addr::new(198, 18, 0, 1),
            Ipv4Addr::new(198, 18, 0, 2),
            17,
            1000,
            53,
        );
        assert_eq!(k.src_addr(), IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(k.reversed().src_port, 53);
        assert_ne!(k.hash(), k.reversed().hash());
    }
}

//! An IP packet of either family, told apart by its version field (RFC 791 / RFC
//! 8200 both put it in the first four bits): what a decapsulated packet is.

use crate::{ipv4, ipv6, Error, Result};
use std::net::IpAddr;

/// A checked IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<T: AsRef<[u8]>> {
    /// Version 4.
    V4(ipv4::Packet<T>),
    /// Version 6.
    V6(ipv6::Packet<T>),
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the buffer as the packet its version names (`Truncated` if empty,
    /// `Malformed` for a version other than 4 and 6), with that family's checks.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        match buffer.as_ref().first().map(|b| b >> 4) {
            Some(4) => ipv4::Packet::new_checked(buffer).map(Packet::V4),
            Some(6) => ipv6::Packet::new_checked(buffer).map(Packet::V6),
            Some(_) => Err(Error::Malformed),
            None => Err(Error::Truncated),
        }
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> IpAddr {
        match self {
            Packet::V4(p) => IpAddr::V4(p.src_addr()),
            Packet::V6(p) => IpAddr::V6(p.src_addr()),
        }
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> IpAddr {
        match self {
            Packet::V4(p) => IpAddr::V4(p.dst_addr()),
            Packet::V6(p) => IpAddr::V6(p.dst_addr()),
        }
    }

    /// Header and payload length (without link-layer padding).
    #[inline]
    pub fn total_len(&self) -> usize {
        match self {
            Packet::V4(p) => usize::from(p.total_len()),
            Packet::V6(p) => p.total_len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// An IPv4 header (20 bytes, 198.18.0.1 -> 198.18.0.2, UDP, total 28) and 8 bytes.
    const V4: [u8; 28] = [
        0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, 17, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2, 0, 1, 0, 2, 0, 8, 0, 0,
    ];

    #[test]
    fn the_version_picks_the_family() {
        let p = Packet::new_checked(&V4[..]).unwrap();
        assert!(matches!(p, Packet::V4(_)));
        assert_eq!(p.src_addr(), IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(p.dst_addr(), IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(p.total_len(), 28);

        let mut v6 = [0u8; 48];
        v6[0] = 0x60;
        v6[5] = 8; // payload length
        v6[6] = 17;
        v6[7] = 64;
        v6[8..24].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
        v6[24..40].copy_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2).octets());
        let p = Packet::new_checked(&v6[..]).unwrap();
        assert!(matches!(p, Packet::V6(_)));
        assert_eq!(p.dst_addr(), "2001:db8::2".parse::<IpAddr>().unwrap());
        assert_eq!(p.total_len(), 48);
    }

    #[test]
    fn other_versions_and_short_buffers_are_refused() {
        assert_eq!(Packet::new_checked(&[][..]), Err(Error::Truncated));
        let mut v5 = V4;
        v5[0] = 0x55;
        assert_eq!(Packet::new_checked(&v5[..]), Err(Error::Malformed));
        assert_eq!(Packet::new_checked(&V4[..10]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&[0x60u8; 20][..]), Err(Error::Truncated));
    }
}

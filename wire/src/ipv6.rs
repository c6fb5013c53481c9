//! IPv6 headers (RFC 8200). The payload starts at byte 40 and `next_header` says
//! what it is; extension headers are walked by [`crate::ipv6_ext`].

use crate::checksum;
use crate::{Error, Result};
use std::net::Ipv6Addr;

/// Bytes of the fixed header.
pub const HEADER_LEN: usize = 40;

view!(
    /// An IPv6 packet.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the buffer: the fixed header (else `Truncated`), version 6 (else
    /// `Malformed`), the payload length within the buffer (else `Truncated`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(Error::Malformed);
        }
        if HEADER_LEN + usize::from(u16::from_be_bytes([b[4], b[5]])) > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Version, traffic class and flow label.
        version_class_flow: u32 @ 0;
        /// Payload length (extension headers included).
        payload_len: u16 @ 4;
        /// What follows the fixed header.
        next_header: u8 @ 6;
        /// Hop limit.
        hop_limit: u8 @ 7;
        /// Source address.
        src_addr: ipv6 @ 8;
        /// Destination address.
        dst_addr: ipv6 @ 24;
    }

    /// Traffic class.
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        (self.version_class_flow() >> 20) as u8
    }

    /// Flow label.
    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        self.version_class_flow() & 0xf_ffff
    }

    /// Header and payload length.
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.payload_len())
    }

    /// The payload (bytes after the payload length, such as Ethernet padding, are not).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// The pseudo-header sum (RFC 8200 8.1) for an upper-layer packet of `len` bytes
    /// of protocol `next_header` directly after the fixed header.
    #[inline(always)]
    pub fn pseudo_sum(&self, next_header: u8, len: u32) -> u32 {
        let b = self.buffer.as_ref();
        let (mut src, mut dst) = ([0u8; 16], [0u8; 16]);
        src.copy_from_slice(&b[8..24]);
        dst.copy_from_slice(&b[24..40]);
        checksum::ipv6_pseudo_sum(&src, &dst, len, next_header)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets version, traffic class and flow label.
        set_version_class_flow: u32 @ 0;
        /// Sets the payload length.
        set_payload_len: u16 @ 4;
        /// Sets the next header.
        set_next_header: u8 @ 6;
        /// Sets the hop limit.
        set_hop_limit: u8 @ 7;
        /// Sets the source address.
        set_src_addr: ipv6 @ 8;
        /// Sets the destination address.
        set_dst_addr: ipv6 @ 24;
    }

    /// The payload, writable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = self.total_len();
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }
}

/// An IPv6 fixed header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length.
    pub payload_len: u16,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Repr {
    /// Reads a checked packet's fixed header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src: p.src_addr(),
            dst: p.dst_addr(),
            next_header: p.next_header(),
            payload_len: p.payload_len(),
            hop_limit: p.hop_limit(),
            traffic_class: p.traffic_class(),
            flow_label: p.flow_label(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the fixed header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version_class_flow(6 << 28 | u32::from(self.traffic_class) << 20 | self.flow_label & 0xf_ffff);
        p.set_payload_len(self.payload_len);
        p.set_next_header(self.next_header);
        p.set_hop_limit(self.hop_limit);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2001:db8::1 -> 2001:db8::2, ICMPv6, 8 bytes of payload, hop limit 64, traffic
    /// class 0, flow label 0x12345.
    fn golden() -> Vec<u8> {
        let mut p = vec![0x60, 0x01, 0x23, 0x45, 0x00, 0x08, 58, 64];
        p.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend([128, 0, 0, 0, 0, 1, 0, 1]);
        p
    }

    #[test]
    fn golden_bytes_parse_and_emit() {
        let bytes = golden();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let r = Repr::parse(&p);
        assert_eq!(r.src, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(r.dst, "2001:db8::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!((r.next_header, r.payload_len, r.hop_limit), (58, 8, 64));
        assert_eq!((r.traffic_class, r.flow_label), (0, 0x12345));
        assert_eq!(p.payload(), &bytes[40..]);
        let mut out = [0u8; 40];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes[..40]);
        assert_eq!(Packet::new_checked(&bytes[..39]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&bytes[..47]), Err(Error::Truncated));
        let mut v4 = bytes;
        v4[0] = 0x45;
        assert_eq!(Packet::new_checked(&v4[..]), Err(Error::Malformed));
    }

    proptest! {
        #[test]
        fn emit_then_parse_is_identity(src in any::<u128>(), dst in any::<u128>(), next_header in any::<u8>(),
                                       payload_len in 0u16..200, hop_limit in any::<u8>(),
                                       traffic_class in any::<u8>(), flow_label in 0u32..0x10_0000) {
            let r = Repr { src: src.into(), dst: dst.into(), next_header, payload_len, hop_limit, traffic_class, flow_label };
            let mut buf = vec![0u8; 40 + usize::from(payload_len)];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()), r);
            let theirs = etherparse::Ipv6HeaderSlice::from_slice(&buf).unwrap();
            prop_assert_eq!(theirs.payload_length(), payload_len);
            prop_assert_eq!(theirs.flow_label().value(), flow_label);
        }
    }
}

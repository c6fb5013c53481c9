//! IPv4 headers (RFC 791).

use crate::checksum;
use crate::{Error, Result};
use std::net::Ipv4Addr;

/// Bytes of a header without options.
pub const HEADER_LEN: usize = 20;
/// Don't Fragment, in the flags/offset word.
const DF: u16 = 0x4000;
/// More Fragments, in the flags/offset word.
const MF: u16 = 0x2000;

view!(
    /// An IPv4 packet.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the buffer: the fixed header (else `Truncated`), version 4, a header
    /// length of at least 20 and a total length of at least the header (else
    /// `Malformed`), and the total length within the buffer (else `Truncated`).
    /// Bytes after the total length (Ethernet padding) are allowed and ignored by
    /// [`Packet::payload`].
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if b[0] >> 4 != 4 || ihl < HEADER_LEN || total < ihl {
            return Err(Error::Malformed);
        }
        if total > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// DSCP and ECN (the former type of service).
        tos: u8 @ 1;
        /// Total length: header and payload.
        total_len: u16 @ 2;
        /// Identification (for reassembly).
        ident: u16 @ 4;
        /// Flags and fragment offset.
        flags_and_offset: u16 @ 6;
        /// Time to live.
        ttl: u8 @ 8;
        /// Protocol of the payload.
        protocol: u8 @ 9;
        /// Header checksum.
        checksum: u16 @ 10;
        /// Source address.
        src_addr: ipv4 @ 12;
        /// Destination address.
        dst_addr: ipv4 @ 16;
    }

    /// Header length in bytes (with options).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0f) * 4
    }

    /// Don't Fragment is set.
    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.flags_and_offset() & DF != 0
    }

    /// More Fragments is set.
    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.flags_and_offset() & MF != 0
    }

    /// Fragment offset, in bytes.
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_and_offset() & 0x1fff) << 3
    }

    /// A fragment other than the first: no transport header.
    #[inline(always)]
    pub fn is_later_fragment(&self) -> bool {
        self.flags_and_offset() & 0x1fff != 0
    }

    /// Any fragment (first, middle or last).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.flags_and_offset() & (MF | 0x1fff) != 0
    }

    /// True if the header checksum is right.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }

    /// The header, options included.
    #[inline(always)]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload: from the end of the header to the total length.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets DSCP and ECN.
        set_tos: u8 @ 1;
        /// Sets the total length.
        set_total_len: u16 @ 2;
        /// Sets the identification.
        set_ident: u16 @ 4;
        /// Sets flags and fragment offset.
        set_flags_and_offset: u16 @ 6;
        /// Sets the time to live (the checksum is not updated).
        set_ttl: u8 @ 8;
        /// Sets the protocol.
        set_protocol: u8 @ 9;
        /// Sets the header checksum.
        set_checksum: u16 @ 10;
        /// Sets the source address (the checksum is not updated).
        set_src_addr: ipv4 @ 12;
        /// Sets the destination address (the checksum is not updated).
        set_dst_addr: ipv4 @ 16;
    }

    /// Writes the version and header length (bytes, a multiple of 4).
    #[inline(always)]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[0] = 0x40 | (header_len / 4) as u8 & 0x0f;
    }

    /// Makes the packet a fragment at `offset` bytes (a multiple of 8) of the
    /// original payload, with More Fragments as `more` and Don't Fragment clear (the
    /// checksum is not updated).
    #[inline]
    pub fn set_fragment(&mut self, more: bool, offset: usize) {
        debug_assert!(offset.is_multiple_of(8) && offset / 8 <= 0x1fff);
        self.set_flags_and_offset(if more { MF } else { 0 } | ((offset / 8) as u16 & 0x1fff));
    }

    /// Computes and writes the header checksum.
    #[inline(always)]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// Decrements the TTL by one and updates the checksum incrementally (RFC 1624,
    /// RFC 1812 5.3.1); the caller has checked that the TTL is above 1.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let old = u16::from_be_bytes([b[8], b[9]]);
        b[8] = b[8].wrapping_sub(1);
        let new = u16::from_be_bytes([b[8], b[9]]);
        let c = checksum::update16(u16::from_be_bytes([b[10], b[11]]), old, new);
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// The header, writable.
    #[inline(always)]
    pub fn header_mut(&mut self) -> &mut [u8] {
        let len = self.header_len();
        &mut self.buffer.as_mut()[..len]
    }

    /// The payload, writable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (self.header_len(), usize::from(self.total_len()));
        &mut self.buffer.as_mut()[start..end]
    }
}

/// An IPv4 header without options, as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: u8,
    /// Bytes of payload.
    pub payload_len: u16,
    /// Time to live.
    pub ttl: u8,
    /// DSCP and ECN.
    pub tos: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
}

impl Repr {
    /// Reads a checked packet whose checksum is right and that is not a fragment
    /// (options are skipped).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        if !p.verify_checksum() || p.is_fragment() {
            return Err(Error::Malformed);
        }
        Ok(Self {
            src: p.src_addr(),
            dst: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.total_len() - p.header_len() as u16,
            ttl: p.ttl(),
            tos: p.tos(),
            ident: p.ident(),
            dont_frag: p.dont_frag(),
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a header without options, checksum included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version_and_header_len(HEADER_LEN);
        p.set_tos(self.tos);
        p.set_total_len(self.payload_len.saturating_add(HEADER_LEN as u16));
        p.set_ident(self.ident);
        p.set_flags_and_offset(if self.dont_frag { DF } else { 0 });
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src);
        p.set_dst_addr(self.dst);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A real header (192.168.0.1 -> 192.168.0.199, UDP, 115 bytes, DF, TTL 64,
    /// checksum 0xb861) and its 95 bytes of payload.
    fn golden() -> Vec<u8> {
        let mut p = vec![
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        p.extend(std::iter::repeat_n(0xab, 95));
        p
    }

    #[test]
    fn golden_bytes_parse_and_emit() {
        let bytes = golden();
        let p = Packet::new_checked(&bytes[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src: Ipv4Addr::new(192, 168, 0, 1),
                dst: Ipv4Addr::new(192, 168, 0, 199),
                protocol: crate::ip_proto::UDP,
                payload_len: 95,
                ttl: 64,
                tos: 0,
                ident: 0,
                dont_frag: true,
            }
        );
        assert_eq!(p.payload().len(), 95);
        let mut out = [0u8; 115];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..20], bytes[..20]);
    }

    #[test]
    fn checks_say_truncated_or_malformed() {
        let bytes = golden();
        assert_eq!(Packet::new_checked(&bytes[..19]), Err(Error::Truncated));
        assert_eq!(Packet::new_checked(&bytes[..114]), Err(Error::Truncated));
        let mut bad = bytes.clone();
        bad[0] = 0x65;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        bad[0] = 0x44;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
        let mut short_total = bytes.clone();
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&short_total[..]), Err(Error::Malformed));
        // Padding after the total length is allowed and not payload.
        let mut padded = bytes;
        padded.extend([0, 0, 0]);
        assert_eq!(Packet::new_checked(&padded[..]).unwrap().payload().len(), 95);
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_right() {
        let mut bytes = golden();
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
    }

    #[test]
    fn a_fragment_has_its_offset_and_more_flag_and_no_df() {
        let mut bytes = golden();
        let mut p = Packet::new_checked(&mut bytes[..]).unwrap();
        p.set_fragment(true, 1480);
        // Flags and offset word: MF (0x2000) | 1480 / 8 = 185 (0x00b9).
        assert_eq!(p.as_bytes()[6..8], [0x20, 0xb9]);
        assert!(p.more_frags() && !p.dont_frag() && p.is_later_fragment());
        assert_eq!(p.frag_offset(), 1480);
        p.set_fragment(false, 0);
        assert_eq!(p.as_bytes()[6..8], [0, 0]);
        assert!(!p.more_frags() && !p.is_later_fragment());
    }

    proptest! {
        #[test]
        fn emit_then_parse_is_identity(src in any::<u32>(), dst in any::<u32>(), protocol in any::<u8>(),
                                       payload_len in 0u16..1400, ttl in any::<u8>(), tos in any::<u8>(),
                                       ident in any::<u16>(), dont_frag in any::<bool>()) {
            let r = Repr { src: src.into(), dst: dst.into(), protocol, payload_len, ttl, tos, ident, dont_frag };
            let mut buf = vec![0u8; 20 + usize::from(payload_len)];
            r.emit(&mut Packet::new_unchecked(&mut buf[..]));
            let p = Packet::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(Repr::parse(&p).unwrap(), r);
            // The same bytes as etherparse writes for the same header.
            let theirs = etherparse::Ipv4HeaderSlice::from_slice(&buf).unwrap().to_header();
            prop_assert_eq!(theirs.to_bytes().to_vec(), buf[..20].to_vec());
        }
    }
}

//! UDP headers (RFC 768).

use crate::checksum;
use crate::{Error, Result};

/// Bytes of a header.
pub const HEADER_LEN: usize = 8;

view!(
    /// A UDP datagram.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header. The length field is not checked
    /// against the buffer (the IP header bounds the datagram; see [`Packet::length`]).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Source port.
        src_port: u16 @ 0;
        /// Destination port.
        dst_port: u16 @ 2;
        /// Length field: header and payload.
        length: u16 @ 4;
        /// Checksum (0: none, over IPv4).
        checksum: u16 @ 6;
    }

    /// Everything after the header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets the source port.
        set_src_port: u16 @ 0;
        /// Sets the destination port.
        set_dst_port: u16 @ 2;
        /// Sets the length field.
        set_length: u16 @ 4;
        /// Sets the checksum.
        set_checksum: u16 @ 6;
    }

    /// Computes and writes the checksum over the whole buffer with the pseudo-header
    /// sum `pseudo` (a computed 0 is sent as 0xffff, RFC 768).
    pub fn fill_checksum(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo));
        self.set_checksum(if c == 0 { 0xffff } else { c });
    }

    /// Everything after the header, writable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A UDP header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Bytes of payload.
    pub payload_len: u16,
}

impl Repr {
    /// Reads a checked header whose length field is consistent with the buffer.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        let len = usize::from(p.length());
        if len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if len > p.as_bytes().len() {
            return Err(Error::Truncated);
        }
        Ok(Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            payload_len: p.length() - HEADER_LEN as u16,
        })
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with no checksum (0; what tunnels send over IPv4, RFC 7510).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_length(self.payload_len.saturating_add(HEADER_LEN as u16));
        p.set_checksum(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 49152 -> 6635 (MPLSoUDP), 4 bytes of payload, no checksum.
    const GOLDEN: [u8; 12] = [0xc0, 0x00, 0x19, 0xeb, 0x00, 0x0c, 0x00, 0x00, 0x00, 0x01, 0x11, 0x40];

    #[test]
    fn golden_bytes_parse_and_emit() {
        let p = Packet::new_checked(&GOLDEN[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!((r.src_port, r.dst_port, r.payload_len), (49152, 6635, 4));
        let mut out = GOLDEN;
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, GOLDEN);
        assert_eq!(Packet::new_checked(&GOLDEN[..7]), Err(Error::Truncated));
        assert_eq!(
            Repr::parse(&Packet::new_checked(&GOLDEN[..10]).unwrap()),
            Err(Error::Truncated)
        );
    }

    proptest! {
        #[test]
        fn checksum_matches_etherparse(src in any::<u16>(), dst in any::<u16>(), payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let (a, b) = (std::net::Ipv4Addr::new(198, 18, 0, 1), std::net::Ipv4Addr::new(198, 18, 0, 2));
            let mut buf = vec![0u8; 8 + payload.len()];
            buf[8..].copy_from_slice(&payload);
            let r = Repr { src_port: src, dst_port: dst, payload_len: payload.len() as u16 };
            let mut p = Packet::new_unchecked(&mut buf[..]);
            r.emit(&mut p);
            p.fill_checksum(checksum::ipv4_pseudo_sum(a, b, 17, (8 + payload.len()) as u16));
            let theirs = etherparse::UdpHeader::with_ipv4_checksum(src, dst, &etherparse::Ipv4Header::new(
                (8 + payload.len()) as u16, 64, etherparse::IpNumber::UDP, a.octets(), b.octets()).unwrap(), &payload).unwrap();
            prop_assert_eq!(buf[..8].to_vec(), theirs.to_bytes().to_vec());
            prop_assert_eq!(Repr::parse(&Packet::new_checked(&buf[..]).unwrap()).unwrap(), r);
        }
    }
}

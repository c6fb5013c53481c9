//! GRE headers (RFC 2784, RFC 2890): the vrouter sends and takes plain GRE (no
//! checksum, key or sequence number), as MPLS over GRE does (RFC 4023).

use crate::{Error, Result};

/// Bytes of a plain header.
pub const HEADER_LEN: usize = 4;
/// Protocol type of MPLS unicast.
pub const PROTO_MPLS: u16 = 0x8847;

view!(
    /// A GRE packet.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header its flags call for (checksum, key and
    /// sequence number each add four bytes).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if Packet::new_unchecked(b).header_len() > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Flags (C, K, S) and version.
        flags_and_version: u16 @ 0;
        /// Protocol type of the payload.
        protocol: u16 @ 2;
    }

    /// True for plain GRE: version 0 and no checksum, key, sequence number or
    /// reserved bits.
    #[inline]
    pub fn is_plain(&self) -> bool {
        self.flags_and_version() == 0
    }

    /// Header length, optional fields included.
    #[inline]
    pub fn header_len(&self) -> usize {
        let f = self.flags_and_version();
        HEADER_LEN + 4 * ((f >> 15 & 1) + (f >> 13 & 1) + (f >> 12 & 1)) as usize
    }

    /// What follows the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets flags and version.
        set_flags_and_version: u16 @ 0;
        /// Sets the protocol type.
        set_protocol: u16 @ 2;
    }
}

/// A plain GRE header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Protocol type of the payload.
    pub protocol: u16,
}

impl Repr {
    /// Reads a checked header; only plain GRE is taken.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        if !p.is_plain() {
            return Err(Error::Malformed);
        }
        Ok(Self { protocol: p.protocol() })
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a plain header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_flags_and_version(0);
        p.set_protocol(self.protocol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_parse_and_emit() {
        let golden = [0x00, 0x00, 0x88, 0x47, 0x00, 0x01, 0x11, 0x40];
        let p = Packet::new_checked(&golden[..]).unwrap();
        let r = Repr::parse(&p).unwrap();
        assert_eq!(r.protocol, PROTO_MPLS);
        assert_eq!(p.payload(), &golden[4..]);
        let mut out = [0u8; 4];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, golden[..4]);
        // With a key (K): eight bytes of header, not plain.
        let keyed = [0x20, 0x00, 0x88, 0x47, 0, 0, 0, 1];
        let p = Packet::new_checked(&keyed[..]).unwrap();
        assert_eq!((p.header_len(), p.is_plain()), (8, false));
        assert_eq!(Repr::parse(&p), Err(Error::Malformed));
        assert_eq!(Packet::new_checked(&keyed[..7]), Err(Error::Truncated));
    }
}

//! Ethernet II frames (IEEE 802.3).

use crate::{Error, Result};

/// Bytes of an Ethernet header.
pub const HEADER_LEN: usize = 14;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType (TPID) of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType of MPLS unicast.
pub const ETHERTYPE_MPLS: u16 = 0x8847;

/// The broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

view!(
    /// An Ethernet frame.
    Frame
);

impl<T: AsRef<[u8]>> Frame<T> {
    /// Checks that the buffer holds the header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Destination MAC.
        dst_addr: mac @ 0;
        /// Source MAC.
        src_addr: mac @ 6;
        /// EtherType (or 802.1Q TPID).
        ethertype: u16 @ 12;
    }

    /// True if the destination is a group (multicast or broadcast) address.
    #[inline(always)]
    pub fn is_group_dst(&self) -> bool {
        self.buffer.as_ref()[0] & 1 == 1
    }

    /// What follows the header.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    setters! {
        /// Sets the destination MAC.
        set_dst_addr: mac @ 0;
        /// Sets the source MAC.
        set_src_addr: mac @ 6;
        /// Sets the EtherType.
        set_ethertype: u16 @ 12;
    }

    /// What follows the header, writable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An Ethernet header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// EtherType.
    pub ethertype: u16,
}

impl Repr {
    /// Reads a checked frame's header.
    pub fn parse<T: AsRef<[u8]>>(frame: &Frame<T>) -> Self {
        Self {
            dst: frame.dst_addr(),
            src: frame.src_addr(),
            ethertype: frame.ethertype(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header.
    #[inline(always)]
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut Frame<T>) {
        frame.set_dst_addr(self.dst);
        frame.set_src_addr(self.src);
        frame.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame from 02:00:00:00:00:02 to 00:00:5e:00:01:00 carrying IPv4.
    const GOLDEN: [u8; 16] = [
        0x00, 0x00, 0x5e, 0x00, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x08, 0x00, 0xaa, 0xbb,
    ];

    #[test]
    fn golden_bytes_parse_and_emit() {
        let f = Frame::new_checked(&GOLDEN[..]).unwrap();
        let r = Repr::parse(&f);
        assert_eq!(r.dst, [0, 0, 0x5e, 0, 1, 0]);
        assert_eq!(r.src, [2, 0, 0, 0, 0, 2]);
        assert_eq!(r.ethertype, ETHERTYPE_IPV4);
        assert_eq!(f.payload(), &[0xaa, 0xbb]);
        assert!(!f.is_group_dst());
        let mut out = [0u8; 16];
        out[14..].copy_from_slice(&[0xaa, 0xbb]);
        r.emit(&mut Frame::new_unchecked(&mut out[..]));
        assert_eq!(out, GOLDEN);
        assert_eq!(Frame::new_checked(&GOLDEN[..13]), Err(Error::Truncated));
    }
}

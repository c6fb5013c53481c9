//! IEEE 802.1Q VLAN tags: the four bytes after an Ethernet header whose EtherType is
//! [`crate::ethernet::ETHERTYPE_VLAN`] (the tag control information, then the
//! EtherType of what follows).

use crate::{Error, Result};

/// Bytes of a tag (after the outer EtherType).
pub const HEADER_LEN: usize = 4;

view!(
    /// A VLAN tag and what it carries.
    Tag
);

impl<T: AsRef<[u8]>> Tag<T> {
    /// Checks that the buffer holds the tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Tag control information: priority (3 bits), drop eligible (1), VLAN id (12).
        tci: u16 @ 0;
        /// EtherType of the payload.
        ethertype: u16 @ 2;
    }

    /// VLAN id (0: priority tag only).
    #[inline]
    pub fn vid(&self) -> u16 {
        self.tci() & 0x0fff
    }

    /// Priority code point.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (self.tci() >> 13) as u8
    }

    /// What follows the tag.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Tag<T> {
    setters! {
        /// Sets the tag control information.
        set_tci: u16 @ 0;
        /// Sets the payload's EtherType.
        set_ethertype: u16 @ 2;
    }
}

/// A VLAN tag as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// VLAN id (12 bits).
    pub vid: u16,
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// EtherType of the payload.
    pub ethertype: u16,
}

impl Repr {
    /// Reads a checked tag; the drop-eligible bit is not kept.
    pub fn parse<T: AsRef<[u8]>>(tag: &Tag<T>) -> Self {
        Self {
            vid: tag.vid(),
            pcp: tag.pcp(),
            ethertype: tag.ethertype(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the tag (VLAN id and priority masked to their widths).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, tag: &mut Tag<T>) {
        tag.set_tci(u16::from(self.pcp & 7) << 13 | self.vid & 0x0fff);
        tag.set_ethertype(self.ethertype);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_parse_and_emit() {
        // Priority 5, VLAN 100, carrying IPv4.
        let golden = [0xa0, 0x64, 0x08, 0x00, 0x45];
        let tag = Tag::new_checked(&golden[..]).unwrap();
        let r = Repr::parse(&tag);
        assert_eq!((r.vid, r.pcp, r.ethertype), (100, 5, 0x0800));
        assert_eq!(tag.payload(), &[0x45]);
        let mut out = [0u8; 4];
        r.emit(&mut Tag::new_unchecked(&mut out[..]));
        assert_eq!(out, golden[..4]);
        assert_eq!(Tag::new_checked(&golden[..3]), Err(Error::Truncated));
    }
}

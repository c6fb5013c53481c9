//! VXLAN headers (RFC 7348): flags (I: the VNI is valid), 24 reserved bits, the
//! 24-bit VNI, 8 reserved bits; the payload is an Ethernet frame.

use crate::{Error, Result};

/// Bytes of a header.
pub const HEADER_LEN: usize = 8;
/// The I flag.
const FLAG_VNI: u8 = 0x08;
/// Highest VNI.
pub const MAX_VNI: u32 = 0xff_ffff;

view!(
    /// A VXLAN packet.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the header.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Flags.
        flags: u8 @ 0;
        /// The VNI and the reserved byte after it.
        vni_word: u32 @ 4;
    }

    /// True if the I flag says the VNI is valid.
    #[inline]
    pub fn has_vni(&self) -> bool {
        self.flags() & FLAG_VNI != 0
    }

    /// The VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> u32 {
        self.vni_word() >> 8
    }

    /// The inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets the flags.
        set_flags: u8 @ 0;
        /// Sets the VNI word.
        set_vni_word: u32 @ 4;
    }
}

/// A VXLAN header as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The VNI (24 bits).
    pub vni: u32,
}

impl Repr {
    /// Reads a checked header whose I flag is set.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Self> {
        if !p.has_vni() {
            return Err(Error::Malformed);
        }
        Ok(Self { vni: p.vni() })
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header, reserved fields zero.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.buffer.as_mut()[..HEADER_LEN].fill(0);
        p.set_flags(FLAG_VNI);
        p.set_vni_word((self.vni & MAX_VNI) << 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes_parse_and_emit() {
        // VNI 5000, then the start of an inner frame.
        let golden = [0x08, 0, 0, 0, 0x00, 0x13, 0x88, 0x00, 0xaa];
        let p = Packet::new_checked(&golden[..]).unwrap();
        assert_eq!(Repr::parse(&p), Ok(Repr { vni: 5000 }));
        assert_eq!(p.payload(), &[0xaa]);
        let mut out = [0xffu8; 8];
        Repr { vni: 5000 }.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, golden[..8]);
        let mut no_flag = golden;
        no_flag[0] = 0;
        assert_eq!(
            Repr::parse(&Packet::new_checked(&no_flag[..]).unwrap()),
            Err(Error::Malformed)
        );
        assert_eq!(Packet::new_checked(&golden[..7]), Err(Error::Truncated));
    }
}

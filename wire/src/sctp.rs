//! SCTP common headers (RFC 9260): the ports, which the flow key and policy use.
//! Nothing rewrites SCTP yet (its checksum is a CRC32c over the whole packet).

use crate::{Error, Result};

/// Bytes of the common header.
pub const HEADER_LEN: usize = 12;

view!(
    /// An SCTP packet.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the common header.
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
        /// Verification tag.
        verification_tag: u32 @ 4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_of_a_common_header_and_a_short_one_refused() {
        let header = [0x0b, 0x84, 0x0e, 0x4c, 0, 0, 0, 7, 0xde, 0xad, 0xbe, 0xef];
        let p = Packet::new_checked(&header[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.verification_tag()), (2948, 3660, 7));
        assert!(Packet::new_checked(&header[..11]).is_err());
    }
}

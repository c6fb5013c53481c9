//! Neighbour discovery messages (RFC 4861) inside an ICMPv6 message: the
//! solicitation the vrouter answers and the advertisement it answers with.

use crate::checksum;
use crate::icmp::v6;
use crate::{Error, Result};
use std::net::Ipv6Addr;

/// Bytes of a solicitation without options (ICMPv6 header, target).
pub const SOLICIT_LEN: usize = 24;
/// Bytes of an advertisement with a target link-layer address option.
pub const ADVERT_LEN: usize = 32;
/// Option type: target link-layer address.
const OPTION_TARGET_LL: u8 = 2;

view!(
    /// A neighbour solicitation or advertisement (the whole ICMPv6 message).
    Message
);

impl<T: AsRef<[u8]>> Message<T> {
    /// Checks that the buffer holds the header and the target address.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < SOLICIT_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// ICMPv6 type.
        msg_type: u8 @ 0;
        /// Code (0).
        code: u8 @ 1;
        /// Flags of an advertisement (router, solicited, override) and reserved bits.
        flags: u32 @ 4;
        /// The address solicited or advertised.
        target: ipv6 @ 8;
    }
}

/// A neighbour advertisement with the target link-layer address option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertRepr {
    /// The sender is a router.
    pub router: bool,
    /// An answer to a solicitation.
    pub solicited: bool,
    /// Replaces a cached link-layer address.
    pub override_: bool,
    /// The advertised address.
    pub target: Ipv6Addr,
    /// Its link-layer address.
    pub target_mac: [u8; 6],
}

impl AdvertRepr {
    /// Reads a checked advertisement that carries the target link-layer option first.
    pub fn parse<T: AsRef<[u8]>>(m: &Message<T>) -> Result<Self> {
        let b = m.as_bytes();
        if m.msg_type() != v6::NEIGHBOR_ADVERT || b.len() < ADVERT_LEN || b[24] != OPTION_TARGET_LL || b[25] != 1 {
            return Err(Error::Malformed);
        }
        let mut target_mac = [0u8; 6];
        target_mac.copy_from_slice(&b[26..32]);
        let flags = m.flags();
        Ok(Self {
            router: flags & 0x8000_0000 != 0,
            solicited: flags & 0x4000_0000 != 0,
            override_: flags & 0x2000_0000 != 0,
            target: m.target(),
            target_mac,
        })
    }

    /// Bytes [`AdvertRepr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        ADVERT_LEN
    }

    /// Writes the advertisement into `buffer` (at least [`ADVERT_LEN`] bytes) with
    /// its checksum over the pseudo-header sum `pseudo`.
    pub fn emit(&self, buffer: &mut [u8], pseudo: u32) {
        let b = &mut buffer[..ADVERT_LEN];
        let flags = u32::from(self.router) << 31 | u32::from(self.solicited) << 30 | u32::from(self.override_) << 29;
        b[0..4].copy_from_slice(&[v6::NEIGHBOR_ADVERT, 0, 0, 0]);
        b[4..8].copy_from_slice(&flags.to_be_bytes());
        b[8..24].copy_from_slice(&self.target.octets());
        b[24] = OPTION_TARGET_LL;
        b[25] = 1; // length in units of 8 octets
        b[26..32].copy_from_slice(&self.target_mac);
        let c = checksum::finish(checksum::sum(b, pseudo));
        b[2..4].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_advertisement_parse_and_emit() {
        // Solicited + override for 2001:db8::1 at 00:00:5e:00:01:00 (checksum zeroed).
        let mut golden = vec![136u8, 0, 0, 0, 0x60, 0, 0, 0];
        golden.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        golden.extend([2, 1, 0, 0, 0x5e, 0, 1, 0]);
        let m = Message::new_checked(&golden[..]).unwrap();
        let r = AdvertRepr::parse(&m).unwrap();
        assert_eq!((r.router, r.solicited, r.override_), (false, true, true));
        assert_eq!(r.target, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(r.target_mac, [0, 0, 0x5e, 0, 1, 0]);
        let mut out = [0u8; ADVERT_LEN];
        r.emit(&mut out, 0);
        let c = checksum::finish(checksum::sum(&golden, 0));
        golden[2..4].copy_from_slice(&c.to_be_bytes());
        assert_eq!(out[..], golden[..]);
        assert_eq!(Message::new_checked(&golden[..23]), Err(Error::Truncated));
    }
}

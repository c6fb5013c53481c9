//! ICMP (RFC 792) and ICMPv6 (RFC 4443) messages: both start with type, code and
//! checksum, then four bytes whose meaning depends on the type.

use crate::checksum;
use crate::{Error, Result};

/// Bytes of the header (type, code, checksum, the four type-specific bytes).
pub const HEADER_LEN: usize = 8;

/// ICMP types the vrouter uses.
pub mod v4 {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Unreachable code: fragmentation needed and DF set (RFC 1191).
    pub const CODE_FRAG_NEEDED: u8 = 4;
    /// Unreachable code: port unreachable (RFC 792).
    pub const CODE_PORT_UNREACHABLE: u8 = 3;
    /// True for the informational types (RFC 1812 4.3.2.7: errors are not answered
    /// with errors, these are).
    pub fn is_informational(msg_type: u8) -> bool {
        matches!(msg_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
    }
}

/// ICMPv6 types the vrouter uses.
pub mod v6 {
    /// Destination unreachable.
    pub const UNREACHABLE: u8 = 1;
    /// Unreachable code: port unreachable (RFC 4443 3.1).
    pub const CODE_PORT_UNREACHABLE: u8 = 4;
    /// Packet too big.
    pub const PACKET_TOO_BIG: u8 = 2;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 128;
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 129;
    /// Router solicitation (RFC 4861).
    pub const ROUTER_SOLICIT: u8 = 133;
    /// Neighbour solicitation.
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    /// Neighbour advertisement.
    pub const NEIGHBOR_ADVERT: u8 = 136;
}

view!(
    /// An ICMP or ICMPv6 message.
    Packet
);

/// The type of the ICMP or ICMPv6 message in `payload`, even one shorter than its
/// header (to decide whether it may be answered, or is neighbour discovery).
#[inline]
pub fn message_type(payload: &[u8]) -> Option<u8> {
    payload.first().copied()
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds the 8-byte header.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Message type.
        msg_type: u8 @ 0;
        /// Code.
        code: u8 @ 1;
        /// Checksum.
        checksum: u16 @ 2;
        /// The four type-specific bytes (an MTU for packet too big).
        rest: u32 @ 4;
        /// Echo identifier.
        echo_ident: u16 @ 4;
        /// Echo sequence number.
        echo_seq: u16 @ 6;
    }

    /// True for an echo request or reply of either family (whose identifier keys
    /// the flow like a port).
    #[inline(always)]
    pub fn is_echo(&self, icmpv6: bool) -> bool {
        let t = self.msg_type();
        if icmpv6 {
            matches!(t, v6::ECHO_REQUEST | v6::ECHO_REPLY)
        } else {
            matches!(t, v4::ECHO_REQUEST | v4::ECHO_REPLY)
        }
    }

    /// True if the ICMP (IPv4) checksum over the whole buffer is right.
    #[inline(always)]
    pub fn verify_checksum_v4(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }

    /// True if the ICMPv6 checksum over the whole buffer, with the pseudo-header sum
    /// `pseudo` ([`crate::ipv6::Packet::pseudo_sum`]), is right.
    #[inline(always)]
    pub fn verify_checksum_v6(&self, pseudo: u32) -> bool {
        checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo)) == 0
    }

    /// What follows the header (for errors: the offending packet's start).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets the type (the checksum is not updated).
        set_msg_type: u8 @ 0;
        /// Sets the code.
        set_code: u8 @ 1;
        /// Sets the checksum.
        set_checksum: u16 @ 2;
        /// Sets the four type-specific bytes.
        set_rest: u32 @ 4;
        /// Sets an echo's identifier (the checksum is not updated).
        set_echo_ident: u16 @ 4;
    }

    /// Computes and writes the ICMP (IPv4) checksum over the whole buffer.
    pub fn fill_checksum_v4(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }

    /// Computes and writes the ICMPv6 checksum over the whole buffer.
    pub fn fill_checksum_v6(&mut self, pseudo: u32) {
        self.set_checksum(0);
        let c = checksum::finish(checksum::sum(self.buffer.as_ref(), pseudo));
        self.set_checksum(c);
    }

    /// Changes the type and code and updates the checksum incrementally (an echo
    /// request turned into its reply).
    #[inline(always)]
    pub fn set_type_and_code_updating_checksum(&mut self, msg_type: u8, code: u8) {
        let old = u16::from_be_bytes([self.msg_type(), self.code()]);
        let new = u16::from_be_bytes([msg_type, code]);
        let c = checksum::update16(self.checksum(), old, new);
        self.set_msg_type(msg_type);
        self.set_code(code);
        self.set_checksum(c);
    }

    /// What follows the header, writable.
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// An ICMP header as values (the checksum is computed by the caller over the whole
/// message, with [`Packet::fill_checksum_v4`] or [`Packet::fill_checksum_v6`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Message type.
    pub msg_type: u8,
    /// Code.
    pub code: u8,
    /// The four type-specific bytes.
    pub rest: u32,
}

impl Repr {
    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            msg_type: p.msg_type(),
            code: p.code(),
            rest: p.rest(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the header with a zero checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_msg_type(self.msg_type);
        p.set_code(self.code);
        p.set_checksum(0);
        p.set_rest(self.rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo request, identifier 0x1234, sequence 1, payload "ab": checksum 0x8468.
    const GOLDEN: [u8; 10] = [8, 0, 0x84, 0x68, 0x12, 0x34, 0x00, 0x01, b'a', b'b'];

    #[test]
    fn golden_bytes_parse_emit_and_checksum() {
        let p = Packet::new_checked(&GOLDEN[..]).unwrap();
        assert!(p.verify_checksum_v4());
        assert!(p.is_echo(false));
        assert_eq!((p.echo_ident(), p.echo_seq()), (0x1234, 1));
        let r = Repr::parse(&p);
        assert_eq!(r.msg_type, v4::ECHO_REQUEST);
        let mut out = GOLDEN;
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        let mut p = Packet::new_unchecked(&mut out[..]);
        p.fill_checksum_v4();
        assert_eq!(out, GOLDEN);
        let mut reply = Packet::new_unchecked(out);
        reply.set_type_and_code_updating_checksum(v4::ECHO_REPLY, 0);
        assert!(reply.verify_checksum_v4());
        assert_eq!(Packet::new_checked(&GOLDEN[..7]), Err(Error::Truncated));
    }

    #[test]
    fn icmpv6_checksum_matches_etherparse() {
        let src: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        let dst: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
        let mut msg = [128u8, 0, 0, 0, 0, 7, 0, 9, 1, 2, 3];
        let pseudo = checksum::ipv6_pseudo_sum(&src.octets(), &dst.octets(), msg.len() as u32, 58);
        let mut p = Packet::new_unchecked(&mut msg[..]);
        p.fill_checksum_v6(pseudo);
        assert!(p.verify_checksum_v6(pseudo));
        let theirs = etherparse::Icmpv6Header::new(etherparse::Icmpv6Type::EchoRequest(etherparse::IcmpEchoHeader {
            id: 7,
            seq: 9,
        }));
        let expected = theirs
            .icmp_type
            .calc_checksum(src.octets(), dst.octets(), &[1, 2, 3])
            .unwrap();
        assert_eq!(u16::from_be_bytes([msg[2], msg[3]]), expected);
    }
}

//! ARP for IPv4 over Ethernet (RFC 826).

use crate::{Error, Result};
use std::net::Ipv4Addr;

/// Bytes of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// Operation: request.
pub const OP_REQUEST: u16 = 1;
/// Operation: reply.
pub const OP_REPLY: u16 = 2;

view!(
    /// An ARP packet.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks that the buffer holds an Ethernet/IPv4 ARP packet (hardware type 1,
    /// protocol IPv4, address lengths 6 and 4).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < PACKET_LEN {
            return Err(Error::Truncated);
        }
        if b[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
            return Err(Error::Malformed);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Operation ([`OP_REQUEST`], [`OP_REPLY`]).
        operation: u16 @ 6;
        /// Sender hardware address.
        sender_mac: mac @ 8;
        /// Sender protocol address.
        sender_ip: ipv4 @ 14;
        /// Target hardware address.
        target_mac: mac @ 18;
        /// Target protocol address.
        target_ip: ipv4 @ 24;
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets the operation.
        set_operation: u16 @ 6;
        /// Sets the sender hardware address.
        set_sender_mac: mac @ 8;
        /// Sets the sender protocol address.
        set_sender_ip: ipv4 @ 14;
        /// Sets the target hardware address.
        set_target_mac: mac @ 18;
        /// Sets the target protocol address.
        set_target_ip: ipv4 @ 24;
    }
}

/// An Ethernet/IPv4 ARP packet as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Operation.
    pub operation: u16,
    /// Sender hardware address.
    pub sender_mac: [u8; 6],
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: [u8; 6],
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Repr {
    /// Reads a checked packet.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the packet, fixed fields included.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.buffer.as_mut()[0..6].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
        p.set_operation(self.operation);
        p.set_sender_mac(self.sender_mac);
        p.set_sender_ip(self.sender_ip);
        p.set_target_mac(self.target_mac);
        p.set_target_ip(self.target_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who has 198.18.1.1? Tell 198.18.1.2 (02:00:00:00:00:02).
    const GOLDEN: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 198, 18, 1, 2, 0, 0, 0, 0,
        0, 0, 198, 18, 1, 1,
    ];

    #[test]
    fn golden_bytes_parse_and_emit() {
        let p = Packet::new_checked(&GOLDEN[..]).unwrap();
        let r = Repr::parse(&p);
        assert_eq!(r.operation, OP_REQUEST);
        assert_eq!(r.sender_ip, Ipv4Addr::new(198, 18, 1, 2));
        assert_eq!(r.target_ip, Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(r.sender_mac, [2, 0, 0, 0, 0, 2]);
        let mut out = [0u8; 28];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, GOLDEN);
        assert_eq!(Packet::new_checked(&GOLDEN[..27]), Err(Error::Truncated));
        let mut other = GOLDEN;
        other[5] = 16;
        assert_eq!(Packet::new_checked(&other[..]), Err(Error::Malformed));
    }
}

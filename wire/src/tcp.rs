//! TCP headers (RFC 9293): ports, flags, and the MSS option of a SYN.

use crate::checksum;
use crate::{Error, Result};

/// Bytes of a header without options.
pub const HEADER_LEN: usize = 20;
/// FIN flag.
pub const FIN: u8 = 0x01;
/// SYN flag.
pub const SYN: u8 = 0x02;
/// RST flag.
pub const RST: u8 = 0x04;
/// ACK flag.
pub const ACK: u8 = 0x10;

view!(
    /// A TCP segment.
    Packet
);

impl<T: AsRef<[u8]>> Packet<T> {
    /// Checks the buffer: the fixed header and the options the data offset states
    /// (else `Truncated`), a data offset of at least 5 words (else `Malformed`).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header = usize::from(b[12] >> 4) * 4;
        if header < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header > b.len() {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// Source port.
        src_port: u16 @ 0;
        /// Destination port.
        dst_port: u16 @ 2;
        /// Sequence number.
        seq: u32 @ 4;
        /// Acknowledgment number.
        ack: u32 @ 8;
        /// Flags (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
        flags: u8 @ 13;
        /// Window.
        window: u16 @ 14;
        /// Checksum.
        checksum: u16 @ 16;
    }

    /// Header length in bytes (with options).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[12] >> 4) * 4
    }

    /// The options.
    #[inline(always)]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// The MSS option's value and its offset in the buffer, if the options carry a
    /// well-formed one (RFC 9293 3.2); a malformed option list yields `None`.
    pub fn mss(&self) -> Option<(u16, usize)> {
        let options = self.options();
        let mut i = 0;
        while i < options.len() {
            match options[i] {
                0 => return None,
                1 => i += 1,
                kind => {
                    let len = usize::from(*options.get(i + 1)?);
                    if len < 2 || i + len > options.len() {
                        return None;
                    }
                    if kind == 2 && len == 4 {
                        let mss = u16::from_be_bytes([options[i + 2], options[i + 3]]);
                        return Some((mss, HEADER_LEN + i + 2));
                    }
                    i += len;
                }
            }
        }
        None
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    setters! {
        /// Sets the source port (the checksum is not updated).
        set_src_port: u16 @ 0;
        /// Sets the destination port (the checksum is not updated).
        set_dst_port: u16 @ 2;
        /// Sets the flags.
        set_flags: u8 @ 13;
        /// Sets the checksum.
        set_checksum: u16 @ 16;
    }

    /// Lowers the MSS a SYN announces to `max` (RFC 879, RFC 6691), updating the
    /// checksum incrementally; anything else (not a SYN, no or a malformed MSS
    /// option, an MSS already small enough) is left alone. True if it changed.
    pub fn clamp_mss(&mut self, max: u16) -> bool {
        if self.flags() & SYN == 0 {
            return false;
        }
        let Some((mss, at)) = self.mss().filter(|(mss, _)| *mss > max) else {
            return false;
        };
        let c = checksum::update16(self.checksum(), mss, max);
        self.buffer.as_mut()[at..at + 2].copy_from_slice(&max.to_be_bytes());
        self.set_checksum(c);
        true
    }
}

/// The fields of a TCP header the vrouter keys and tracks flows by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number.
    pub ack: u32,
    /// Flags.
    pub flags: u8,
    /// Window.
    pub window: u16,
}

impl Repr {
    /// Reads a checked header.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Self {
        Self {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
            seq: p.seq(),
            ack: p.ack(),
            flags: p.flags(),
            window: p.window(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes a header without options and with a zero checksum.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        let b = p.buffer.as_mut();
        b[..HEADER_LEN].fill(0);
        b[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        b[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        b[4..8].copy_from_slice(&self.seq.to_be_bytes());
        b[8..12].copy_from_slice(&self.ack.to_be_bytes());
        b[12] = (HEADER_LEN as u8 / 4) << 4;
        b[13] = self.flags;
        b[14..16].copy_from_slice(&self.window.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A SYN 40000 -> 80, seq 1, window 64240, options: MSS 1460, NOP, NOP, SACK permitted.
    const GOLDEN: [u8; 28] = [
        0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x70, 0x02, 0xfa, 0xf0, 0, 0, 0, 0, 2, 4, 0x05, 0xb4, 1, 1, 4,
        2,
    ];

    #[test]
    fn golden_bytes_parse_emit_and_mss() {
        let p = Packet::new_checked(&GOLDEN[..]).unwrap();
        let r = Repr::parse(&p);
        assert_eq!(
            (r.src_port, r.dst_port, r.seq, r.flags, r.window),
            (40000, 80, 1, SYN, 64240)
        );
        assert_eq!(p.mss(), Some((1460, 22)));
        let mut out = [0u8; 20];
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        assert_eq!(out[..12], GOLDEN[..12]);
        assert_eq!(out[13..], GOLDEN[13..20]);
        assert_eq!(out[12], 0x50, "no options");
        assert_eq!(Packet::new_checked(&GOLDEN[..27]), Err(Error::Truncated));
        let mut bad = GOLDEN;
        bad[12] = 0x40;
        assert_eq!(Packet::new_checked(&bad[..]), Err(Error::Malformed));
    }

    proptest! {
        /// Clamping keeps the checksum what a full computation gives, and never raises
        /// the MSS; any option bytes at all are read without a panic.
        #[test]
        fn clamping_keeps_the_checksum_right(mss in any::<u16>(), max in any::<u16>(), options in any::<[u8; 8]>(), garbage in any::<bool>()) {
            let mut seg = GOLDEN;
            seg[22..24].copy_from_slice(&mss.to_be_bytes());
            if garbage {
                seg[20..28].copy_from_slice(&options);
            }
            let sum = checksum::checksum(&seg);
            seg[16..18].copy_from_slice(&sum.to_be_bytes());
            let before = Packet::new_checked(seg).unwrap().mss();
            let mut p = Packet::new_checked(&mut seg[..]).unwrap();
            let changed = p.clamp_mss(max);
            prop_assert_eq!(checksum::checksum(&seg) == 0 || checksum::checksum(&seg) == 0xffff, true);
            let after = Packet::new_checked(&seg[..]).unwrap().mss();
            match before {
                Some((m, at)) if m > max => prop_assert!(changed && after == Some((max, at))),
                _ => prop_assert!(!changed && after == before),
            }
        }
    }
}

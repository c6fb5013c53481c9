//! MPLS label stack entries (RFC 3032): label (20 bits), traffic class (3), bottom of
//! stack (1), TTL (8).

use crate::{Error, Result};

/// Bytes of one label stack entry.
pub const HEADER_LEN: usize = 4;
/// Highest label value.
pub const MAX_LABEL: u32 = 0xf_ffff;

view!(
    /// One label stack entry and what follows it.
    Entry
);

impl<T: AsRef<[u8]>> Entry<T> {
    /// Checks that the buffer holds the entry.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(Self { buffer })
    }

    getters! {
        /// The whole entry as a word.
        word: u32 @ 0;
        /// TTL.
        ttl: u8 @ 3;
    }

    /// The label.
    #[inline]
    pub fn label(&self) -> u32 {
        self.word() >> 12
    }

    /// Traffic class.
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.word() >> 9) as u8 & 7
    }

    /// Bottom of stack: the last entry.
    #[inline]
    pub fn bottom(&self) -> bool {
        self.word() & 0x100 != 0
    }

    /// What follows the entry.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Entry<T> {
    setters! {
        /// Sets the whole entry.
        set_word: u32 @ 0;
        /// Sets the TTL.
        set_ttl: u8 @ 3;
    }
}

/// A label stack entry as values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The label (20 bits).
    pub label: u32,
    /// Traffic class (3 bits).
    pub traffic_class: u8,
    /// Bottom of stack.
    pub bottom: bool,
    /// TTL.
    pub ttl: u8,
}

impl Repr {
    /// Reads a checked entry.
    pub fn parse<T: AsRef<[u8]>>(e: &Entry<T>) -> Self {
        Self {
            label: e.label(),
            traffic_class: e.traffic_class(),
            bottom: e.bottom(),
            ttl: e.ttl(),
        }
    }

    /// Bytes [`Repr::emit`] writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// The entry as a word (fields masked to their widths).
    pub const fn word(&self) -> u32 {
        (self.label & MAX_LABEL) << 12
            | ((self.traffic_class & 7) as u32) << 9
            | (self.bottom as u32) << 8
            | self.ttl as u32
    }

    /// Writes the entry.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, e: &mut Entry<T>) {
        e.set_word(self.word());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn golden_bytes_parse_and_emit() {
        // Label 17, traffic class 0, bottom of stack, TTL 64.
        let golden = [0x00, 0x01, 0x11, 0x40];
        let e = Entry::new_checked(&golden[..]).unwrap();
        let r = Repr::parse(&e);
        assert_eq!(
            r,
            Repr {
                label: 17,
                traffic_class: 0,
                bottom: true,
                ttl: 64
            }
        );
        let mut out = [0u8; 4];
        r.emit(&mut Entry::new_unchecked(&mut out[..]));
        assert_eq!(out, golden);
        assert_eq!(Entry::new_checked(&golden[..3]), Err(Error::Truncated));
    }

    proptest! {
        #[test]
        fn emit_then_parse_is_identity(label in 0u32..=MAX_LABEL, traffic_class in 0u8..8, bottom in any::<bool>(), ttl in any::<u8>()) {
            let r = Repr { label, traffic_class, bottom, ttl };
            let mut out = [0u8; 4];
            r.emit(&mut Entry::new_unchecked(&mut out[..]));
            prop_assert_eq!(Repr::parse(&Entry::new_checked(&out[..]).unwrap()), r);
        }
    }
}

//! Internet checksums (RFC 1071), pseudo-header sums, and incremental updates
//! (RFC 1624) after a field changed.

/// One's-complement sum of `data` as big-endian 16-bit words, added to `initial`,
/// folded to 16 bits (so that callers may add a few sums without overflow).
///
/// Adds 32-bit words: the end-around carry makes their sum congruent to the sum of
/// the 16-bit halves (RFC 1071 section 2), at half the additions.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for c in &mut pairs {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold16(acc)
}

#[inline]
fn fold16(mut acc: u64) -> u32 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u32
}

/// Folds a running sum to 16 bits and complements it: the value to store.
#[inline]
pub fn finish(acc: u32) -> u16 {
    // Two folds reach 16 bits from any u32 (the first leaves at most 0x1fffe), with
    // no loop: the NAT rewrite calls this twice per packet.
    let acc = (acc & 0xffff) + (acc >> 16);
    let acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

/// The checksum of `data`.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// RFC 1624 eqn. 3: the new checksum after a 16-bit field changed from `old` to `new`.
#[inline]
pub fn update16(check: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!check) + u32::from(!old) + u32::from(new);
    finish(acc)
}

/// Sum of the IPv6 pseudo-header (RFC 8200 section 8.1) for an upper-layer packet.
pub fn ipv6_pseudo_sum(src: &[u8; 16], dst: &[u8; 16], upper_len: u32, next_header: u8) -> u32 {
    let acc = sum(src, 0);
    let acc = sum(dst, acc);
    let acc = sum(&upper_len.to_be_bytes(), acc);
    sum(&[0, 0, 0, next_header], acc)
}

/// Sum of the IPv4 pseudo-header (RFC 768, RFC 9293) for an upper-layer packet.
pub fn ipv4_pseudo_sum(src: std::net::Ipv4Addr, dst: std::net::Ipv4Addr, protocol: u8, upper_len: u16) -> u32 {
    let acc = sum(&src.octets(), 0);
    let acc = sum(&dst.octets(), acc);
    sum(&[0, protocol, (upper_len >> 8) as u8, upper_len as u8], acc)
}

/// RFC 1624 for a field of any even length (an address, a port pair): the new
/// checksum after the bytes `old` were replaced by `new`.
#[inline]
pub fn update(check: u16, old: &[u8], new: &[u8]) -> u16 {
    // The one's complement of a sum is the sum of the complements (RFC 1624 eqn. 3).
    let acc = u32::from(!check) + u32::from(finish(sum(old, 0))) + sum(new, 0);
    finish(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: the sum of these words is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&data, 0)), !0xddf2);
    }

    #[test]
    fn ipv4_header_golden() {
        // A real header with its checksum zeroed; the right value is 0xb861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert_eq!(checksum(&h), 0);
    }

    /// The 16-bit word at a time sum of RFC 1071, as written there.
    fn reference_sum(data: &[u8], initial: u32) -> u32 {
        let mut acc = u64::from(initial);
        for c in data.chunks(2) {
            acc += u64::from(c[0]) << 8 | u64::from(c.get(1).copied().unwrap_or(0));
        }
        fold16(acc)
    }

    proptest! {
        #[test]
        fn word_sum_matches_rfc1071(data in proptest::collection::vec(any::<u8>(), 0..200), initial in 0u32..0x2_0000) {
            // 0 and 0xffff are both zero in one's complement; only all-zero data
            // with no initial value must give 0.
            let (fast, slow) = (sum(&data, initial), reference_sum(&data, initial));
            prop_assert!(fast == slow || (fast | slow) == 0xffff && (fast == 0 || slow == 0), "{fast:#x} != {slow:#x}");
            prop_assert!(fast <= 0xffff);
        }

        #[test]
        fn incremental_matches_full(mut words in proptest::collection::vec(any::<u16>(), 2..30), idx in any::<prop::sample::Index>(), new in any::<u16>()) {
            let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
            let before = checksum(&bytes(&words));
            let i = idx.index(words.len());
            let old = words[i];
            words[i] = new;
            let after = checksum(&bytes(&words));
            let inc = update16(before, old, new);
            // 0x0000 and 0xffff are the same value in one's complement.
            prop_assert!(inc == after || (inc ^ after) == 0xffff && (inc == 0 || inc == 0xffff));
        }

        #[test]
        fn a_replaced_field_updates_like_a_full_sum(mut data in proptest::collection::vec(any::<u8>(), 10..60), at in 0usize..4, new in any::<[u8; 4]>()) {
            let at = at * 2;
            let before = checksum(&data);
            let old: Vec<u8> = data[at..at + 4].to_vec();
            data[at..at + 4].copy_from_slice(&new);
            let after = checksum(&data);
            let inc = update(before, &old, &new);
            prop_assert!(inc == after || (inc ^ after) == 0xffff && (inc == 0 || inc == 0xffff));
        }
    }
}

//! Longest-prefix match over exact-match hash tables, one per prefix length present.
//!
//! A lookup probes only the lengths that hold routes, longest first, so a VRF with pod
//! /32 routes and a default route costs two hash probes at most. Lengths are tracked
//! in a 192-bit set (0..=128).

use ahash::AHashMap;
use std::hash::Hash;
use std::net::{Ipv4Addr, Ipv6Addr};

/// An address usable as an LPM key: `u32` for IPv4, `u128` for IPv6.
pub trait LpmKey: Copy + Eq + Hash + std::fmt::Debug {
    /// Bits in the address.
    const BITS: u8;
    /// The address with every bit after the first `len` cleared.
    fn masked(self, len: u8) -> Self;
}

impl LpmKey for u32 {
    const BITS: u8 = 32;
    fn masked(self, len: u8) -> Self {
        match len {
            0 => 0,
            l if l >= 32 => self,
            l => self & (u32::MAX << (32 - l)),
        }
    }
}

impl LpmKey for u128 {
    const BITS: u8 = 128;
    fn masked(self, len: u8) -> Self {
        match len {
            0 => 0,
            l if l >= 128 => self,
            l => self & (u128::MAX << (128 - l)),
        }
    }
}

/// Converts an IP address to its LPM key.
pub fn v4_key(addr: Ipv4Addr) -> u32 {
    u32::from(addr)
}

/// Converts an IPv6 address to its LPM key.
pub fn v6_key(addr: Ipv6Addr) -> u128 {
    u128::from(addr)
}

/// A longest-prefix-match table mapping prefixes to values.
#[derive(Debug, Clone)]
pub struct LpmTable<K: LpmKey, V> {
    by_len: Vec<AHashMap<K, V>>,
    present: [u64; 3],
    len: usize,
}

impl<K: LpmKey, V> Default for LpmTable<K, V> {
    fn default() -> Self {
        Self {
            by_len: (0..=K::BITS).map(|_| AHashMap::new()).collect(),
            present: [0; 3],
            len: 0,
        }
    }
}

impl<K: LpmKey, V> LpmTable<K, V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts or replaces the value for `prefix/len`; returns the old value.
    /// Host bits of `prefix` are ignored. `len` above the address width is clamped.
    pub fn insert(&mut self, prefix: K, len: u8, value: V) -> Option<V> {
        let len = len.min(K::BITS);
        let old = self.by_len[usize::from(len)].insert(prefix.masked(len), value);
        if old.is_none() {
            self.len += 1;
            self.present[usize::from(len / 64)] |= 1 << (len % 64);
        }
        old
    }

    /// Removes `prefix/len`; returns its value if it was present.
    pub fn remove(&mut self, prefix: K, len: u8) -> Option<V> {
        let len = len.min(K::BITS);
        let table = &mut self.by_len[usize::from(len)];
        let old = table.remove(&prefix.masked(len));
        if old.is_some() {
            self.len -= 1;
            if table.is_empty() {
                self.present[usize::from(len / 64)] &= !(1 << (len % 64));
            }
        }
        old
    }

    /// The value of the longest prefix covering `addr`, with that prefix's length.
    #[inline]
    pub fn lookup(&self, addr: K) -> Option<(u8, &V)> {
        self.lookup_shorter(addr, K::BITS + 1)
    }

    /// The longest prefix covering `addr` that is shorter than `below` bits: the route
    /// a new `addr/below` prefix takes destinations from.
    pub fn lookup_shorter(&self, addr: K, below: u8) -> Option<(u8, &V)> {
        let below = u32::from(below.min(K::BITS + 1));
        for word in (0..3).rev() {
            let first = word as u32 * 64;
            if first >= below {
                continue;
            }
            let keep = below - first;
            let mask = if keep >= 64 { u64::MAX } else { (1u64 << keep) - 1 };
            let mut bits = self.present[word] & mask;
            while bits != 0 {
                let top = 63 - bits.leading_zeros() as u8;
                bits &= !(1u64 << top);
                let len = word as u8 * 64 + top;
                if let Some(v) = self.by_len[usize::from(len)].get(&addr.masked(len)) {
                    return Some((len, v));
                }
            }
        }
        None
    }

    /// The value stored for exactly `prefix/len`.
    pub fn get_exact(&self, prefix: K, len: u8) -> Option<&V> {
        let len = len.min(K::BITS);
        self.by_len[usize::from(len)].get(&prefix.masked(len))
    }

    /// Number of prefixes stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no prefix is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every `(prefix, len, value)`, longest prefixes first, then by address.
    pub fn entries(&self) -> Vec<(K, u8, &V)>
    where
        K: Ord,
    {
        let mut out: Vec<(K, u8, &V)> = self
            .by_len
            .iter()
            .enumerate()
            .flat_map(|(len, t)| t.iter().map(move |(k, v)| (*k, len as u8, v)))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn longest_prefix_wins_and_removal_falls_back() {
        let mut t = LpmTable::<u32, &str>::new();
        t.insert(v4_key("198.18.0.0".parse().unwrap()), 15, "bench");
        t.insert(v4_key("198.18.1.0".parse().unwrap()), 24, "subnet");
        t.insert(v4_key("198.18.1.7".parse().unwrap()), 32, "host");
        t.insert(0, 0, "default");
        let k = |s: &str| v4_key(s.parse().unwrap());
        assert_eq!(t.lookup(k("198.18.1.7")), Some((32, &"host")));
        assert_eq!(t.lookup(k("198.18.1.8")), Some((24, &"subnet")));
        assert_eq!(t.lookup(k("198.19.0.1")), Some((15, &"bench")));
        assert_eq!(t.lookup(k("127.0.0.1")), Some((0, &"default")));
        assert_eq!(t.remove(k("198.18.1.7"), 32), Some("host"));
        assert_eq!(t.lookup(k("198.18.1.7")), Some((24, &"subnet")));
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup_shorter(k("198.18.1.0"), 24), Some((15, &"bench")));
        assert_eq!(t.lookup_shorter(k("198.18.1.0"), 25), Some((24, &"subnet")));
        assert_eq!(t.lookup_shorter(k("198.18.0.0"), 15), Some((0, &"default")));
        t.remove(0, 0);
        assert_eq!(t.lookup_shorter(k("198.18.0.0"), 15), None);
        assert_eq!(t.lookup(k("127.0.0.1")), None);
    }

    #[test]
    fn host_bits_are_ignored_and_v6_works() {
        let mut t = LpmTable::<u128, u8>::new();
        let k = |s: &str| v6_key(s.parse().unwrap());
        t.insert(k("2001:2::ffff"), 48, 1);
        t.insert(k("2001:2:0:1::2"), 128, 2);
        assert_eq!(t.get_exact(k("2001:2::"), 48), Some(&1));
        assert_eq!(t.lookup(k("2001:2:0:1::2")), Some((128, &2)));
        assert_eq!(t.lookup(k("2001:2:0:1::3")), Some((48, &1)));
        assert_eq!(t.lookup(k("2001:3::1")), None);
        assert_eq!(t.entries()[0].1, 128);
    }

    proptest! {
        /// Against a linear-scan oracle: the longest matching prefix wins.
        #[test]
        fn matches_linear_oracle(routes in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..40),
                                 probes in proptest::collection::vec(any::<u32>(), 1..40)) {
            let mut t = LpmTable::<u32, usize>::new();
            let mut oracle: Vec<(u32, u8, usize)> = Vec::new();
            for (i, (p, l)) in routes.iter().enumerate() {
                t.insert(*p, *l, i);
                let m = p.masked(*l);
                oracle.retain(|(op, ol, _)| !(*op == m && *ol == *l));
                oracle.push((m, *l, i));
            }
            for a in probes {
                let want = oracle.iter().filter(|(p, l, _)| a.masked(*l) == *p).max_by_key(|(_, l, _)| *l).map(|(_, l, v)| (*l, *v));
                prop_assert_eq!(t.lookup(a).map(|(l, v)| (l, *v)), want);
                let below = (a % 33) as u8;
                let shorter = oracle.iter().filter(|(p, l, _)| *l < below && a.masked(*l) == *p).max_by_key(|(_, l, _)| *l).map(|(_, l, v)| (*l, *v));
                prop_assert_eq!(t.lookup_shorter(a, below).map(|(l, v)| (l, *v)), shorter);
            }
        }
    }
}

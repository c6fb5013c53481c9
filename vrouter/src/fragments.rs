//! Fragments of an IP datagram (IPv4, or IPv6 with a fragment header) follow its
//! first fragment. Only the first carries
//! the transport header, so a later fragment alone has no ports: keyed by its
//! addresses only it would miss its connection's flow, and with it the
//! connection's translation (a service's reply would reach the client from the
//! backend's address, a source-NATed datagram would leave half translated), its
//! ECMP member and its policy verdict. As Tungsten's vRouter does with its
//! fragment table, the first fragment records its ports under the datagram's
//! identity (VRF, addresses, protocol, IP identification) and the fragments after it
//! take them, so every fragment of a datagram is decided by the one flow.
//!
//! The records live in a flow table of their own (lock-free lookups, CAS inserts,
//! shared by every worker), two entries per record as the table links pairs: the
//! record, keyed as the datagram's flow with source port 0 and the identification
//! as destination port, and a partner keyed the same with source port 1, so the
//! two kinds of keys never meet. They are aged by the control side a few seconds
//! after their datagram's last fragment. A later fragment that arrives before its
//! first (reordered, or the record table full) goes on keyed by its addresses, as
//! before, and is counted.

use flow_table::{FlowKey, FlowTable, FlowValue, Insert};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Seconds a record outlives its datagram's last fragment on the coarse clock (the
/// fragments of one datagram are sent back to back; the IP identification of the
/// pair comes round again only after 65,536 datagrams, and a first fragment
/// overwrites the record of the same identity anyway).
pub const IDLE_SECS: u32 = 3;

/// Marks a record's value (a partner's data is 0).
const RECORD: u64 = 1 << 32;

/// The fragment records of every datagram in flight through the node.
#[derive(Debug)]
pub struct Fragments {
    table: FlowTable,
    /// First fragments recorded.
    pub recorded: AtomicU64,
    /// Later fragments that took their first fragment's ports.
    pub followed: AtomicU64,
    /// Later fragments with no record (reordered before their first, or its record
    /// refused): forwarded by their addresses.
    pub unmatched: AtomicU64,
    /// First fragments not recorded because the table was full.
    pub refused_full: AtomicU64,
    /// Records removed by aging.
    pub aged: AtomicU64,
}

/// A datagram's identity: the fragments' common fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// The VRF its fragments are routed in.
    pub vrf: u16,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol (IPv6: the fragment header's next header, the same in every
    /// fragment).
    pub proto: u8,
    /// Identification (IPv4's 16 bits, IPv6's fragment header's 32).
    pub ident: u32,
}

impl Datagram {
    /// The record's key: the datagram's flow with the identification for ports
    /// (IPv4: source port 0; IPv6: its high and low halves).
    fn key(&self) -> Option<FlowKey> {
        let (hi, lo) = ((self.ident >> 16) as u16, self.ident as u16);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(FlowKey::v4(self.vrf, s, d, self.proto, 0, lo)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(FlowKey::v6(self.vrf, s, d, self.proto, hi, lo)),
            _ => None,
        }
    }

    /// Its partner's key, which no record's key can be (IPv4: source port 1; IPv6:
    /// protocol 0, hop-by-hop, never an upper layer).
    fn partner(&self) -> Option<FlowKey> {
        let (hi, lo) = ((self.ident >> 16) as u16, self.ident as u16);
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Some(FlowKey::v4(self.vrf, s, d, self.proto, 1, lo)),
            (IpAddr::V6(s), IpAddr::V6(d)) => Some(FlowKey::v6(self.vrf, s, d, 0, hi, lo)),
            _ => None,
        }
    }
}

impl Fragments {
    /// Room for `entries` entries (two per datagram in flight).
    pub fn new(entries: u32) -> Self {
        Self {
            table: FlowTable::new(entries.max(2)),
            recorded: AtomicU64::new(0),
            followed: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            refused_full: AtomicU64::new(0),
            aged: AtomicU64::new(0),
        }
    }

    /// Records held now.
    pub fn records(&self) -> u64 {
        self.table.stats().active / 2
    }

    /// The counters, as the API shows them.
    pub fn counts(&self) -> vrouter_api::FragmentCounts {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vrouter_api::FragmentCounts {
            recorded: load(&self.recorded),
            followed: load(&self.followed),
            unmatched: load(&self.unmatched),
            refused_full: load(&self.refused_full),
        }
    }

    /// Records the transport protocol and ports (source, destination) of
    /// `datagram`'s first fragment for the fragments after it; a record of the same
    /// identity is replaced (the identification came round).
    pub fn record(&self, datagram: &Datagram, proto: u8, ports: (u16, u16)) {
        let (Some(key), Some(partner)) = (datagram.key(), datagram.partner()) else {
            return;
        };
        let hash = key.hash();
        let value = FlowValue {
            data: RECORD | u64::from(proto) << 40 | u64::from(ports.0) << 16 | u64::from(ports.1),
            generation: 0,
            owner: 0,
        };
        let found = self.table.lookup(&key, hash);
        let index = match found {
            Some(f) if f.value.data == value.data => Some(f.index),
            Some(f) => self.table.update(&f, value).then_some(f.index),
            None => match self
                .table
                .insert_pair((&key, value), (&partner, FlowValue { data: 0, ..value }))
            {
                Insert::Inserted { forward, .. } | Insert::Alone(forward) => Some(forward.index),
                // Another worker recorded the same first fragment (a duplicate).
                Insert::Exists(f) => Some(f.index),
                Insert::Full => {
                    self.refused_full.fetch_add(1, Ordering::Relaxed);
                    None
                }
            },
        };
        if let Some(index) = index {
            self.table.touch(index, 0);
            self.recorded.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The transport protocol and ports `datagram`'s first fragment recorded, for a
    /// later fragment of it; `None` (counted) without a record.
    pub fn follow(&self, datagram: &Datagram) -> Option<(u8, u16, u16)> {
        let found = datagram.key().and_then(|key| self.table.lookup(&key, key.hash()));
        match found {
            Some(f) if f.value.data & RECORD != 0 => {
                self.table.touch(f.index, 0);
                self.followed.fetch_add(1, Ordering::Relaxed);
                let data = f.value.data;
                Some(((data >> 40) as u8, (data >> 16) as u16, data as u16))
            }
            _ => {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Advances the records' clock to `now` (seconds) and removes the records idle
    /// for [`IDLE_SECS`]; returns how many went.
    pub fn age(&self, now: u32) -> usize {
        self.table.set_now(now);
        let mut expired = Vec::new();
        self.table.for_each(|r, activity| {
            if r.value.data != 0 && now.saturating_sub(activity.last_seen) >= IDLE_SECS {
                expired.push(*r);
            }
        });
        let mut removed = 0;
        for f in expired {
            let partner = f.reverse.and_then(|i| self.table.get(i));
            if self.table.remove(&f) {
                removed += 1;
                if let Some(p) = partner.filter(|p| p.reverse == Some(f.index)) {
                    self.table.remove(&p);
                }
            }
        }
        self.aged.fetch_add(removed as u64, Ordering::Relaxed);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(ident: u16, proto: u8) -> Datagram {
        Datagram {
            vrf: 1,
            src: std::net::Ipv4Addr::new(198, 18, 1, 2).into(),
            dst: std::net::Ipv4Addr::new(198, 18, 100, 10).into(),
            proto,
            ident: u32::from(ident),
        }
    }

    #[test]
    fn later_fragments_take_the_ports_of_their_first_until_the_record_ages() {
        let f = Fragments::new(64);
        f.age(100);
        assert_eq!(f.follow(&datagram(7, 17)), None, "no first fragment yet");
        f.record(&datagram(7, 17), 17, (5000, 53));
        assert_eq!(f.follow(&datagram(7, 17)), Some((17, 5000, 53)));
        // Another identification, protocol or VRF is another datagram.
        assert_eq!(f.follow(&datagram(8, 17)), None);
        assert_eq!(f.follow(&datagram(7, 6)), None);
        assert_eq!(
            f.follow(&Datagram {
                vrf: 2,
                ..datagram(7, 17)
            }),
            None
        );
        // The identification comes round: the new first fragment's ports win.
        f.record(&datagram(7, 17), 17, (5001, 53));
        assert_eq!(f.follow(&datagram(7, 17)), Some((17, 5001, 53)));
        assert_eq!(f.records(), 1);
        // Used at 100 (and again at 101): gone once idle for IDLE_SECS.
        f.age(101);
        assert_eq!(f.follow(&datagram(7, 17)), Some((17, 5001, 53)));
        assert_eq!(f.age(101 + IDLE_SECS - 1), 0);
        assert_eq!(f.age(101 + IDLE_SECS), 1);
        assert_eq!(f.records(), 0);
        assert_eq!(f.follow(&datagram(7, 17)), None);
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        assert_eq!((count(&f.recorded), count(&f.followed)), (2, 3));
        assert_eq!((count(&f.unmatched), count(&f.aged)), (5, 1));
    }

    #[test]
    fn a_full_table_refuses_new_records_and_counts_them() {
        let f = Fragments::new(4);
        let mut refused = 0;
        for ident in 0..16 {
            f.record(&datagram(ident, 17), 17, (ident, 53));
            if f.follow(&datagram(ident, 17)).is_none() {
                refused += 1;
            }
        }
        assert!(f.records() >= 1 && f.records() <= 2, "{} records", f.records());
        assert_eq!(f.refused_full.load(Ordering::Relaxed), refused);
        assert!(refused >= 14);
    }
}

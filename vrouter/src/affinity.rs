//! Client-address session affinity (Kubernetes' `sessionAffinity: ClientIP`): a
//! client's new connections to a service port go to the backend its last one went
//! to, as long as that was less than the service's timeout ago and the backend still
//! serves; then the choice is made again.
//!
//! The records live in a flow table of their own (lock-free lookups, CAS inserts,
//! aged by the control side like flows), one per client and service port, keyed as
//! the client's flow to the service port with source port 0. A record's last use is
//! its entry's coarse clock stamp, its timeout the value's `generation` field, its
//! backend (the arena index plus one) the value's data. Without a fresh record the
//! backend is chosen by rendezvous hashing of the record's key (client, service
//! address, protocol, port), so two workers racing on one client's first two
//! connections choose the same backend, and a full record table still keeps a
//! client on one backend while the backends do not change.

use flow_table::{FlowKey, FlowRef, FlowTable, FlowValue, Insert};
use nexthop::{NatAddr, ServiceEntry};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// The affinity records of every service port with client-address affinity.
#[derive(Debug)]
pub struct Affinity {
    table: FlowTable,
    /// Records not made because the table was full (the client still goes to its
    /// hashed backend).
    pub refused_full: AtomicU64,
    /// Records removed by aging.
    pub aged: AtomicU64,
}

/// The record's key for a client's flow `key` to a service port: source port 0.
fn record_key(key: &FlowKey) -> Option<FlowKey> {
    let (vrf, proto, port) = (key.vrf(), key.proto(), key.dst_port());
    match (key.src_addr(), key.dst_addr()) {
        (IpAddr::V4(client), IpAddr::V4(service)) => Some(FlowKey::v4(vrf, client, service, proto, 0, port)),
        (IpAddr::V6(client), IpAddr::V6(service)) => Some(FlowKey::v6(vrf, client, service, proto, 0, port)),
        _ => None,
    }
}

impl Affinity {
    /// Room for `entries` entries (two per record: the table links pairs).
    pub fn new(entries: u32) -> Self {
        Self {
            table: FlowTable::new(entries.max(2)),
            refused_full: AtomicU64::new(0),
            aged: AtomicU64::new(0),
        }
    }

    /// Records held now.
    pub fn records(&self) -> u64 {
        self.table.stats().active / 2
    }

    /// The backend of `service` (which has affinity) for a new flow `key` from a
    /// client; records or refreshes the client's choice. `None` without backends.
    pub fn backend(&self, key: &FlowKey, service: &ServiceEntry) -> Option<NatAddr> {
        let record = record_key(key)?;
        let hash = record.hash();
        let found = self.table.lookup(&record, hash);
        if let Some(kept) = found.as_ref().and_then(|f| self.fresh_backend(f, service)) {
            self.table.touch(found.as_ref().map_or(0, |f| f.index), 0);
            return Some(kept);
        }
        let chosen = service.backend(hash)?;
        let value = FlowValue {
            data: u64::from(chosen.0) + 1,
            generation: service.affinity_timeout_secs,
            owner: 0,
        };
        match found {
            Some(f) => {
                if self.table.update(&f, value) {
                    self.table.touch(f.index, 0);
                }
            }
            None => {
                let reverse = FlowValue { data: 0, ..value };
                match self.table.insert_pair((&record, value), (&record.reversed(), reverse)) {
                    Insert::Inserted { forward, .. } | Insert::Alone(forward) => self.table.touch(forward.index, 0),
                    // Another worker recorded this client first: its choice stands.
                    Insert::Exists(f) => return self.fresh_backend(&f, service).or(Some(chosen)),
                    Insert::Full => {
                        self.refused_full.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        Some(chosen)
    }

    /// The backend record `f` names, if it was used within its timeout and the
    /// service still has that backend.
    fn fresh_backend(&self, f: &FlowRef, service: &ServiceEntry) -> Option<NatAddr> {
        let idle = self.table.now().saturating_sub(self.table.activity(f.index).last_seen);
        let backend = NatAddr(f.value.data.checked_sub(1)? as u32);
        // A timeout lowered since the record was made holds at once.
        let timeout = f.value.generation.min(service.affinity_timeout_secs);
        (idle < timeout && service.backends.contains(&backend)).then_some(backend)
    }

    /// Advances the records' clock to `now` (seconds) and removes the records idle
    /// past their timeout; returns how many went.
    pub fn age(&self, now: u32) -> usize {
        self.table.set_now(now);
        let mut expired = Vec::new();
        self.table.for_each(|r, activity| {
            if r.value.data != 0 && now.saturating_sub(activity.last_seen) >= r.value.generation {
                expired.push(*r);
            }
        });
        let mut removed = 0;
        for f in expired {
            let reverse = f.reverse.and_then(|i| self.table.get(i));
            if self.table.remove(&f) {
                removed += 1;
                if let Some(r) = reverse.filter(|r| r.reverse == Some(f.index)) {
                    self.table.remove(&r);
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
    use std::net::Ipv4Addr;

    fn service(backends: &[u32], timeout: u32) -> ServiceEntry {
        ServiceEntry {
            name: "default/sticky".into(),
            ip: Some(NatAddr(0)),
            target_port: 8080,
            backends: backends.iter().map(|b| NatAddr(*b)).collect(),
            ids: backends
                .iter()
                .map(|b| nexthop::ecmp::member_id(&[u64::from(*b)]))
                .collect(),
            affinity_timeout_secs: timeout,
            external: false,
            down: Vec::new(),
        }
    }

    fn flow(client: u8, sport: u16) -> FlowKey {
        FlowKey::v4(
            1,
            Ipv4Addr::new(198, 18, 1, client),
            Ipv4Addr::new(198, 18, 100, 10),
            6,
            sport,
            80,
        )
    }

    #[test]
    fn a_client_stays_on_its_backend_until_the_timeout_or_the_backend_goes() {
        let a = Affinity::new(1024);
        let four = service(&[1, 2, 3, 4], 10);
        a.age(100);
        let first = a.backend(&flow(2, 1000), &four).unwrap();
        for sport in 1001..1100 {
            assert_eq!(a.backend(&flow(2, sport), &four), Some(first), "port {sport}");
        }
        assert_eq!(a.records(), 1);
        // A new backend does not take the client while its record is fresh.
        let mut five = service(&[1, 2, 3, 4, 5], 10);
        let moved_by_hash = (10..200u8).any(|c| {
            let k = record_key(&flow(c, 1)).unwrap().hash();
            five.backend(k) != four.backend(k)
        });
        assert!(moved_by_hash, "the fifth backend wins some clients by hash");
        for c in 10..200u8 {
            let before = a.backend(&flow(c, 1), &four).unwrap();
            assert_eq!(a.backend(&flow(c, 2), &five), Some(before), "client {c} moved");
        }
        // All used at 100; client 2 again at 109, which renews its record: the others
        // expire at 110, client 2's at 119.
        assert_eq!(a.age(109), 0);
        assert_eq!(a.backend(&flow(2, 2000), &five), Some(first));
        assert_eq!(a.age(110), 190);
        assert_eq!(a.age(118), 0);
        assert_eq!(a.age(119), 1);
        assert_eq!(a.records(), 0);
        // The backend goes: the client's next connection goes to another one, which
        // then sticks.
        five.backends.retain(|b| *b != first);
        five.ids = five
            .backends
            .iter()
            .map(|b| nexthop::ecmp::member_id(&[u64::from(b.0)]))
            .collect();
        let a = Affinity::new(1024);
        let other = a.backend(&flow(2, 3000), &five).unwrap();
        assert_ne!(other, first);
        assert_eq!(a.backend(&flow(2, 3001), &five), Some(other));
        assert_eq!(a.backend(&flow(2, 3002), &service(&[], 10)), None, "no backends");
    }

    #[test]
    fn an_expired_record_is_chosen_again_and_a_full_table_still_hashes_by_client() {
        let a = Affinity::new(2);
        let s = service(&[1, 2, 3], 5);
        let first = a.backend(&flow(7, 1), &s).unwrap();
        // The one record fills the table: other clients are counted, still sticky.
        let other = a.backend(&flow(8, 1), &s).unwrap();
        assert_eq!(a.backend(&flow(8, 2), &s), Some(other));
        assert_eq!(a.refused_full.load(Ordering::Relaxed), 2);
        // Expired but not yet aged: the choice is made again (and recorded again).
        a.table.set_now(50);
        assert_eq!(a.backend(&flow(7, 3), &s), Some(first), "rendezvous by client: same");
        assert_eq!(a.records(), 1);
    }
}

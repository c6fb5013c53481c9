//! A worker's cache of route lookups: the longest-prefix match of a (VRF, destination)
//! under one snapshot generation.
//!
//! Flows re-resolve their route when a publication changed it. With many flows to few
//! destinations, as clients to services are, the lookups after such a publication
//! repeat for the same destinations: this cache answers all but the first of them. An
//! entry is only used under the generation it was filled in, so a new snapshot needs
//! no purge.

use flow_table::FlowKey;
use nexthop::{Route, RouteSlot, Snapshot, VOLATILE_SLOT};
use std::net::IpAddr;

/// Entries per worker (a power of two): 48 bytes each, 48 KB.
const SLOTS: usize = 1024;

/// What the routing tables say about a destination, before ECMP member selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RouteLookup {
    /// The longest matching prefix's next hop and slot.
    Found(Route),
    /// No route, and the address belongs to an interface of another VRF (the VRF's
    /// miss slot).
    OtherVrf(RouteSlot),
    /// No route (the VRF's miss slot).
    Missing(RouteSlot),
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u64,
    dst: u128,
    vrf: nexthop::VrfId,
    route: RouteLookup,
}

/// The cache (one per worker, in its pipeline context).
#[derive(Debug)]
pub struct RouteCache {
    slots: Box<[Slot]>,
    hits: u64,
    misses: u64,
}

impl Default for RouteCache {
    fn default() -> Self {
        let empty = Slot {
            generation: u64::MAX,
            dst: 0,
            vrf: nexthop::VrfId::FABRIC,
            route: RouteLookup::Missing(VOLATILE_SLOT),
        };
        Self {
            slots: vec![empty; SLOTS].into_boxed_slice(),
            hits: 0,
            misses: 0,
        }
    }
}

impl RouteCache {
    /// The route of a flow's destination in its VRF under `snap`, from the cache when
    /// this generation already looked it up.
    #[inline]
    pub(super) fn lookup(&mut self, snap: &Snapshot, flow: &FlowKey) -> RouteLookup {
        let vrf = nexthop::VrfId(flow.vrf());
        let key = flow.dst_bits();
        let mixed = (key as u64) ^ ((key >> 64) as u64) ^ u64::from(vrf.0).rotate_left(29);
        let index = (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 54) as usize & (SLOTS - 1);
        let slot = &mut self.slots[index];
        if slot.generation == snap.generation && slot.dst == key && slot.vrf == vrf {
            self.hits += 1;
            return slot.route;
        }
        self.misses += 1;
        let route = lookup_tables(snap, vrf, flow.dst_addr());
        *slot = Slot {
            generation: snap.generation,
            dst: key,
            vrf,
            route,
        };
        route
    }

    /// Lookups answered from the cache, and lookups that went to the tables.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

/// The lookup itself: longest prefix in the VRF; without one, whether another VRF
/// owns the address (an isolation drop rather than a missing route).
fn lookup_tables(snap: &Snapshot, vrf: nexthop::VrfId, dst: IpAddr) -> RouteLookup {
    let Some(tables) = snap.vrf(vrf) else {
        return RouteLookup::Missing(VOLATILE_SLOT);
    };
    let found = match dst {
        IpAddr::V4(a) => tables.v4.lookup(nexthop::v4_key(a)).map(|(_, route)| *route),
        IpAddr::V6(a) => tables.v6.lookup(nexthop::v6_key(a)).map(|(_, route)| *route),
    };
    if let Some(route) = found {
        return RouteLookup::Found(route);
    }
    let owner = match dst {
        IpAddr::V4(a) => snap.owner4.get(&a),
        IpAddr::V6(a) => snap.owner6.get(&a),
    };
    if owner.is_some_and(|v| *v != vrf) {
        RouteLookup::OtherVrf(tables.miss_slot)
    } else {
        RouteLookup::Missing(tables.miss_slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexthop::{NextHop, NextHopId, Vrf};
    use std::net::Ipv4Addr;

    fn to(vrf: u16, dst: Ipv4Addr) -> FlowKey {
        FlowKey::v4(vrf, Ipv4Addr::new(198, 18, 1, 1), dst, 17, 4000, 53)
    }

    fn snapshot(generation: u64, nh: NextHopId) -> Snapshot {
        let mut vrf = Vrf {
            id: nexthop::VrfId(0),
            ..Vrf::default()
        };
        vrf.v4
            .insert(nexthop::v4_key(Ipv4Addr::new(198, 18, 2, 0)), 24, Route::volatile(nh));
        Snapshot {
            generation,
            vrfs: vec![
                vrf,
                Vrf {
                    id: nexthop::VrfId(1),
                    ..Vrf::default()
                },
            ],
            nexthops: vec![NextHop::Discard, NextHop::Receive, NextHop::Discard, NextHop::Discard],
            ..Snapshot::default()
        }
    }

    #[test]
    fn answers_repeat_lookups_within_a_generation_only() {
        let mut cache = RouteCache::default();
        let dst = Ipv4Addr::new(198, 18, 2, 7);
        let first = snapshot(1, NextHopId(2));
        assert_eq!(
            cache.lookup(&first, &to(0, dst)),
            RouteLookup::Found(Route::volatile(NextHopId(2)))
        );
        assert_eq!(
            cache.lookup(&first, &to(0, dst)),
            RouteLookup::Found(Route::volatile(NextHopId(2)))
        );
        assert_eq!(cache.counts(), (1, 1));
        // The next publication moved the prefix to another next hop.
        let second = snapshot(2, NextHopId(3));
        assert_eq!(
            cache.lookup(&second, &to(0, dst)),
            RouteLookup::Found(Route::volatile(NextHopId(3)))
        );
        assert_eq!(cache.counts(), (1, 2));
        // Another VRF, another destination: their own answers, never the cached one.
        assert_eq!(cache.lookup(&second, &to(1, dst)), RouteLookup::Missing(VOLATILE_SLOT));
        let elsewhere = Ipv4Addr::new(198, 18, 3, 7);
        assert_eq!(
            cache.lookup(&second, &to(0, elsewhere)),
            RouteLookup::Missing(VOLATILE_SLOT)
        );
        assert_eq!(
            cache.lookup(&second, &to(0, dst)),
            RouteLookup::Found(Route::volatile(NextHopId(3)))
        );
    }

    #[test]
    fn a_workers_cache_stays_small() {
        assert!(std::mem::size_of::<Slot>() <= 48);
    }

    #[test]
    fn colliding_destinations_evict_not_alias() {
        let mut cache = RouteCache::default();
        let snap = snapshot(1, NextHopId(2));
        // More destinations than slots: every answer is still the tables' answer.
        for round in 0..2 {
            for i in 0..(SLOTS as u32 * 4) {
                let dst = Ipv4Addr::from(0xc612_0000 + i);
                let expect = if (0xc612_0200..0xc612_0300).contains(&(0xc612_0000 + i)) {
                    RouteLookup::Found(Route::volatile(NextHopId(2)))
                } else {
                    RouteLookup::Missing(VOLATILE_SLOT)
                };
                assert_eq!(cache.lookup(&snap, &to(0, dst)), expect, "round {round}, {dst}");
            }
        }
    }
}

//! What stays the same from one publication to the next: next-hop ids, composite
//! indexes, route slots, and each slot's stamp (the generation its answer last
//! changed in). Workers keep flow decisions whose route did not change, so these
//! must not be renumbered when something else changes.

use super::*;
use nexthop::{Route, RouteSlot, MAX_ROUTE_SLOTS, VOLATILE_SLOT};
use std::hash::Hash;

mod nat;
mod patch;
mod policy;

pub(super) use nat::{backend_id, NatArena};

/// Builds successive snapshots of a [`DesiredState`]; see the module doc. The
/// control thread keeps one for the life of the process.
#[derive(Debug, Clone)]
pub struct SnapshotBuilder {
    next_generation: u64,
    flow_epoch: u64,
    nexthops: Interner<NextHop>,
    composites: Interner<Composite>,
    routes: FastMap<(VrfId, IpNet), RouteRecord>,
    stamps: Vec<u32>,
    free_slots: Vec<RouteSlot>,
    miss_slots: Vec<RouteSlot>,
    vrf_names: Vec<String>,
    owners: (FastMap<Ipv4Addr, VrfId>, FastMap<Ipv6Addr, VrfId>),
    /// Table keys the last full build filled from interfaces (pod addresses, gateway
    /// receive routes) rather than from routes: a route change there takes a full build.
    derived: std::collections::HashSet<(VrfId, IpNet), ahash::RandomState>,
    /// Publications patched since the last full build: next hops and composites that
    /// went out of use are only swept by a full build, which this bounds.
    patched_since_build: usize,
    /// The NAT address arena.
    nat: NatArena,
    /// The services of the last full build.
    services: std::sync::Arc<nexthop::Services>,
    /// The floating IPs of the last full build.
    floating: std::sync::Arc<nexthop::FloatingIps>,
    /// The compiled policies of the last full build, and what they were made from.
    policies: std::sync::Arc<nexthop::Policies>,
    policy_input: policy::PolicyInput,
    /// Connections denied per policy, by name (kept while the policy is).
    policy_counters: std::collections::BTreeMap<String, std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

#[derive(Debug, Clone, Copy)]
struct RouteRecord {
    slot: RouteSlot,
    nexthop: NextHopId,
    /// The next hop in the previous publication; `None` for a route new in this one.
    before: Option<NextHopId>,
    seen: u64,
}

/// Ids handed out by value: the same value keeps its id while it is in use.
#[derive(Debug, Clone)]
struct Interner<T> {
    ids: FastMap<T, (u32, u64)>,
    free: Vec<u32>,
    high_water: u32,
    /// Ids given to new values since the last [`SnapshotBuilder::begin`] (what a patch
    /// must carry).
    fresh: Vec<(u32, T)>,
}

/// Marks an interned value that is never swept.
const PERMANENT: u64 = u64::MAX;

impl<T: Hash + Eq + Clone> Interner<T> {
    fn new(permanent: &[T]) -> Self {
        let mut me = Self {
            ids: FastMap::default(),
            free: Vec::new(),
            high_water: 0,
            fresh: Vec::new(),
        };
        for value in permanent {
            me.intern(value.clone(), PERMANENT);
        }
        me
    }

    fn intern(&mut self, value: T, generation: u64) -> u32 {
        if let Some((id, seen)) = self.ids.get_mut(&value) {
            if *seen != PERMANENT {
                *seen = generation;
            }
            return *id;
        }
        let id = self.free.pop().unwrap_or_else(|| {
            self.high_water += 1;
            self.high_water - 1
        });
        self.fresh.push((id, value.clone()));
        self.ids.insert(value, (id, generation));
        id
    }

    /// Frees the ids of values not used in `generation`; lowest ids are reused first.
    fn sweep(&mut self, generation: u64) {
        let mut freed = Vec::new();
        self.ids.retain(|_, (id, seen)| {
            let keep = *seen == generation || *seen == PERMANENT;
            if !keep {
                freed.push(*id);
            }
            keep
        });
        self.free.extend(freed);
        self.free.sort_unstable_by(|a, b| b.cmp(a));
    }

    /// Values indexed by id; unused ids hold `filler`.
    fn table(&self, filler: T) -> Vec<T> {
        let mut out = vec![filler; self.high_water as usize];
        for (value, (id, _)) in &self.ids {
            out[*id as usize] = value.clone();
        }
        out
    }
}

impl SnapshotBuilder {
    /// A builder whose first snapshot will have `first_generation`.
    pub fn new(first_generation: u64) -> Self {
        Self {
            next_generation: first_generation,
            flow_epoch: first_generation,
            nexthops: Interner::new(&[NextHop::Discard, NextHop::Receive]),
            composites: Interner::new(&[]),
            routes: FastMap::default(),
            stamps: vec![0],
            free_slots: Vec::new(),
            miss_slots: Vec::new(),
            vrf_names: Vec::new(),
            owners: Default::default(),
            derived: Default::default(),
            patched_since_build: 0,
            nat: NatArena::default(),
            services: Default::default(),
            floating: Default::default(),
            policies: Default::default(),
            policy_input: Default::default(),
            policy_counters: Default::default(),
        }
    }

    /// Starts a full build: returns its generation.
    pub(super) fn begin_full(&mut self) -> u64 {
        self.derived.clear();
        self.patched_since_build = 0;
        self.begin()
    }

    /// Notes that the full build fills `prefix` in `vrf` from an interface.
    pub(super) fn derive(&mut self, vrf: VrfId, prefix: IpNet) {
        self.derived.insert((vrf, prefix));
    }

    /// Starts a publication: returns its generation.
    fn begin(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation += 1;
        self.stamps[VOLATILE_SLOT as usize] = generation as u32;
        self.nexthops.fresh.clear();
        self.composites.fresh.clear();
        generation
    }

    /// The id of `nexthop` (the same id as last time, if it was in use then).
    pub(super) fn nexthop(&mut self, nexthop: NextHop, generation: u64) -> NextHopId {
        NextHopId(self.nexthops.intern(nexthop, generation))
    }

    /// The id of a composite next hop over `group`.
    pub(super) fn composite(&mut self, group: Composite, generation: u64) -> NextHopId {
        let id = self.composites.intern(group, generation);
        self.nexthop(NextHop::Composite { id }, generation)
    }

    /// The table value of `prefix` in `vrf`, pointing at `nexthop`. A prefix set twice
    /// in one build keeps the last next hop.
    pub(super) fn route(&mut self, vrf: VrfId, prefix: IpNet, nexthop: NextHopId, generation: u64) -> Route {
        let key = (vrf, prefix.trunc());
        let record = match self.routes.get_mut(&key) {
            Some(record) => record,
            None => {
                let slot = self.allocate_slot(generation);
                self.routes.entry(key).or_insert(RouteRecord {
                    slot,
                    nexthop,
                    before: None,
                    seen: generation,
                })
            }
        };
        if record.seen != generation {
            record.before = Some(record.nexthop);
            record.seen = generation;
        }
        record.nexthop = nexthop;
        Route {
            nexthop,
            slot: record.slot,
        }
    }

    fn allocate_slot(&mut self, generation: u64) -> RouteSlot {
        if let Some(slot) = self.free_slots.pop() {
            self.stamps[slot as usize] = generation as u32;
            return slot;
        }
        if self.stamps.len() as u32 >= MAX_ROUTE_SLOTS {
            return VOLATILE_SLOT;
        }
        self.stamps.push(generation as u32);
        self.stamps.len() as RouteSlot - 1
    }

    fn stamp(&mut self, slot: RouteSlot, generation: u64) {
        self.stamps[slot as usize] = generation as u32;
    }

    /// Completes `snap` (whose tables hold this build's routes): stamps what changed,
    /// frees what went away, and fills in the id-indexed tables.
    pub(super) fn finish(&mut self, snap: &mut Snapshot, generation: u64) {
        self.finish_vrfs(snap, generation);
        let mut gone = Vec::new();
        let mut added = Vec::new();
        let mut changed = Vec::new();
        for (key, record) in &self.routes {
            if record.seen != generation {
                gone.push((*key, record.slot));
            } else if record.before.is_none() {
                added.push((*key, record.slot));
            } else if record.before != Some(record.nexthop) {
                changed.push(record.slot);
            }
        }
        for (key, slot) in gone {
            self.routes.remove(&key);
            self.stamp(slot, generation);
            if slot != VOLATILE_SLOT {
                self.free_slots.push(slot);
            }
        }
        self.free_slots.sort_unstable_by(|a, b| b.cmp(a));
        for slot in changed {
            self.stamp(slot, generation);
        }
        for ((vrf, prefix), slot) in added {
            self.stamp(slot, generation);
            // Destinations inside a new prefix were answered by the longest shorter
            // prefix around it, or by "no route": that answer changed for them.
            let Some(tables) = snap.vrfs.get(vrf.index()) else {
                continue;
            };
            let parent = match prefix {
                IpNet::V4(p) => tables
                    .v4
                    .lookup_shorter(v4_key(p.network()), p.prefix_len())
                    .map(|(_, r)| r.slot),
                IpNet::V6(p) => tables
                    .v6
                    .lookup_shorter(v6_key(p.network()), p.prefix_len())
                    .map(|(_, r)| r.slot),
            };
            self.stamp(parent.unwrap_or(tables.miss_slot), generation);
        }
        self.nexthops.sweep(generation);
        self.composites.sweep(generation);
        snap.generation = generation;
        snap.flow_epoch = self.flow_epoch;
        snap.route_stamps = self.stamps.clone();
        snap.nexthops = self.nexthops.table(NextHop::Discard);
        snap.composites = self.composites.table(Composite::default());
    }

    /// Miss slots per VRF, and the flow epoch: renewed when a VRF id changes meaning
    /// (which the desired state never does today) and every 2^31 generations, so that
    /// 32-bit generation stamps never wrap into each other.
    fn finish_vrfs(&mut self, snap: &mut Snapshot, generation: u64) {
        let renamed = snap.vrfs.iter().zip(&self.vrf_names).any(|(v, old)| v.name != *old);
        if renamed || generation - self.flow_epoch >= 1 << 31 {
            self.flow_epoch = generation;
        }
        self.vrf_names = snap.vrfs.iter().map(|v| v.name.clone()).collect();
        while self.miss_slots.len() < snap.vrfs.len() {
            let slot = self.allocate_slot(generation);
            self.miss_slots.push(slot);
        }
        // Which VRF owns an address decides "other VRF" drops, cached under miss slots.
        if snap.owner4 != self.owners.0 || snap.owner6 != self.owners.1 {
            for slot in self.miss_slots.clone() {
                self.stamp(slot, generation);
            }
            self.owners = (snap.owner4.clone(), snap.owner6.clone());
        }
        for (vrf, slot) in snap.vrfs.iter_mut().zip(&self.miss_slots) {
            vrf.miss_slot = *slot;
        }
    }
}

//! A route change published as a patch of the previous snapshot instead of a full
//! build: the route's slot and stamps, its parent's stamp and any new next hops,
//! exactly what a full build would have produced for them. What a patch cannot do
//! cheaply (a route over a pod's own address or gateway, a VRF appearing or going)
//! falls back to a full build, and so does every [`PATCHES_BEFORE_SWEEP`]th change or
//! more, so that next hops no route uses any more are swept in amortised O(1).

use super::*;
use nexthop::RoutePatch;

/// Patched publications, at least, between two full builds (or half the routes, when
/// that is more: the full build then costs O(1) per patch).
const PATCHES_BEFORE_SWEEP: usize = 1024;

impl SnapshotBuilder {
    /// The patch that takes `current`, the snapshot this builder built last, to
    /// `state` after a change to route `prefix` in VRF `vrf` (added, replaced or
    /// removed; nothing else may have changed since `current`). `None` when the change
    /// needs a full build ([`SnapshotBuilder::build`]); the builder is then untouched.
    pub fn patch_route(
        &mut self,
        state: &DesiredState,
        vrf: &str,
        prefix: IpNet,
        current: &Snapshot,
    ) -> Option<RoutePatch> {
        let prefix = prefix.trunc();
        let id = state.vrf_id(vrf)?;
        let tables = current.vrf(id).filter(|t| t.name == vrf)?;
        let key = (id, prefix);
        let desired = state.route(vrf, prefix);
        let sweep_due = self.patched_since_build >= PATCHES_BEFORE_SWEEP.max(self.routes.len() / 2);
        if current.generation + 1 != self.next_generation
            || self.derived.contains(&key)
            || sweep_due
            || (desired.is_none() && !self.routes.contains_key(&key))
        {
            return None;
        }
        let parent = match prefix {
            IpNet::V4(p) => tables.v4.lookup_shorter(v4_key(p.network()), p.prefix_len()),
            IpNet::V6(p) => tables.v6.lookup_shorter(v6_key(p.network()), p.prefix_len()),
        }
        .map_or(tables.miss_slot, |(_, r)| r.slot);
        let generation = self.begin();
        self.patched_since_build += 1;
        let mut changed = vec![VOLATILE_SLOT];
        let route = match desired {
            Some(spec) => {
                let nexthop = self.resolve(state, &spec.target, generation);
                let slot = match self.routes.get_mut(&key) {
                    Some(record) => {
                        if record.nexthop != nexthop {
                            changed.push(record.slot);
                        }
                        record.nexthop = nexthop;
                        record.seen = generation;
                        record.slot
                    }
                    None => {
                        let slot = self.allocate_slot(generation);
                        let record = RouteRecord {
                            slot,
                            nexthop,
                            before: None,
                            seen: generation,
                        };
                        self.routes.insert(key, record);
                        // Destinations inside the new prefix were answered by its parent.
                        changed.extend([slot, parent]);
                        slot
                    }
                };
                Some(Route { nexthop, slot })
            }
            None => {
                let record = self.routes.remove(&key)?;
                changed.push(record.slot);
                if record.slot != VOLATILE_SLOT {
                    self.free_slots.push(record.slot);
                }
                None
            }
        };
        for slot in &changed {
            self.stamp(*slot, generation);
        }
        Some(RoutePatch {
            generation,
            routes: vec![(id, prefix, route)],
            nexthops: std::mem::take(&mut self.nexthops.fresh)
                .into_iter()
                .map(|(id, nh)| (NextHopId(id), nh))
                .collect(),
            composites: std::mem::take(&mut self.composites.fresh),
            stamps: changed.into_iter().map(|slot| (slot, generation as u32)).collect(),
        })
    }
}

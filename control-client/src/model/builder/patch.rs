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
        self.patch_routes(state, &[(vrf, prefix)], current)
    }

    /// [`SnapshotBuilder::patch_route`] for several routes at once (a control node's
    /// message): one patch, one publication. Prefixes that are in neither the state
    /// nor the last build are skipped.
    pub fn patch_routes(
        &mut self,
        state: &DesiredState,
        changed: &[(&str, IpNet)],
        current: &Snapshot,
    ) -> Option<RoutePatch> {
        let sweep_due = self.patched_since_build >= PATCHES_BEFORE_SWEEP.max(self.routes.len() / 2);
        if current.generation + 1 != self.next_generation || sweep_due {
            return None;
        }
        // Check every change before touching anything.
        let mut plan: Vec<((VrfId, IpNet), Option<&RouteSpec>, RouteSlot)> = Vec::with_capacity(changed.len());
        for (vrf, prefix) in changed {
            let prefix = prefix.trunc();
            // A chain's network: the other end's routes change with it.
            if state.vrf_in_chain(vrf) {
                return None;
            }
            let id = state.vrf_id(vrf)?;
            let tables = current.vrf(id).filter(|t| t.name == *vrf)?;
            let key = (id, prefix);
            if self.derived.contains(&key) {
                return None;
            }
            let desired = state.route(vrf, prefix);
            if (desired.is_none() && !self.routes.contains_key(&key)) || plan.iter().any(|(k, ..)| *k == key) {
                continue;
            }
            // Against the current snapshot: a parent changed in the same patch is
            // stamped through its own entry, so this stamps at least what changed.
            let parent = match prefix {
                IpNet::V4(p) => tables.v4.lookup_shorter(v4_key(p.network()), p.prefix_len()),
                IpNet::V6(p) => tables.v6.lookup_shorter(v6_key(p.network()), p.prefix_len()),
            }
            .map_or(tables.miss_slot, |(_, r)| r.slot);
            plan.push((key, desired, parent));
        }
        let generation = self.begin();
        self.patched_since_build += 1;
        let mut changed_slots = vec![VOLATILE_SLOT];
        let mut routes = Vec::with_capacity(plan.len());
        for (key, desired, parent) in plan {
            let route = match desired {
                Some(spec) => {
                    let nexthop = self.resolve(state, &spec.target, generation);
                    let slot = match self.routes.get_mut(&key) {
                        Some(record) => {
                            if record.nexthop != nexthop {
                                changed_slots.push(record.slot);
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
                            changed_slots.extend([slot, parent]);
                            slot
                        }
                    };
                    Some(Route { nexthop, slot })
                }
                None => {
                    let record = self.routes.remove(&key).expect("planned above");
                    changed_slots.push(record.slot);
                    if record.slot != VOLATILE_SLOT {
                        self.free_slots.push(record.slot);
                    }
                    None
                }
            };
            routes.push((key.0, key.1, route));
        }
        changed_slots.sort_unstable();
        changed_slots.dedup();
        for slot in &changed_slots {
            self.stamp(*slot, generation);
        }
        Some(RoutePatch {
            generation,
            routes,
            nexthops: std::mem::take(&mut self.nexthops.fresh)
                .into_iter()
                .map(|(id, nh)| (NextHopId(id), nh))
                .collect(),
            composites: std::mem::take(&mut self.composites.fresh),
            stamps: changed_slots
                .into_iter()
                .map(|slot| (slot, generation as u32))
                .collect(),
        })
    }
}

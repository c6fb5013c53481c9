//! A route change applied in place to a copy of the snapshot, so that a publication
//! that adds or removes one route costs the same with 100K routes as with ten.
//!
//! A patch holds absolute values (this prefix now maps to this route, this next-hop
//! id now holds this next hop, this slot's stamp is now this generation), so applying
//! the patches since a copy was last current, in order, brings that copy up to date
//! whatever it held before.

use super::{Composite, Snapshot, VrfId};
use crate::lpm::{v4_key, v6_key};
use crate::nexthop::{NextHop, NextHopId};
use crate::route::{Route, RouteSlot};
use ipnet::IpNet;

/// The difference between one snapshot and the next when only routes changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePatch {
    /// The generation of the snapshot the patch produces.
    pub generation: u64,
    /// Prefixes whose route is set (`Some`) or removed (`None`).
    pub routes: Vec<(VrfId, IpNet, Option<Route>)>,
    /// Next-hop ids that hold a new next hop.
    pub nexthops: Vec<(NextHopId, NextHop)>,
    /// Composite ids that hold a new member list.
    pub composites: Vec<(u32, Composite)>,
    /// Route slots whose stamp is set to a new value.
    pub stamps: Vec<(RouteSlot, u32)>,
}

impl RoutePatch {
    /// Applies the patch to `snap` (which must be of the same lineage: the snapshot
    /// the patch was made against, or an older one brought forward by the patches in
    /// between). Ids beyond the ends of the tables grow them.
    pub fn apply(&self, snap: &mut Snapshot) {
        for (id, nexthop) in &self.nexthops {
            set_grow(&mut snap.nexthops, id.index(), *nexthop, NextHop::Discard);
        }
        for (id, group) in &self.composites {
            set_grow(&mut snap.composites, *id as usize, group.clone(), Composite::default());
        }
        for (slot, stamp) in &self.stamps {
            set_grow(&mut snap.route_stamps, *slot as usize, *stamp, 0);
        }
        for (vrf, prefix, route) in &self.routes {
            let Some(table) = snap.vrfs.get_mut(vrf.index()) else {
                continue;
            };
            match (prefix, route) {
                (IpNet::V4(p), Some(r)) => {
                    table.v4.insert(v4_key(p.network()), p.prefix_len(), *r);
                }
                (IpNet::V4(p), None) => {
                    table.v4.remove(v4_key(p.network()), p.prefix_len());
                }
                (IpNet::V6(p), Some(r)) => {
                    table.v6.insert(v6_key(p.network()), p.prefix_len(), *r);
                }
                (IpNet::V6(p), None) => {
                    table.v6.remove(v6_key(p.network()), p.prefix_len());
                }
            }
        }
        snap.generation = self.generation;
    }
}

fn set_grow<T: Clone>(table: &mut Vec<T>, index: usize, value: T, filler: T) {
    if table.len() <= index {
        table.resize(index + 1, filler);
    }
    table[index] = value;
}

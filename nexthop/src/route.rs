//! Routes as flows remember them, and how a worker tells whether a flow's cached
//! decision still holds after later publications.
//!
//! Every route sits in a *slot* that keeps its number for as long as the route
//! exists, and every slot has a *stamp*: the generation in which the answer of that
//! slot last changed (its next hop changed, a more specific route appeared under it,
//! or it was removed). A flow stores the slot that answered it and the generation it
//! was decided in; the decision holds while neither the slot's stamp nor the
//! snapshot's flow epoch is newer than the decision. A publication that changes one
//! route therefore re-evaluates only the flows of that route, not every flow.

use crate::nexthop::NextHopId;

/// A route's slot: the index of its stamp in [`crate::Snapshot::route_stamps`].
pub type RouteSlot = u32;

/// The slot whose stamp is always the current generation: decisions that name it
/// hold only in the generation they were made in (routes beyond [`MAX_ROUTE_SLOTS`],
/// and snapshots built without stamps).
pub const VOLATILE_SLOT: RouteSlot = 0;

/// Slots a flow entry can name (it packs the slot into 24 bits).
pub const MAX_ROUTE_SLOTS: u32 = 1 << 24;

/// A route table's value: the next hop and the route's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// Where matching packets go.
    pub nexthop: NextHopId,
    /// Whose stamp says since when this answer holds.
    pub slot: RouteSlot,
}

impl Route {
    /// A route in the volatile slot (for snapshots built by hand, as tests do).
    pub fn volatile(nexthop: NextHopId) -> Self {
        Self {
            nexthop,
            slot: VOLATILE_SLOT,
        }
    }
}

//! The basic ids, in a module of their own so that every table can use them without
//! depending on another.

use serde::{Deserialize, Serialize};

/// Interface index inside the vrouter (Tungsten's "vif" number).
pub type Vif = u32;

/// A VRF's index. Sixteen bits from end to end: the flow key holds it as is, and at
/// most [`VrfId::MAX_VRFS`] VRFs exist at once. A freed id is reused (lowest first);
/// the snapshot builder renews the flow epoch when an id changes meaning, so no flow
/// of a deleted VRF holds in the VRF that takes its id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VrfId(pub u16);

impl VrfId {
    /// The fabric's VRF.
    pub const FABRIC: VrfId = VrfId(0);
    /// VRFs that can exist at once, the fabric's included.
    pub const MAX_VRFS: usize = 1 << 16;

    /// As an index into the snapshot's VRF table.
    #[inline]
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl std::fmt::Debug for VrfId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "vrf{}", self.0)
    }
}

impl std::fmt::Display for VrfId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

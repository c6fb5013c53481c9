//! VLAN sub-interfaces (nested mode: Kubernetes on virtual machines, each pod's
//! traffic tagged with its own 802.1Q VLAN on the VM's port). A sub-interface is a
//! port of its own (vif, MPLS label, VRF, addresses, flows) with no socket of its
//! own: its frames arrive and leave tagged on its parent port.

use super::{DesiredState, InterfaceSpec, ModelError};
use serde::{Deserialize, Serialize};

/// Where a VLAN sub-interface rides: its parent port and its tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VlanSpec {
    /// The attached port carrying the tagged frames (not itself a sub-interface).
    pub parent: String,
    /// The 802.1Q VLAN id, 1..=4094.
    pub id: u16,
}

impl DesiredState {
    /// Checks a new interface's VLAN binding: a valid tag, an attached parent that is
    /// not a sub-interface, and no other sub-interface with that tag on it.
    pub(super) fn validate_vlan(&self, spec: &InterfaceSpec) -> Result<(), ModelError> {
        let Some(vlan) = &spec.vlan else {
            return Ok(());
        };
        let invalid = |why: String| Err(ModelError::InvalidVlan(why));
        if !(1..=4094).contains(&vlan.id) {
            return invalid(format!("VLAN id {} (1..=4094)", vlan.id));
        }
        match self.interfaces.get(&vlan.parent) {
            None => return invalid(format!("parent {:?} is not attached", vlan.parent)),
            Some((_, parent)) if parent.vlan.is_some() => {
                return invalid(format!("parent {:?} is itself a sub-interface", vlan.parent))
            }
            Some(_) => {}
        }
        if let Some(other) = self
            .interfaces
            .iter()
            .find(|(_, (_, s))| s.vlan.as_ref().is_some_and(|v| *v == *vlan))
            .map(|(n, _)| n)
        {
            return invalid(format!("VLAN {} on {:?} is {other:?}'s", vlan.id, vlan.parent));
        }
        Ok(())
    }

    /// The attached sub-interfaces riding on `parent`.
    pub fn subinterfaces_of(&self, parent: &str) -> Vec<String> {
        self.interfaces
            .iter()
            .filter(|(_, (_, s))| s.vlan.as_ref().is_some_and(|v| v.parent == parent))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

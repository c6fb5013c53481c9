//! VRF lifecycle: a VRF exists while an interface or a route belongs to it. Its id is
//! the lowest free one when it is created and is freed when it is deleted, so ids stay
//! below [`VrfId::MAX_VRFS`] however many namespaces come and go in a long-lived
//! cluster; the snapshot builder renews the flow epoch when an id changes meaning.

use super::{DesiredState, ModelError, FABRIC_VRF};
use nexthop::VrfId;

impl DesiredState {
    /// True if VRF `name` could be created (or exists).
    pub(super) fn vrf_available(&self, name: &str) -> Result<(), ModelError> {
        if self.vrf_ids.contains_key(name) || self.vrf_ids.len() < VrfId::MAX_VRFS {
            Ok(())
        } else {
            Err(ModelError::TooManyVrfs(VrfId::MAX_VRFS))
        }
    }

    /// The id of VRF `name`, creating it with the lowest free id.
    pub(super) fn ensure_vrf(&mut self, name: &str) -> Result<VrfId, ModelError> {
        if let Some(id) = self.vrf_ids.get(name) {
            return Ok(*id);
        }
        self.vrf_available(name)?;
        let used: std::collections::BTreeSet<VrfId> = self.vrf_ids.values().copied().collect();
        let id = (1..=u16::MAX)
            .map(VrfId)
            .find(|id| !used.contains(id))
            .ok_or(ModelError::TooManyVrfs(VrfId::MAX_VRFS))?;
        self.vrf_ids.insert(name.to_string(), id);
        Ok(id)
    }

    /// Deletes VRF `name` when no interface and no route belongs to it any more; its
    /// id is free again. Its VNI is kept by name for when it comes back.
    pub(super) fn release_vrf_if_unused(&mut self, name: &str) {
        if name == FABRIC_VRF {
            return;
        }
        let used = self.routes_per_vrf.contains_key(name) || self.interfaces.values().any(|(_, s)| s.vrf == name);
        if !used {
            self.vrf_ids.remove(name);
            self.drop_learned(Some(name), None);
        }
    }

    /// VRFs that exist, the fabric's included.
    pub fn vrf_count(&self) -> usize {
        self.vrf_ids.len()
    }

    /// The id of VRF `name`, if it exists.
    pub fn vrf_id(&self, name: &str) -> Option<VrfId> {
        self.vrf_ids.get(name).copied()
    }
}

//! VRF lifecycle: a VRF exists while an interface, a route, a service or a floating
//! IP belongs to it. Its id is
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
        // The lowest free id: a freed one (all below the never-used ones) or the next.
        let id = match self.free_vrf_ids.pop_first() {
            Some(id) => id,
            None => {
                let next = self.next_vrf_id.max(1);
                let id = u16::try_from(next).map_err(|_| ModelError::TooManyVrfs(VrfId::MAX_VRFS))?;
                self.next_vrf_id = next + 1;
                VrfId(id)
            }
        };
        self.vrf_ids.insert(name.to_string(), id);
        Ok(id)
    }

    /// Deletes VRF `name` when no interface and no route belongs to it any more; its
    /// id is free again. Its VNI is kept by name for when it comes back.
    pub(super) fn release_vrf_if_unused(&mut self, name: &str) {
        if name == FABRIC_VRF {
            return;
        }
        let used = self.routes_per_vrf.contains_key(name)
            || self.interfaces.values().any(|(_, s)| s.vrf == name)
            || self.vrf_has_services(name)
            || self.vrf_has_floating_ips(name);
        if !used {
            if let Some(id) = self.vrf_ids.remove(name) {
                self.free_vrf_ids.insert(id);
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_run_out_with_an_error_not_a_wrap_and_freed_ones_come_back_lowest_first() {
        let mut s = DesiredState::new(4);
        for i in 1..=u16::MAX {
            assert_eq!(s.ensure_vrf(&format!("v{i}")).unwrap(), VrfId(i));
        }
        assert_eq!(s.vrf_count(), VrfId::MAX_VRFS, "65,535 VRFs and the fabric's");
        assert!(matches!(s.ensure_vrf("one-too-many"), Err(ModelError::TooManyVrfs(_))));
        assert_eq!(s.ensure_vrf("v7").unwrap(), VrfId(7), "an existing VRF keeps its id");
        s.release_vrf_if_unused("v9");
        s.release_vrf_if_unused("v3");
        assert_eq!(s.vrf_id("v3"), None);
        assert_eq!(s.ensure_vrf("new-a").unwrap(), VrfId(3));
        assert_eq!(s.ensure_vrf("new-b").unwrap(), VrfId(9));
        assert!(matches!(s.ensure_vrf("new-c"), Err(ModelError::TooManyVrfs(_))));
    }
}

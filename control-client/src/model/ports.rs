//! Port identities: the vif and MPLS label a pod interface keeps for its lifetime.
//!
//! Remote nodes reach a pod by the label this node advertised for it, so a label must
//! keep naming the same port across restarts, and must not name another port while a
//! remote may still hold a route with it. Labels are therefore not derived from the
//! vif: they come from a counter that only moves forward through the 20-bit label
//! space (16 ..= 1_048_575; below 16 is reserved, RFC 3032), skipping labels in use,
//! and wraps only after about a million attachments. The counter's position is part
//! of what the state directory keeps.

use super::{DesiredState, InterfaceSpec, ModelError};
use nexthop::Vif;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The lowest MPLS label given to a local interface (RFC 3032 reserves 0-15).
pub const FIRST_LABEL: u32 = 16;
/// The highest MPLS label (20 bits).
pub const LAST_LABEL: u32 = 0xf_ffff;

/// What names an attached port to the data plane (its vif) and to other nodes (its
/// MPLS label). Both are kept for the port's lifetime, across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortIdentity {
    /// The vrouter's interface index.
    pub vif: Vif,
    /// The MPLS label remote nodes send to reach it.
    pub label: u32,
}

impl DesiredState {
    /// Adds a pod interface with a fresh vif (the lowest free) and a fresh label (the
    /// next in the label sequence); returns its vif.
    pub fn add_interface(&mut self, spec: InterfaceSpec) -> Result<Vif, ModelError> {
        self.validate_new_interface(&spec)?;
        let vif = self.free_vif()?;
        let label = self.free_label()?;
        self.insert_interface(spec, PortIdentity { vif, label });
        Ok(vif)
    }

    /// Adds a pod interface under the identity it had before (a port restored from
    /// the state directory). Refused if that vif or label is out of range or held by
    /// another port; nothing changes then.
    pub fn restore_interface(&mut self, spec: InterfaceSpec, id: PortIdentity) -> Result<Vif, ModelError> {
        self.validate_new_interface(&spec)?;
        let unavailable = |why: &str| ModelError::IdentityUnavailable {
            name: spec.name.clone(),
            vif: id.vif,
            label: id.label,
            why: why.to_string(),
        };
        if id.vif == Vif(0) || id.vif.index() >= self.max_interfaces {
            return Err(unavailable("vif out of range: check tables.interfaces"));
        }
        if !(FIRST_LABEL..=LAST_LABEL).contains(&id.label) {
            return Err(unavailable("label out of range"));
        }
        if let Some(other) = self
            .identity_holders()
            .find(|(n, o)| o.vif == id.vif && *n != spec.name)
        {
            return Err(unavailable(&format!("vif held by {:?}", other.0)));
        }
        if let Some(other) = self
            .identity_holders()
            .find(|(n, o)| o.label == id.label && *n != spec.name)
        {
            return Err(unavailable(&format!("label held by {:?}", other.0)));
        }
        self.reserved.remove(&spec.name);
        self.insert_interface(spec, id);
        Ok(id.vif)
    }

    /// Keeps `id` for the recorded port `name` that is not attached: no other port
    /// gets its vif or label until [`DesiredState::release_identity`].
    pub fn reserve_identity(&mut self, name: &str, id: PortIdentity) {
        self.reserved.insert(name.to_string(), id);
    }

    /// The identity kept for the unattached port `name`, if any.
    pub fn reserved_identity(&self, name: &str) -> Option<PortIdentity> {
        self.reserved.get(name).copied()
    }

    /// Forgets the identity kept for the unattached port `name`.
    pub fn release_identity(&mut self, name: &str) -> Option<PortIdentity> {
        self.reserved.remove(name)
    }

    /// Every identity in use or kept, with the port's name.
    fn identity_holders(&self) -> impl Iterator<Item = (&str, PortIdentity)> {
        let attached = self.interfaces.iter().map(|(n, (id, _))| (n.as_str(), *id));
        attached.chain(self.reserved.iter().map(|(n, id)| (n.as_str(), *id)))
    }

    /// The identity of the interface `name`, if attached.
    pub fn port_identity(&self, name: &str) -> Option<PortIdentity> {
        self.interfaces.get(name).map(|(id, _)| *id)
    }

    /// What the attached interface `name` was attached with.
    pub fn interface_spec(&self, name: &str) -> Option<&InterfaceSpec> {
        self.interfaces.get(name).map(|(_, spec)| spec)
    }

    /// The attached interface that owns MPLS label `label`.
    pub fn interface_with_label(&self, label: u32) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|(_, (id, _))| id.label == label)
            .map(|(name, _)| name.as_str())
    }

    /// Where the label sequence goes on: the state directory records it so that a
    /// restart does not hand out labels remote nodes may still use.
    pub fn next_label(&self) -> u32 {
        self.next_label.clamp(FIRST_LABEL, LAST_LABEL)
    }

    /// Moves the label sequence on to `next` (as recorded before a restart); never
    /// moves it back.
    pub fn advance_label_sequence(&mut self, next: u32) {
        if next > self.next_label && next <= LAST_LABEL + 1 {
            self.next_label = next;
        }
    }

    fn free_vif(&self) -> Result<Vif, ModelError> {
        let used: BTreeSet<Vif> = self
            .identity_holders()
            .map(|(_, id)| id.vif)
            .chain(self.fabric.as_ref().map(|(_, v)| *v))
            .collect();
        (1..self.max_interfaces as u32)
            .map(Vif)
            .find(|v| !used.contains(v))
            .ok_or(ModelError::TooManyInterfaces(self.max_interfaces))
    }

    fn free_label(&mut self) -> Result<u32, ModelError> {
        let used: BTreeSet<u32> = self.identity_holders().map(|(_, id)| id.label).collect();
        let span = LAST_LABEL - FIRST_LABEL + 1;
        let start = self.next_label().max(FIRST_LABEL);
        let label = (0..span)
            .map(|i| FIRST_LABEL + (start - FIRST_LABEL + i) % span)
            .find(|l| !used.contains(l))
            .ok_or(ModelError::TooManyInterfaces(used.len()))?;
        self.next_label = if label == LAST_LABEL { FIRST_LABEL } else { label + 1 };
        Ok(label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexthop::MacAddr;

    fn pod(name: &str, vrf: &str, host: u8) -> InterfaceSpec {
        InterfaceSpec {
            name: name.into(),
            vrf: vrf.into(),
            mac: MacAddr([2, 0, 0, 0, 0, host]),
            ipv4: Some(std::net::Ipv4Addr::new(198, 18, 1, host)),
            ipv6: None,
            gateway4: None,
            gateway6: None,
            allowed_address_pairs: Vec::new(),
            mtu: None,
            vlan: None,
            security_groups: Vec::new(),
            local_preference: None,
        }
    }

    #[test]
    fn a_freed_label_is_not_handed_out_again_while_the_sequence_has_room() {
        let mut s = DesiredState::new(8);
        s.add_interface(pod("a", "blue", 2)).unwrap();
        let a = s.port_identity("a").unwrap();
        s.remove_interface("a").unwrap();
        s.add_interface(pod("b", "red", 3)).unwrap();
        let b = s.port_identity("b").unwrap();
        assert_eq!(b.vif, a.vif, "vifs are reused, lowest first");
        assert_ne!(b.label, a.label, "a label is not reused: remotes may still send to it");
        assert_eq!(b.label, a.label + 1);
    }

    #[test]
    fn restored_identities_are_kept_and_the_sequence_moves_past_them() {
        let mut s = DesiredState::new(8);
        s.advance_label_sequence(40);
        s.restore_interface(pod("b", "red", 3), PortIdentity { vif: Vif(3), label: 41 })
            .unwrap();
        s.restore_interface(pod("a", "blue", 2), PortIdentity { vif: Vif(1), label: 17 })
            .unwrap();
        assert_eq!(s.port_identity("b"), Some(PortIdentity { vif: Vif(3), label: 41 }));
        s.add_interface(pod("c", "red", 4)).unwrap();
        let c = s.port_identity("c").unwrap();
        assert_eq!(c.vif, Vif(2), "the lowest free vif");
        assert_eq!(c.label, 40, "the recorded sequence, not below it");
        s.add_interface(pod("d", "red", 5)).unwrap();
        assert_eq!(s.port_identity("d").unwrap().label, 42, "label 41 is held, skipped");
    }

    #[test]
    fn a_restored_identity_held_or_out_of_range_is_refused_without_change() {
        let mut s = DesiredState::new(4);
        s.restore_interface(pod("a", "red", 2), PortIdentity { vif: Vif(1), label: 20 })
            .unwrap();
        for (vif, label) in [(1, 21), (2, 20), (0, 22), (4, 22), (2, 15), (2, LAST_LABEL + 1)] {
            let err = s
                .restore_interface(pod("b", "red", 3), PortIdentity { vif: Vif(vif), label })
                .unwrap_err();
            assert!(
                matches!(err, ModelError::IdentityUnavailable { .. }),
                "{vif}/{label}: {err}"
            );
        }
        assert_eq!(s.interfaces().count(), 1);
    }

    #[test]
    fn a_reserved_identity_is_given_to_no_other_port_but_to_its_own() {
        let mut s = DesiredState::new(8);
        s.reserve_identity("gone", PortIdentity { vif: Vif(1), label: 16 });
        s.add_interface(pod("new", "red", 3)).unwrap();
        let new = s.port_identity("new").unwrap();
        assert_ne!(new.vif, Vif(1));
        assert_ne!(new.label, 16);
        assert!(s
            .restore_interface(pod("other", "red", 4), PortIdentity { vif: Vif(1), label: 16 })
            .is_err());
        s.restore_interface(pod("gone", "red", 2), PortIdentity { vif: Vif(1), label: 16 })
            .unwrap();
        assert_eq!(s.reserved_identity("gone"), None, "attached now, no longer reserved");
    }

    #[test]
    fn the_label_sequence_wraps_past_labels_in_use() {
        let mut s = DesiredState::new(8);
        s.advance_label_sequence(LAST_LABEL);
        s.add_interface(pod("a", "red", 2)).unwrap();
        assert_eq!(s.port_identity("a").unwrap().label, LAST_LABEL);
        s.restore_interface(
            pod("b", "red", 3),
            PortIdentity {
                vif: Vif(5),
                label: FIRST_LABEL,
            },
        )
        .unwrap();
        s.add_interface(pod("c", "red", 4)).unwrap();
        assert_eq!(s.port_identity("c").unwrap().label, FIRST_LABEL + 1);
    }
}

//! Floating IPs in the desired state: an address of another VRF given to a pod's
//! interface (1:1 NAT, ports kept). A floating IP names its interface by name and is
//! in force while that interface is attached; it keeps its VRF in existence (traffic
//! to it arrives there).

use super::{DesiredState, ModelError};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Floating IPs one node holds at most.
pub const MAX_FLOATING_IPS: usize = 65_536;

/// A floating IP as requested through the API (or compiled from the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpSpec {
    /// Its name; adding one of the same name replaces it.
    pub name: String,
    /// The VRF the floating address is in.
    pub vrf: String,
    /// The floating address.
    pub ip: IpAddr,
    /// The pod interface it is given to.
    pub interface: String,
    /// Only for the pod's own connections out (Contrail's floating IP traffic
    /// direction `egress`): connections to the floating address are refused, so
    /// the address lets an isolated namespace's pod reach the cluster network
    /// without making it reachable from there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub egress_only: bool,
}

impl DesiredState {
    /// Adds floating IP `spec`, or replaces the one of that name.
    pub fn add_floating_ip(&mut self, spec: FloatingIpSpec) -> Result<(), ModelError> {
        let invalid = |why: String| Err(ModelError::InvalidFloatingIp(why));
        if let Err(why) = super::services::check_name_and_address(&spec.name, &spec.vrf, spec.ip)? {
            return invalid(why);
        }
        if let Some((_, own)) = self.interfaces.get(&spec.interface) {
            if own.vrf == spec.vrf {
                return invalid(format!(
                    "interface {:?} is in VRF {:?} already",
                    spec.interface, spec.vrf
                ));
            }
        }
        if let Some(other) = self
            .floating_ips
            .values()
            .find(|o| o.name != spec.name && o.vrf == spec.vrf && o.ip == spec.ip)
        {
            return invalid(format!(
                "{} in {} is floating IP {:?} already",
                spec.ip, spec.vrf, other.name
            ));
        }
        if let Some((name, _)) = self.interfaces.iter().find(|(_, (_, s))| {
            s.vrf == spec.vrf && (s.ipv4.map(IpAddr::V4) == Some(spec.ip) || s.ipv6.map(IpAddr::V6) == Some(spec.ip))
        }) {
            return Err(ModelError::AddressInUse {
                addr: spec.ip,
                vrf: spec.vrf.clone(),
                owner: name.clone(),
            });
        }
        if !self.floating_ips.contains_key(&spec.name) && self.floating_ips.len() >= MAX_FLOATING_IPS {
            return invalid(format!("{MAX_FLOATING_IPS} floating IPs exist already"));
        }
        let previous_vrf = self.floating_ips.get(&spec.name).map(|s| s.vrf.clone());
        self.ensure_vrf(&spec.vrf)?;
        self.floating_ips.insert(spec.name.clone(), spec);
        if let Some(vrf) = previous_vrf {
            self.release_vrf_if_unused(&vrf);
        }
        Ok(())
    }

    /// Removes floating IP `name`; returns what it was.
    pub fn remove_floating_ip(&mut self, name: &str) -> Result<FloatingIpSpec, ModelError> {
        let spec = self
            .floating_ips
            .remove(name)
            .ok_or_else(|| ModelError::UnknownFloatingIp(name.to_string()))?;
        self.release_vrf_if_unused(&spec.vrf);
        Ok(spec)
    }

    /// The floating IPs, by name.
    pub fn floating_ips(&self) -> impl Iterator<Item = &FloatingIpSpec> {
        self.floating_ips.values()
    }

    /// True if a floating IP is in VRF `vrf`.
    pub(super) fn vrf_has_floating_ips(&self, vrf: &str) -> bool {
        self.floating_ips.values().any(|s| s.vrf == vrf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InterfaceSpec;
    use nexthop::MacAddr;

    fn state() -> DesiredState {
        let mut s = DesiredState::new(16);
        s.set_fabric("fabric0");
        s.add_interface(InterfaceSpec {
            name: "pod-a".into(),
            vrf: "isolated".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            ipv4: Some([198, 18, 2, 2].into()),
            ..InterfaceSpec::default()
        })
        .unwrap();
        s.add_interface(InterfaceSpec {
            name: "pod-b".into(),
            vrf: "cluster".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 3]),
            ipv4: Some([198, 18, 1, 3].into()),
            ..InterfaceSpec::default()
        })
        .unwrap();
        s
    }

    fn fip(name: &str, vrf: &str, ip: [u8; 4], interface: &str) -> FloatingIpSpec {
        FloatingIpSpec {
            name: name.into(),
            vrf: vrf.into(),
            ip: ip.into(),
            interface: interface.into(),
            egress_only: false,
        }
    }

    #[test]
    fn a_floating_ip_keeps_its_vrf_and_refuses_clashes() {
        let mut s = state();
        s.add_floating_ip(fip("a", "public", [198, 18, 9, 1], "pod-a")).unwrap();
        assert!(s.vrf_id("public").is_some(), "its VRF exists for it");
        // The same address in the same VRF under another name, an address a pod has,
        // the pod's own VRF, a martian: refused, nothing changes.
        for bad in [
            fip("b", "public", [198, 18, 9, 1], "pod-b"),
            fip("c", "cluster", [198, 18, 1, 3], "pod-a"),
            fip("d", "isolated", [198, 18, 9, 2], "pod-a"),
            fip("e", "public", [127, 0, 0, 1], "pod-a"),
        ] {
            assert!(s.add_floating_ip(bad.clone()).is_err(), "{bad:?}");
        }
        assert_eq!(s.floating_ips().count(), 1);
        // Replaced under its name: the old VRF goes when nothing else holds it.
        s.add_floating_ip(fip("a", "other", [198, 18, 9, 1], "pod-a")).unwrap();
        assert!(s.vrf_id("public").is_none());
        s.remove_floating_ip("a").unwrap();
        assert!(s.vrf_id("other").is_none());
        assert!(matches!(
            s.remove_floating_ip("a"),
            Err(ModelError::UnknownFloatingIp(_))
        ));
        // A pod cannot take an address a floating IP has in its VRF.
        s.add_floating_ip(fip("f", "cluster", [198, 18, 1, 9], "pod-a"))
            .unwrap();
        let taken = InterfaceSpec {
            name: "pod-c".into(),
            vrf: "cluster".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 4]),
            ipv4: Some([198, 18, 1, 9].into()),
            ..InterfaceSpec::default()
        };
        assert!(matches!(s.add_interface(taken), Err(ModelError::AddressInUse { .. })));
    }
}

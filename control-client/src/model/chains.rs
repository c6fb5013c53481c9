//! Service chains in the desired state: traffic between two virtual networks steered
//! through a service instance (a pod or namespace with a left and a right interface,
//! such as a packet filter), Contrail's network-policy rule that applies a service.
//!
//! A chain names its instance's two interfaces; their VRFs are the two networks. It
//! is in force while both are attached and in different VRFs: each network's
//! prefixes (its pods' addresses and its routes) are then routes in the other,
//! pointing into the instance's interface on that side, so traffic from the left
//! network to the right enters the instance at its left interface and comes out at
//! its right, and replies go back the same way. A network's own route for a prefix
//! wins over one from the other side. The instance's interfaces send packets of
//! the other network's addresses: source validation accepts any source on them.
//! Removing the chain (or detaching an interface of its instance) cuts the path.
//! The leaked prefixes are advertised to the control nodes with the instance's
//! labels (`xmpp::agent`), so the networks' pods on other nodes are steered too.
//! Routes learned as leaked from another network (another node's instance of the
//! chain, another chain, a policy) are neither leaked on nor preferred to the
//! instance here.

use super::{DesiredState, ModelError};
use serde::{Deserialize, Serialize};

/// Service chains one node holds at most.
pub const MAX_SERVICE_CHAINS: usize = 1024;

/// A service chain as requested through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceChainSpec {
    /// Its name; adding one of the same name replaces it.
    pub name: String,
    /// The instance's interface in the left network: traffic from the left network
    /// to the right enters the instance here.
    pub left_interface: String,
    /// The instance's interface in the right network.
    pub right_interface: String,
}

impl ServiceChainSpec {
    /// True if `interface` is one of the instance's.
    pub fn uses(&self, interface: &str) -> bool {
        self.left_interface == interface || self.right_interface == interface
    }
}

impl DesiredState {
    /// Adds service chain `spec`, or replaces the one of that name. Its interfaces
    /// need not be attached yet (the chain is in force once both are).
    pub fn add_service_chain(&mut self, spec: ServiceChainSpec) -> Result<(), ModelError> {
        let invalid = |why: String| Err(ModelError::InvalidServiceChain(why));
        if spec.name.is_empty() || spec.name.len() > 255 {
            return invalid(format!("name {:?}: 1-255 characters", spec.name));
        }
        for interface in [&spec.left_interface, &spec.right_interface] {
            if interface.is_empty() || interface.len() > 255 {
                return invalid(format!("interface name {interface:?}: 1-255 characters"));
            }
        }
        if let Some(host) = self.host_interface.as_deref().filter(|h| spec.uses(h)) {
            return invalid(format!("{host:?} is the node's own interface, no service instance's"));
        }
        if spec.left_interface == spec.right_interface {
            return invalid(format!(
                "left and right are the same interface {:?}",
                spec.left_interface
            ));
        }
        let vrf_of = |name: &str| self.interfaces.get(name).map(|(_, s)| s.vrf.as_str());
        if let (Some(left), Some(right)) = (vrf_of(&spec.left_interface), vrf_of(&spec.right_interface)) {
            if left == right {
                return invalid(format!(
                    "both interfaces are in VRF {left:?}: a chain joins two networks"
                ));
            }
        }
        if let Some(other) = self
            .service_chains
            .values()
            .find(|o| o.name != spec.name && (o.uses(&spec.left_interface) || o.uses(&spec.right_interface)))
        {
            return invalid(format!(
                "an interface of it is in service chain {:?} already",
                other.name
            ));
        }
        if !self.service_chains.contains_key(&spec.name) && self.service_chains.len() >= MAX_SERVICE_CHAINS {
            return invalid(format!("{MAX_SERVICE_CHAINS} service chains exist already"));
        }
        self.service_chains.insert(spec.name.clone(), spec);
        Ok(())
    }

    /// Removes service chain `name`; returns what it was.
    pub fn remove_service_chain(&mut self, name: &str) -> Result<ServiceChainSpec, ModelError> {
        self.service_chains
            .remove(name)
            .ok_or_else(|| ModelError::UnknownServiceChain(name.to_string()))
    }

    /// The service chains, by name.
    pub fn service_chains(&self) -> impl Iterator<Item = &ServiceChainSpec> {
        self.service_chains.values()
    }

    /// The chains in force: each with its left and right VRF (both interfaces
    /// attached, in different VRFs).
    pub fn chains_in_force(&self) -> impl Iterator<Item = (&ServiceChainSpec, &str, &str)> {
        self.service_chains.values().filter_map(|c| {
            let left = &self.interfaces.get(&c.left_interface)?.1.vrf;
            let right = &self.interfaces.get(&c.right_interface)?.1.vrf;
            (left != right).then_some((c, left.as_str(), right.as_str()))
        })
    }

    /// True if VRF `vrf` is an end of a chain in force (a route change there changes
    /// the other end's routes too).
    pub(super) fn vrf_in_chain(&self, vrf: &str) -> bool {
        self.chains_in_force().any(|(_, l, r)| l == vrf || r == vrf)
    }

    /// True if `interface` is the instance's of a chain in force (it sends other
    /// networks' addresses).
    pub(super) fn is_chain_interface(&self, interface: &str) -> bool {
        self.chains_in_force().any(|(c, ..)| c.uses(interface))
    }
}

#[cfg(test)]
mod tests;

//! Floating IPs: 1:1 NAT of a pod's address to an address of another virtual network
//! (Contrail's floating IP, as an isolated namespace's pods use to reach the cluster
//! network). Traffic to the floating address in its VRF is translated to the pod's
//! address and delivered to the pod; traffic from the pod that routes better through
//! the floating address's VRF (the longer prefix match, as Contrail chooses) leaves
//! from the floating address in that VRF. Ports are never changed.

use crate::{NatTarget, Vif, VrfId};
use std::net::IpAddr;

/// One floating IP of an attached pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingEntry {
    /// Its name.
    pub name: std::sync::Arc<str>,
    /// The pod's interface.
    pub vif: Vif,
    /// The pod's VRF.
    pub pod_vrf: VrfId,
    /// The pod's address (of the floating address's family).
    pub pod: IpAddr,
    /// The pod's address as a translation target.
    pub pod_target: NatTarget,
    /// The floating VRF.
    pub vrf: VrfId,
    /// The floating address.
    pub address: IpAddr,
    /// The floating address as a translation target.
    pub target: NatTarget,
    /// Only the pod's own connections out use it; connections to it are refused,
    /// but for `service_ports`.
    pub egress_only: bool,
    /// (protocol, port) pairs of services whose backend it is: their connections
    /// reach it from other nodes (where the service's node translated to it) even
    /// when it is egress-only.
    pub service_ports: Vec<(u8, u16)>,
}

/// The floating IPs of a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloatingIps {
    /// By floating VRF and address.
    pub by_address: crate::FastMap<(VrfId, IpAddr), FloatingEntry>,
    /// Each pod interface's floating IPs.
    pub by_vif: crate::FastMap<Vif, Vec<FloatingEntry>>,
}

impl FloatingIps {
    /// True if there are none (the common case: a flow setup pays one branch).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }

    /// The floating IP `address` of VRF `vrf`.
    #[inline]
    pub fn get(&self, vrf: VrfId, address: IpAddr) -> Option<&FloatingEntry> {
        self.by_address.get(&(vrf, address))
    }

    /// The floating IPs of interface `vif`.
    #[inline]
    pub fn of(&self, vif: Vif) -> &[FloatingEntry] {
        self.by_vif.get(&vif).map_or(&[], Vec::as_slice)
    }

    /// Adds an entry.
    pub fn insert(&mut self, entry: FloatingEntry) {
        self.by_vif.entry(entry.vif).or_default().push(entry.clone());
        self.by_address.insert((entry.vrf, entry.address), entry);
    }
}

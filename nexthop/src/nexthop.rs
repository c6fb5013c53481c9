//! Next hops: what a route resolves to.

use crate::encap::Encap;
use crate::ids::{MacAddr, Vif};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Index of a next hop in [`crate::Snapshot::nexthops`]; stable while any route
/// uses the next hop (a newtype, so that it cannot be mixed up with the other ids).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NextHopId(pub u32);

impl NextHopId {
    /// As an index into the snapshot's next-hop table.
    #[inline]
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl std::fmt::Debug for NextHopId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "nh{}", self.0)
    }
}

impl std::fmt::Display for NextHopId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The action for a packet whose route resolved to this next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextHop {
    /// Drop the packet (a blackhole route); counted as a discard.
    Discard,
    /// The packet is for the vrouter itself (its gateway addresses).
    Receive,
    /// Deliver on a local interface: the Ethernet header is rewritten with the
    /// vrouter MAC as source and `dst_mac` (the pod's MAC) as destination.
    Interface {
        /// The outgoing interface.
        vif: Vif,
        /// The destination MAC written into the frame.
        dst_mac: MacAddr,
    },
    /// Encapsulate towards another compute node over the fabric.
    Tunnel {
        /// The encapsulation chosen for this remote.
        encap: Encap,
        /// The remote node's fabric address.
        remote: Ipv4Addr,
        /// MPLS label, or VNI for VXLAN, the remote advertised.
        label: u32,
        /// Outer destination MAC: the fabric neighbour towards `remote`, as the kernel
        /// resolved it; all zeros while unresolved (packets are then dropped, counted).
        outer_mac: MacAddr,
        /// VXLAN only: the inner destination MAC (the remote vrouter's MAC).
        inner_mac: MacAddr,
    },
    /// ECMP over the members listed in [`crate::Snapshot::composites`].
    Composite {
        /// Index into the composite table.
        id: u32,
    },
}

impl NextHop {
    /// A short type name, as shown by the `nh` view.
    pub fn kind(&self) -> &'static str {
        match self {
            NextHop::Discard => "discard",
            NextHop::Receive => "receive",
            NextHop::Interface { .. } => "encap",
            NextHop::Tunnel { .. } => "tunnel",
            NextHop::Composite { .. } => "composite",
        }
    }
}

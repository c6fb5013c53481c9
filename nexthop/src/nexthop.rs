//! Next hops: what a route resolves to.

use crate::encap::Encap;
use crate::ids::{MacAddr, Vif};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Index of a next hop in [`crate::Snapshot::nexthops`].
pub type NextHopId = u32;

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

//! The immutable forwarding state a worker reads for a batch of packets.

use crate::lpm::{v4_key, v6_key, LpmTable};
use crate::nexthop::{NextHop, NextHopId};
use crate::route::{Route, RouteSlot};

mod decision;
mod patch;
pub use patch::RoutePatch;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::ids::{MacAddr, Vif, VrfId};
/// A hash map with a fast, DoS-resistant hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// What an interface is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterfaceKind {
    /// The host end of a pod's veth (a virtual-machine-interface).
    Pod,
    /// The node's physical (fabric) interface towards other compute nodes.
    Fabric,
    /// The node's own interface (Tungsten's vhost0): the vrouter's end of a veth
    /// whose other end is the node's kernel, with the node's fabric address. The
    /// node reaches pods and services through it; packets from outside the cluster
    /// for node ports and external IPs enter as if from it, and their replies (and
    /// whatever else leaves the cluster) leave through it, routed by the kernel.
    Host,
}

/// An interface as the data plane sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// The vrouter's index for it.
    pub vif: Vif,
    /// The MPLS label other nodes reach it by (pods only).
    pub label: Option<u32>,
    /// The Linux interface name (the host end of the veth).
    pub name: String,
    /// What it is.
    pub kind: InterfaceKind,
    /// The MAC of the pod behind it (the destination MAC of frames sent to it).
    pub mac: MacAddr,
    /// The VRF it belongs to.
    pub vrf: VrfId,
    /// The pod's IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The gateway address the pod routes through (answered by the vrouter).
    pub gateway4: Option<Ipv4Addr>,
    /// The IPv6 gateway address the pod routes through.
    pub gateway6: Option<Ipv6Addr>,
    /// Source prefixes the pod may send from besides its own addresses (allowed
    /// address pairs); empty for most pods, so the per-packet check is one compare.
    #[serde(default)]
    pub allowed_sources: Vec<ipnet::IpNet>,
    /// The largest IP packet the interface takes (0: not known, not checked).
    #[serde(default)]
    pub mtu: u16,
    /// A VLAN sub-interface (nested mode: a pod in a VM, its traffic tagged on the
    /// VM's port): the port it rides on and its tag. It has no socket of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanTag>,
    /// Its security group ids (what its routes carry to the control nodes).
    pub security_groups: Vec<u32>,
    /// The BGP local preference its addresses are advertised with (none: 100).
    pub local_preference: Option<u32>,
}

/// Where a VLAN sub-interface's frames travel: tagged on its parent port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VlanTag {
    /// The parent port.
    pub parent: Vif,
    /// The 802.1Q VLAN id (1..=4094).
    pub id: u16,
}

impl Interface {
    /// True if `src` is inside one of the pod's allowed address pairs.
    #[inline]
    pub fn in_allowed_pairs(&self, src: std::net::IpAddr) -> bool {
        self.allowed_sources.iter().any(|p| p.contains(&src))
    }
}

/// A VRF: a routing instance with its own IPv4 and IPv6 tables.
#[derive(Debug, Clone, Default)]
pub struct Vrf {
    /// Index.
    pub id: VrfId,
    /// Name (the virtual network's routing instance name).
    pub name: String,
    /// IPv4 routes.
    pub v4: LpmTable<u32, Route>,
    /// IPv6 routes.
    pub v6: LpmTable<u128, Route>,
    /// The slot of "no route matches" in this VRF: flows cached as dropped for want of
    /// a route hold until a route is added here.
    pub miss_slot: RouteSlot,
}

/// The complete forwarding state, immutable once published.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Incremented on every publication; flows remember the generation they saw.
    pub generation: u64,
    /// The last generation that changed something other than routes: flow decisions
    /// made before it no longer hold (see [`Snapshot::decision_holds`]).
    pub flow_epoch: u64,
    /// Per route slot, the low 32 bits of the generation its answer last changed in.
    pub route_stamps: Vec<u32>,
    /// Source MAC of every frame the vrouter sends to a pod, and the MAC it answers
    /// ARP and neighbour solicitations with.
    pub router_mac: MacAddr,
    /// Interfaces indexed by vif; `None` for free slots.
    pub interfaces: Vec<Option<Interface>>,
    /// VRFs indexed by id.
    pub vrfs: Vec<Vrf>,
    /// Next hops indexed by [`NextHopId`]; an id keeps its next hop for as long as
    /// any route uses it. Unused ids hold [`NextHop::Discard`].
    pub nexthops: Vec<NextHop>,
    /// Which VRF owns each interface IPv4 address: tells "other VRF" drops from "no route".
    pub owner4: FastMap<Ipv4Addr, VrfId>,
    /// Which VRF owns each interface IPv6 address.
    pub owner6: FastMap<Ipv6Addr, VrfId>,
    /// The fabric side of this node.
    pub fabric: FabricInfo,
    /// MPLS label -> next hop, for packets arriving from other nodes.
    pub mpls: FastMap<u32, NextHopId>,
    /// VXLAN network identifier -> VRF, for packets arriving from other nodes.
    pub vxlan: FastMap<u32, VrfId>,
    /// Members of composite (ECMP) next hops.
    pub composites: Vec<Composite>,
    /// VLAN sub-interfaces by parent port and tag (empty unless nested mode is in
    /// use, so the per-packet check is one length test).
    pub subinterfaces: FastMap<VlanTag, Vif>,
    /// Services and the addresses translations name, shared between snapshots that
    /// only differ in routes (a patch copies a pointer, not the table).
    pub services: std::sync::Arc<crate::service::Services>,
    /// Floating IPs (1:1 NAT into another VRF).
    pub floating: std::sync::Arc<crate::FloatingIps>,
    /// The node's own interface, if configured.
    pub host: Option<HostPort>,
    /// Fabric source NAT, if configured (needs the node's interface).
    pub snat: Option<crate::Snat>,
    /// Network policy of the local pods (empty: every connection allowed).
    pub policies: std::sync::Arc<crate::Policies>,
    /// Service chains in force (for the views: the routes they make are in the
    /// VRFs' tables).
    pub service_chains: std::sync::Arc<Vec<ServiceChain>>,
}

/// A service chain in force: two VRFs joined through a service instance's two
/// interfaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceChain {
    /// Its name.
    pub name: String,
    /// The instance's interface in the left VRF, and that VRF.
    pub left: (Vif, VrfId),
    /// The instance's interface in the right VRF, and that VRF.
    pub right: (Vif, VrfId),
    /// Prefixes of the right VRF routed in the left into the instance, and of the
    /// left in the right (the node advertises them to the control nodes in those
    /// VRFs, so that other nodes' pods go through the instance too).
    pub leaked: (Vec<ipnet::IpNet>, Vec<ipnet::IpNet>),
}

/// The node's own interface (see [`InterfaceKind::Host`]) as the packet path uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostPort {
    /// Its vif.
    pub vif: Vif,
    /// The interface next hop to it: where replies to connections from outside the
    /// cluster go.
    pub nexthop: NextHopId,
}

/// This node on the fabric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FabricInfo {
    /// Its fabric address (tunnel source).
    pub ip: Option<Ipv4Addr>,
    /// Its fabric interface's MAC (outer source MAC).
    pub mac: MacAddr,
    /// The fabric MTU.
    pub mtu: u16,
}

/// An ECMP group: member next hops and their stable identities.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Composite {
    /// Member next hops.
    pub members: Vec<NextHopId>,
    /// Stable identity of each member (for rendezvous hashing).
    pub ids: Vec<u64>,
}

impl Snapshot {
    /// The address `addr` names in the NAT address arena.
    #[inline]
    pub fn nat_address(&self, addr: crate::NatAddr) -> Option<IpAddr> {
        self.services.nat_addresses.get(addr.0 as usize).copied()
    }

    /// The address a translation puts in.
    #[inline]
    pub fn nat_target(&self, target: crate::NatTarget) -> Option<IpAddr> {
        match target {
            crate::NatTarget::V4(a) => Some(IpAddr::V4(a)),
            crate::NatTarget::V6(i) => self.nat_address(i),
            crate::NatTarget::Pair(_) => None,
        }
    }

    /// The service port a new flow to `ip`:`port` (protocol `proto`) in `vrf` is for.
    #[inline]
    pub fn service(&self, vrf: VrfId, ip: IpAddr, proto: u8, port: u16) -> Option<&crate::ServiceEntry> {
        let by_key = &self.services.by_key;
        if by_key.is_empty() {
            return None;
        }
        by_key.get(&crate::ServiceKey { vrf, ip, proto, port })
    }

    /// The longest prefix `dst` matches in `vrf`, if any route matches.
    #[inline]
    pub fn match_len(&self, vrf: VrfId, dst: IpAddr) -> Option<u8> {
        let table = self.vrf(vrf)?;
        match dst {
            IpAddr::V4(a) => table.v4.lookup(v4_key(a)).map(|(len, _)| len),
            IpAddr::V6(a) => table.v6.lookup(v6_key(a)).map(|(len, _)| len),
        }
    }

    /// The interface with this vif, if any.
    #[inline]
    pub fn interface(&self, vif: Vif) -> Option<&Interface> {
        self.interfaces.get(vif.index()).and_then(Option::as_ref)
    }

    /// The interface with this name, if any.
    pub fn interface_by_name(&self, name: &str) -> Option<&Interface> {
        self.interfaces.iter().flatten().find(|i| i.name == name)
    }

    /// The next hop with this id, if any.
    #[inline]
    pub fn nexthop(&self, id: NextHopId) -> Option<&NextHop> {
        self.nexthops.get(id.index())
    }

    /// The VRF with this id, if any.
    #[inline]
    pub fn vrf(&self, id: VrfId) -> Option<&Vrf> {
        self.vrfs.get(id.index())
    }

    /// The VRF with this name, if any.
    pub fn vrf_by_name(&self, name: &str) -> Option<&Vrf> {
        self.vrfs.iter().find(|v| v.name == name)
    }

    /// Reverse-path check: true if the route for `src` in `vrf` leads back to
    /// interface `vif` (directly, or as a member of an ECMP group). A pod may send
    /// from a prefix the VRF routes to it.
    pub fn routes_back_to(&self, vrf: VrfId, src: std::net::IpAddr, vif: Vif) -> bool {
        let table = match self.vrf(vrf) {
            Some(t) => t,
            None => return false,
        };
        let route = match src {
            std::net::IpAddr::V4(a) => table.v4.lookup(v4_key(a)).map(|(_, r)| r),
            std::net::IpAddr::V6(a) => table.v6.lookup(v6_key(a)).map(|(_, r)| r),
        };
        let is_vif = |id: &NextHopId| matches!(self.nexthop(*id), Some(NextHop::Interface { vif: v, .. }) if *v == vif);
        match route.and_then(|r| self.nexthop(r.nexthop).map(|nh| (r.nexthop, nh))) {
            Some((id, NextHop::Interface { .. })) => is_vif(&id),
            Some((_, NextHop::Composite { id })) => self
                .composites
                .get(*id as usize)
                .is_some_and(|c| c.members.iter().any(is_vif)),
            _ => false,
        }
    }

    /// The next hop for `dst` in `vrf` (longest prefix match).
    #[inline]
    pub fn route4(&self, vrf: VrfId, dst: Ipv4Addr) -> Option<&NextHop> {
        let (_, route) = self.vrf(vrf)?.v4.lookup(v4_key(dst))?;
        self.nexthop(route.nexthop)
    }

    /// The next hop for `dst` in `vrf` (longest prefix match).
    #[inline]
    pub fn route6(&self, vrf: VrfId, dst: Ipv6Addr) -> Option<&NextHop> {
        let (_, route) = self.vrf(vrf)?.v6.lookup(v6_key(dst))?;
        self.nexthop(route.nexthop)
    }
}

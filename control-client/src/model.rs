//! The desired forwarding state and its compilation into a snapshot.

use ipnet::IpNet;
use nexthop::encap::Encap;
use nexthop::{
    v4_key, v6_key, Composite, FabricInfo, FastMap, Interface, InterfaceKind, MacAddr, NextHop, NextHopId, Snapshot,
    Vif, Vrf, VrfId,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Name of the VRF the fabric interface belongs to (VRF 0, as Tungsten's
/// `default-domain:default-project:ip-fabric:__default__`).
pub const FABRIC_VRF: &str = "fabric";

const NH_DISCARD: NextHopId = NextHopId(0);
const NH_RECEIVE: NextHopId = NextHopId(1);
/// The MAC a remote vrouter is assumed to have when its route names none
/// (Contrail's default vrouter MAC).
pub const DEFAULT_REMOTE_MAC: MacAddr = MacAddr([0x00, 0x00, 0x5e, 0x00, 0x01, 0x00]);

fn default_encaps() -> Vec<Encap> {
    Encap::DEFAULT_PRIORITY.to_vec()
}

/// A pod interface as requested through the API (what the Tungsten agent keeps in
/// its port files).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceSpec {
    /// Linux name of the host end of the pod's veth.
    pub name: String,
    /// The VRF (virtual network routing instance) to bind it to.
    pub vrf: String,
    /// The pod's MAC address.
    pub mac: MacAddr,
    /// The pod's IPv4 address.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// The pod's IPv6 address.
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    /// The IPv4 gateway the pod uses; the vrouter answers for it.
    #[serde(default)]
    pub gateway4: Option<Ipv4Addr>,
    /// The IPv6 gateway the pod uses; the vrouter answers for it.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// Further source prefixes the pod may send from (Contrail's allowed address
    /// pairs, e.g. a VIP it serves or a generator's address range); anything else
    /// not its own address is dropped as `source_mismatch`. At most 64.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_address_pairs: Vec<IpNet>,
    /// The pod interface's MTU (IP bytes); a larger packet for it gets an ICMP error
    /// (IPv4 with DF: fragmentation needed; IPv6: packet too big) or a counted `mtu`
    /// drop. Unset: the host end's MTU when it is attached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
    /// Set for a VLAN sub-interface (nested mode): its parent port and tag. `name` is
    /// then the sub-interface's own name, not a Linux interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<VlanSpec>,
    /// The ids of its security groups (from the configuration): its routes carry
    /// them to the control nodes, as the agent's do.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<u32>,
    /// The BGP local preference its addresses are advertised with (Contrail's
    /// interface property `local_preference`; unset: 100). Of several nodes holding
    /// the same address, the control node sends the paths of the highest preference
    /// only, so a standby instance (100) takes traffic only while the active one
    /// (200) does not advertise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_preference: Option<u32>,
}

/// Where a configured route sends packets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RouteTarget {
    /// To a local interface, by name.
    Interface {
        /// The interface name.
        name: String,
    },
    /// Dropped (blackhole).
    Discard,
    /// To a remote compute node through a tunnel.
    Tunnel {
        /// The remote node's fabric address.
        remote: Ipv4Addr,
        /// The MPLS label (or VXLAN VNI) it advertised.
        label: u32,
        /// Encapsulations it accepts; the first of this node's priority list that
        /// appears here is used.
        #[serde(default = "default_encaps")]
        encaps: Vec<Encap>,
        /// The remote vrouter's MAC (inner destination MAC of VXLAN).
        #[serde(default)]
        mac: Option<MacAddr>,
    },
    /// ECMP over local interfaces and tunnels (at most 128 members).
    Ecmp {
        /// The members (interfaces or tunnels).
        members: Vec<RouteTarget>,
    },
}

impl RouteTarget {
    pub(super) fn mentions(&self, ifname: &str) -> bool {
        match self {
            RouteTarget::Interface { name } => name == ifname,
            RouteTarget::Ecmp { members } => members.iter().any(|m| m.mentions(ifname)),
            _ => false,
        }
    }
}

/// A route added through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The VRF it belongs to.
    pub vrf: String,
    /// The destination prefix (IPv4 or IPv6).
    pub prefix: IpNet,
    /// Where it goes.
    pub target: RouteTarget,
}

/// Why a change to the desired state was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// An interface of that name exists already.
    #[error("interface {0:?} already exists")]
    DuplicateInterface(String),
    /// No interface of that name.
    #[error("no interface named {0:?}")]
    UnknownInterface(String),
    /// The name is not a valid Linux interface name.
    #[error("invalid interface name {0:?}: 1-15 characters, not . or .., no '/', ':' or whitespace")]
    InvalidInterfaceName(String),
    /// The VRF name is empty, too long or reserved.
    #[error("invalid VRF name {0:?}: 1-255 characters, not {FABRIC_VRF:?}")]
    InvalidVrfName(String),
    /// The address is already used by another interface in the same VRF.
    #[error("address {addr} is already used by interface {owner:?} in VRF {vrf:?}")]
    AddressInUse {
        /// The address.
        addr: IpAddr,
        /// The VRF.
        vrf: String,
        /// The interface using it.
        owner: String,
    },
    /// The MAC is multicast or all zeros.
    #[error("invalid pod MAC {0}: must be a non-zero unicast address")]
    InvalidMac(MacAddr),
    /// A pod address that cannot be a unicast source (loopback, multicast,
    /// broadcast, unspecified, link-local).
    #[error("invalid pod address {0}: must be a routable unicast address")]
    InvalidPodAddress(IpAddr),
    /// An MTU below what the pod's address families need.
    #[error("invalid MTU {0}: at least {1} (576 for IPv4, 1280 with IPv6)")]
    InvalidMtu(u16, u16),
    /// Too many or unusable allowed address pairs.
    #[error("invalid allowed address pairs: {0}")]
    InvalidAllowedPairs(String),
    /// A gateway equals the pod's own address.
    #[error("gateway {0} equals the interface's own address")]
    GatewayIsOwnAddress(IpAddr),
    /// As many VRFs exist as ids can name.
    #[error("{0} VRFs exist already")]
    TooManyVrfs(usize),
    /// The table of interfaces is full.
    #[error("interface table full ({0} interfaces): raise tables.interfaces")]
    TooManyInterfaces(usize),
    /// A restored port's recorded vif or label is out of range or held by another port.
    #[error("interface {name:?}: recorded vif {vif} / label {label} unavailable ({why})")]
    IdentityUnavailable {
        /// Interface.
        name: String,
        /// The recorded vif.
        vif: Vif,
        /// The recorded label.
        label: u32,
        /// Why.
        why: String,
    },
    /// The route's VRF has no interface and is not known.
    #[error("no VRF named {0:?}")]
    UnknownVrf(String),
    /// The route to remove does not exist.
    #[error("no route {prefix} in VRF {vrf:?}")]
    UnknownRoute {
        /// VRF.
        vrf: String,
        /// Prefix.
        prefix: IpNet,
    },
    /// A route for that prefix exists already.
    #[error("route {prefix} in VRF {vrf:?} exists already")]
    DuplicateRoute {
        /// VRF.
        vrf: String,
        /// Prefix.
        prefix: IpNet,
    },
    /// The route points to an interface in another VRF.
    #[error("interface {name:?} is in VRF {actual:?}, not {wanted:?}")]
    InterfaceInOtherVrf {
        /// Interface.
        name: String,
        /// Its VRF.
        actual: String,
        /// The route's VRF.
        wanted: String,
    },
    /// The tunnel or ECMP target is not usable.
    #[error("invalid route target: {0}")]
    InvalidTarget(String),
    /// The VNI is out of range or used by another VRF.
    #[error("invalid VNI {vni}: {why}")]
    InvalidVni {
        /// VNI.
        vni: u32,
        /// Why.
        why: String,
    },
    /// The interface is still the target of routes.
    #[error("interface {name:?} is the target of {count} route(s); remove them first")]
    InterfaceInUse {
        /// Interface.
        name: String,
        /// Routes pointing at it.
        count: usize,
    },
    /// The node's own interface: it comes and goes with the vrouter.
    #[error("interface {0:?} is the node's own (the [host] configuration makes it; it goes when the vrouter stops)")]
    HostInterface(String),
    /// A VLAN sub-interface binding that cannot be.
    #[error("invalid VLAN sub-interface: {0}")]
    InvalidVlan(String),
    /// A service that cannot be.
    #[error("invalid service: {0}")]
    InvalidService(String),
    /// No service of that name.
    #[error("no service named {0:?}")]
    UnknownService(String),
    /// A floating IP that cannot be.
    #[error("invalid floating IP: {0}")]
    InvalidFloatingIp(String),
    /// No floating IP of that name.
    #[error("no floating IP named {0:?}")]
    UnknownFloatingIp(String),
    /// A network policy that cannot be.
    #[error("invalid network policy: {0}")]
    InvalidPolicy(String),
    /// No network policy of that name.
    #[error("no network policy named {0:?}")]
    UnknownPolicy(String),
    /// A service chain that cannot be.
    #[error("invalid service chain: {0}")]
    InvalidServiceChain(String),
    /// An ingress that cannot be.
    #[error("invalid ingress: {0}")]
    InvalidIngress(String),
    /// No ingress of that name.
    #[error("no ingress named {0:?}")]
    UnknownIngress(String),
    /// No service chain of that name.
    #[error("no service chain named {0:?}")]
    UnknownServiceChain(String),
    /// The port carries VLAN sub-interfaces, which go first.
    #[error("interface {name:?} carries VLAN sub-interfaces {subinterfaces:?}: remove them first")]
    ParentInUse {
        /// Interface.
        name: String,
        /// Its sub-interfaces.
        subinterfaces: Vec<String>,
    },
}

/// Kubernetes' default node port range.
pub const DEFAULT_NODE_PORTS: nexthop::PortRange = nexthop::PortRange {
    first: 30_000,
    last: 32_767,
};

/// What the operator asked for. Vif and VRF numbers stay stable across changes, so
/// counters and flows keep meaning the same interface.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DesiredState {
    fabric: Option<(String, Vif)>,
    interfaces: BTreeMap<String, (PortIdentity, InterfaceSpec)>,
    /// Where the search for the next free MPLS label starts (see [`PortIdentity`]).
    next_label: u32,
    /// Identities of recorded ports that are not attached (their interface did not
    /// come back after a restart): no other port gets them.
    reserved: BTreeMap<String, PortIdentity>,
    routes: Vec<RouteSpec>,
    /// Where each route is in `routes`, by VRF and prefix: adding and removing a route
    /// costs the same with 100K routes as with ten.
    route_index: std::collections::HashMap<(String, IpNet), usize>,
    /// Routes learned from control nodes, per VRF and prefix: each node's path.
    #[serde(skip)]
    learned: BTreeMap<(String, IpNet), learned::Paths>,
    /// Per control node, the routes it taught before its channel came back and has
    /// not sent again since (graceful restart: swept at its end-of-RIB).
    #[serde(skip)]
    stale: BTreeMap<learned::PeerId, std::collections::BTreeSet<(String, IpNet)>>,
    /// Paths learned per path source (control node, inet or EVPN) and VRF.
    #[serde(skip)]
    learned_counts: BTreeMap<(learned::PeerId, String), usize>,
    /// Routes per VRF (a VRF with routes stays).
    routes_per_vrf: BTreeMap<String, usize>,
    vrf_ids: BTreeMap<String, VrfId>,
    /// Ids of deleted VRFs, all below `next_vrf_id`: the lowest is reused first.
    free_vrf_ids: std::collections::BTreeSet<VrfId>,
    /// The lowest id never used (ids run 1..=65535; the fabric's is 0).
    next_vrf_id: u32,
    /// Services by name.
    services: BTreeMap<String, ServiceSpec>,
    floating_ips: BTreeMap<String, FloatingIpSpec>,
    /// Network policies by name.
    #[serde(default)]
    policies: BTreeMap<String, PolicySpec>,
    /// Service chains by name.
    #[serde(default)]
    service_chains: BTreeMap<String, ServiceChainSpec>,
    /// Ingresses by name.
    #[serde(default)]
    ingresses: BTreeMap<String, IngressSpec>,
    #[serde(skip, default = "policy::next_policy_version")]
    policy_version: u64,
    max_interfaces: usize,
    fabric_info: FabricInfo,
    vrf_vnis: BTreeMap<String, u32>,
    neighbors: BTreeMap<Ipv4Addr, MacAddr>,
    encap_priority: Vec<Encap>,
    /// The interface that is the node's own (vhost0's vrouter end), if any.
    host_interface: Option<String>,
    /// Fabric source NAT: the VRF whose pods' connections outside the cluster leave
    /// from the fabric address, and the TCP and UDP port ranges.
    snat: Option<(String, nexthop::SnatRanges)>,
    /// The ports services may take as node ports (Kubernetes' 30000-32767 unless set).
    node_ports: Option<nexthop::PortRange>,
    /// The prefixes LoadBalancer services take their external IP from.
    #[serde(default)]
    lb_pool: Vec<IpNet>,
    /// Backends their health check took out, by service name.
    #[serde(skip)]
    unhealthy: std::collections::BTreeSet<(String, IpAddr)>,
}

impl DesiredState {
    /// An empty state holding at most `max_interfaces` interfaces (fabric included).
    pub fn new(max_interfaces: usize) -> Self {
        let mut state = Self {
            max_interfaces: max_interfaces.max(1),
            encap_priority: Encap::DEFAULT_PRIORITY.to_vec(),
            ..Self::default()
        };
        state.vrf_ids.insert(FABRIC_VRF.to_string(), VrfId::FABRIC);
        state
    }

    /// Registers the fabric interface as vif 0 in the fabric VRF.
    pub fn set_fabric(&mut self, name: &str) {
        self.fabric = Some((name.to_string(), Vif::FABRIC));
    }

    /// Makes interface `name` (attached, or attached later) the node's own: see
    /// [`InterfaceKind::Host`]. It cannot be detached through the API.
    pub fn set_host_interface(&mut self, name: &str) {
        self.host_interface = Some(name.to_string());
    }

    /// Turns fabric source NAT on for the pods of VRF `vrf` (see [`nexthop::Snat`]):
    /// in force while the VRF exists, the fabric address is known and the node's
    /// interface is attached.
    pub fn set_snat(&mut self, vrf: &str, ranges: nexthop::SnatRanges) {
        self.snat = Some((vrf.to_string(), ranges));
    }

    /// Sets the ports services may take as node ports.
    pub fn set_node_port_range(&mut self, range: nexthop::PortRange) {
        self.node_ports = Some(range);
    }

    /// The ports services may take as node ports.
    pub fn node_port_range(&self) -> nexthop::PortRange {
        self.node_ports.unwrap_or(DEFAULT_NODE_PORTS)
    }

    /// The node's own interface's name, if one is configured.
    pub fn host_interface(&self) -> Option<&str> {
        self.host_interface.as_deref()
    }

    /// Sets this node's fabric address, MAC and MTU.
    pub fn set_fabric_info(&mut self, info: FabricInfo) {
        self.fabric_info = info;
    }

    /// This node's fabric address, MAC and MTU.
    pub fn fabric_info(&self) -> FabricInfo {
        self.fabric_info
    }

    /// The encapsulation priority (most preferred first).
    pub fn encap_priority(&self) -> &[Encap] {
        &self.encap_priority
    }

    /// Sets the encapsulation priority (most preferred first).
    pub fn set_encap_priority(&mut self, priority: Vec<Encap>) {
        self.encap_priority = priority;
    }

    /// Records the MAC of a fabric neighbour; true if it changed.
    pub fn set_neighbor(&mut self, ip: Ipv4Addr, mac: MacAddr) -> bool {
        self.neighbors.insert(ip, mac) != Some(mac)
    }

    /// The remote fabric addresses that tunnels use (to resolve their MACs).
    pub fn tunnel_endpoints(&self) -> Vec<Ipv4Addr> {
        fn collect(t: &RouteTarget, out: &mut Vec<Ipv4Addr>) {
            match t {
                RouteTarget::Tunnel { remote, .. } => out.push(*remote),
                RouteTarget::Ecmp { members } => members.iter().for_each(|m| collect(m, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        self.routes.iter().for_each(|r| collect(&r.target, &mut out));
        self.learned
            .values()
            .flat_map(|paths| paths.values())
            .for_each(|p| collect(&p.route.target, &mut out));
        out.sort();
        out.dedup();
        out
    }

    /// The VNI of each VRF that has one.
    pub fn vrf_vnis(&self) -> BTreeMap<String, u32> {
        self.vrf_vnis.clone()
    }

    /// Gives VRF `vrf` the VXLAN network identifier `vni` (for packets received over
    /// VXLAN). The VRF must exist.
    pub fn set_vrf_vni(&mut self, vrf: &str, vni: u32) -> Result<(), ModelError> {
        if !self.vrf_ids.contains_key(vrf) || vrf == FABRIC_VRF {
            return Err(ModelError::UnknownVrf(vrf.to_string()));
        }
        if vni == 0 || vni > 0xff_ffff {
            return Err(ModelError::InvalidVni {
                vni,
                why: "not in 1..=16777215".into(),
            });
        }
        if let Some((other, _)) = self.vrf_vnis.iter().find(|(v, n)| **n == vni && v.as_str() != vrf) {
            return Err(ModelError::InvalidVni {
                vni,
                why: format!("used by VRF {other:?}"),
            });
        }
        self.vrf_vnis.insert(vrf.to_string(), vni);
        Ok(())
    }

    fn validate_target(&self, vrf: &str, target: &RouteTarget, depth: usize) -> Result<(), ModelError> {
        let bad = |why: String| Err(ModelError::InvalidTarget(why));
        match target {
            RouteTarget::Discard => Ok(()),
            RouteTarget::Interface { name } => {
                let (_, spec) = self
                    .interfaces
                    .get(name)
                    .ok_or_else(|| ModelError::UnknownInterface(name.clone()))?;
                if spec.vrf != vrf {
                    return Err(ModelError::InterfaceInOtherVrf {
                        name: name.clone(),
                        actual: spec.vrf.clone(),
                        wanted: vrf.to_string(),
                    });
                }
                Ok(())
            }
            RouteTarget::Tunnel {
                remote, label, encaps, ..
            } => {
                if remote.is_unspecified() || remote.is_multicast() || remote.is_broadcast() {
                    return bad(format!("{remote} is not a unicast fabric address"));
                }
                let Some(encap) = self.choose_encap(encaps) else {
                    return bad(format!(
                        "none of {encaps:?} is in the encapsulation priority list {:?}",
                        self.encap_priority
                    ));
                };
                let max = if encap == Encap::Vxlan { 0xff_ffff } else { 0xf_ffff };
                if *label > max || (encap != Encap::Vxlan && *label < 16) {
                    return bad(format!("label {label} out of range for {}", encap.name()));
                }
                Ok(())
            }
            RouteTarget::Ecmp { members } => {
                if depth > 0 {
                    return bad("ECMP members cannot be ECMP groups".into());
                }
                if members.is_empty() || members.len() > nexthop::ecmp::MAX_MEMBERS {
                    return bad(format!("{} members: an ECMP group has 1 to 128", members.len()));
                }
                if members.iter().any(|m| matches!(m, RouteTarget::Discard)) {
                    return bad("a discard member".into());
                }
                members.iter().try_for_each(|m| self.validate_target(vrf, m, depth + 1))
            }
        }
    }

    fn choose_encap(&self, advertised: &[Encap]) -> Option<Encap> {
        self.encap_priority.iter().copied().find(|e| advertised.contains(e))
    }

    /// Checks that `spec` can be attached: a valid, unused name, a unicast MAC, no
    /// address taken in its VRF.
    fn validate_new_interface(&self, spec: &InterfaceSpec) -> Result<(), ModelError> {
        validate_ifname(&spec.name)?;
        validate_vrf_name(&spec.vrf)?;
        self.validate_vlan(spec)?;
        if self.interfaces.contains_key(&spec.name) || self.fabric.as_ref().is_some_and(|(n, _)| *n == spec.name) {
            return Err(ModelError::DuplicateInterface(spec.name.clone()));
        }
        if spec.mac.0 == [0; 6] || spec.mac.0[0] & 1 == 1 {
            return Err(ModelError::InvalidMac(spec.mac));
        }
        self.vrf_available(&spec.vrf)?;
        let addresses = spec.ipv4.map(IpAddr::V4).into_iter().chain(spec.ipv6.map(IpAddr::V6));
        if let Some(bad) = addresses.into_iter().find(|a| is_martian(*a)) {
            return Err(ModelError::InvalidPodAddress(bad));
        }
        if let Some(mtu) = spec.mtu {
            let min = if spec.ipv6.is_some() { 1280 } else { 576 };
            if mtu < min {
                return Err(ModelError::InvalidMtu(mtu, min));
            }
        }
        if spec.allowed_address_pairs.len() > MAX_ALLOWED_PAIRS {
            return Err(ModelError::InvalidAllowedPairs(format!(
                "{} given, at most {MAX_ALLOWED_PAIRS}",
                spec.allowed_address_pairs.len()
            )));
        }
        if let Some(p) = spec.allowed_address_pairs.iter().find(|p| {
            let a = p.network();
            a.is_loopback() || a.is_multicast() || (a.is_unspecified() && p.prefix_len() > 0)
        }) {
            return Err(ModelError::InvalidAllowedPairs(format!("{p} is not a unicast prefix")));
        }
        if let (Some(a), Some(g)) = (spec.ipv4, spec.gateway4) {
            if a == g {
                return Err(ModelError::GatewayIsOwnAddress(a.into()));
            }
        }
        if let (Some(a), Some(g)) = (spec.ipv6, spec.gateway6) {
            if a == g {
                return Err(ModelError::GatewayIsOwnAddress(a.into()));
            }
        }
        for (other, (_, o)) in &self.interfaces {
            if o.vrf != spec.vrf {
                continue;
            }
            let clash = match (spec.ipv4, o.ipv4, spec.ipv6, o.ipv6) {
                (Some(a), Some(b), _, _) if a == b => Some(IpAddr::from(a)),
                (_, _, Some(a), Some(b)) if a == b => Some(IpAddr::from(a)),
                _ => None,
            };
            if let Some(addr) = clash {
                return Err(ModelError::AddressInUse {
                    addr,
                    vrf: spec.vrf.clone(),
                    owner: other.clone(),
                });
            }
        }
        // A floating address in that VRF is taken too.
        let own = [spec.ipv4.map(IpAddr::V4), spec.ipv6.map(IpAddr::V6)];
        if let Some(f) = self
            .floating_ips()
            .find(|f| f.vrf == spec.vrf && own.contains(&Some(f.ip)))
        {
            return Err(ModelError::AddressInUse {
                addr: f.ip,
                vrf: spec.vrf.clone(),
                owner: format!("floating IP {}", f.name),
            });
        }
        Ok(())
    }

    /// Records a validated interface under `id`, creating its VRF if needed (its
    /// room was checked by [`DesiredState::validate_new_interface`]).
    fn insert_interface(&mut self, spec: InterfaceSpec, id: PortIdentity) {
        if self.ensure_vrf(&spec.vrf).is_ok() {
            self.interfaces.insert(spec.name.clone(), (id, spec));
        }
    }

    /// Removes a pod interface; returns what it was.
    pub fn remove_interface(&mut self, name: &str) -> Result<(Vif, InterfaceSpec), ModelError> {
        if !self.interfaces.contains_key(name) {
            return Err(ModelError::UnknownInterface(name.to_string()));
        }
        if self.host_interface.as_deref() == Some(name) {
            return Err(ModelError::HostInterface(name.to_string()));
        }
        let count = self.routes.iter().filter(|r| r.target.mentions(name)).count();
        if count > 0 {
            return Err(ModelError::InterfaceInUse {
                name: name.to_string(),
                count,
            });
        }
        let subinterfaces = self.subinterfaces_of(name);
        if !subinterfaces.is_empty() {
            return Err(ModelError::ParentInUse {
                name: name.to_string(),
                subinterfaces,
            });
        }
        let (id, spec) = self.interfaces.remove(name).expect("checked above");
        self.drop_learned(None, Some(name));
        self.release_vrf_if_unused(&spec.vrf);
        Ok((id.vif, spec))
    }

    /// `route` with its prefix truncated, if its VRF exists here and its target is
    /// usable (what an operator's and a control node's routes both must be).
    pub(super) fn checked_route(&self, route: RouteSpec) -> Result<RouteSpec, ModelError> {
        let route = RouteSpec {
            prefix: route.prefix.trunc(),
            ..route
        };
        if !self.vrf_ids.contains_key(&route.vrf) {
            return Err(ModelError::UnknownVrf(route.vrf));
        }
        self.validate_target(&route.vrf, &route.target, 0)?;
        Ok(route)
    }

    /// Adds a route.
    pub fn add_route(&mut self, route: RouteSpec) -> Result<(), ModelError> {
        let route = self.checked_route(route)?;
        let key = (route.vrf.clone(), route.prefix);
        if self.route_index.contains_key(&key) {
            return Err(ModelError::DuplicateRoute {
                vrf: route.vrf,
                prefix: route.prefix,
            });
        }
        self.route_index.insert(key, self.routes.len());
        *self.routes_per_vrf.entry(route.vrf.clone()).or_default() += 1;
        self.routes.push(route);
        Ok(())
    }

    /// Removes the route at `pos` (the last one takes its place).
    fn remove_route_at(&mut self, pos: usize) -> RouteSpec {
        let removed = self.routes.swap_remove(pos);
        self.route_index.remove(&(removed.vrf.clone(), removed.prefix));
        if let Some(moved) = self.routes.get(pos) {
            self.route_index.insert((moved.vrf.clone(), moved.prefix), pos);
        }
        if let Some(n) = self.routes_per_vrf.get_mut(&removed.vrf) {
            *n -= 1;
            if *n == 0 {
                self.routes_per_vrf.remove(&removed.vrf);
            }
        }
        removed
    }

    /// Removes and returns every route that names interface `name` (directly or as
    /// an ECMP member).
    pub fn take_routes_to(&mut self, name: &str) -> Vec<RouteSpec> {
        let mut taken = Vec::new();
        let mut pos = 0;
        while pos < self.routes.len() {
            if self.routes[pos].target.mentions(name) {
                taken.push(self.remove_route_at(pos));
            } else {
                pos += 1;
            }
        }
        taken
    }

    /// Removes a route.
    pub fn remove_route(&mut self, vrf: &str, prefix: IpNet) -> Result<RouteSpec, ModelError> {
        let prefix = prefix.trunc();
        let pos = *self
            .route_index
            .get(&(vrf.to_string(), prefix))
            .ok_or_else(|| ModelError::UnknownRoute {
                vrf: vrf.to_string(),
                prefix,
            })?;
        let removed = self.remove_route_at(pos);
        self.release_vrf_if_unused(vrf);
        Ok(removed)
    }

    /// The pod interfaces, by name.
    pub fn interfaces(&self) -> impl Iterator<Item = (Vif, &InterfaceSpec)> {
        self.interfaces.values().map(|(id, s)| (id.vif, s))
    }

    /// The route in effect for exactly `prefix` in VRF `vrf`, if there is one: the
    /// operator's, else one a control node taught.
    pub fn route(&self, vrf: &str, prefix: IpNet) -> Option<&RouteSpec> {
        let prefix = prefix.trunc();
        match self.route_index.get(&(vrf.to_string(), prefix)) {
            Some(pos) => self.routes.get(*pos),
            None => self.learned_route(vrf, prefix),
        }
    }

    /// The configured routes.
    pub fn routes(&self) -> &[RouteSpec] {
        &self.routes
    }
}

/// Most allowed address pairs one interface may have.
pub const MAX_ALLOWED_PAIRS: usize = 64;

/// True for an address no pod may send from or own: unspecified, loopback,
/// multicast, broadcast, link-local (RFC 1812 5.3.7, RFC 4291 2.5).
pub fn is_martian(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => {
            a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() || a.is_link_local()
        }
        IpAddr::V6(a) => a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_unicast_link_local(),
    }
}

fn validate_ifname(name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace() || c == '\0');
    if ok {
        Ok(())
    } else {
        Err(ModelError::InvalidInterfaceName(name.to_string()))
    }
}

/// Checks a VRF name: 1-255 characters, not the fabric's.
pub fn validate_vrf_name(name: &str) -> Result<(), ModelError> {
    if name.is_empty() || name.len() > 255 || name == FABRIC_VRF {
        Err(ModelError::InvalidVrfName(name.to_string()))
    } else {
        Ok(())
    }
}

mod build;
mod builder;
#[cfg(test)]
mod builder_tests;
mod chains;
mod floating;
mod ingress;
mod learned;
mod policy;
mod ports;
mod services;
mod vlan;
mod vrfs;

pub use builder::SnapshotBuilder;
pub use chains::{ServiceChainSpec, MAX_SERVICE_CHAINS};
pub use floating::{FloatingIpSpec, MAX_FLOATING_IPS};
pub use ingress::{IngressBackend, IngressPath, IngressRule, IngressSpec, PathMatch, MAX_INGRESSES, MAX_INGRESS_PATHS};
pub use learned::PeerId;
pub use policy::{PolicyPeer, PolicyPod, PolicyPort, PolicyRule, PolicySpec, PolicyTier, MAX_POLICIES};
pub use ports::{PortIdentity, FIRST_LABEL, LAST_LABEL};
pub use services::{
    HealthCheck, HealthCheckKind, L4Protocol, ServicePort, ServiceSpec, MAX_BACKENDS, MAX_SERVICE_PORTS,
};
pub use vlan::VlanSpec;

#[cfg(test)]
mod tests;

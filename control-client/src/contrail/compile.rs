//! The configuration graph compiled into what the data plane needs: each port
//! (virtual machine interface) with its routing instance, MAC, addresses and
//! gateways, VLAN sub-interface parent; the VXLAN identifier of each routing
//! instance in use; the encapsulation priorities. Walks links the way the agent
//! resolves them: port -> network -> routing instance (or the port's own routing
//! instance link), port <- instance IP, network -> IPAM subnets -> gateway.

use super::{ConfigGraph, ObjectKey, ObjectType, Properties, Uuid, VmiProps, VxlanMode};
use crate::model::{InterfaceSpec, VlanSpec};
use ipnet::IpNet;
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A port as the configuration describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    /// The interface's fully qualified name.
    pub name: String,
    /// Its UUID (what the CNI plugin and the port binding name it by).
    pub uuid: Uuid,
    /// The virtual machine (or pod) it belongs to.
    pub virtual_machine: Option<String>,
    /// That virtual machine's UUID (a Kubernetes pod's UID).
    pub virtual_machine_uuid: Option<Uuid>,
    /// Its virtual network.
    pub virtual_network: Option<String>,
    /// Its routing instance: the VRF it is bound to.
    pub vrf: Option<String>,
    /// Its MAC.
    pub mac: Option<MacAddr>,
    /// Its IPv4 address (the lowest if it has several).
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
    /// The gateway of the IPv4 address's subnet.
    pub gateway4: Option<Ipv4Addr>,
    /// The gateway of the IPv6 address's subnet.
    pub gateway6: Option<Ipv6Addr>,
    /// The prefix lengths of the IPv4 and IPv6 addresses' subnets (their IPAM's).
    pub prefix_lens: (Option<u8>, Option<u8>),
    /// Further prefixes it may send from.
    pub allowed_address_pairs: Vec<IpNet>,
    /// Set for a nested-mode sub-interface.
    pub vlan: Option<PortVlan>,
    /// The local preference its routes are advertised with.
    pub local_preference: Option<u32>,
    /// Its security groups (fully qualified names; their rules are in
    /// [`CompiledConfig::security_groups`]).
    pub security_groups: Vec<String>,
    /// Their ids, as routes carry them.
    pub security_group_ids: Vec<u32>,
}

impl PortConfig {
    /// Its addresses: IPv4, then IPv6.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        [self.ipv4.map(IpAddr::from), self.ipv6.map(IpAddr::from)]
            .into_iter()
            .flatten()
    }

    /// The port as a policy selects it: each of its addresses in its VRF (none
    /// without a VRF).
    pub fn policy_pods(&self) -> impl Iterator<Item = crate::model::PolicyPod> + '_ {
        self.vrf.iter().flat_map(move |vrf| {
            self.addresses()
                .map(|ip| crate::model::PolicyPod { vrf: vrf.clone(), ip })
        })
    }
}

#[cfg(test)]
impl PortConfig {
    /// Port `n` of the unit tests: UUID `n`, named `pod-n`, nothing else set.
    pub(crate) fn numbered(n: u8) -> PortConfig {
        PortConfig {
            name: format!("default-domain:k8s:pod-{n}"),
            uuid: Uuid::from_u128(u128::from(n)),
            virtual_machine: None,
            virtual_machine_uuid: None,
            virtual_network: None,
            vrf: None,
            mac: None,
            ipv4: None,
            ipv6: None,
            gateway4: None,
            gateway6: None,
            prefix_lens: (None, None),
            allowed_address_pairs: Vec::new(),
            vlan: None,
            local_preference: None,
            security_groups: Vec::new(),
            security_group_ids: Vec::new(),
        }
    }
}

/// A sub-interface's parent and tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortVlan {
    /// The parent interface's UUID.
    pub parent: Uuid,
    /// The 802.1Q tag.
    pub tag: u16,
}

impl PortConfig {
    /// The interface to attach as Linux interface `name` (for a sub-interface,
    /// `parent` is the name its parent port is bound under); why not, when the
    /// configuration is not complete yet.
    pub fn interface_spec(&self, name: &str, parent: Option<&str>) -> Result<InterfaceSpec, String> {
        let vrf = self.vrf.clone().ok_or("no routing instance")?;
        let mac = self.mac.ok_or("no MAC address")?;
        if self.ipv4.is_none() && self.ipv6.is_none() {
            return Err("no instance IP".into());
        }
        let vlan = match (self.vlan, parent) {
            (None, _) => None,
            (Some(v), Some(parent)) => Some(VlanSpec {
                parent: parent.to_string(),
                id: v.tag,
            }),
            (Some(v), None) => return Err(format!("parent port {} is not bound here", v.parent)),
        };
        Ok(InterfaceSpec {
            name: name.to_string(),
            vrf,
            mac,
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            gateway4: self.gateway4,
            gateway6: self.gateway6,
            allowed_address_pairs: self.allowed_address_pairs.clone(),
            mtu: None,
            vlan,
            security_groups: self.security_group_ids.clone(),
            local_preference: self.local_preference,
        })
    }
}

/// What the data plane takes from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledConfig {
    /// Ports by UUID.
    pub ports: BTreeMap<Uuid, PortConfig>,
    /// The VXLAN identifier of each routing instance a port uses.
    pub vrf_vnis: BTreeMap<String, u32>,
    /// Encapsulation priorities from the global vrouter config, when it names any.
    pub encap_priority: Option<Vec<Encap>>,
    /// Idle timeouts by protocol and port from the global vrouter config.
    pub flow_aging: Vec<super::FlowAgingTimeout>,
    /// Fabric SNAT port ranges from the global vrouter config.
    pub port_translation_pools: Vec<super::PortTranslationPool>,
    /// This node's fabric address as configured on its virtual router.
    pub vrouter_ip: Option<Ipv4Addr>,
    /// Floating IPs given to ports, by name.
    pub floating_ips: BTreeMap<String, FloatingIpConfig>,
    /// Services (native load balancers), by the load balancer's name.
    pub services: BTreeMap<String, ServiceConfig>,
    /// The security groups ports are in, with their rules, by name.
    pub security_groups: BTreeMap<String, super::SecurityGroupProps>,
    /// The id of every security group the configuration holds, by name: how a rule
    /// naming a group finds the routes (the addresses) that carry it.
    pub security_group_ids: BTreeMap<String, u32>,
    /// Each network's access control rules (its policies), by network name.
    pub network_acls: BTreeMap<String, Vec<super::rules::Rule>>,
    /// Every network's subnets, by network name: what a rule naming the network
    /// stands for.
    pub network_subnets: BTreeMap<String, Vec<IpNet>>,
}

/// A native load balancer (a Kubernetes service, as kube-manager writes it): its
/// VIP in its network's VRF, a port per listener, the members of its pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The VRF of its VIP (its interface's network's routing instance).
    pub vrf: String,
    /// The VIP.
    pub ip: IpAddr,
    /// Per listener: protocol number, port, and the members' (target) port.
    pub ports: Vec<(u8, u16, u16)>,
    /// The members' addresses (administratively up), sorted.
    pub backends: Vec<IpAddr>,
}

/// A floating IP as the configuration gives it to one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingIpConfig {
    /// The floating address.
    pub ip: IpAddr,
    /// The VRF it is in: its pool's network's routing instance.
    pub vrf: String,
    /// The port it is given to.
    pub port: Uuid,
    /// Its port mappings (a Kubernetes service's ports, when kube-manager made it).
    pub port_mappings: Vec<super::PortMapping>,
}

/// Compiles the graph for the node named `host`.
pub fn compile(graph: &ConfigGraph, host: &str) -> CompiledConfig {
    let global = graph
        .objects_of(&ObjectType::GlobalVrouterConfig)
        .find_map(|(_, o)| match &o.props {
            Properties::GlobalVrouter(g) => Some(g.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let vrouter = ObjectKey::new(
        ObjectType::VirtualRouter,
        format!("default-global-system-config:{host}"),
    );
    let vrouter_ip = graph.get(&vrouter).and_then(|o| match o.props {
        Properties::VirtualRouter { ip } => ip,
        _ => None,
    });
    let mut compiled = CompiledConfig {
        encap_priority: Some(global.encapsulation_priorities.clone()).filter(|p| !p.is_empty()),
        flow_aging: global.flow_aging.clone(),
        port_translation_pools: global.port_translation_pools.clone(),
        vrouter_ip,
        ..CompiledConfig::default()
    };
    for (key, object) in graph.objects_of(&ObjectType::VirtualMachineInterface) {
        let (Some(uuid), Properties::VirtualMachineInterface(props)) = (object.uuid, &object.props) else {
            continue;
        };
        let port = port(graph, key, uuid, props);
        if let (Some(vrf), Some(vn)) = (&port.vrf, &port.virtual_network) {
            if let Some(vni) = vni(graph, vn, global.vxlan_mode) {
                compiled.vrf_vnis.insert(vrf.clone(), vni);
            }
        }
        for sg in &port.security_groups {
            let key = ObjectKey::new(ObjectType::SecurityGroup, sg.as_str());
            if let Some(Properties::SecurityGroup(props)) = graph.get(&key).map(|o| &o.props) {
                compiled.security_groups.insert(sg.clone(), props.clone());
            }
        }
        if let Some(vn) = &port.virtual_network {
            let key = ObjectKey::new(ObjectType::VirtualNetwork, vn.as_str());
            let rules: Vec<super::rules::Rule> = graph
                .neighbors(&key, &ObjectType::AccessControlList)
                .filter_map(|acl| match &graph.get(acl)?.props {
                    Properties::AccessControlList(rules) => Some(rules.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            if !rules.is_empty() {
                compiled.network_acls.insert(vn.clone(), rules);
            }
        }
        compiled.ports.insert(uuid, port);
    }
    compiled.security_group_ids = graph
        .objects_of(&ObjectType::SecurityGroup)
        .filter_map(|(key, o)| match &o.props {
            Properties::SecurityGroup(sg) => Some((key.name.clone(), sg.id?)),
            _ => None,
        })
        .collect();
    // From the `attr(NETWORK,IPAM)` attributes themselves: a rule may name a
    // network whose own object this node was never sent.
    for (key, object) in graph.objects_of(&ObjectType::VirtualNetworkNetworkIpam) {
        let (Some(network), Properties::IpamSubnets(subnets)) = (attr_left(&key.name), &object.props) else {
            continue;
        };
        let known = compiled.network_subnets.entry(network.to_string()).or_default();
        known.extend(subnets.iter().map(|s| s.prefix));
        known.sort();
        known.dedup();
    }
    compiled.floating_ips = floating_ips(graph);
    compiled.services = services(graph);
    port_mapped_services(graph, &mut compiled);
    compiled
}

/// Floating IPs with port mappings, as kube-manager also writes a service: the
/// floating address with a port per mapping, its ports' addresses as backends.
fn port_mapped_services(graph: &ConfigGraph, compiled: &mut CompiledConfig) {
    let mapped: Vec<(String, IpAddr, Vec<super::PortMapping>)> = graph
        .objects_of(&ObjectType::FloatingIp)
        .filter_map(|(key, o)| match &o.props {
            Properties::FloatingIp(f) if f.port_mappings_enable && !f.port_mappings.is_empty() => {
                Some((key.name.clone(), f.address?, f.port_mappings.clone()))
            }
            _ => None,
        })
        .collect();
    for (name, ip, mappings) in mapped {
        let Some(f) = compiled.floating_ips.remove(&name) else {
            continue;
        };
        let key = ObjectKey::new(ObjectType::FloatingIp, name.as_str());
        let mut backends: Vec<IpAddr> = graph
            .neighbors(&key, &ObjectType::VirtualMachineInterface)
            .filter_map(|vmi| compiled.ports.get(&graph.get(vmi)?.uuid?))
            .filter_map(|p| match ip {
                IpAddr::V4(_) => p.ipv4.map(IpAddr::V4),
                IpAddr::V6(_) => p.ipv6.map(IpAddr::V6),
            })
            .collect();
        backends.sort();
        backends.dedup();
        let mut ports: Vec<(u8, u16, u16)> = mappings.iter().map(|m| (m.protocol, m.src_port, m.dst_port)).collect();
        ports.sort();
        ports.dedup_by_key(|p| (p.0, p.1));
        compiled.services.insert(
            name,
            ServiceConfig {
                vrf: f.vrf,
                ip,
                ports,
                backends,
            },
        );
    }
}

/// Each native load balancer with a VIP, a VRF and at least one listener.
fn services(graph: &ConfigGraph) -> BTreeMap<String, ServiceConfig> {
    let mut out = BTreeMap::new();
    for (key, object) in graph.objects_of(&ObjectType::Loadbalancer) {
        let Properties::Loadbalancer(lb) = &object.props else {
            continue;
        };
        // Haproxy load balancers (ingresses) are not native ones.
        let native = lb.provider.as_deref().is_none_or(|p| p == "native");
        let (Some(ip), true, true) = (lb.vip, native, lb.admin_up) else {
            continue;
        };
        let vrf = graph
            .neighbors(key, &ObjectType::VirtualMachineInterface)
            .find_map(|vmi| graph.neighbors(vmi, &ObjectType::VirtualNetwork).next().cloned())
            .and_then(|vn| network_vrf(graph, &vn));
        let Some(vrf) = vrf else { continue };
        let mut ports = Vec::new();
        let mut backends = Vec::new();
        for listener in graph.neighbors(key, &ObjectType::LoadbalancerListener) {
            let Some(Properties::Listener(l)) = graph.get(listener).map(|o| &o.props) else {
                continue;
            };
            let (Some(protocol), Some(port)) = (l.protocol, l.port) else {
                continue;
            };
            let members: Vec<crate::contrail::MemberProps> = graph
                .neighbors(listener, &ObjectType::LoadbalancerPool)
                .flat_map(|pool| graph.neighbors(pool, &ObjectType::LoadbalancerMember))
                .filter_map(|m| match graph.get(m)?.props {
                    Properties::Member(m) if m.admin_up => Some(m),
                    _ => None,
                })
                .collect();
            let target = members.iter().find_map(|m| m.port).unwrap_or(port);
            backends.extend(members.iter().filter_map(|m| m.address));
            ports.push((protocol, port, target));
        }
        if ports.is_empty() {
            continue;
        }
        ports.sort();
        ports.dedup_by_key(|p| (p.0, p.1));
        backends.sort();
        backends.dedup();
        backends.retain(|b| b.is_ipv4() == ip.is_ipv4());
        out.insert(
            key.name.clone(),
            ServiceConfig {
                vrf,
                ip,
                ports,
                backends,
            },
        );
    }
    out
}

/// Each floating IP with an address, a pool network with a routing instance, and a
/// port.
fn floating_ips(graph: &ConfigGraph) -> BTreeMap<String, FloatingIpConfig> {
    let mut out = BTreeMap::new();
    for (key, object) in graph.objects_of(&ObjectType::FloatingIp) {
        let Properties::FloatingIp(fip) = &object.props else {
            continue;
        };
        let Some(ip) = fip.address else { continue };
        let network = graph
            .neighbors(key, &ObjectType::FloatingIpPool)
            .find_map(|pool| graph.neighbors(pool, &ObjectType::VirtualNetwork).next().cloned())
            .or_else(|| pool_network_by_name(&key.name));
        let Some(vrf) = network.as_ref().and_then(|n| network_vrf(graph, n)) else {
            continue;
        };
        // One port holds a floating address (1:1); with several (an ECMP floating
        // IP) the first, by UUID, does.
        let port = graph
            .neighbors(key, &ObjectType::VirtualMachineInterface)
            .filter_map(|vmi| graph.get(vmi)?.uuid)
            .min();
        if let Some(port) = port {
            out.insert(
                key.name.clone(),
                FloatingIpConfig {
                    ip,
                    vrf: vrf.clone(),
                    port,
                    port_mappings: fip.port_mappings.clone(),
                },
            );
        }
    }
    out
}

/// A floating IP is named `DOMAIN:PROJECT:NETWORK:POOL:UUID` (a child of its pool,
/// itself a child of its network): the network, when the links are not there.
fn pool_network_by_name(name: &str) -> Option<ObjectKey> {
    let parts: Vec<&str> = name.split(':').collect();
    (parts.len() >= 5).then(|| ObjectKey::new(ObjectType::VirtualNetwork, parts[..parts.len() - 2].join(":")))
}

fn port(graph: &ConfigGraph, key: &ObjectKey, uuid: Uuid, props: &VmiProps) -> PortConfig {
    let network = graph.neighbors(key, &ObjectType::VirtualNetwork).next().cloned();
    let vrf = own_routing_instance(graph, key).or_else(|| network.as_ref().and_then(|n| network_vrf(graph, n)));
    let addresses: Vec<IpAddr> = graph
        .neighbors(key, &ObjectType::InstanceIp)
        .filter_map(|ip| match graph.get(ip)?.props {
            Properties::InstanceIp { address } => address,
            _ => None,
        })
        .collect();
    let ipv4 = addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v4) => Some(*v4),
            IpAddr::V6(_) => None,
        })
        .min();
    let ipv6 = addresses
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
        .min();
    let subnet = |addr: IpAddr| network.as_ref().and_then(|n| subnet_of(graph, n, addr));
    let gateway = |addr: IpAddr| subnet(addr).and_then(|s| s.gateway);
    let prefix_lens = (
        ipv4.and_then(|a| subnet(a.into())).map(|s| s.prefix.prefix_len()),
        ipv6.and_then(|a| subnet(a.into())).map(|s| s.prefix.prefix_len()),
    );
    let gateway4 = ipv4.and_then(|a| gateway(a.into())).and_then(|g| match g {
        IpAddr::V4(g) => Some(g),
        IpAddr::V6(_) => None,
    });
    let gateway6 = ipv6.and_then(|a| gateway(a.into())).and_then(|g| match g {
        IpAddr::V6(g) => Some(g),
        IpAddr::V4(_) => None,
    });
    let vlan = (props.vlan_tag != 0)
        .then(|| {
            graph
                .neighbors(key, &ObjectType::VirtualMachineInterface)
                .filter_map(|other| graph.get(other))
                .find(|o| matches!(&o.props, Properties::VirtualMachineInterface(p) if p.vlan_tag == 0))
                .and_then(|parent| parent.uuid)
                .map(|parent| PortVlan {
                    parent,
                    tag: props.vlan_tag,
                })
        })
        .flatten();
    // With port security off the agent applies none of the port's groups (Tungsten's
    // `port_security_enabled`): its traffic is not filtered.
    let groups: Vec<&ObjectKey> = graph
        .neighbors(key, &ObjectType::SecurityGroup)
        .filter(|_| props.port_security)
        .collect();
    let security_group_ids: Vec<u32> = groups
        .iter()
        .filter_map(|g| match &graph.get(g)?.props {
            Properties::SecurityGroup(sg) => sg.id,
            _ => None,
        })
        .collect();
    PortConfig {
        local_preference: props.local_preference,
        security_groups: groups.iter().map(|g| g.name.clone()).collect(),
        security_group_ids,
        name: key.name.clone(),
        uuid,
        virtual_machine: graph
            .neighbors(key, &ObjectType::VirtualMachine)
            .next()
            .map(|vm| vm.name.clone()),
        virtual_machine_uuid: graph
            .neighbors(key, &ObjectType::VirtualMachine)
            .next()
            .and_then(|vm| graph.get(vm)?.uuid),
        virtual_network: network.map(|n| n.name),
        vrf,
        mac: props.macs.first().copied(),
        ipv4,
        ipv6,
        gateway4,
        gateway6,
        prefix_lens,
        allowed_address_pairs: props.allowed_address_pairs.clone(),
        vlan,
    }
}

/// The routing instance the port links to through its
/// `virtual-machine-interface-routing-instance` attribute.
fn own_routing_instance(graph: &ConfigGraph, vmi: &ObjectKey) -> Option<String> {
    graph
        .neighbors(vmi, &ObjectType::VirtualMachineInterfaceRoutingInstance)
        .find_map(|attr| {
            graph
                .neighbors(attr, &ObjectType::RoutingInstance)
                .next()
                .map(|ri| ri.name.clone())
                // The attribute's name is `attr(VMI,RI)`: the link to the routing
                // instance may arrive after the one to the port.
                .or_else(|| attr_right(&attr.name).map(str::to_string))
        })
}

/// `RI` of `attr(VMI,RI)`.
fn attr_right(name: &str) -> Option<&str> {
    attr_ends(name).map(|(_, right)| right).filter(|r| !r.is_empty())
}

/// `VN` of `attr(VN,IPAM)`.
fn attr_left(name: &str) -> Option<&str> {
    attr_ends(name).map(|(left, _)| left).filter(|l| !l.is_empty())
}

fn attr_ends(name: &str) -> Option<(&str, &str)> {
    name.strip_prefix("attr(")?.strip_suffix(')')?.split_once(',')
}

/// The network's own routing instance: the default one linked to it, else the one
/// named `NETWORK:LAST` as the API server names it.
fn network_vrf(graph: &ConfigGraph, network: &ObjectKey) -> Option<String> {
    let linked: Vec<&ObjectKey> = graph.neighbors(network, &ObjectType::RoutingInstance).collect();
    let is_default = |ri: &&&ObjectKey| {
        matches!(
            graph.get(ri).map(|o| &o.props),
            Some(Properties::RoutingInstance { is_default: true })
        )
    };
    let last = network.name.rsplit(':').next().unwrap_or_default();
    let conventional = format!("{}:{last}", network.name);
    linked
        .iter()
        .find(is_default)
        .or_else(|| linked.iter().find(|ri| ri.name == conventional))
        .map(|ri| ri.name.clone())
        .or_else(|| graph.get(network).map(|_| conventional))
}

/// The subnets of `network`.
fn network_subnets<'g>(graph: &'g ConfigGraph, network: &ObjectKey) -> impl Iterator<Item = &'g super::IpamSubnet> {
    // Linked attributes, and those named `attr(NETWORK,IPAM)` whose link to the
    // network has not arrived (or was never sent, as in hand-made configs).
    let named = graph.attributes_of(&ObjectType::VirtualNetworkNetworkIpam, &network.name);
    graph
        .neighbors(network, &ObjectType::VirtualNetworkNetworkIpam)
        .chain(named)
        .filter_map(|attr| match &graph.get(attr)?.props {
            Properties::IpamSubnets(subnets) => Some(subnets),
            _ => None,
        })
        .flatten()
}

/// The subnet of `network` that holds `addr`.
fn subnet_of<'g>(graph: &'g ConfigGraph, network: &ObjectKey, addr: IpAddr) -> Option<&'g super::IpamSubnet> {
    network_subnets(graph, network)
        .filter(|s| s.prefix.contains(&addr))
        .max_by_key(|s| s.prefix.prefix_len())
}

/// The network's VXLAN identifier under `mode`.
fn vni(graph: &ConfigGraph, network: &str, mode: VxlanMode) -> Option<u32> {
    let key = ObjectKey::new(ObjectType::VirtualNetwork, network);
    let Properties::VirtualNetwork(vn) = &graph.get(&key)?.props else {
        return None;
    };
    match mode {
        VxlanMode::Automatic => vn.network_id,
        VxlanMode::Configured => vn.vxlan_id,
    }
    .filter(|v| (1..1 << 24).contains(v))
}

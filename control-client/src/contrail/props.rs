//! The properties the vrouter reads from each object type, typed. Missing or empty
//! elements read as unset (encoders write every element, even empty ones); unknown
//! elements are ignored; a value that does not parse is unset too, never an error
//! for the whole message (the agent skips a bad property the same way).

use super::ObjectType;
use crate::xmpp::Element;
use ipnet::IpNet;
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::net::{IpAddr, Ipv4Addr};

/// What the vrouter reads of one object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Properties {
    /// `virtual-router`.
    VirtualRouter {
        /// `virtual-router-ip-address`: the node's fabric address.
        ip: Option<Ipv4Addr>,
    },
    /// `virtual-machine-interface`.
    VirtualMachineInterface(VmiProps),
    /// `virtual-network`.
    VirtualNetwork(VirtualNetworkProps),
    /// `routing-instance`.
    RoutingInstance {
        /// `routing-instance-is-default`: the network's own VRF.
        is_default: bool,
    },
    /// `instance-ip`.
    InstanceIp {
        /// `instance-ip-address`.
        address: Option<IpAddr>,
    },
    /// `floating-ip`.
    FloatingIp(FloatingIpProps),
    /// `virtual-network-network-ipam` (link attribute): the network's subnets.
    IpamSubnets(Vec<IpamSubnet>),
    /// `global-vrouter-config`.
    GlobalVrouter(GlobalVrouterProps),
    /// `loadbalancer`.
    Loadbalancer(LoadbalancerProps),
    /// `loadbalancer-listener`.
    Listener(ListenerProps),
    /// `loadbalancer-member`.
    Member(MemberProps),
    /// `security-group`.
    SecurityGroup(SecurityGroupProps),
    /// `access-control-list`: a network's (policy) rules.
    AccessControlList(Vec<super::rules::Rule>),
    /// Any other type, or a type the vrouter reads nothing of.
    #[default]
    Opaque,
}

/// A port's properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmiProps {
    /// `virtual-machine-interface-mac-addresses`: the first is the port's MAC.
    pub macs: Vec<MacAddr>,
    /// `virtual-machine-interface-properties/sub-interface-vlan-tag`: non-zero for a
    /// nested-mode sub-interface.
    pub vlan_tag: u16,
    /// `virtual-machine-interface-properties/local-preference`: what its routes are
    /// advertised with (0 or absent: the default).
    pub local_preference: Option<u32>,
    /// `virtual-machine-interface-allowed-address-pairs`.
    pub allowed_address_pairs: Vec<IpNet>,
    /// `virtual-machine-interface-disable-policy`: no flows, no policy.
    pub disable_policy: bool,
    /// `port-security-enabled` (default true).
    pub port_security: bool,
}

/// How a network's VXLAN identifier is chosen (`global-vrouter-config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VxlanMode {
    /// The network id is the VNI (the default).
    #[default]
    Automatic,
    /// The VNI configured on the network (`vxlan-network-identifier`).
    Configured,
}

/// A network's properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VirtualNetworkProps {
    /// `virtual-network-network-id`.
    pub network_id: Option<u32>,
    /// `virtual-network-properties/vxlan-network-identifier`.
    pub vxlan_id: Option<u32>,
    /// `router-external`.
    pub router_external: bool,
}

/// One subnet of a network (`ipam-subnets`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamSubnet {
    /// The subnet.
    pub prefix: IpNet,
    /// Its gateway (the vrouter answers for it).
    pub gateway: Option<IpAddr>,
    /// Its DNS server address.
    pub dns_server: Option<IpAddr>,
}

/// One port mapping of a floating IP (a service port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortMapping {
    /// IP protocol number (6 TCP, 17 UDP, 132 SCTP).
    pub protocol: u8,
    /// The port on the floating IP.
    pub src_port: u16,
    /// The port on the interface.
    pub dst_port: u16,
}

/// A floating IP's properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FloatingIpProps {
    /// `floating-ip-address`.
    pub address: Option<IpAddr>,
    /// `floating-ip-fixed-ip-address`: which of the port's addresses it maps to.
    pub fixed_ip: Option<IpAddr>,
    /// `floating-ip-port-mappings-enable`.
    pub port_mappings_enable: bool,
    /// `floating-ip-port-mappings`.
    pub port_mappings: Vec<PortMapping>,
}

/// The global vrouter configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalVrouterProps {
    /// `encapsulation-priorities`, most preferred first (unknown names skipped).
    pub encapsulation_priorities: Vec<Encap>,
    /// `vxlan-network-identifier-mode`.
    pub vxlan_mode: VxlanMode,
    /// `flow-aging-timeout-list`: idle timeouts by protocol and port.
    pub flow_aging: Vec<FlowAgingTimeout>,
    /// `port-translation-pools`: source port ranges for fabric SNAT, by protocol.
    pub port_translation_pools: Vec<PortTranslationPool>,
}

/// An idle timeout for the flows of one protocol (and destination port; 0: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowAgingTimeout {
    /// IP protocol number.
    pub protocol: u8,
    /// Destination port; 0: any.
    pub port: u16,
    /// Seconds idle before the flow is removed.
    pub timeout_secs: u32,
}

/// A range of source ports fabric SNAT may use for one protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortTranslationPool {
    /// IP protocol number.
    pub protocol: u8,
    /// First port.
    pub start: u16,
    /// Last port.
    pub end: u16,
}

/// A security group's properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SecurityGroupProps {
    /// `security-group-id`: the number routes carry in their security group list.
    pub id: Option<u32>,
    /// `security-group-entries`.
    pub rules: Vec<super::rules::Rule>,
}

/// A load balancer's properties.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadbalancerProps {
    /// `loadbalancer-properties/vip-address`: the service address.
    pub vip: Option<IpAddr>,
    /// `loadbalancer-provider` (`native` for a Kubernetes service; haproxy ones
    /// are ingresses).
    pub provider: Option<String>,
    /// `loadbalancer-properties/admin-state` (default up).
    pub admin_up: bool,
}

/// A listener's properties: one service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ListenerProps {
    /// IP protocol number (TCP for `TCP`, `HTTP`, `HTTPS`).
    pub protocol: Option<u8>,
    /// `protocol-port`.
    pub port: Option<u16>,
}

/// A member's properties: one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemberProps {
    /// `address`.
    pub address: Option<IpAddr>,
    /// `protocol-port`: the backend's (target) port.
    pub port: Option<u16>,
    /// `admin-state` (default up).
    pub admin_up: bool,
}

/// Reads the properties of a node of type `kind`.
pub(super) fn read(kind: &ObjectType, node: &Element) -> Properties {
    match kind {
        ObjectType::VirtualRouter => Properties::VirtualRouter {
            ip: parsed(node.child_text("virtual-router-ip-address")),
        },
        ObjectType::VirtualMachineInterface => Properties::VirtualMachineInterface(vmi(node)),
        ObjectType::VirtualNetwork => Properties::VirtualNetwork(VirtualNetworkProps {
            network_id: parsed(node.child_text("virtual-network-network-id")),
            vxlan_id: node
                .child("virtual-network-properties")
                .and_then(|p| parsed(p.child_text("vxlan-network-identifier")))
                .filter(|v| *v != 0),
            router_external: flag(node.child_text("router-external"), false),
        }),
        ObjectType::RoutingInstance => Properties::RoutingInstance {
            is_default: flag(node.child_text("routing-instance-is-default"), false),
        },
        ObjectType::InstanceIp => Properties::InstanceIp {
            address: parsed(node.child_text("instance-ip-address")),
        },
        ObjectType::FloatingIp => Properties::FloatingIp(floating_ip(node)),
        ObjectType::VirtualNetworkNetworkIpam => Properties::IpamSubnets(subnets(node)),
        ObjectType::GlobalVrouterConfig => Properties::GlobalVrouter(GlobalVrouterProps {
            encapsulation_priorities: node
                .child("encapsulation-priorities")
                .map(|p| {
                    p.children_named("encapsulation")
                        .filter_map(|e| e.text.parse::<Encap>().ok())
                        .collect()
                })
                .unwrap_or_default(),
            vxlan_mode: match node.child_text("vxlan-network-identifier-mode") {
                Some("configured") => VxlanMode::Configured,
                _ => VxlanMode::Automatic,
            },
            flow_aging: node
                .child("flow-aging-timeout-list")
                .map(|l| {
                    l.children_named("flow-aging-timeout")
                        .filter_map(|t| {
                            Some(FlowAgingTimeout {
                                protocol: protocol(t.child_text("protocol")?)?,
                                port: parsed(t.child_text("port")).unwrap_or(0),
                                timeout_secs: parsed(t.child_text("timeout-in-seconds")).filter(|s| *s > 0)?,
                            })
                        })
                        .collect()
                })
                .unwrap_or_default(),
            port_translation_pools: node
                .child("port-translation-pools")
                .map(|l| {
                    l.children_named("port-translation-pool")
                        .filter_map(|p| {
                            let range = p.child("port-range")?;
                            let start: u16 = parsed(range.child_text("start-port"))?;
                            let end: u16 = parsed(range.child_text("end-port"))?;
                            Some(PortTranslationPool {
                                protocol: protocol(p.child_text("protocol")?)?,
                                start,
                                end,
                            })
                            .filter(|pool| pool.start <= pool.end)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }),
        ObjectType::SecurityGroup => Properties::SecurityGroup(SecurityGroupProps {
            id: parsed(node.child_text("security-group-id")).filter(|id| *id != 0),
            rules: node
                .child("security-group-entries")
                .map(super::rules::security_group_rules)
                .unwrap_or_default(),
        }),
        ObjectType::AccessControlList => Properties::AccessControlList(
            node.child("access-control-list-entries")
                .map(super::rules::acl_rules)
                .unwrap_or_default(),
        ),
        ObjectType::Loadbalancer => {
            let props = node.child("loadbalancer-properties");
            Properties::Loadbalancer(LoadbalancerProps {
                vip: props.and_then(|p| parsed(p.child_text("vip-address"))),
                provider: node
                    .child_text("loadbalancer-provider")
                    .filter(|p| !p.is_empty())
                    .map(str::to_string),
                admin_up: flag(props.and_then(|p| p.child_text("admin-state")), true),
            })
        }
        ObjectType::LoadbalancerListener => {
            let props = node.child("loadbalancer-listener-properties");
            Properties::Listener(ListenerProps {
                protocol: props.and_then(|p| p.child_text("protocol")).and_then(service_protocol),
                port: props.and_then(|p| parsed(p.child_text("protocol-port"))),
            })
        }
        ObjectType::LoadbalancerMember => {
            let props = node.child("loadbalancer-member-properties");
            Properties::Member(MemberProps {
                address: props.and_then(|p| parsed(p.child_text("address"))),
                port: props.and_then(|p| parsed(p.child_text("protocol-port"))),
                admin_up: flag(props.and_then(|p| p.child_text("admin-state")), true),
            })
        }
        _ => Properties::Opaque,
    }
}

/// A listener's protocol: the L4 protocol it runs on.
fn service_protocol(text: &str) -> Option<u8> {
    match text.to_ascii_uppercase().as_str() {
        "TCP" | "HTTP" | "HTTPS" | "TERMINATED_HTTPS" => Some(6),
        "UDP" => Some(17),
        "SCTP" => Some(132),
        _ => None,
    }
}

fn vmi(node: &Element) -> VmiProps {
    let macs = node
        .child("virtual-machine-interface-mac-addresses")
        .map(|m| {
            m.children_named("mac-address")
                .filter_map(|e| e.text.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let vlan_tag = node
        .child("virtual-machine-interface-properties")
        .and_then(|p| parsed::<u16>(p.child_text("sub-interface-vlan-tag")))
        .filter(|t| *t < 4095)
        .unwrap_or(0);
    let local_preference = node
        .child("virtual-machine-interface-properties")
        .and_then(|p| parsed::<u32>(p.child_text("local-preference")))
        .filter(|p| *p != 0);
    let allowed_address_pairs = node
        .child("virtual-machine-interface-allowed-address-pairs")
        .map(|pairs| {
            pairs
                .children_named("allowed-address-pair")
                .filter_map(|pair| prefix(pair.child("ip")?))
                .collect()
        })
        .unwrap_or_default();
    VmiProps {
        macs,
        vlan_tag,
        local_preference,
        allowed_address_pairs,
        disable_policy: flag(node.child_text("virtual-machine-interface-disable-policy"), false),
        port_security: flag(node.child_text("port-security-enabled"), true),
    }
}

fn floating_ip(node: &Element) -> FloatingIpProps {
    let port_mappings = node
        .child("floating-ip-port-mappings")
        .map(|m| {
            m.children_named("port-mappings")
                .filter_map(|pm| {
                    Some(PortMapping {
                        protocol: protocol(pm.child_text("protocol")?)?,
                        src_port: parsed(pm.child_text("src-port"))?,
                        dst_port: parsed(pm.child_text("dst-port"))?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    FloatingIpProps {
        address: parsed(node.child_text("floating-ip-address")),
        fixed_ip: parsed(node.child_text("floating-ip-fixed-ip-address")),
        port_mappings_enable: flag(node.child_text("floating-ip-port-mappings-enable"), false),
        port_mappings,
    }
}

/// The subnets of a `virtual-network-network-ipam` attribute (under `<value>` in
/// IF-MAP, or directly).
fn subnets(node: &Element) -> Vec<IpamSubnet> {
    let value = node.child("value").unwrap_or(node);
    value
        .children_named("ipam-subnets")
        .filter_map(|s| {
            Some(IpamSubnet {
                prefix: prefix(s.child("subnet")?)?,
                gateway: parsed(s.child_text("default-gateway")),
                dns_server: parsed(s.child_text("dns-server-address")),
            })
        })
        .collect()
}

/// `<ip-prefix>A</ip-prefix><ip-prefix-len>N</ip-prefix-len>`.
fn prefix(e: &Element) -> Option<IpNet> {
    let addr: IpAddr = parsed(e.child_text("ip-prefix"))?;
    let len: u8 = parsed(e.child_text("ip-prefix-len"))?;
    IpNet::new(addr, len).ok().map(|p| p.trunc())
}

/// A protocol as the schema writes it: a name or a number.
fn protocol(text: &str) -> Option<u8> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Some(6),
        "udp" => Some(17),
        "sctp" => Some(132),
        "icmp" => Some(1),
        other => other.parse().ok(),
    }
}

fn parsed<T: std::str::FromStr>(text: Option<&str>) -> Option<T> {
    text.map(str::trim).filter(|t| !t.is_empty())?.parse().ok()
}

fn flag(text: Option<&str>, default: bool) -> bool {
    match text.map(str::trim) {
        Some("true") => true,
        Some("false") => false,
        _ => default,
    }
}

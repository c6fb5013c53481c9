//! The objects the API server (or kube-manager) creates for one port on one node,
//! as configuration operations: virtual machine, virtual machine interface, instance
//! IPs, the network with its routing instance and subnets, and the links between
//! them and to the node's virtual router. Used by the lab's control-node peer and
//! the tests; the manifest translation writes the same objects.

use super::{
    ConfigOp, IpamSubnet, Link, ObjectKey, ObjectType, Properties, SecurityGroupProps, Uuid, VirtualNetworkProps,
    VmiProps,
};
use nexthop::MacAddr;
use std::net::IpAddr;

/// A port to describe.
#[derive(Debug, Clone)]
pub struct PortObjects {
    /// The node it is on (its virtual router is `default-global-system-config:HOST`).
    pub host: String,
    /// The virtual machine (pod).
    pub vm: Uuid,
    /// The virtual machine interface.
    pub vmi: Uuid,
    /// The interface's fully qualified name.
    pub vmi_name: String,
    /// The network's fully qualified name (`default-domain:k8s-default:cluster-network`).
    pub network: String,
    /// The network's id (its VNI in automatic mode).
    pub network_id: u32,
    /// The network's subnets.
    pub subnets: Vec<IpamSubnet>,
    /// The interface's MAC.
    pub mac: MacAddr,
    /// Its addresses.
    pub addresses: Vec<IpAddr>,
    /// For a nested-mode sub-interface: the parent interface's name and the tag.
    pub vlan: Option<(String, u16)>,
}

fn key(kind: ObjectType, name: &str) -> ObjectKey {
    ObjectKey::new(kind, name)
}

fn link(left: &ObjectKey, right: &ObjectKey, metadata: &str) -> ConfigOp {
    ConfigOp::UpdateLink(Link {
        left: left.clone(),
        right: right.clone(),
        metadata: metadata.to_string(),
    })
}

impl PortObjects {
    /// The routing instance of its network (`NETWORK:LAST`).
    pub fn vrf(&self) -> String {
        let last = self.network.rsplit(':').next().unwrap_or_default();
        format!("{}:{last}", self.network)
    }

    /// The updates that create it, nodes before the links that name them.
    pub fn updates(&self) -> Vec<ConfigOp> {
        let vrouter = key(
            ObjectType::VirtualRouter,
            &format!("default-global-system-config:{}", self.host),
        );
        let vm = key(ObjectType::VirtualMachine, &self.vm.to_string());
        let vmi = key(ObjectType::VirtualMachineInterface, &self.vmi_name);
        let network = key(ObjectType::VirtualNetwork, &self.network);
        let vrf = key(ObjectType::RoutingInstance, &self.vrf());
        let ipam = key(
            ObjectType::VirtualNetworkNetworkIpam,
            &format!("attr({},{}-ipam)", self.network, self.network),
        );
        let mut ops = vec![
            ConfigOp::UpdateNode {
                key: vrouter.clone(),
                uuid: None,
                props: Properties::VirtualRouter { ip: None },
            },
            ConfigOp::UpdateNode {
                key: vm.clone(),
                uuid: Some(self.vm),
                props: Properties::Opaque,
            },
            ConfigOp::UpdateNode {
                key: network.clone(),
                uuid: None,
                props: Properties::VirtualNetwork(VirtualNetworkProps {
                    network_id: Some(self.network_id),
                    ..VirtualNetworkProps::default()
                }),
            },
            ConfigOp::UpdateNode {
                key: vrf.clone(),
                uuid: None,
                props: Properties::RoutingInstance { is_default: true },
            },
            ConfigOp::UpdateNode {
                key: ipam.clone(),
                uuid: None,
                props: Properties::IpamSubnets(self.subnets.clone()),
            },
            ConfigOp::UpdateNode {
                key: vmi.clone(),
                uuid: Some(self.vmi),
                props: Properties::VirtualMachineInterface(VmiProps {
                    macs: vec![self.mac],
                    vlan_tag: self.vlan.as_ref().map_or(0, |(_, tag)| *tag),
                    port_security: true,
                    ..VmiProps::default()
                }),
            },
            link(&vrouter, &vm, "virtual-router-virtual-machine"),
            link(&vmi, &vm, "virtual-machine-interface-virtual-machine"),
            link(&vmi, &network, "virtual-machine-interface-virtual-network"),
            link(&vrf, &network, "virtual-network-routing-instance"),
            link(&network, &ipam, "virtual-network-network-ipam"),
        ];
        if let Some((parent, _)) = &self.vlan {
            let parent = key(ObjectType::VirtualMachineInterface, parent);
            ops.push(link(&vmi, &parent, "virtual-machine-interface-sub-interface"));
        }
        for (i, address) in self.addresses.iter().enumerate() {
            let ip = key(ObjectType::InstanceIp, &format!("{}-ip{i}", self.vmi));
            ops.push(ConfigOp::UpdateNode {
                key: ip.clone(),
                uuid: None,
                props: Properties::InstanceIp {
                    address: Some(*address),
                },
            });
            ops.push(link(&ip, &vmi, "instance-ip-virtual-machine-interface"));
            ops.push(link(&ip, &network, "instance-ip-virtual-network"));
        }
        ops
    }

    /// The updates that put the port in security group `name` (the group with
    /// `props`, created or updated).
    pub fn security_group(&self, name: &str, props: SecurityGroupProps) -> Vec<ConfigOp> {
        let group = key(ObjectType::SecurityGroup, name);
        let vmi = key(ObjectType::VirtualMachineInterface, &self.vmi_name);
        vec![
            ConfigOp::UpdateNode {
                key: group.clone(),
                uuid: None,
                props: Properties::SecurityGroup(props),
            },
            link(&vmi, &group, "virtual-machine-interface-security-group"),
        ]
    }

    /// The updates that give the port's network the access control list `rules`
    /// (what the schema transformer makes of the network's policies).
    pub fn network_acl(&self, rules: Vec<super::rules::Rule>) -> Vec<ConfigOp> {
        let network = key(ObjectType::VirtualNetwork, &self.network);
        let last = self.network.rsplit(':').next().unwrap_or_default();
        let acl = key(ObjectType::AccessControlList, &format!("{}:{last}-acl", self.network));
        vec![
            ConfigOp::UpdateNode {
                key: acl.clone(),
                uuid: None,
                props: Properties::AccessControlList(rules),
            },
            link(&network, &acl, "virtual-network-access-control-list"),
        ]
    }

    /// The deletes that remove the port (its interface, addresses and virtual
    /// machine; the network stays).
    pub fn deletes(&self) -> Vec<ConfigOp> {
        let mut ops: Vec<ConfigOp> = (0..self.addresses.len())
            .map(|i| ConfigOp::DeleteNode {
                key: key(ObjectType::InstanceIp, &format!("{}-ip{i}", self.vmi)),
            })
            .collect();
        ops.push(ConfigOp::DeleteNode {
            key: key(ObjectType::VirtualMachineInterface, &self.vmi_name),
        });
        ops.push(ConfigOp::DeleteNode {
            key: key(ObjectType::VirtualMachine, &self.vm.to_string()),
        });
        ops
    }
}

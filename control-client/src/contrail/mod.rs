//! The Contrail object model: the configuration a Tungsten Fabric / OpenSDN control
//! node pushes over IF-MAP (and that the Kubernetes manifest translation produces),
//! kept as one graph of typed objects with links, and compiled into what the data
//! plane needs.
//!
//! Contract:
//! - [`ConfigGraph`] holds objects keyed by type and fully qualified name, with the
//!   properties the vrouter uses read into typed values ([`Properties`]) and every
//!   other property ignored; links are kept as the control node sends them (left
//!   node, right node, metadata type). Link attributes are objects of their own
//!   (`attr(LEFT,RIGHT)` nodes), as IF-MAP sends them.
//! - [`ConfigGraph::apply`] applies one IF-MAP message ([`ifmap::decode`]): node and
//!   link updates and deletes, in order. A delete of something absent is a no-op; a
//!   node's delete drops its links with it. The graph is bounded
//!   ([`MAX_OBJECTS`], [`MAX_LINKS`]): past the bound an update is refused and
//!   counted, and nothing already held is lost.
//! - Every object and link remembers the generation (the control node session) that
//!   last sent it: after a config server change, [`ConfigGraph::sweep_older_than`]
//!   drops what the new server has not sent again (the agent's config stale sweep).
//! - [`compile()`] turns the graph into [`CompiledConfig`]: the ports (virtual machine
//!   interfaces) with their routing instance, MAC, addresses, gateway and VLAN, the
//!   VXLAN identifiers of routing instances, and the encapsulation priorities.

pub mod compile;
mod encode;
pub mod ifmap;
pub mod network_acls;
mod objects;
mod props;
pub mod rules;
pub mod security_groups;
#[cfg(test)]
mod tests;

pub use compile::{compile, CompiledConfig, FloatingIpConfig, PortConfig, PortVlan, ServiceConfig};
pub use encode::encode;
pub use ifmap::{ConfigOp, IfmapError};
pub use objects::PortObjects;
pub use props::{
    FloatingIpProps, FlowAgingTimeout, GlobalVrouterProps, IpamSubnet, ListenerProps, LoadbalancerProps, MemberProps,
    PortMapping, PortTranslationPool, Properties, SecurityGroupProps, VirtualNetworkProps, VmiProps, VxlanMode,
};
pub use uuid::Uuid;

use std::collections::{BTreeMap, BTreeSet};

/// A port whose configuration comes from the control node: the Linux interface the
/// CNI plugin made for a pod, named to the vrouter by the UUID of its virtual machine
/// interface (what the agent's port-ipc add carries). It is attached once the
/// configuration of that interface is complete.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortBinding {
    /// Linux name of the host end of the pod's veth (or the sub-interface's name).
    pub name: String,
    /// The virtual machine interface's UUID.
    pub vmi: Uuid,
    /// The virtual machine's (pod's) UUID: its configuration is subscribed, as the
    /// agent does, when the control node does not send it through the node's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<Uuid>,
    /// The pod interface's MTU; unset: the host end's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

/// Most objects a graph holds (a compute node's share of a large cluster is far
/// less; a control node that sends more is broken or hostile).
pub const MAX_OBJECTS: usize = 200_000;
/// Most links a graph holds.
pub const MAX_LINKS: usize = 1_000_000;

/// The object types the vrouter reads; any other type is kept by name, without
/// properties (links through it still resolve).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectType {
    /// `virtual-router`: a compute node.
    VirtualRouter,
    /// `virtual-machine`: a VM or a pod.
    VirtualMachine,
    /// `virtual-machine-interface`: a port.
    VirtualMachineInterface,
    /// `virtual-network`.
    VirtualNetwork,
    /// `routing-instance`: a VRF.
    RoutingInstance,
    /// `instance-ip`: an address of a port.
    InstanceIp,
    /// `floating-ip`.
    FloatingIp,
    /// `floating-ip-pool`.
    FloatingIpPool,
    /// `network-ipam`.
    NetworkIpam,
    /// `virtual-network-network-ipam`: the subnets of a network (a link attribute).
    VirtualNetworkNetworkIpam,
    /// `virtual-machine-interface-routing-instance` (a link attribute).
    VirtualMachineInterfaceRoutingInstance,
    /// `global-vrouter-config`.
    GlobalVrouterConfig,
    /// `global-system-config`.
    GlobalSystemConfig,
    /// `security-group`.
    SecurityGroup,
    /// `access-control-list`.
    AccessControlList,
    /// `project`.
    Project,
    /// `loadbalancer`: a service's VIP (a native, ECMP load balancer).
    Loadbalancer,
    /// `loadbalancer-listener`: one port of it.
    LoadbalancerListener,
    /// `loadbalancer-pool`: a listener's backends.
    LoadbalancerPool,
    /// `loadbalancer-member`: one backend.
    LoadbalancerMember,
    /// Any other type, by its IF-MAP name.
    Other(Box<str>),
}

impl ObjectType {
    const NAMES: [(&'static str, ObjectType); 20] = [
        ("virtual-router", ObjectType::VirtualRouter),
        ("virtual-machine", ObjectType::VirtualMachine),
        ("virtual-machine-interface", ObjectType::VirtualMachineInterface),
        ("virtual-network", ObjectType::VirtualNetwork),
        ("routing-instance", ObjectType::RoutingInstance),
        ("instance-ip", ObjectType::InstanceIp),
        ("floating-ip", ObjectType::FloatingIp),
        ("floating-ip-pool", ObjectType::FloatingIpPool),
        ("network-ipam", ObjectType::NetworkIpam),
        ("virtual-network-network-ipam", ObjectType::VirtualNetworkNetworkIpam),
        (
            "virtual-machine-interface-routing-instance",
            ObjectType::VirtualMachineInterfaceRoutingInstance,
        ),
        ("global-vrouter-config", ObjectType::GlobalVrouterConfig),
        ("global-system-config", ObjectType::GlobalSystemConfig),
        ("security-group", ObjectType::SecurityGroup),
        ("access-control-list", ObjectType::AccessControlList),
        ("project", ObjectType::Project),
        ("loadbalancer", ObjectType::Loadbalancer),
        ("loadbalancer-listener", ObjectType::LoadbalancerListener),
        ("loadbalancer-pool", ObjectType::LoadbalancerPool),
        ("loadbalancer-member", ObjectType::LoadbalancerMember),
    ];

    /// The type an IF-MAP `type` attribute names.
    pub fn parse(name: &str) -> ObjectType {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| ObjectType::Other(name.into()))
    }

    /// Its IF-MAP name.
    pub fn as_str(&self) -> &str {
        match self {
            ObjectType::Other(name) => name,
            known => Self::NAMES
                .iter()
                .find(|(_, t)| t == known)
                .map(|(n, _)| *n)
                .unwrap_or("unknown"),
        }
    }
}

impl std::fmt::Display for ObjectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object's identity: its type and fully qualified name
/// (`default-domain:k8s-default:pod-a__4f1c...`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// Its type.
    pub kind: ObjectType,
    /// Its fully qualified name, `:`-separated.
    pub name: String,
}

impl ObjectKey {
    /// The key of `kind` named `name`.
    pub fn new(kind: ObjectType, name: impl Into<String>) -> Self {
        Self {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.name)
    }
}

/// One configuration object.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigObject {
    /// Its UUID (from `id-perms`), when sent.
    pub uuid: Option<Uuid>,
    /// What the vrouter reads of its properties.
    pub props: Properties,
    generation: u64,
}

impl ConfigObject {
    /// An object with these properties (generation 0: for building graphs by hand).
    pub fn new(uuid: Option<Uuid>, props: Properties) -> Self {
        Self {
            uuid,
            props,
            generation: 0,
        }
    }
}

/// A link between two objects, as sent: left, right, metadata type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Link {
    /// The first node of the link.
    pub left: ObjectKey,
    /// The second node.
    pub right: ObjectKey,
    /// Its metadata type (`virtual-machine-interface-virtual-network`).
    pub metadata: String,
}

impl Link {
    /// The link with its ends in a fixed order (the graph's links have no direction).
    fn normalized(self) -> Link {
        if self.left <= self.right {
            self
        } else {
            Link {
                left: self.right,
                right: self.left,
                metadata: self.metadata,
            }
        }
    }
}

/// Why an update was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// The graph holds [`MAX_OBJECTS`] objects.
    #[error("configuration graph full: {0} objects")]
    TooManyObjects(usize),
    /// The graph holds [`MAX_LINKS`] links.
    #[error("configuration graph full: {0} links")]
    TooManyLinks(usize),
}

/// What one [`ConfigGraph::apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// Operations that changed the graph.
    pub changed: usize,
    /// Operations refused (the graph is full), with the first reason.
    pub refused: usize,
    /// The first refusal.
    pub first_error: Option<GraphError>,
}

/// The configuration objects and their links.
#[derive(Debug, Clone, Default)]
pub struct ConfigGraph {
    objects: BTreeMap<ObjectKey, ConfigObject>,
    /// Links (ends in a fixed order), with the generation that last sent them.
    links: BTreeMap<Link, u64>,
    /// Each object's links (both directions), for walking the graph.
    adjacency: BTreeMap<ObjectKey, BTreeSet<Link>>,
    generation: u64,
}

impl ConfigGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new generation (a new config server session): what is applied from
    /// now on carries it.
    pub fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Applies one message's operations in order.
    pub fn apply(&mut self, ops: Vec<ConfigOp>) -> ApplyOutcome {
        let mut outcome = ApplyOutcome::default();
        for op in ops {
            match self.apply_one(op) {
                Ok(true) => outcome.changed += 1,
                Ok(false) => {}
                Err(e) => {
                    outcome.refused += 1;
                    outcome.first_error.get_or_insert(e);
                }
            }
        }
        outcome
    }

    fn apply_one(&mut self, op: ConfigOp) -> Result<bool, GraphError> {
        let generation = self.generation;
        // A link is the same whichever node the control node names first.
        let op = match op {
            ConfigOp::UpdateLink(l) => ConfigOp::UpdateLink(l.normalized()),
            ConfigOp::DeleteLink(l) => ConfigOp::DeleteLink(l.normalized()),
            other => other,
        };
        match op {
            ConfigOp::UpdateNode { key, uuid, props } => {
                if !self.objects.contains_key(&key) && self.objects.len() >= MAX_OBJECTS {
                    return Err(GraphError::TooManyObjects(self.objects.len()));
                }
                let object = ConfigObject {
                    uuid,
                    props,
                    generation,
                };
                let old = self.objects.insert(key, object.clone());
                Ok(old.map(|o| o.props != object.props || o.uuid != object.uuid) != Some(false))
            }
            ConfigOp::DeleteNode { key } => {
                let removed = self.objects.remove(&key).is_some();
                let links: Vec<Link> = self.adjacency.get(&key).into_iter().flatten().cloned().collect();
                let had_links = !links.is_empty();
                for link in links {
                    self.remove_link(&link);
                }
                Ok(removed || had_links)
            }
            ConfigOp::UpdateLink(link) => {
                if let Some(g) = self.links.get_mut(&link) {
                    *g = generation;
                    return Ok(false);
                }
                if self.links.len() >= MAX_LINKS {
                    return Err(GraphError::TooManyLinks(self.links.len()));
                }
                self.adjacency
                    .entry(link.left.clone())
                    .or_default()
                    .insert(link.clone());
                self.adjacency
                    .entry(link.right.clone())
                    .or_default()
                    .insert(link.clone());
                self.links.insert(link, generation);
                Ok(true)
            }
            ConfigOp::DeleteLink(link) => Ok(self.remove_link(&link)),
        }
    }

    fn remove_link(&mut self, link: &Link) -> bool {
        if self.links.remove(link).is_none() {
            return false;
        }
        for end in [&link.left, &link.right] {
            if let Some(set) = self.adjacency.get_mut(end) {
                set.remove(link);
                if set.is_empty() {
                    self.adjacency.remove(end);
                }
            }
        }
        true
    }

    /// Drops every object and link last sent before `generation` (the config stale
    /// sweep after a config server change); returns how many went.
    pub fn sweep_older_than(&mut self, generation: u64) -> usize {
        let stale_links: Vec<Link> = self
            .links
            .iter()
            .filter(|(_, g)| **g < generation)
            .map(|(l, _)| l.clone())
            .collect();
        let before = self.objects.len();
        self.objects.retain(|_, o| o.generation >= generation);
        let swept = before - self.objects.len() + stale_links.len();
        for link in stale_links {
            self.remove_link(&link);
        }
        swept
    }

    /// True if object `key` is held and was sent in the current generation.
    pub fn is_current(&self, key: &ObjectKey) -> bool {
        self.objects.get(key).is_some_and(|o| o.generation == self.generation)
    }

    /// The object `key`, if held.
    pub fn get(&self, key: &ObjectKey) -> Option<&ConfigObject> {
        self.objects.get(key)
    }

    /// Every object of type `kind`.
    pub fn objects_of<'a>(&'a self, kind: &'a ObjectType) -> impl Iterator<Item = (&'a ObjectKey, &'a ConfigObject)> {
        self.objects.iter().filter(move |(k, _)| &k.kind == kind)
    }

    /// The objects of type `kind` linked to `key` (either direction), held or not.
    pub fn neighbors<'a>(&'a self, key: &ObjectKey, kind: &'a ObjectType) -> impl Iterator<Item = &'a ObjectKey> + 'a {
        let key = key.clone();
        self.adjacency
            .get(&key)
            .into_iter()
            .flatten()
            .map(move |l| if l.left == key { &l.right } else { &l.left })
            .filter(move |other| &other.kind == kind)
    }

    /// The link attributes of type `kind` named `attr(LEFT,...)`.
    pub fn attributes_of<'a>(&'a self, kind: &ObjectType, left: &str) -> impl Iterator<Item = &'a ObjectKey> + 'a {
        let prefix = format!("attr({left},");
        let start = ObjectKey::new(kind.clone(), prefix.clone());
        let kind = kind.clone();
        self.objects
            .range(start..)
            .map(|(k, _)| k)
            .take_while(move |k| k.kind == kind && k.name.starts_with(&prefix))
    }

    /// Objects held.
    pub fn object_count(&self) -> usize {
        self.objects.len()
    }

    /// Links held.
    pub fn link_count(&self) -> usize {
        self.links.len()
    }
}

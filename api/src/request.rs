//! Requests: one per line, tagged by `op`.

use control_client::contrail::PortBinding;
use control_client::{
    FloatingIpSpec, IngressSpec, InterfaceSpec, PolicySpec, RouteSpec, ServiceChainSpec, ServiceSpec,
};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Attach a pod interface.
    AddInterface {
        /// What to attach.
        spec: InterfaceSpec,
    },
    /// Detach a pod interface.
    RemoveInterface {
        /// Its name.
        name: String,
    },
    /// Add a route.
    AddRoute {
        /// The route.
        route: RouteSpec,
    },
    /// Remove a route.
    RemoveRoute {
        /// VRF.
        vrf: String,
        /// Prefix.
        prefix: IpNet,
    },
    /// Interfaces with counters (`vif --list`).
    Interfaces,
    /// Routes, of one VRF or all (`rt list`), in listing order: VRFs by id, in each
    /// IPv4 then IPv6, longest prefixes first, then by address.
    Routes {
        /// Only this VRF.
        #[serde(default)]
        vrf: Option<String>,
        /// At most this many (capped at [`MAX_ROUTES_PER_ANSWER`]).
        #[serde(default = "default_route_limit")]
        limit: usize,
        /// Only routes after this one in listing order (it need not exist any more):
        /// the next page starts after the last route of the previous one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<RouteCursor>,
    },
    /// Next hops (`nh --list`).
    NextHops,
    /// Drops by reason (`dropstats`).
    DropStats,
    /// Process status.
    Status,
    /// Flows (`flow -l`, `flow --match`).
    Flows {
        /// Only flows matching this.
        #[serde(default)]
        filter: FlowFilter,
        /// At most this many (capped at [`MAX_FLOWS_PER_ANSWER`]).
        #[serde(default = "default_flow_limit")]
        limit: usize,
        /// Only entries with this index or a higher one: the next page starts after
        /// the last index of the previous one.
        #[serde(default)]
        from_index: u32,
    },
    /// Flow table statistics and setup rate (`flow -r`).
    FlowStats,
    /// Start capturing the packets of interface `vif` (`capture`).
    CaptureStart {
        /// The interface.
        vif: u32,
        /// Bytes kept of each packet (64..=65535).
        #[serde(default = "default_snaplen")]
        snaplen: u32,
    },
    /// Take the packets a capture holds (read at least every 5 s, or it stops).
    CaptureRead {
        /// The capture.
        id: u64,
        /// At most this many (capped at [`MAX_FLOWS_PER_ANSWER`]).
        #[serde(default = "default_flow_limit")]
        limit: usize,
    },
    /// Stop a capture.
    CaptureStop {
        /// The capture.
        id: u64,
    },
    /// Flow records made after record `after` (`flow watch`), at most `limit`
    /// (capped at [`MAX_FLOWS_PER_ANSWER`]).
    FlowRecords {
        /// The last record already seen (0: from the oldest kept).
        #[serde(default)]
        after: u64,
        /// At most this many.
        #[serde(default = "default_flow_limit")]
        limit: usize,
    },
    /// Give a VRF its VXLAN network identifier.
    SetVrfVni {
        /// VRF name.
        vrf: String,
        /// VNI.
        vni: u32,
    },
    /// The MPLS label table (`mpls --dump`).
    Mpls,
    /// The VXLAN table (`vxlan --dump`).
    Vxlan,
    /// Traffic per remote node.
    Tunnels,
    /// The channels to control nodes, with their recent stanzas (`xmpp`).
    Xmpp,
    /// Add a service, or replace the one of that name (its backends changed).
    AddService {
        /// The service.
        spec: ServiceSpec,
    },
    /// Remove a service.
    RemoveService {
        /// Its name.
        name: String,
    },
    /// Services, one entry per service port (`service list`).
    Services,
    /// Fabric source NAT: the node's address, the port ranges and their use
    /// (`snat`).
    Snat,
    /// Bind a port to a virtual machine interface of the control node's
    /// configuration (the agent's port add): it is attached, and kept in step, as
    /// that configuration says. Replaces an earlier binding of the same name.
    BindPort {
        /// The binding.
        binding: PortBinding,
    },
    /// The configuration from the control node and the ports bound to it
    /// (`config`).
    Config,
    /// Give a pod interface a floating IP (an address of another VRF, 1:1 NAT), or
    /// replace the one of that name.
    AddFloatingIp {
        /// The floating IP.
        spec: FloatingIpSpec,
    },
    /// Remove a floating IP.
    RemoveFloatingIp {
        /// Its name.
        name: String,
    },
    /// Floating IPs (`fip list`).
    FloatingIps,
    /// Steer traffic between two networks through a service instance (its left and
    /// right interfaces), or replace the chain of that name.
    AddServiceChain {
        /// The chain.
        spec: ServiceChainSpec,
    },
    /// Remove a service chain (the two networks are apart again).
    RemoveServiceChain {
        /// Its name.
        name: String,
    },
    /// Service chains in force (`chain list`).
    ServiceChains,
    /// Add an ingress (an haproxy load balancer; this node runs an instance if its
    /// `[ingress] role` says so), or replace the one of that name (its instances
    /// reload without dropping connections).
    AddIngress {
        /// The ingress.
        spec: IngressSpec,
    },
    /// Remove an ingress (its instance here, with its namespace and port, goes).
    RemoveIngress {
        /// Its name.
        name: String,
    },
    /// Ingresses and this node's instances of them (`ingress list`).
    Ingresses,
    /// Add a network policy (selectors resolved to addresses), or replace the one of
    /// that name; open connections are decided again on their next packet.
    AddPolicy {
        /// The policy.
        spec: PolicySpec,
    },
    /// Add or replace several network policies and remove others, all in one
    /// publication or none (what `vrouter apply` sends: no moment where a default
    /// deny is in force without the policies that allow).
    SetPolicies {
        /// Policies to add or replace.
        specs: Vec<PolicySpec>,
        /// Names of policies to remove (absent ones are no error).
        #[serde(default)]
        remove: Vec<String>,
    },
    /// Remove a network policy.
    RemovePolicy {
        /// Its name.
        name: String,
    },
    /// Network policies (`policy list`).
    Policies,
}

/// Flows listed when a request gives no limit.
pub const DEFAULT_FLOW_LIMIT: usize = 1000;
/// Most flows one answer lists, whatever the request asks: an answer is built in
/// memory, so its size is bounded; more are read page by page (`from_index`).
pub const MAX_FLOWS_PER_ANSWER: usize = 10_000;

fn default_snaplen() -> u32 {
    65535
}

fn default_flow_limit() -> usize {
    DEFAULT_FLOW_LIMIT
}

/// Most routes one answer lists (also the default): more are read page by page
/// (`after`).
pub const MAX_ROUTES_PER_ANSWER: usize = 10_000;

fn default_route_limit() -> usize {
    MAX_ROUTES_PER_ANSWER
}

/// Where a page of routes starts: after this route of this VRF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteCursor {
    /// VRF name.
    pub vrf: String,
    /// Prefix.
    pub prefix: IpNet,
}

/// Which flows to list; unset fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowFilter {
    /// VRF name.
    pub vrf: Option<String>,
    /// Source or destination address.
    pub ip: Option<std::net::IpAddr>,
    /// Source address.
    pub src: Option<std::net::IpAddr>,
    /// Destination address.
    pub dst: Option<std::net::IpAddr>,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6).
    pub proto: Option<u8>,
    /// Source or destination port.
    pub port: Option<u16>,
}

impl Request {
    /// True for requests that change the forwarding state (served one at a time by
    /// the control side); false for views (served from the published state).
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Request::AddInterface { .. }
                | Request::RemoveInterface { .. }
                | Request::AddRoute { .. }
                | Request::RemoveRoute { .. }
                | Request::SetVrfVni { .. }
                | Request::AddService { .. }
                | Request::RemoveService { .. }
                | Request::BindPort { .. }
                | Request::AddFloatingIp { .. }
                | Request::RemoveFloatingIp { .. }
                | Request::AddServiceChain { .. }
                | Request::RemoveServiceChain { .. }
                | Request::AddIngress { .. }
                | Request::RemoveIngress { .. }
                | Request::AddPolicy { .. }
                | Request::SetPolicies { .. }
                | Request::RemovePolicy { .. }
        )
    }
}

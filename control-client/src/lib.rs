//! The control side of the vrouter.
//!
//! Contract:
//! - [`DesiredState`] holds what the operator (local API, CNI, and later the XMPP
//!   control node) asked for: interfaces bound to VRFs and extra routes. Every change
//!   is validated first; a rejected change leaves the state untouched.
//! - [`DesiredState::build`] compiles it into an immutable [`nexthop::Snapshot`]:
//!   stable vif and VRF numbers, host routes for every pod address, receive routes for
//!   gateways, shared next hops. [`SnapshotBuilder`] does the same for a sequence of
//!   publications: what did not change keeps its next-hop id and route slot, and each
//!   route's stamp says when its answer last changed, so workers keep the flows of
//!   routes that did not change.
//! - [`SnapshotPublisher`] swaps the published snapshot atomically; forwarding
//!   workers load it once per batch and never block on the control side.
//!   [`Publication`] publishes a route change as a patch of the previous snapshot
//!   ([`SnapshotBuilder::patch_route`]), in O(change) rather than O(routes).
//!
//! - [`xmpp`] is the protocol to Tungsten Fabric / OpenSDN control nodes without I/O:
//!   framing, stanzas, typed messages, and one channel's state machine fed bytes and
//!   time.
//!
//! No unsafe code, no I/O.
#![forbid(unsafe_code)]

pub mod contrail;
mod model;
mod publish;
pub mod xmpp;

pub use model::validate_vrf_name;
pub use model::{
    is_martian, DesiredState, FloatingIpSpec, HealthCheck, HealthCheckKind, IngressBackend, IngressPath, IngressRule,
    IngressSpec, InterfaceSpec, L4Protocol, ModelError, PathMatch, PeerId, PolicyPeer, PolicyPod, PolicyPort,
    PolicyRule, PolicySpec, PolicyTier, PortIdentity, RouteSpec, RouteTarget, ServiceChainSpec, ServicePort,
    ServiceSpec, SnapshotBuilder, VlanSpec, DEFAULT_REMOTE_MAC, FABRIC_VRF, FIRST_LABEL, LAST_LABEL, MAX_BACKENDS,
    MAX_FLOATING_IPS, MAX_INGRESSES, MAX_INGRESS_PATHS, MAX_POLICIES, MAX_SERVICE_CHAINS, MAX_SERVICE_PORTS,
};
pub use publish::{Publication, PublicationStats, SnapshotPublisher};

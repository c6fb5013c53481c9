//! Kubernetes manifests translated into what the vrouter enforces: what
//! contrail-kube-manager does for a Tungsten Fabric / OpenSDN cluster, for the lab,
//! the tests and a single-node standalone mode without a controller.
//!
//! Contract:
//! - [`Manifests`] reads YAML (or JSON) files of Namespaces, Pods, Services,
//!   Endpoints / EndpointSlices and NetworkPolicies, typed by `k8s-openapi`; other
//!   kinds are listed as skipped, malformed documents are errors naming the file.
//! - [`translate`] is pure: the same manifests give the same [`Translation`], byte
//!   for byte (everything sorted). It places every overlay pod in a virtual network
//!   (the seed's modes: `cluster-network`, isolated namespaces' `<ns>-vn`, custom
//!   networks, app isolation), turns Services into native load balancers and
//!   NetworkPolicies into policies with their selectors resolved to addresses, and
//!   says in `warnings` what it could not translate, never silently. Ingresses
//!   become haproxy load balancers with their VIP from the `clusterIP` annotation;
//!   pods annotated `opencontrail.org/service-chain` service chains.
//! - Pods are known by their `status.podIP(s)` (what the lab writes, as the API
//!   server reports it); a pod without one is placed but selects and is selected by
//!   nothing until it has one.
#![forbid(unsafe_code)]

mod chains;
pub mod dns;
mod floating;
mod ingress;
mod load;
mod pods;
mod policy;
mod selector;
mod services;

pub use chains::{ChainEnd, ChainPlan, NETWORK_STATUS, SERVICE_CHAIN};
pub use floating::{parse_pool, FloatingPlan};
pub use ingress::{CLUSTER_IP, EXTERNAL_IP};
pub use load::{LoadError, Manifests};
pub use pods::{APP, ISOLATED, NETWORK};

use control_client::{IngressSpec, PolicySpec, ServiceSpec};
use serde::Serialize;
use std::net::IpAddr;

/// Cluster-wide settings of the translation (kube-manager's configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The shared network's name (and VRF).
    pub cluster_network: String,
    /// Where isolated namespaces' pods get their floating IPs in the cluster network
    /// (IPv4); none: they get none.
    pub floating_pool: Option<ipnet::IpNet>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            cluster_network: "cluster-network".into(),
            floating_pool: None,
        }
    }
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodPlacement {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it runs on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Its network (VRF).
    pub vrf: String,
    /// Why that network.
    pub why: String,
    /// Its addresses.
    pub ips: Vec<IpAddr>,
}

/// What a set of manifests asks of the vrouters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Translation {
    /// The virtual networks (VRFs) pods are in.
    pub networks: Vec<String>,
    /// Every overlay pod and its network.
    pub pods: Vec<PodPlacement>,
    /// Native load balancers.
    pub services: Vec<ServiceSpec>,
    /// Network policies.
    pub policies: Vec<PolicySpec>,
    /// Egress-only floating IPs of isolated namespaces' pods in the cluster network.
    pub floating_ips: Vec<FloatingPlan>,
    /// Ingresses: haproxy load balancers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ingresses: Vec<IngressSpec>,
    /// Service chains through annotated instance pods.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_chains: Vec<ChainPlan>,
    /// What was not translated, and why.
    pub warnings: Vec<String>,
}

impl Translation {
    /// The placement of pod `namespace/name`.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&PodPlacement> {
        self.pods.iter().find(|p| p.namespace == namespace && p.name == name)
    }
}

/// Translates `manifests` (see the crate doc).
pub fn translate(manifests: &Manifests, settings: &Settings) -> Translation {
    let mut warnings = Vec::new();
    let namespaces = pods::namespaces(&manifests.namespaces, &manifests.pods);
    let pods = pods::pods(&manifests.pods, &namespaces, settings, &mut warnings);
    let isolated: std::collections::BTreeSet<String> = namespaces
        .iter()
        .filter(|(_, ns)| ns.isolated())
        .map(|(n, _)| n.clone())
        .collect();
    let floating_ips = floating::plan(&pods, &isolated, settings, &mut warnings);
    let mut services = services::services(
        &manifests.services,
        &pods,
        &floating_ips,
        &manifests.endpoints,
        &manifests.endpoint_slices,
        settings,
        &mut warnings,
    );
    let ingresses = ingress::ingresses(
        &manifests.ingresses,
        &manifests.services,
        &services,
        &settings.cluster_network,
        &mut warnings,
    );
    services.extend(ingress::external_services(&ingresses));
    services.sort_by(|a, b| a.name.cmp(&b.name));
    let policies = policy::policies(&manifests.network_policies, &pods, &floating_ips, &namespaces);
    let service_chains = chains::chains(&pods, &mut warnings);
    let mut networks: Vec<String> = pods.iter().map(|p| p.vrf.clone()).collect();
    // A service instance's other interface is in a network of its own choosing.
    networks.extend(
        service_chains
            .iter()
            .flat_map(|c| [c.left.vrf.clone(), c.right.vrf.clone()]),
    );
    networks.push(settings.cluster_network.clone());
    networks.sort();
    networks.dedup();
    warnings.extend(manifests.skipped.iter().map(|s| format!("{s}: kind not translated")));
    Translation {
        networks,
        pods: pods
            .into_iter()
            .map(|p| PodPlacement {
                namespace: p.namespace,
                name: p.name,
                node: p.node,
                vrf: p.vrf,
                why: p.why,
                ips: p.ips,
            })
            .collect(),
        services,
        policies,
        floating_ips,
        ingresses,
        service_chains,
        warnings,
    }
}

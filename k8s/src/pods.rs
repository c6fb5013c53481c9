//! Pods and namespaces as the translation sees them, and where each pod goes: the
//! virtual network (the VRF) contrail-kube-manager would put its interface in.
//!
//! The order is the agent's: a pod's own `opencontrail.org/network` annotation (a
//! custom network), its `opencontrail.org/name` label (app isolation: a network
//! per app, `app-<name>-vn`), its namespace's `opencontrail.org/network`
//! annotation, its namespace's isolation (`opencontrail.kubernetes.isolated:
//! "true"`: `<namespace>-vn`), else the shared `cluster-network`.

use crate::selector::Labels;
use crate::Settings;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The annotation that isolates a namespace.
pub const ISOLATED: &str = "opencontrail.kubernetes.isolated";
/// The annotation naming a custom network (JSON: `{"domain", "project", "name"}`).
pub const NETWORK: &str = "opencontrail.org/network";
/// The label that puts an app in its own network.
pub const APP: &str = "opencontrail.org/name";

/// A namespace: its labels (with Kubernetes' own `kubernetes.io/metadata.name`) and
/// annotations. Namespaces pods use without a manifest exist with no others.
#[derive(Debug, Clone, Default)]
pub struct NamespaceInfo {
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
}

impl NamespaceInfo {
    /// True if annotated isolated.
    pub fn isolated(&self) -> bool {
        self.annotations
            .get(ISOLATED)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// A container port by name, for named ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    /// Its name.
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// Its number.
    pub number: u16,
}

/// A pod on the overlay.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The node it runs on.
    pub node: Option<String>,
    /// Its labels.
    pub labels: Labels,
    /// Its annotations.
    pub annotations: Labels,
    /// Its addresses (`status.podIPs`, or `status.podIP`).
    pub ips: Vec<IpAddr>,
    /// Its named container ports.
    pub ports: Vec<NamedPort>,
    /// Its network (VRF).
    pub vrf: String,
    /// Why that network.
    pub why: String,
}

impl PodInfo {
    /// The number of its port named `name` for `protocol`.
    pub fn named_port(&self, name: &str, protocol: &str) -> Option<u16> {
        self.ports
            .iter()
            .find(|p| p.name == name && p.protocol.eq_ignore_ascii_case(protocol))
            .map(|p| p.number)
    }
}

/// The namespaces of the manifests by name, plus those pods name without one.
pub fn namespaces(list: &[Namespace], pods: &[Pod]) -> BTreeMap<String, NamespaceInfo> {
    let mut out: BTreeMap<String, NamespaceInfo> = BTreeMap::new();
    for ns in list {
        let Some(name) = ns.metadata.name.clone() else { continue };
        out.insert(
            name,
            NamespaceInfo {
                labels: ns.metadata.labels.clone().unwrap_or_default(),
                annotations: ns.metadata.annotations.clone().unwrap_or_default(),
            },
        );
    }
    for pod in pods {
        out.entry(namespace_of(&pod.metadata)).or_default();
    }
    out.entry("default".into()).or_default();
    for (name, ns) in &mut out {
        ns.labels.insert("kubernetes.io/metadata.name".into(), name.clone());
    }
    out
}

/// An object's namespace (`default` when unset).
pub fn namespace_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.namespace.clone().unwrap_or_else(|| "default".into())
}

/// The network a custom-network annotation names, if it parses.
fn custom_network(value: &str) -> Result<String, String> {
    #[derive(serde::Deserialize)]
    struct Fqn {
        name: String,
    }
    let fqn: Fqn = serde_json::from_str(value).map_err(|e| format!("{NETWORK} {value:?}: {e}"))?;
    control_client::validate_vrf_name(&fqn.name).map_err(|e| e.to_string())?;
    Ok(fqn.name)
}

/// The overlay pods (not `hostNetwork`), placed; problems go to `warnings`.
pub fn pods(
    list: &[Pod],
    namespaces: &BTreeMap<String, NamespaceInfo>,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Vec<PodInfo> {
    let mut out = Vec::new();
    for pod in list {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let namespace = namespace_of(&pod.metadata);
        let spec = pod.spec.as_ref();
        if spec.and_then(|s| s.host_network).unwrap_or(false) {
            continue; // on the node's own network: not Contrail's
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let annotations = pod.metadata.annotations.clone().unwrap_or_default();
        let ns = namespaces.get(&namespace).cloned().unwrap_or_default();
        let who = format!("pod {namespace}/{name}");
        let mut custom = |annotations: &Labels, whose: &str| -> Option<String> {
            let value = annotations.get(NETWORK)?;
            match custom_network(value) {
                Ok(vn) => Some(vn),
                Err(e) => {
                    warnings.push(format!("{who}: {whose} annotation ignored: {e}"));
                    None
                }
            }
        };
        let (vrf, why) = if let Some(vn) = custom(&annotations, "its") {
            (vn, "custom network (pod annotation)".to_string())
        } else if let Some(app) = labels.get(APP) {
            (format!("app-{app}-vn"), format!("app isolation ({APP}={app})"))
        } else if let Some(vn) = custom(&ns.annotations, "its namespace's") {
            (vn, "custom network (namespace annotation)".to_string())
        } else if ns.isolated() {
            (format!("{namespace}-vn"), "isolated namespace".to_string())
        } else {
            (settings.cluster_network.clone(), "default".to_string())
        };
        let status = pod.status.as_ref();
        // A finished pod's address may be another pod's already: it is no one's.
        if status
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed")
        {
            continue;
        }
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if ips.is_empty() {
            ips.extend(
                status
                    .and_then(|s| s.pod_ip.as_ref())
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        if ips.is_empty() {
            warnings.push(format!("{who}: no status.podIP yet: selected by nothing"));
        }
        let ports = spec
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                Some(NamedPort {
                    name: p.name.clone()?,
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    number: u16::try_from(p.container_port).ok()?,
                })
            })
            .collect();
        out.push(PodInfo {
            namespace,
            name,
            node: spec.and_then(|s| s.node_name.clone()),
            labels,
            annotations,
            ips,
            ports,
            vrf,
            why,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

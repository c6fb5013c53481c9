//! Services: each becomes a native load balancer in the cluster network (its
//! ClusterIP from the service IPAM there), one port per service port with its target
//! port, backends from its selector's pods (or, without a selector, its Endpoints /
//! EndpointSlices), node ports, external and LoadBalancer IPs, client-address
//! affinity.

use crate::pods::{namespace_of, PodInfo};
use crate::selector::matches_map;
use crate::Settings;
use control_client::{L4Protocol, ServicePort, ServiceSpec};
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::net::IpAddr;

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
const DEFAULT_AFFINITY_SECS: u32 = 10_800;

/// The protocol of a port (`TCP` when unset); `None` for one Kubernetes does not
/// define.
pub(crate) fn protocol(p: Option<&str>) -> Option<L4Protocol> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(L4Protocol::Tcp),
        "UDP" => Some(L4Protocol::Udp),
        "SCTP" => Some(L4Protocol::Sctp),
        _ => None,
    }
}

/// The backends of a service without a selector: its Endpoints' ready addresses, or
/// its EndpointSlices' ready endpoints.
fn listed_backends(namespace: &str, name: &str, endpoints: &[Endpoints], slices: &[EndpointSlice]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = endpoints
        .iter()
        .filter(|e| namespace_of(&e.metadata) == namespace && e.metadata.name.as_deref() == Some(name))
        .flat_map(|e| e.subsets.iter().flatten())
        .flat_map(|s| s.addresses.iter().flatten())
        .filter_map(|a| a.ip.parse().ok())
        .collect();
    out.extend(
        slices
            .iter()
            .filter(|s| {
                namespace_of(&s.metadata) == namespace
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("kubernetes.io/service-name"))
                        .is_some_and(|n| n == name)
            })
            .flat_map(|s| s.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
            .flat_map(|e| e.addresses.iter())
            .filter_map(|a| a.parse::<IpAddr>().ok()),
    );
    out.sort();
    out.dedup();
    out
}

/// The services, as the vrouter takes them.
pub fn services(
    list: &[Service],
    pods: &[PodInfo],
    floating: &[crate::FloatingPlan],
    endpoints: &[Endpoints],
    slices: &[EndpointSlice],
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Vec<ServiceSpec> {
    let mut out = Vec::new();
    for svc in list {
        let (Some(name), Some(spec)) = (svc.metadata.name.clone(), svc.spec.as_ref()) else {
            continue;
        };
        let namespace = namespace_of(&svc.metadata);
        let full = format!("{namespace}/{name}");
        let ip = match spec.cluster_ip.as_deref() {
            None | Some("") => {
                warnings.push(format!("service {full}: no clusterIP yet: skipped"));
                continue;
            }
            Some("None") => continue, // headless: DNS only
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(ip) => ip,
                Err(e) => {
                    warnings.push(format!("service {full}: clusterIP {ip:?}: {e}"));
                    continue;
                }
            },
        };
        if spec.cluster_ips.as_ref().is_some_and(|ips| ips.len() > 1) {
            warnings.push(format!("service {full}: only its first clusterIP ({ip}) is served"));
        }
        let backend_pods: Vec<&PodInfo> = match &spec.selector {
            Some(sel) if !sel.is_empty() => pods
                .iter()
                .filter(|p| p.namespace == namespace && matches_map(sel, &p.labels))
                .collect(),
            _ => Vec::new(),
        };
        // A backend in another network than the service's is reached at its floating
        // address there (an isolated namespace's pod: the seed's rule e).
        let floating_of = |p: &PodInfo| {
            floating
                .iter()
                .find(|f| f.namespace == p.namespace && f.name == p.name)
                .map(|f| f.ip)
        };
        let backends: Vec<IpAddr> = if spec.selector.as_ref().is_some_and(|s| !s.is_empty()) {
            let mut b: Vec<IpAddr> = backend_pods
                .iter()
                .flat_map(|p| match floating_of(p) {
                    Some(f) if p.vrf != settings.cluster_network => vec![f],
                    _ => p.ips.clone(),
                })
                .filter(|a| a.is_ipv4() == ip.is_ipv4())
                .collect();
            b.sort();
            b.dedup();
            b
        } else {
            listed_backends(&namespace, &name, endpoints, slices)
                .into_iter()
                .filter(|a| a.is_ipv4() == ip.is_ipv4())
                .collect()
        };
        for p in &backend_pods {
            if p.vrf != settings.cluster_network && floating_of(p).is_none() {
                warnings.push(format!(
                    "service {full}: backend {}/{} is in network {}, which the service's network {} does not route",
                    p.namespace, p.name, p.vrf, settings.cluster_network
                ));
            }
        }
        let mut ports = Vec::new();
        for port in spec.ports.iter().flatten() {
            let Some(proto) = protocol(port.protocol.as_deref()).filter(|p| *p != L4Protocol::Sctp) else {
                warnings.push(format!(
                    "service {full}: port {} ({}) skipped: only TCP and UDP are translated",
                    port.port,
                    port.protocol.as_deref().unwrap_or_default()
                ));
                continue;
            };
            let Ok(number) = u16::try_from(port.port) else { continue };
            let target_port = match &port.target_port {
                None => number,
                Some(IntOrString::Int(n)) => u16::try_from(*n).unwrap_or(number),
                Some(IntOrString::String(named)) => {
                    let proto_name = port.protocol.as_deref().unwrap_or("TCP");
                    let mut found: Vec<u16> = backend_pods
                        .iter()
                        .filter_map(|p| p.named_port(named, proto_name))
                        .collect();
                    found.sort_unstable();
                    found.dedup();
                    match found.as_slice() {
                        [one] => *one,
                        [] => {
                            warnings.push(format!(
                                "service {full}: target port {named:?} is no backend's port: port {number} skipped"
                            ));
                            continue;
                        }
                        [first, ..] => {
                            warnings.push(format!(
                                "service {full}: backends name port {named:?} differently ({found:?}): {first} used"
                            ));
                            *first
                        }
                    }
                }
            };
            let node_port = port
                .node_port
                .filter(|_| matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer")))
                .and_then(|n| u16::try_from(n).ok());
            ports.push(ServicePort {
                protocol: proto,
                port: number,
                target_port,
                node_port,
            });
        }
        if ports.is_empty() {
            warnings.push(format!("service {full}: no port the data plane serves: skipped"));
            continue;
        }
        let mut external_ips: Vec<IpAddr> = spec
            .external_ips
            .iter()
            .flatten()
            .chain(spec.load_balancer_ip.iter())
            .filter_map(|a| a.parse().ok())
            .collect();
        external_ips.extend(
            svc.status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_ref()?.parse::<IpAddr>().ok()),
        );
        external_ips.sort();
        external_ips.dedup();
        let affinity_timeout_secs = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .unwrap_or(DEFAULT_AFFINITY_SECS)
        });
        out.push(ServiceSpec {
            name: full,
            vrf: settings.cluster_network.clone(),
            ip,
            ports,
            backends,
            affinity_timeout_secs,
            external_ips,
            health_check: None,
            load_balancer: spec.type_.as_deref() == Some("LoadBalancer"),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

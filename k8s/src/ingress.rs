//! Ingresses (`networking.k8s.io/v1`): each becomes an haproxy load balancer in the
//! cluster network, as contrail-kube-manager makes it. Its VIP is the address
//! kube-manager allocated from the pod IPAM and wrote back as the `clusterIP`
//! annotation (the seed's `kubectl get ing` columns); its external IP the
//! `externalIP` annotation. Backends are the services' ClusterIPs and ports (a named
//! port is looked up in the Service), so the vrouter's own service load balancing
//! spreads haproxy's requests over the pods.
//!
//! An external IP reaches the VIP through a service of its own, named
//! `<namespace>/<name>@ingress`, whose cluster IP and one backend are the VIP: the
//! external IP's port 80 is translated to the VIP's (from pods, and from outside the
//! cluster through a node's own interface), as Contrail's floating IP on the load
//! balancer's interface does; the VIP itself is translated to itself. Without the
//! `externalIP` annotation the service is a LoadBalancer: it takes an address of the
//! node's public pool (`host.load_balancer_pool`) if the node has one, as
//! kube-manager allocates from the public floating-IP pool "if it is available".

use crate::pods::namespace_of;
use control_client::{IngressBackend, IngressPath, IngressRule, IngressSpec, PathMatch, ServiceSpec};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend as K8sBackend};
use std::net::{IpAddr, Ipv4Addr};

/// The annotation holding an ingress's VIP in the cluster network.
pub const CLUSTER_IP: &str = "clusterIP";
/// The annotation holding an ingress's external IP.
pub const EXTERNAL_IP: &str = "externalIP";

/// The ingresses, as the vrouter takes them; what cannot be translated is a warning.
pub fn ingresses(
    list: &[Ingress],
    manifests: &[Service],
    services: &[ServiceSpec],
    cluster_network: &str,
    warnings: &mut Vec<String>,
) -> Vec<IngressSpec> {
    let mut out = Vec::new();
    for ing in list {
        let Some(name) = ing.metadata.name.clone() else {
            continue;
        };
        let namespace = namespace_of(&ing.metadata);
        let full = format!("{namespace}/{name}");
        match one(ing, &namespace, manifests, services, cluster_network) {
            Ok((spec, skipped)) => {
                warnings.extend(skipped.into_iter().map(|w| format!("ingress {full}: {w}")));
                let spec = IngressSpec {
                    name: full.clone(),
                    ..spec
                };
                match spec.check() {
                    Ok(()) => out.push(spec),
                    Err(why) => warnings.push(format!("ingress {full}: {why}: skipped")),
                }
            }
            Err(why) => warnings.push(format!("ingress {full}: {why}: skipped")),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The service in front of each ingress's VIP at its external IP.
pub fn external_services(ingresses: &[IngressSpec]) -> Vec<ServiceSpec> {
    ingresses
        .iter()
        .map(|i| {
            let external: Vec<IpAddr> = i.external_ip.map(IpAddr::V4).into_iter().collect();
            ServiceSpec {
                name: format!("{}@ingress", i.name),
                vrf: i.vrf.clone(),
                ip: IpAddr::V4(i.vip),
                ports: vec![control_client::ServicePort {
                    protocol: control_client::L4Protocol::Tcp,
                    port: 80,
                    target_port: 80,
                    node_port: None,
                }],
                backends: vec![IpAddr::V4(i.vip)],
                affinity_timeout_secs: None,
                load_balancer: external.is_empty(),
                external_ips: external,
                health_check: None,
            }
        })
        .collect()
}

/// One ingress, and what of it was left out.
fn one(
    ing: &Ingress,
    namespace: &str,
    manifests: &[Service],
    services: &[ServiceSpec],
    cluster_network: &str,
) -> Result<(IngressSpec, Vec<String>), String> {
    let annotation = |key: &str| ing.metadata.annotations.as_ref().and_then(|a| a.get(key));
    let address = |key: &str| -> Result<Option<Ipv4Addr>, String> {
        annotation(key)
            .map(|v| {
                v.parse::<Ipv4Addr>()
                    .map_err(|e| format!("annotation {key} {v:?}: {e}"))
            })
            .transpose()
    };
    let vip = address(CLUSTER_IP)?.ok_or_else(|| format!("no VIP yet (annotation {CLUSTER_IP})"))?;
    let external_ip = address(EXTERNAL_IP)?;
    let spec = ing.spec.as_ref().ok_or("no spec")?;
    let mut skipped = Vec::new();
    let mut backend = |b: &K8sBackend, what: &str| match resolve(b, namespace, manifests, services) {
        Ok(b) => Some(b),
        Err(why) => {
            skipped.push(format!("{what} left out: {why}"));
            None
        }
    };
    let default_backend = spec
        .default_backend
        .as_ref()
        .and_then(|b| backend(b, "default backend"));
    let mut rules = Vec::new();
    for rule in spec.rules.iter().flatten() {
        let host = rule.host.clone().filter(|h| !h.is_empty());
        let shown = host.as_deref().unwrap_or("*");
        let mut paths = Vec::new();
        for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let path = p.path.clone().filter(|p| !p.is_empty()).unwrap_or_else(|| "/".into());
            let kind = match p.path_type.as_str() {
                "Exact" => PathMatch::Exact,
                _ => PathMatch::Prefix,
            };
            if let Some(backend) = backend(&p.backend, &format!("path {shown}{path}")) {
                paths.push(IngressPath { path, kind, backend });
            }
        }
        if !paths.is_empty() {
            rules.push(IngressRule { host, paths });
        }
    }
    let spec = IngressSpec {
        name: String::new(),
        vrf: cluster_network.to_string(),
        vip,
        external_ip,
        default_backend,
        rules,
    };
    Ok((spec, skipped))
}

/// A backend as a service address and port.
fn resolve(
    b: &K8sBackend,
    namespace: &str,
    manifests: &[Service],
    services: &[ServiceSpec],
) -> Result<IngressBackend, String> {
    let svc = b
        .service
        .as_ref()
        .ok_or("not a service (resource backends are not translated)")?;
    let full = format!("{namespace}/{}", svc.name);
    let spec = services
        .iter()
        .find(|s| s.name == full)
        .ok_or_else(|| format!("no service {full} with a clusterIP"))?;
    let port = svc.port.as_ref().ok_or_else(|| format!("service {full}: no port"))?;
    let number = match (port.number, port.name.as_deref()) {
        (Some(n), _) => u16::try_from(n).map_err(|_| format!("service {full}: port {n}"))?,
        (None, Some(name)) => manifests
            .iter()
            .filter(|m| namespace_of(&m.metadata) == namespace && m.metadata.name.as_deref() == Some(svc.name.as_str()))
            .flat_map(|m| m.spec.iter().flat_map(|s| s.ports.iter().flatten()))
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.port).ok())
            .ok_or_else(|| format!("service {full} has no port named {name:?}"))?,
        (None, None) => return Err(format!("service {full}: no port")),
    };
    if !spec
        .ports
        .iter()
        .any(|p| p.port == number && p.protocol == control_client::L4Protocol::Tcp)
    {
        return Err(format!("service {full} has no TCP port {number}"));
    }
    if spec.ip.is_ipv6() {
        return Err(format!("service {full}: IPv6 clusterIP (the VIP is IPv4)"));
    }
    Ok(IngressBackend {
        service: full,
        ip: spec.ip,
        port: number,
    })
}

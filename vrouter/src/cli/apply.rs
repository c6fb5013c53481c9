//! `vrouter apply -f` and `vrouter delete -f`: Kubernetes manifests translated (see
//! `vrouter-k8s`) and applied to the running vrouter: its services, ingresses,
//! network policies and service chains added or replaced (a policy change re-decides
//! open connections), and
//! with `--prune` those of a `namespace/name` the manifests no longer define removed;
//! `--dns-hosts` writes the services' DNS names for kube-dns.
//! `--dry-run` prints the translation (pod placement included) instead.

use super::views::print;
use crate::api::{ApiClient, Request, ServiceView};
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::IpAddr;
use vrouter_api::PolicyView;
use vrouter_k8s::{translate, Manifests, Settings, Translation};

/// What an apply did.
#[derive(Debug, Default, Serialize)]
pub struct Applied {
    /// Services added or replaced.
    pub services: Vec<String>,
    /// Policies added or replaced.
    pub policies: Vec<String>,
    /// Floating IPs given to this node's isolated pods.
    pub floating_ips: Vec<String>,
    /// Ingresses added or replaced.
    pub ingresses: Vec<String>,
    /// Service chains put in force on this node.
    pub service_chains: Vec<String>,
    /// Services and policies removed.
    pub removed: Vec<String>,
    /// What the translation could not do.
    pub warnings: Vec<String>,
}

/// The manifests of the command line, translated with its settings.
fn translation(args: &super::ManifestArgs) -> anyhow::Result<Translation> {
    let settings = Settings {
        cluster_network: args.cluster_network.clone(),
        floating_pool: args
            .floating_pool
            .as_deref()
            .map(vrouter_k8s::parse_pool)
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))?,
    };
    let manifests = Manifests::from_path(&args.file)?;
    Ok(translate(&manifests, &settings))
}

/// A name `vrouter apply` manages (Kubernetes' `namespace/name`).
fn managed(name: &str) -> bool {
    name.split_once('/')
        .is_some_and(|(ns, n)| !ns.is_empty() && !n.is_empty())
}

/// `vrouter apply`.
pub fn apply(
    api: &ApiClient,
    json: bool,
    manifests: &super::ManifestArgs,
    prune: bool,
    dry_run: bool,
    dns_hosts: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let t = translation(manifests)?;
    if let Some(path) = dns_hosts {
        let records = vrouter_k8s::dns::records(&t, vrouter_k8s::dns::CLUSTER_DOMAIN);
        // Whole or not at all: dnsmasq may read it at any moment.
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, vrouter_k8s::dns::hosts_file(&records))
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| anyhow::anyhow!("--dns-hosts {}: {e}", path.display()))?;
    }
    if dry_run {
        println!("{}", serde_json::to_string_pretty(&t)?);
        return Ok(());
    }
    let mut done = Applied {
        warnings: t.warnings.clone(),
        ..Applied::default()
    };
    for spec in &t.services {
        let _: serde_json::Value = api
            .call(&Request::AddService { spec: spec.clone() })
            .map_err(|e| anyhow::anyhow!("service {}: {e}", spec.name))?;
        done.services.push(spec.name.clone());
    }
    for spec in &t.ingresses {
        let _: serde_json::Value = api
            .call(&Request::AddIngress { spec: spec.clone() })
            .map_err(|e| anyhow::anyhow!("ingress {}: {e}", spec.name))?;
        done.ingresses.push(spec.name.clone());
    }
    if prune {
        let ingresses: BTreeSet<&str> = t.ingresses.iter().map(|s| s.name.as_str()).collect();
        let current: Vec<vrouter_api::IngressView> = api.call(&Request::Ingresses)?;
        for name in current
            .into_iter()
            .map(|i| i.name)
            .filter(|n| managed(n) && !ingresses.contains(n.as_str()))
        {
            let _: serde_json::Value = api.call(&Request::RemoveIngress { name: name.clone() })?;
            done.removed.push(format!("ingress {name}"));
        }
    }
    // The policies in one change: never a default deny without its allowing policies.
    let mut remove = Vec::new();
    if prune {
        let policies: BTreeSet<&str> = t.policies.iter().map(|p| p.name.as_str()).collect();
        let current: Vec<PolicyView> = api.call(&Request::Policies)?;
        remove = current
            .into_iter()
            .map(|p| p.name)
            .filter(|n| managed(n) && !policies.contains(n.as_str()))
            .collect();
    }
    let _: serde_json::Value = api
        .call(&Request::SetPolicies {
            specs: t.policies.clone(),
            remove: remove.clone(),
        })
        .map_err(|e| anyhow::anyhow!("network policies: {e}"))?;
    done.policies = t.policies.iter().map(|p| p.name.clone()).collect();
    done.removed
        .extend(remove.into_iter().map(|n| format!("network policy {n}")));
    // Floating IPs of this node's isolated pods: their interfaces found by VRF and
    // address (the pods of other nodes are theirs to apply).
    let interfaces: Vec<vrouter_api::InterfaceView> = api.call(&Request::Interfaces)?;
    // A floating IP whose address changed goes first: its old address may be the one
    // another pod takes now.
    let planned: std::collections::BTreeMap<String, IpAddr> = t
        .floating_ips
        .iter()
        .map(|p| (format!("{}/{}", p.namespace, p.name), p.ip))
        .collect();
    let current: Vec<vrouter_api::FloatingIpView> = api.call(&Request::FloatingIps)?;
    for f in current
        .iter()
        .filter(|f| planned.get(&f.name).is_some_and(|ip| *ip != f.ip))
    {
        let _: serde_json::Value = api.call(&Request::RemoveFloatingIp { name: f.name.clone() })?;
    }
    let mut fips = BTreeSet::new();
    for plan in &t.floating_ips {
        let local = interfaces
            .iter()
            .find(|i| i.vrf == plan.pod_vrf && i.ipv4.map(IpAddr::V4) == Some(plan.pod_ip));
        let Some(iface) = local else { continue };
        let name = format!("{}/{}", plan.namespace, plan.name);
        let spec = control_client::FloatingIpSpec {
            name: name.clone(),
            vrf: plan.vrf.clone(),
            ip: plan.ip,
            interface: iface.name.clone(),
            egress_only: true,
        };
        let _: serde_json::Value = api
            .call(&Request::AddFloatingIp { spec })
            .map_err(|e| anyhow::anyhow!("floating IP {name}: {e}"))?;
        done.floating_ips.push(name.clone());
        fips.insert(name);
    }
    if prune {
        let current: Vec<vrouter_api::FloatingIpView> = api.call(&Request::FloatingIps)?;
        for name in current
            .into_iter()
            .map(|f| f.name)
            .filter(|n| managed(n) && !fips.contains(n))
        {
            let _: serde_json::Value = api.call(&Request::RemoveFloatingIp { name: name.clone() })?;
            done.removed.push(format!("floating IP {name}"));
        }
    }
    super::apply_chains::apply(api, &t.service_chains, &interfaces, prune, managed, &mut done)?;
    if prune {
        let services: BTreeSet<&str> = t.services.iter().map(|s| s.name.as_str()).collect();
        let current: Vec<ServiceView> = api.call(&Request::Services)?;
        let gone: BTreeSet<String> = current
            .into_iter()
            .map(|s| s.name)
            .filter(|n| managed(n) && !services.contains(n.as_str()))
            .collect();
        for name in gone {
            let _: serde_json::Value = api.call(&Request::RemoveService { name: name.clone() })?;
            done.removed.push(format!("service {name}"));
        }
    }
    report(json, &done)
}

/// `vrouter delete -f`: removes the services, policies and chains the manifests define
/// (those already gone are not an error).
pub fn delete(api: &ApiClient, json: bool, manifests: &super::ManifestArgs) -> anyhow::Result<()> {
    let t = translation(manifests)?;
    let mut done = Applied::default();
    for spec in &t.services {
        let name = spec.name.clone();
        remove(api, Request::RemoveService { name }, "service", &spec.name, &mut done)?;
    }
    for spec in &t.ingresses {
        let name = spec.name.clone();
        remove(api, Request::RemoveIngress { name }, "ingress", &spec.name, &mut done)?;
    }
    // Every isolated pod's floating IP, whatever the pool (its name is the pod's).
    let isolated = t.pods.iter().filter(|p| p.vrf == format!("{}-vn", p.namespace));
    for name in isolated.map(|p| format!("{}/{}", p.namespace, p.name)) {
        let request = Request::RemoveFloatingIp { name: name.clone() };
        remove(api, request, "floating IP", &name, &mut done)?;
    }
    for spec in &t.policies {
        let name = spec.name.clone();
        remove(
            api,
            Request::RemovePolicy { name },
            "network policy",
            &spec.name,
            &mut done,
        )?;
    }
    for plan in &t.service_chains {
        let name = plan.name.clone();
        remove(
            api,
            Request::RemoveServiceChain { name },
            "service chain",
            &plan.name,
            &mut done,
        )?;
    }
    report(json, &done)
}

/// Sends `request`, the removal of `what` `name`, recording it in `done`; one
/// already gone is not an error.
fn remove(api: &ApiClient, request: Request, what: &str, name: &str, done: &mut Applied) -> anyhow::Result<()> {
    match api.call::<serde_json::Value>(&request) {
        Ok(_) => done.removed.push(format!("{what} {name}")),
        Err(vrouter_api::ClientError::Api(a)) if a.code == vrouter_api::ErrorCode::NotFound => {}
        Err(e) => return Err(anyhow::anyhow!("{what} {name}: {e}")),
    }
    Ok(())
}

fn report(json: bool, done: &Applied) -> anyhow::Result<()> {
    for w in &done.warnings {
        eprintln!("warning: {w}");
    }
    print(json, done, |d| {
        for s in &d.services {
            println!("service {s} applied");
        }
        for p in &d.policies {
            println!("network policy {p} applied");
        }
        for f in &d.floating_ips {
            println!("floating IP {f} applied");
        }
        for i in &d.ingresses {
            println!("ingress {i} applied");
        }
        for c in &d.service_chains {
            println!("service chain {c} applied");
        }
        for r in &d.removed {
            println!("{r} removed");
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_kubernetes_names_are_pruned() {
        assert!(super::managed("shop/web"));
        assert!(!super::managed("web"));
        assert!(!super::managed("/web"));
        assert!(!super::managed("shop/"));
    }
}

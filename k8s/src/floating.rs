//! Floating IPs of isolated namespaces' pods: each gets an egress-only address in
//! the cluster network (the seed's 3.2.3: so it reaches other namespaces and, through
//! them, services), from the configured pool. The address a pod gets depends on its
//! name only (a hash, probing past addresses taken), so it does not move when other
//! pods come or go, and every node computes the same.

use crate::pods::PodInfo;
use crate::Settings;
use ipnet::{IpNet, Ipv4Net};
use serde::Serialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

/// A pod's floating address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FloatingPlan {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The network the address is in (the cluster network).
    pub vrf: String,
    /// The address.
    pub ip: IpAddr,
    /// The pod's own network.
    pub pod_vrf: String,
    /// The pod's own address.
    pub pod_ip: IpAddr,
}

/// FNV-1a: a hash that stays the same across builds and platforms.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The floating addresses of the isolated namespaces' pods (IPv4).
pub fn plan(
    pods: &[PodInfo],
    isolated: &BTreeSet<String>,
    settings: &Settings,
    warnings: &mut Vec<String>,
) -> Vec<FloatingPlan> {
    let wanting: Vec<&PodInfo> = pods
        .iter()
        .filter(|p| isolated.contains(&p.namespace) && p.vrf == format!("{}-vn", p.namespace))
        .collect();
    if wanting.is_empty() {
        return Vec::new();
    }
    let Some(IpNet::V4(pool)) = settings.floating_pool else {
        warnings.push(format!(
            "{} pods of isolated namespaces get no floating IP in {} (no floating pool set): they reach no other namespace",
            wanting.len(),
            settings.cluster_network
        ));
        return Vec::new();
    };
    // Host addresses of the pool (not its network and broadcast addresses), by index.
    let first = u32::from(pool.network()) + 1;
    let count = (1u64 << (32 - u32::from(pool.prefix_len()))).saturating_sub(2).max(1);
    let host = |i: u64| Ipv4Addr::from(first.wrapping_add(i as u32));
    let mut taken: BTreeSet<Ipv4Addr> = pods
        .iter()
        .flat_map(|p| p.ips.iter())
        .filter_map(|ip| match ip {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        })
        .collect();
    let mut out = Vec::new();
    for pod in wanting {
        let Some(pod_ip) = pod.ips.iter().copied().find(IpAddr::is_ipv4) else {
            continue;
        };
        let start = fnv1a(&format!("{}/{}", pod.namespace, pod.name)) % count;
        // At most as many probes as addresses taken (plus one) find a free one.
        let free = (0..count.min(taken.len() as u64 + 1))
            .map(|i| host((start + i) % count))
            .find(|a| !taken.contains(a));
        let Some(ip) = free else {
            warnings.push(format!(
                "pod {}/{}: floating pool {pool} is full: no floating IP",
                pod.namespace, pod.name
            ));
            continue;
        };
        taken.insert(ip);
        out.push(FloatingPlan {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            vrf: settings.cluster_network.clone(),
            ip: IpAddr::V4(ip),
            pod_vrf: pod.vrf.clone(),
            pod_ip,
        });
    }
    out
}

/// The pool's prefix as the settings take it.
pub fn parse_pool(text: &str) -> Result<IpNet, String> {
    let net: Ipv4Net = text.parse().map_err(|e| format!("floating pool {text:?}: {e}"))?;
    if net.prefix_len() > 30 {
        return Err(format!("floating pool {net}: at most /30"));
    }
    Ok(IpNet::V4(net.trunc()))
}

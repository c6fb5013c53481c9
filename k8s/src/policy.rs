//! NetworkPolicies: each becomes a policy whose selectors are resolved to the pods'
//! addresses (what the data plane matches), with Kubernetes' semantics:
//! - the policy selects the pods of its namespace its `podSelector` matches;
//! - `policyTypes` (default: Ingress, plus Egress when it has egress rules) says
//!   which directions it isolates; an isolated direction with no rules denies all;
//! - a rule's peers: `podSelector` (its namespace), `namespaceSelector` (every pod
//!   of the matching namespaces), both (those pods of those namespaces), `ipBlock`
//!   with `except`; no peers: every address;
//! - ports: protocol (TCP when unset), number or name, `endPort`; no ports: all.
//!   A named port is the selected pod's for ingress (pods that number it
//!   differently get a policy of their own, `NAME@POD`), the peer pod's for egress
//!   (the rule is split per number). A port the data plane cannot match (SCTP, a
//!   name nobody has) matches nothing: a rule left without ports is dropped, never
//!   widened to all ports.

use crate::pods::{NamespaceInfo, PodInfo};
use crate::selector::matches;
use crate::services::protocol;
use control_client::{PolicyPeer, PolicyPod, PolicyPort, PolicyRule, PolicySpec};
use ipnet::IpNet;
use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The pods a peer names (`None`: an ipBlock, not pods).
fn peer_pods<'p>(
    peer: &NetworkPolicyPeer,
    namespace: &str,
    pods: &'p [PodInfo],
    namespaces: &BTreeMap<String, NamespaceInfo>,
) -> Option<Vec<&'p PodInfo>> {
    if peer.ip_block.is_some() {
        return None;
    }
    let in_namespace = |p: &PodInfo| match &peer.namespace_selector {
        None => p.namespace == namespace,
        Some(sel) => namespaces.get(&p.namespace).is_some_and(|ns| matches(sel, &ns.labels)),
    };
    let selected = |p: &PodInfo| peer.pod_selector.as_ref().is_none_or(|sel| matches(sel, &p.labels));
    Some(pods.iter().filter(|p| in_namespace(p) && selected(p)).collect())
}

fn host(ip: IpAddr) -> PolicyPeer {
    PolicyPeer {
        cidr: IpNet::from(ip),
        except: Vec::new(),
    }
}

/// A port as the data plane takes it; `Err(None)`: named (resolved later);
/// `Err(Some(why))`: one that matches nothing.
fn plain_port(p: &NetworkPolicyPort) -> Result<PolicyPort, Option<String>> {
    let proto = protocol(p.protocol.as_deref()).ok_or_else(|| {
        Some(format!(
            "protocol {} is not matched",
            p.protocol.as_deref().unwrap_or_default()
        ))
    })?;
    let port = match &p.port {
        None => None,
        Some(IntOrString::Int(n)) => Some(u16::try_from(*n).map_err(|_| Some(format!("port {n}")))?),
        Some(IntOrString::String(_)) => return Err(None),
    };
    let end_port = p
        .end_port
        .and_then(|e| u16::try_from(e).ok())
        .filter(|_| port.is_some());
    Ok(PolicyPort {
        protocol: proto,
        port,
        end_port,
    })
}

/// The ports of `ports` for a pod that numbers its ports as `pod` does (`None`:
/// named ports match nothing).
fn resolve_ports(ports: &[NetworkPolicyPort], pod: Option<&PodInfo>) -> Vec<PolicyPort> {
    ports
        .iter()
        .filter_map(|p| match plain_port(p) {
            Ok(port) => Some(port),
            Err(Some(_)) => None,
            Err(None) => {
                let Some(IntOrString::String(name)) = &p.port else {
                    return None;
                };
                let proto = p.protocol.as_deref().unwrap_or("TCP");
                let number = pod?.named_port(name, proto)?;
                Some(PolicyPort {
                    protocol: protocol(Some(proto))?,
                    port: Some(number),
                    end_port: None,
                })
            }
        })
        .collect()
}

fn has_named(ports: &[NetworkPolicyPort]) -> bool {
    ports.iter().any(|p| matches!(p.port, Some(IntOrString::String(_))))
}

/// One rule's peers and ports resolved; named ports resolve on `target` (ingress:
/// the selected pod) or, when `target` is `None`, on each peer pod (egress).
fn rules(
    peers: Option<&[NetworkPolicyPeer]>,
    ports: &[NetworkPolicyPort],
    target: Option<&PodInfo>,
    ctx: &Context,
) -> Vec<PolicyRule> {
    let peers = peers.unwrap_or(&[]);
    let mut blocks: Vec<PolicyPeer> = Vec::new();
    let mut peer_pods_all: Vec<&PodInfo> = Vec::new();
    for peer in peers {
        match peer_pods(peer, ctx.namespace, ctx.pods, ctx.namespaces) {
            Some(pods) => peer_pods_all.extend(pods),
            None => {
                let Some(b) = &peer.ip_block else { continue };
                let (Ok(cidr), Ok(except)) = (
                    b.cidr.parse::<IpNet>(),
                    b.except
                        .iter()
                        .flatten()
                        .map(|e| e.parse::<IpNet>())
                        .collect::<Result<Vec<_>, _>>(),
                ) else {
                    continue;
                };
                blocks.push(PolicyPeer {
                    cidr: cidr.trunc(),
                    except: except.into_iter().filter(|e| cidr.contains(e)).collect(),
                });
            }
        }
    }
    let any_peer = peers.is_empty();
    let wanted_ports = !ports.is_empty();
    let rule = |mut peers: Vec<PolicyPeer>, resolved: Vec<PolicyPort>| -> Option<PolicyRule> {
        if wanted_ports && resolved.is_empty() {
            return None; // every port it names matches nothing
        }
        if !any_peer && peers.is_empty() {
            return None; // its selectors match no pod (yet)
        }
        peers.sort_by_key(|p| (p.cidr.addr(), p.cidr.prefix_len()));
        peers.dedup();
        Some(PolicyRule { peers, ports: resolved })
    };
    // A pod is its addresses, and its floating address in the cluster network (where
    // an isolated pod's connections to other nodes come from).
    let pod_peers = |pods: &[&PodInfo]| -> Vec<PolicyPeer> {
        pods.iter()
            .flat_map(|p| {
                let floating = ctx
                    .floating
                    .iter()
                    .filter(|f| f.namespace == p.namespace && f.name == p.name)
                    .map(|f| f.ip);
                p.ips.iter().copied().chain(floating).map(host)
            })
            .collect()
    };
    if target.is_some() || !has_named(ports) {
        let mut all = blocks;
        all.extend(pod_peers(&peer_pods_all));
        return rule(all, resolve_ports(ports, target)).into_iter().collect();
    }
    // Egress with named ports: split by the number each peer pod gives them. The
    // plain ports stay with the blocks; with no peers, every pod is a candidate.
    let candidates: Vec<&PodInfo> = if any_peer {
        ctx.pods.iter().collect()
    } else {
        peer_pods_all
    };
    // Peer pods by the ports they resolve to (protocol, port, end port).
    type Resolution = Vec<(u8, Option<u16>, Option<u16>)>;
    let mut groups: BTreeMap<Resolution, (Vec<&PodInfo>, Vec<PolicyPort>)> = BTreeMap::new();
    // Pods without an address yet name no peer: a group of only those must not become
    // a rule without peers (every address).
    for pod in candidates.into_iter().filter(|p| !p.ips.is_empty()) {
        let resolved = resolve_ports(ports, Some(pod));
        let key = resolved
            .iter()
            .map(|p| (p.protocol.number(), p.port, p.end_port))
            .collect();
        groups.entry(key).or_insert_with(|| (Vec::new(), resolved)).0.push(pod);
    }
    let mut out: Vec<PolicyRule> = groups
        .into_values()
        .filter_map(|(pods, resolved)| {
            let peers = pod_peers(&pods);
            // A named-port group always names its pods (never every address).
            (!peers.is_empty()).then(|| rule(peers, resolved)).flatten()
        })
        .collect();
    let plain = resolve_ports(ports, None);
    if any_peer {
        out.extend(rule(Vec::new(), plain));
    } else if !blocks.is_empty() {
        out.extend(rule(blocks, plain));
    }
    out
}

struct Context<'a> {
    namespace: &'a str,
    pods: &'a [PodInfo],
    namespaces: &'a BTreeMap<String, NamespaceInfo>,
    floating: &'a [crate::FloatingPlan],
}

/// The policies of `list`.
pub fn policies(
    list: &[NetworkPolicy],
    pods: &[PodInfo],
    floating: &[crate::FloatingPlan],
    namespaces: &BTreeMap<String, NamespaceInfo>,
) -> Vec<PolicySpec> {
    let mut out = Vec::new();
    for np in list {
        let (Some(name), Some(spec)) = (np.metadata.name.clone(), np.spec.as_ref()) else {
            continue;
        };
        let namespace = crate::pods::namespace_of(&np.metadata);
        let ctx = Context {
            namespace: &namespace,
            pods,
            namespaces,
            floating,
        };
        let selected: Vec<&PodInfo> = pods
            .iter()
            .filter(|p| p.namespace == namespace && spec.pod_selector.as_ref().is_none_or(|s| matches(s, &p.labels)))
            .collect();
        // The API server's defaulting: no policyTypes (absent or empty) means Ingress,
        // plus Egress when there are egress rules.
        let types: Vec<String> = match spec.policy_types.clone() {
            Some(t) if !t.is_empty() => t,
            _ => {
                let mut t = vec!["Ingress".to_string()];
                if spec.egress.as_ref().is_some_and(|e| !e.is_empty()) {
                    t.push("Egress".into());
                }
                t
            }
        };
        let isolates = |t: &str| types.iter().any(|x| x == t);
        let egress = isolates("Egress").then(|| {
            spec.egress
                .iter()
                .flatten()
                .flat_map(|r| rules(r.to.as_deref(), r.ports.as_deref().unwrap_or(&[]), None, &ctx))
                .collect::<Vec<_>>()
        });
        // Ingress rules with named ports resolve per selected pod: pods that resolve
        // alike share one policy.
        let ingress_of = |pod: Option<&PodInfo>| -> Vec<PolicyRule> {
            spec.ingress
                .iter()
                .flatten()
                .flat_map(|r| rules(r.from.as_deref(), r.ports.as_deref().unwrap_or(&[]), pod, &ctx))
                .collect()
        };
        let named = spec
            .ingress
            .iter()
            .flatten()
            .any(|r| has_named(r.ports.as_deref().unwrap_or(&[])));
        let mut groups: Vec<(Vec<&PodInfo>, Option<Vec<PolicyRule>>)> = Vec::new();
        if named && isolates("Ingress") {
            for pod in &selected {
                let mine = Some(ingress_of(Some(pod)));
                match groups.iter_mut().find(|(_, r)| *r == mine) {
                    Some((pods, _)) => pods.push(pod),
                    None => groups.push((vec![pod], mine)),
                }
            }
        }
        if groups.is_empty() {
            groups.push((selected.clone(), isolates("Ingress").then(|| ingress_of(None))));
        }
        for (i, (group, ingress)) in groups.into_iter().enumerate() {
            let mut pods: Vec<PolicyPod> = group
                .iter()
                .flat_map(|p| {
                    p.ips.iter().map(|ip| PolicyPod {
                        vrf: p.vrf.clone(),
                        ip: *ip,
                    })
                })
                .collect();
            pods.sort();
            let full = match (i, group.first()) {
                (0, _) | (_, None) => format!("{namespace}/{name}"),
                (_, Some(first)) => format!("{namespace}/{name}@{}", first.name),
            };
            out.push(PolicySpec {
                name: full,
                pods,
                ingress,
                egress: egress.clone(),
                tier: control_client::PolicyTier::Pod,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

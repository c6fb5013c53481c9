//! What this node tells a control node, as the real agent tells it: each VRF with a
//! local interface is subscribed with its instance id (the vrouter's VRF index), and
//! each local interface address is published into it (a `publish` of the route, then
//! an `associate` of it to the VRF's collection); what goes away is dissociated, and
//! a VRF without interfaces unsubscribed. Pure: [`Speaker::update`] compares what
//! the control node was told with what is true now and returns the stanzas.

use super::messages::{CONTROL_NODE, PUBSUB};
use ipnet::IpNet;
use nexthop::encap::Encap;
use nexthop::{InterfaceKind, MacAddr, Snapshot};
use quick_xml::escape::escape;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr};

/// A route this node originates: an interface's address in its VRF, reached by label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalRoute {
    /// The VRF (routing instance) name.
    pub vrf: String,
    /// The host prefix.
    pub prefix: IpNet,
    /// The MPLS label remote nodes reach the interface by.
    pub label: u32,
    /// The interface's security group ids.
    pub security_groups: Vec<u32>,
    /// The BGP local preference it is advertised with.
    pub local_preference: u32,
    /// For a prefix a service chain leaks into this VRF from another, that other
    /// VRF: the route's virtual network is its origin's, as a control node's
    /// re-originated service-chain route says.
    pub leaked_from: Option<String>,
}

/// The local preference of a route whose interface sets none (the agent's).
pub const DEFAULT_LOCAL_PREFERENCE: u32 = 100;

/// An EVPN (MAC+IP) route this node originates for an interface in a VRF with a
/// VXLAN network identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EvpnRoute {
    /// The VRF (routing instance) name.
    pub vrf: String,
    /// The interface's MAC.
    pub mac: MacAddr,
    /// The host prefix of one of its addresses.
    pub prefix: IpNet,
    /// The VRF's VNI (the label and the ethernet tag).
    pub vni: u32,
    /// The BGP local preference it is advertised with (the interface's).
    pub local_preference: u32,
}

/// What this node has to tell: VRFs by name with their instance ids, and routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// VRFs with a local interface, and the vrouter's index for each.
    pub vrfs: BTreeMap<String, u32>,
    /// Local interface addresses.
    pub routes: BTreeSet<LocalRoute>,
    /// EVPN routes of interfaces in VRFs with a VNI.
    pub evpn: BTreeSet<EvpnRoute>,
}

impl Advertised {
    /// What a published snapshot has to tell: every pod interface's (and the node's
    /// own interface's) VRF and addresses.
    pub fn of(snap: &Snapshot) -> Self {
        let mut out = Advertised::default();
        let vnis: BTreeMap<nexthop::VrfId, u32> = snap.vxlan.iter().map(|(vni, vrf)| (*vrf, *vni)).collect();
        for i in snap
            .interfaces
            .iter()
            .flatten()
            // The node's own interface too: other nodes' pods reach this node (and
            // answer its probes and its kernel) at its address through the tunnel.
            .filter(|i| matches!(i.kind, InterfaceKind::Pod | InterfaceKind::Host))
        {
            let (Some(vrf), Some(label)) = (snap.vrf(i.vrf), i.label) else {
                continue;
            };
            out.vrfs.insert(vrf.name.clone(), u32::from(i.vrf.0));
            let addresses = i.ipv4.map(IpAddr::V4).into_iter().chain(i.ipv6.map(IpAddr::V6));
            for a in addresses {
                out.routes.insert(LocalRoute {
                    vrf: vrf.name.clone(),
                    prefix: IpNet::from(a),
                    label,
                    security_groups: i.security_groups.clone(),
                    local_preference: i.local_preference.unwrap_or(DEFAULT_LOCAL_PREFERENCE),
                    leaked_from: None,
                });
                if let Some(vni) = vnis.get(&i.vrf) {
                    out.evpn.insert(EvpnRoute {
                        vrf: vrf.name.clone(),
                        mac: i.mac,
                        prefix: IpNet::from(a),
                        vni: *vni,
                        local_preference: i.local_preference.unwrap_or(DEFAULT_LOCAL_PREFERENCE),
                    });
                }
            }
        }
        // Floating addresses, in their own VRFs, reached by the pod's label.
        for e in snap.floating.by_address.values() {
            let (Some(vrf), Some(label)) = (snap.vrf(e.vrf), snap.interface(e.vif).and_then(|i| i.label)) else {
                continue;
            };
            out.vrfs.insert(vrf.name.clone(), u32::from(e.vrf.0));
            let security_groups = snap
                .interface(e.vif)
                .map(|i| i.security_groups.clone())
                .unwrap_or_default();
            out.routes.insert(LocalRoute {
                vrf: vrf.name.clone(),
                prefix: IpNet::from(e.address),
                label,
                security_groups,
                local_preference: DEFAULT_LOCAL_PREFERENCE,
                leaked_from: None,
            });
        }
        out.service_chains(snap);
        out
    }

    /// The prefixes each service chain in force leaks into its two VRFs, reached by
    /// the label of the instance's interface on that side: another node's pod of
    /// the left network reaches the right one through the instance here (and its
    /// replies come back through it), as the routes a control node re-originates
    /// for a service chain do: with the local preference of the instance's
    /// interface, and a local pod's security groups (a learned prefix's groups are
    /// not known here). A prefix this node advertises in that VRF already keeps its
    /// own route. Inet routes only: a VRF with a VNI gets no EVPN route for them.
    fn service_chains(&mut self, snap: &Snapshot) {
        let mut taken: BTreeSet<(String, IpNet)> = self.routes.iter().map(|r| (r.vrf.clone(), r.prefix)).collect();
        // Local pods' security groups, by VRF and address.
        let groups: BTreeMap<(nexthop::VrfId, IpAddr), &Vec<u32>> = snap
            .interfaces
            .iter()
            .flatten()
            .filter(|i| i.kind == InterfaceKind::Pod && !i.security_groups.is_empty())
            .flat_map(|i| {
                let addresses = i.ipv4.map(IpAddr::V4).into_iter().chain(i.ipv6.map(IpAddr::V6));
                addresses.map(move |a| ((i.vrf, a), &i.security_groups))
            })
            .collect();
        for chain in snap.service_chains.iter() {
            let sides = [
                (chain.left, chain.right.1, &chain.leaked.0),
                (chain.right, chain.left.1, &chain.leaked.1),
            ];
            for ((vif, vrf), origin, prefixes) in sides {
                let (Some(vrf), Some(origin), Some(instance)) = (snap.vrf(vrf), snap.vrf(origin), snap.interface(vif))
                else {
                    continue;
                };
                let Some(label) = instance.label else {
                    continue;
                };
                self.vrfs.insert(vrf.name.clone(), u32::from(vrf.id.0));
                for prefix in prefixes {
                    if !taken.insert((vrf.name.clone(), *prefix)) {
                        continue;
                    }
                    let host = (prefix.prefix_len() == prefix.max_prefix_len()).then(|| prefix.addr());
                    self.routes.insert(LocalRoute {
                        vrf: vrf.name.clone(),
                        prefix: *prefix,
                        label,
                        security_groups: host
                            .and_then(|a| groups.get(&(origin.id, a)))
                            .map(|g| (*g).clone())
                            .unwrap_or_default(),
                        local_preference: instance.local_preference.unwrap_or(DEFAULT_LOCAL_PREFERENCE),
                        leaked_from: Some(origin.name.clone()),
                    });
                }
            }
        }
    }
}

/// Speaks for this node on one channel; see the module doc.
#[derive(Debug, Clone)]
pub struct Speaker {
    host: String,
    fabric_ip: Ipv4Addr,
    encaps: Vec<Encap>,
    said: Advertised,
    next_id: u64,
}

impl Speaker {
    /// A speaker for node `host` at fabric address `fabric_ip`, which accepts `encaps`.
    pub fn new(host: &str, fabric_ip: Ipv4Addr, encaps: &[Encap]) -> Self {
        Self {
            host: host.to_string(),
            fabric_ip,
            encaps: encaps.to_vec(),
            said: Advertised::default(),
            next_id: 0,
        }
    }

    /// Forgets what was said (a new channel starts from nothing).
    pub fn reset(&mut self) {
        self.said = Advertised::default();
    }

    /// The stanzas that bring the control node from what it was told to `now`, in
    /// the order the agent sends them: subscriptions before the routes published into
    /// them, withdrawals before the unsubscriptions.
    pub fn update(&mut self, now: &Advertised) -> Vec<String> {
        let said = std::mem::replace(&mut self.said, now.clone());
        let mut out = Vec::new();
        for (vrf, instance) in &now.vrfs {
            if said.vrfs.get(vrf) != Some(instance) {
                if said.vrfs.contains_key(vrf) {
                    let id = self.id();
                    out.push(super::messages::unsubscribe(&self.host, id, vrf));
                }
                let id = self.id();
                out.push(super::messages::subscribe(&self.host, id, vrf, *instance));
            }
        }
        for route in now.routes.difference(&said.routes) {
            out.push(self.publish(route));
            out.push(self.collection(route, "associate"));
        }
        // A route whose label changed was published again (a publish replaces).
        let still: BTreeSet<(&str, IpNet)> = now.routes.iter().map(|r| (r.vrf.as_str(), r.prefix)).collect();
        for route in said.routes.difference(&now.routes) {
            if !still.contains(&(route.vrf.as_str(), route.prefix)) {
                out.push(self.collection(route, "dissociate"));
            }
        }
        for route in now.evpn.difference(&said.evpn) {
            out.push(self.publish_evpn(route));
            out.push(self.collection_of(&route.vrf, &evpn_node(route), "associate", "collection_l2"));
        }
        let still: BTreeSet<(&str, String)> = now.evpn.iter().map(|r| (r.vrf.as_str(), evpn_node(r))).collect();
        for route in said.evpn.difference(&now.evpn) {
            let node = evpn_node(route);
            if !still.contains(&(route.vrf.as_str(), node.clone())) {
                out.push(self.collection_of(&route.vrf, &node, "dissociate", "collection_l2"));
            }
        }
        for vrf in said.vrfs.keys().filter(|v| !now.vrfs.contains_key(*v)) {
            let id = self.id();
            out.push(super::messages::unsubscribe(&self.host, id, vrf));
        }
        out
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id - 1
    }

    /// The `publish` of a local route, every element written as the agent writes it.
    fn publish(&mut self, route: &LocalRoute) -> String {
        let id = self.id();
        let af = if route.prefix.addr().is_ipv4() { 1 } else { 2 };
        let vn = virtual_network(route.leaked_from.as_deref().unwrap_or(&route.vrf));
        let mut encaps = String::new();
        // An inet route carries an MPLS label: VXLAN reachability (a VNI) is what the
        // EVPN route of the same address says.
        for e in &self.encaps {
            let name = match e {
                Encap::MplsOverGre => "gre",
                Encap::MplsOverUdp => "udp",
                Encap::Vxlan => continue,
            };
            let _ = write!(encaps, "<tunnel-encapsulation>{name}</tunnel-encapsulation>");
        }
        format!(
            "<iq type=\"set\" from=\"{host}\" to=\"{CONTROL_NODE}/bgp-peer\" id=\"pubsub{id}\"><pubsub xmlns=\"{PUBSUB}\"><publish node=\"{node}\"><item><entry><nlri><af>{af}</af><safi>1</safi><address>{prefix}</address></nlri><next-hops><next-hop><af>1</af><address>{fabric}</address><mac></mac><label>{label}</label><vni>0</vni><tunnel-encapsulation-list>{encaps}</tunnel-encapsulation-list><virtual-network>{vn}</virtual-network></next-hop></next-hops><version>1</version><virtual-network>{vn}</virtual-network><mobility seqno=\"0\" sticky=\"false\" /><sequence-number>0</sequence-number><security-group-list>{groups}</security-group-list><local-preference>{preference}</local-preference><med>0</med><sub-protocol>interface</sub-protocol></entry></item></publish></pubsub></iq>",
            host = escape(&self.host),
            node = escape(node(route)),
            prefix = route.prefix,
            fabric = self.fabric_ip,
            label = route.label,
            preference = route.local_preference,
            vn = escape(&vn),
            groups = route
                .security_groups
                .iter()
                .map(|g| format!("<security-group>{g}</security-group>"))
                .collect::<String>(),
        )
    }

    /// The `associate` or `dissociate` of a route to its VRF's collection.
    fn collection(&mut self, route: &LocalRoute, what: &str) -> String {
        self.collection_of(&route.vrf, &node(route), what, "collection")
    }

    /// The `associate` or `dissociate` of node `node` to VRF `vrf`'s collection, the
    /// IQ id prefixed `id_prefix` (`collection`, `collection_l2` for EVPN).
    fn collection_of(&mut self, vrf: &str, node: &str, what: &str, id_prefix: &str) -> String {
        let id = self.id();
        format!(
            "<iq type=\"set\" from=\"{}\" to=\"{CONTROL_NODE}/bgp-peer\" id=\"{id_prefix}{}\"><pubsub xmlns=\"{PUBSUB}\"><collection node=\"{}\"><{what} node=\"{}\" /></collection></pubsub></iq>",
            escape(&self.host),
            id,
            escape(vrf),
            escape(node),
        )
    }

    /// The `publish` of an EVPN route as the agent writes it (VXLAN: the label and
    /// the ethernet tag are the VNI; no virtual network).
    fn publish_evpn(&mut self, route: &EvpnRoute) -> String {
        let id = self.id();
        format!(
            "<iq type=\"set\" from=\"{host}\" to=\"{CONTROL_NODE}/bgp-peer\" id=\"pubsub_l2{id}\"><pubsub xmlns=\"{PUBSUB}\"><publish node=\"{node}\"><item><entry><nlri><af>25</af><safi>242</safi><ethernet-tag>{vni}</ethernet-tag><mac>{mac}</mac><address>{prefix}</address></nlri><next-hops><next-hop><af>1</af><address>{fabric}</address><label>{vni}</label><tunnel-encapsulation-list><tunnel-encapsulation>vxlan</tunnel-encapsulation></tunnel-encapsulation-list></next-hop></next-hops><sequence-number>0</sequence-number><security-group-list></security-group-list><local-preference>{preference}</local-preference><med>0</med></entry></item></publish></pubsub></iq>",
            host = escape(&self.host),
            node = escape(evpn_node(route)),
            vni = route.vni,
            preference = route.local_preference,
            mac = route.mac,
            prefix = route.prefix,
            fabric = self.fabric_ip,
        )
    }
}

/// The pubsub node of an EVPN route: `25/242/MAC,IP/LEN` (no VRF: the collection
/// names it).
fn evpn_node(route: &EvpnRoute) -> String {
    format!("25/242/{},{}", route.mac, route.prefix)
}

/// The pubsub node of a route: AFI/SAFI/VRF/prefix.
fn node(route: &LocalRoute) -> String {
    let af = if route.prefix.addr().is_ipv4() { 1 } else { 2 };
    format!("{af}/1/{}/{}", route.vrf, route.prefix)
}

/// The virtual network of a routing instance `domain:project:vn:ri` is its parent,
/// `domain:project:vn` (a network's own instance, `vn:vn`, the fabric's
/// `ip-fabric:__default__`, a service chain's `vn:service-...`); another name stands
/// for itself.
pub(crate) fn virtual_network(vrf: &str) -> String {
    let parts: Vec<&str> = vrf.split(':').collect();
    match parts.as_slice() {
        [d, p, vn, _] => format!("{d}:{p}:{vn}"),
        _ => vrf.to_string(),
    }
}

#[cfg(test)]
mod tests;

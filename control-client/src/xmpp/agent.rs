//! What this node tells a control node, as the real agent tells it: each VRF with a
//! local interface is subscribed with its instance id (the vrouter's VRF index), and
//! each local interface address is published into it (a `publish` of the route, then
//! an `associate` of it to the VRF's collection); what goes away is dissociated, and
//! a VRF without interfaces unsubscribed. Pure: [`Speaker::update`] compares what
//! the control node was told with what is true now and returns the stanzas.

use super::messages::{CONTROL_NODE, PUBSUB};
use ipnet::IpNet;
use nexthop::encap::Encap;
use nexthop::{InterfaceKind, Snapshot};
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
}

/// What this node has to tell: VRFs by name with their instance ids, and routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Advertised {
    /// VRFs with a local interface, and the vrouter's index for each.
    pub vrfs: BTreeMap<String, u32>,
    /// Local interface addresses.
    pub routes: BTreeSet<LocalRoute>,
}

impl Advertised {
    /// What a published snapshot has to tell: every pod interface's VRF and addresses.
    pub fn of(snap: &Snapshot) -> Self {
        let mut out = Advertised::default();
        for i in snap
            .interfaces
            .iter()
            .flatten()
            .filter(|i| i.kind == InterfaceKind::Pod)
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
                });
            }
        }
        // Floating addresses, in their own VRFs, reached by the pod's label.
        for e in snap.floating.by_address.values() {
            let (Some(vrf), Some(label)) = (snap.vrf(e.vrf), snap.interface(e.vif).and_then(|i| i.label)) else {
                continue;
            };
            out.vrfs.insert(vrf.name.clone(), u32::from(e.vrf.0));
            out.routes.insert(LocalRoute {
                vrf: vrf.name.clone(),
                prefix: IpNet::from(e.address),
                label,
            });
        }
        out
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
        let vn = virtual_network(&route.vrf);
        let mut encaps = String::new();
        for e in &self.encaps {
            let name = match e {
                Encap::MplsOverGre => "gre",
                Encap::MplsOverUdp => "udp",
                Encap::Vxlan => "vxlan",
            };
            let _ = write!(encaps, "<tunnel-encapsulation>{name}</tunnel-encapsulation>");
        }
        format!(
            "<iq type=\"set\" from=\"{host}\" to=\"{CONTROL_NODE}/bgp-peer\" id=\"pubsub{id}\"><pubsub xmlns=\"{PUBSUB}\"><publish node=\"{node}\"><item><entry><nlri><af>{af}</af><safi>1</safi><address>{prefix}</address></nlri><next-hops><next-hop><af>1</af><address>{fabric}</address><mac></mac><label>{label}</label><vni>0</vni><tunnel-encapsulation-list>{encaps}</tunnel-encapsulation-list><virtual-network>{vn}</virtual-network></next-hop></next-hops><version>1</version><virtual-network>{vn}</virtual-network><mobility seqno=\"0\" sticky=\"false\" /><sequence-number>0</sequence-number><security-group-list></security-group-list><local-preference>100</local-preference><med>0</med><sub-protocol>interface</sub-protocol></entry></item></publish></pubsub></iq>",
            host = escape(&self.host),
            node = escape(node(route)),
            prefix = route.prefix,
            fabric = self.fabric_ip,
            label = route.label,
            vn = escape(&vn),
        )
    }

    /// The `associate` or `dissociate` of a route to its VRF's collection.
    fn collection(&mut self, route: &LocalRoute, what: &str) -> String {
        let id = self.id();
        format!(
            "<iq type=\"set\" from=\"{}\" to=\"{CONTROL_NODE}/bgp-peer\" id=\"collection{}\"><pubsub xmlns=\"{PUBSUB}\"><collection node=\"{}\"><{what} node=\"{}\" /></collection></pubsub></iq>",
            escape(&self.host),
            id,
            escape(&route.vrf),
            escape(node(route)),
        )
    }
}

/// The pubsub node of a route: AFI/SAFI/VRF/prefix.
fn node(route: &LocalRoute) -> String {
    let af = if route.prefix.addr().is_ipv4() { 1 } else { 2 };
    format!("{af}/1/{}/{}", route.vrf, route.prefix)
}

/// The virtual network of a routing instance `domain:project:vn:vn` is
/// `domain:project:vn`; another name stands for itself.
fn virtual_network(vrf: &str) -> String {
    let parts: Vec<&str> = vrf.split(':').collect();
    match parts.as_slice() {
        [d, p, vn, ri] if vn == ri => format!("{d}:{p}:{vn}"),
        _ => vrf.to_string(),
    }
}

#[cfg(test)]
mod tests;

//! The control node's side of the protocol, for the lab and the tests: it reflects
//! routes between the vrouters connected to it, as a control node's route reflection
//! does. In production the vrouter peers with Tungsten Fabric / OpenSDN control
//! nodes; this is not one (no BGP, no policy; configuration is what the caller
//! hands it, sent to the vrouters that subscribed theirs).
//!
//! Pure: [`Reflector::handle`] takes a stanza from a vrouter and returns the
//! messages to send to each vrouter. What one vrouter publishes and associates into
//! a VRF goes to every other vrouter subscribed to that VRF; the same prefix from
//! several vrouters goes out as one item with each one's next hop (ECMP). As BGP's
//! best path: only the paths of the highest local preference go out, so a vrouter
//! whose own path is preferred is sent none (its standby's path is no ECMP member),
//! and when the preferred path goes, the next one is sent.

use super::element::Element;
use super::messages::{CONTROL_NODE, END_OF_RIB, PUBSUB};
use quick_xml::escape::escape;
use std::collections::{BTreeMap, BTreeSet};

/// A connected vrouter, numbered by the caller.
pub type AgentId = u64;

/// The reflector's state; see the module doc.
#[derive(Debug, Default)]
pub struct Reflector {
    /// Each vrouter's name and subscriptions.
    agents: BTreeMap<AgentId, Agent>,
    /// Per VRF and item: each vrouter's entry.
    routes: BTreeMap<String, BTreeMap<ItemKey, Entries>>,
    /// Entries published and not yet associated, by vrouter and node.
    pending: BTreeMap<(AgentId, String), Element>,
    /// What each vrouter was sent an item for (so that it gets a retract when the
    /// last other path goes, and no retract for a route it never heard of).
    sent: BTreeSet<(AgentId, String, (String, String))>,
}

#[derive(Debug, Default)]
struct Agent {
    host: String,
    subscribed: BTreeSet<String>,
    /// Its config subscriptions (`virtual-router:...`, `virtual-machine:UUID`).
    config_nodes: BTreeSet<String>,
    /// Its end-of-RIB is owed: sent once, when its subscriptions are over (its first
    /// other stanza: the agent subscribes every VRF before it publishes), so that a
    /// vrouter does not take the first VRF's end for the end of all its routes.
    end_of_rib_due: bool,
    end_of_rib_sent: bool,
    /// It sent its own end-of-RIB (an IQ publish with no item).
    end_of_rib_received: bool,
}

/// An item of a VRF: the `AFI/SAFI` of its node and its prefix.
type ItemKey = (String, String);

/// Each vrouter's entry for one item.
type Entries = BTreeMap<AgentId, Element>;

/// A message for one vrouter.
pub type Outgoing = (AgentId, String);

impl Reflector {
    /// A vrouter connected (its stream is open) under `host`.
    pub fn connect(&mut self, agent: AgentId, host: &str) {
        self.agents.insert(
            agent,
            Agent {
                host: host.to_string(),
                ..Agent::default()
            },
        );
    }

    /// True once `agent` has sent its end-of-RIB on this connection.
    pub fn end_of_rib_from(&self, agent: AgentId) -> bool {
        self.agents.get(&agent).is_some_and(|a| a.end_of_rib_received)
    }

    /// A vrouter went away: its routes are withdrawn from the others.
    pub fn disconnect(&mut self, agent: AgentId) -> Vec<Outgoing> {
        self.agents.remove(&agent);
        self.sent.retain(|(a, ..)| *a != agent);
        self.pending.retain(|(a, _), _| *a != agent);
        let mut out = Vec::new();
        let keys: Vec<(String, (String, String))> = self
            .routes
            .iter()
            .flat_map(|(vrf, items)| {
                items
                    .iter()
                    .filter(|(_, by)| by.contains_key(&agent))
                    .map(move |(k, _)| (vrf.clone(), k.clone()))
            })
            .collect();
        for (vrf, key) in keys {
            if let Some(by) = self.routes.get_mut(&vrf).and_then(|items| items.get_mut(&key)) {
                by.remove(&agent);
            }
            out.extend(self.announce(&vrf, &key, None));
        }
        out
    }

    /// True if `agent` subscribed its virtual router's configuration.
    pub fn wants_config(&self, agent: AgentId) -> bool {
        self.agents
            .get(&agent)
            .is_some_and(|a| a.config_nodes.contains(&super::messages::virtual_router_node(&a.host)))
    }

    /// The config nodes `agent` subscribed.
    pub fn config_subscriptions(&self, agent: AgentId) -> Vec<String> {
        self.agents
            .get(&agent)
            .map(|a| a.config_nodes.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// What a stanza from `agent` makes the reflector send.
    pub fn handle(&mut self, agent: AgentId, stanza: &Element) -> Vec<Outgoing> {
        let Some(pubsub) = stanza.child("pubsub") else {
            return Vec::new();
        };
        if stanza.attr("to").is_some_and(|to| to.ends_with("/config")) {
            if let Some(a) = self.agents.get_mut(&agent) {
                for op in &pubsub.children {
                    match (op.name.as_str(), op.attr("node")) {
                        ("subscribe", Some(node)) => a.config_nodes.insert(node.to_string()),
                        ("unsubscribe", Some(node)) => a.config_nodes.remove(node),
                        _ => false,
                    };
                }
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        let subscribing = pubsub.children.iter().any(|op| op.name == "subscribe");
        if let Some(a) = self.agents.get_mut(&agent).filter(|a| a.end_of_rib_due && !subscribing) {
            a.end_of_rib_due = false;
            a.end_of_rib_sent = true;
            out.push((
                agent,
                self.message(agent, &format!("<items node=\"{END_OF_RIB}\"></items>")),
            ));
        }
        for op in &pubsub.children {
            match op.name.as_str() {
                "subscribe" => {
                    if let Some(vrf) = op.attr("node") {
                        out.extend(self.subscribe(agent, vrf));
                    }
                }
                "unsubscribe" => {
                    if let (Some(vrf), Some(a)) = (op.attr("node"), self.agents.get_mut(&agent)) {
                        a.subscribed.remove(vrf);
                    }
                }
                "publish" if op.attr("node").is_none() && op.child("item").is_none() => {
                    if let Some(a) = self.agents.get_mut(&agent) {
                        a.end_of_rib_received = true;
                    }
                }
                "publish" => {
                    let entry = op.child("item").and_then(|i| i.child("entry"));
                    if let (Some(node), Some(entry)) = (op.attr("node"), entry) {
                        self.pending.insert((agent, node.to_string()), entry.clone());
                    }
                }
                "collection" => {
                    let Some(vrf) = op.attr("node") else { continue };
                    for change in &op.children {
                        let Some((family, prefix)) = change.attr("node").and_then(split_node) else {
                            continue;
                        };
                        let key = (family, prefix);
                        let node = change.attr("node").unwrap_or_default().to_string();
                        let items = self.routes.entry(vrf.to_string()).or_default();
                        match change.name.as_str() {
                            "associate" => {
                                if let Some(entry) = self.pending.remove(&(agent, node)) {
                                    items.entry(key.clone()).or_default().insert(agent, entry);
                                }
                            }
                            "dissociate" => {
                                if let Some(by) = items.get_mut(&key) {
                                    by.remove(&agent);
                                }
                            }
                            _ => continue,
                        }
                        out.extend(self.announce(vrf, &key, None));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// A subscription: everything the VRF holds from other vrouters, then the
    /// end-of-RIB marker.
    fn subscribe(&mut self, agent: AgentId, vrf: &str) -> Vec<Outgoing> {
        let Some(a) = self.agents.get_mut(&agent) else {
            return Vec::new();
        };
        a.subscribed.insert(vrf.to_string());
        a.end_of_rib_due = !a.end_of_rib_sent;
        let keys: Vec<(String, String)> = self
            .routes
            .get(vrf)
            .map(|i| i.keys().cloned().collect())
            .unwrap_or_default();
        keys.iter().flat_map(|k| self.announce(vrf, k, Some(agent))).collect()
    }

    /// The current state of one route to every subscriber of `vrf` (or to `only`):
    /// an item with every other vrouter's next hops, or a retract when none is left
    /// for a vrouter that was sent the route.
    fn announce(&mut self, vrf: &str, key: &(String, String), only: Option<AgentId>) -> Vec<Outgoing> {
        let by = self.routes.get(vrf).and_then(|items| items.get(key));
        let (family, prefix) = key;
        let mut out = Vec::new();
        let mut now_sent = Vec::new();
        let mut retracted = Vec::new();
        for (id, agent) in &self.agents {
            if !agent.subscribed.contains(vrf) || only.is_some_and(|o| o != *id) {
                continue;
            }
            let best = by.and_then(|b| b.values().map(local_preference).max());
            let others: Vec<&Element> = by
                .map(|b| {
                    b.iter()
                        .filter(|(a, e)| *a != id && Some(local_preference(e)) == best)
                        .map(|(_, e)| e)
                        .collect()
                })
                .unwrap_or_default();
            let mark = (*id, vrf.to_string(), key.clone());
            let items = match merged(&others) {
                Some(entry) => {
                    now_sent.push(mark);
                    format!(
                        "<items node=\"{family}/{}\"><item id=\"{}\">{}</item></items>",
                        escape(vrf),
                        escape(prefix.as_str()),
                        entry.to_xml()
                    )
                }
                None if self.sent.contains(&mark) => {
                    retracted.push(mark);
                    format!(
                        "<items node=\"{family}/{}\"><retract id=\"{}\" /></items>",
                        escape(vrf),
                        escape(prefix.as_str())
                    )
                }
                None => continue,
            };
            out.push((*id, self.message(*id, &items)));
        }
        self.sent.extend(now_sent);
        for mark in retracted {
            self.sent.remove(&mark);
        }
        out
    }

    fn message(&self, to: AgentId, items: &str) -> String {
        let host = self.agents.get(&to).map(|a| a.host.as_str()).unwrap_or_default();
        format!(
            "<message from=\"{CONTROL_NODE}\" to=\"{}/bgp-peer\"><event xmlns=\"{PUBSUB}\">{items}</event></message>",
            escape(host)
        )
    }
}

/// An entry's local preference (BGP's default when it has none).
fn local_preference(entry: &Element) -> u32 {
    entry
        .child_text("local-preference")
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(super::agent::DEFAULT_LOCAL_PREFERENCE)
}

/// One entry with the next hops of all of `entries` (ECMP across vrouters).
fn merged(entries: &[&Element]) -> Option<Element> {
    let (first, rest) = entries.split_first()?;
    let mut entry = (*first).clone();
    let Some(hops) = entry.children.iter_mut().find(|c| c.name == "next-hops") else {
        return Some(entry);
    };
    for other in rest {
        if let Some(more) = other.child("next-hops") {
            hops.children.extend(more.children.iter().cloned());
        }
    }
    Some(entry)
}

/// A publish node `AFI/SAFI/VRF/ADDR/PLEN` as (`AFI/SAFI`, `ADDR/PLEN`).
fn split_node(node: &str) -> Option<(String, String)> {
    let mut from_end = node.rsplitn(3, '/');
    let (plen, addr, rest) = (from_end.next()?, from_end.next()?, from_end.next()?);
    let mut parts = rest.splitn(3, '/');
    let (afi, safi) = (parts.next()?, parts.next()?);
    Some((format!("{afi}/{safi}"), format!("{addr}/{plen}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::agent::{Advertised, LocalRoute, Speaker, DEFAULT_LOCAL_PREFERENCE};
    use crate::xmpp::{Family, Incoming};
    use nexthop::encap::Encap;

    fn advertise(routes: &[(&str, &str, u32)]) -> Advertised {
        advertise_preferred(routes, DEFAULT_LOCAL_PREFERENCE)
    }

    fn advertise_preferred(routes: &[(&str, &str, u32)], local_preference: u32) -> Advertised {
        let mut a = Advertised::default();
        for (vrf, prefix, label) in routes {
            a.vrfs.insert((*vrf).to_string(), 1);
            a.routes.insert(LocalRoute {
                vrf: (*vrf).to_string(),
                prefix: prefix.parse().unwrap(),
                label: *label,
                security_groups: Vec::new(),
                local_preference,
                leaked_from: None,
            });
        }
        a
    }

    /// Feeds what a speaker says to the reflector; returns what `to` receives, decoded.
    fn say(r: &mut Reflector, agent: AgentId, stanzas: Vec<String>, to: AgentId) -> Vec<Incoming> {
        stanzas
            .iter()
            .flat_map(|s| r.handle(agent, &Element::parse(s).unwrap()))
            .filter(|(a, _)| *a == to)
            .map(|(_, m)| Incoming::decode(&Element::parse(&m).unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn routes_go_to_the_other_vrouters_merge_into_ecmp_and_are_withdrawn() {
        let mut r = Reflector::default();
        let (a, b, c) = (1, 2, 3);
        r.connect(a, "node-a");
        r.connect(b, "node-b");
        r.connect(c, "node-c");
        let mut sa = Speaker::new("node-a", [198, 18, 0, 1].into(), &[Encap::MplsOverUdp]);
        let mut sb = Speaker::new("node-b", [198, 18, 0, 2].into(), &[Encap::MplsOverUdp]);
        let mut sc = Speaker::new("node-c", [198, 18, 0, 3].into(), &[Encap::MplsOverUdp]);
        // b subscribes first and, once it publishes, gets its one end-of-RIB.
        let got = say(&mut r, b, sb.update(&advertise(&[("red", "198.18.1.2/32", 20)])), b);
        assert_eq!(got, [Incoming::EndOfRib]);
        let got = say(
            &mut r,
            b,
            sb.update(&advertise(&[
                ("red", "198.18.1.2/32", 20),
                ("blue", "198.18.2.2/32", 21),
            ])),
            b,
        );
        assert!(
            !got.contains(&Incoming::EndOfRib),
            "one end-of-RIB per connection: {got:?}"
        );
        // a publishes: b receives a's route with a's next hop and label.
        let got = say(&mut r, a, sa.update(&advertise(&[("red", "198.18.1.9/32", 30)])), b);
        let Some(Incoming::Routes(u)) = got.last() else {
            panic!("{got:?}")
        };
        assert_eq!((u.family, u.vrf.as_str(), u.items.len()), (Family::Inet, "red", 1));
        assert_eq!(u.items[0].next_hops[0].address, Some([198, 18, 0, 1].into()));
        assert_eq!(u.items[0].next_hops[0].label, 30);
        // c publishes the same prefix (anycast): b gets one item with both next hops.
        let got = say(&mut r, c, sc.update(&advertise(&[("red", "198.18.1.9/32", 40)])), b);
        let Some(Incoming::Routes(u)) = got.last() else {
            panic!("{got:?}")
        };
        let labels: Vec<u32> = u.items[0].next_hops.iter().map(|n| n.label).collect();
        assert_eq!(labels, [30, 40]);
        // a goes away: b keeps c's next hop only; c withdraws too: b gets a retract.
        let got: Vec<Incoming> = r
            .disconnect(a)
            .into_iter()
            .filter(|(to, _)| *to == b)
            .map(|(_, m)| Incoming::decode(&Element::parse(&m).unwrap()).unwrap())
            .collect();
        let Some(Incoming::Routes(u)) = got.last() else {
            panic!("{got:?}")
        };
        assert_eq!(u.items[0].next_hops.len(), 1);
        let got = say(&mut r, c, sc.update(&Advertised::default()), b);
        let Some(Incoming::Routes(u)) = got.last() else {
            panic!("{got:?}")
        };
        assert_eq!(u.retracts, ["198.18.1.9/32"]);
    }

    /// What `who` saying `what` makes the reflector send about the VIP
    /// 198.18.100.40: per recipient, the labels of each update (empty: a retract).
    fn tell(r: &mut Reflector, speaker: &mut Speaker, who: AgentId, what: &Advertised) -> Vec<(AgentId, Vec<u32>)> {
        speaker
            .update(what)
            .iter()
            .flat_map(|s| r.handle(who, &Element::parse(s).unwrap()))
            .filter_map(
                |(to, m)| match Incoming::decode(&Element::parse(&m).unwrap()).unwrap() {
                    Incoming::Routes(u) if u.retracts == ["198.18.100.40/32"] => Some((to, Vec::new())),
                    Incoming::Routes(u) if u.items.first().is_some_and(|i| i.id == "198.18.100.40/32") => {
                        Some((to, u.items[0].next_hops.iter().map(|n| n.label).collect()))
                    }
                    _ => None,
                },
            )
            .collect()
    }

    #[test]
    fn only_the_paths_of_the_highest_local_preference_go_out() {
        let mut r = Reflector::default();
        let (active, standby, client) = (1, 2, 3);
        let mut speakers: Vec<Speaker> = (1..=3)
            .map(|i| Speaker::new(&format!("node-{i}"), [198, 18, 0, i].into(), &[Encap::MplsOverUdp]))
            .collect();
        for id in [active, standby, client] {
            r.connect(id, &format!("node-{id}"));
        }
        let vip = |label| [("red", "198.18.100.40/32", label)];
        let _ = tell(
            &mut r,
            &mut speakers[2],
            client,
            &advertise(&[("red", "198.18.1.2/32", 10)]),
        );
        let got = tell(&mut r, &mut speakers[1], standby, &advertise_preferred(&vip(20), 100));
        assert_eq!(got, [(client, vec![20])], "the standby's path while it is the only one");
        let got = tell(&mut r, &mut speakers[0], active, &advertise_preferred(&vip(30), 200));
        // Subscribing, the active is sent the standby's path; once it publishes its
        // own (best), a retract of it. The client and the standby (which prefers the
        // active's to its own) get the active's path alone, no ECMP.
        assert_eq!(
            got,
            [
                (active, vec![20]),
                (active, vec![]),
                (standby, vec![30]),
                (client, vec![30])
            ]
        );
        // The active withdraws (its haproxy stopped answering): the client and the
        // active get the standby's path, the standby a retract of the active's.
        let got = tell(&mut r, &mut speakers[0], active, &advertise(&[]));
        assert_eq!(got, [(active, vec![20]), (standby, vec![]), (client, vec![20])]);
        // It comes back (subscribing anew): everyone but itself goes to it again.
        let got = tell(&mut r, &mut speakers[0], active, &advertise_preferred(&vip(31), 200));
        assert_eq!(
            got,
            [
                (active, vec![20]),
                (active, vec![]),
                (standby, vec![31]),
                (client, vec![31])
            ]
        );
    }

    #[test]
    fn a_vrouters_end_of_rib_is_recorded_and_changes_no_route() {
        let mut r = Reflector::default();
        r.connect(1, "node-a");
        r.connect(2, "node-b");
        let mut sa = Speaker::new("node-a", [198, 18, 0, 1].into(), &[Encap::MplsOverUdp]);
        let _ = say(&mut r, 1, sa.update(&advertise(&[("red", "198.18.1.2/32", 20)])), 2);
        assert!(!r.end_of_rib_from(1));
        let got = say(&mut r, 1, vec![crate::xmpp::messages::end_of_rib("node-a")], 2);
        assert!(got.is_empty(), "{got:?}");
        assert!(r.end_of_rib_from(1) && !r.end_of_rib_from(2));
    }
}

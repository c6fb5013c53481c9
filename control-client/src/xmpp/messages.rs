//! The stanzas of the agent <-> control node protocol as typed values: what the
//! control node sends (route updates and retracts per VRF and address family,
//! end-of-RIB, config) read from an [`Element`], and what the vrouter sends written
//! as the real agent writes it (stream open, subscribe, unsubscribe).
//! Decoders tolerate missing and unknown elements, as the agent's do.

use super::element::Element;
use ipnet::IpNet;
use quick_xml::escape::escape;
use std::net::Ipv4Addr;

/// The control node's XMPP address.
pub const CONTROL_NODE: &str = "network-control@contrailsystems.com";
/// Namespace of publish-subscribe stanzas.
pub(crate) const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// The node name of the end-of-RIB marker.
pub(crate) const END_OF_RIB: &str = "0/0/EndOfRib";

/// A route table of a VRF, by address family (the AFI/SAFI prefix of a node name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `1/1`: IPv4 unicast.
    Inet,
    /// `2/1`: IPv6 unicast.
    Inet6,
    /// `25/242`: EVPN.
    Evpn,
    /// Anything else (multicast `1/241`, labeled `1/4`, MVPN `1/5`): ignored.
    Other(u16, u16),
}

impl Family {
    fn of(afi: u16, safi: u16) -> Self {
        match (afi, safi) {
            (1, 1) => Family::Inet,
            (2, 1) => Family::Inet6,
            (25, 242) => Family::Evpn,
            (a, s) => Family::Other(a, s),
        }
    }
}

/// One next hop of a route item (one per item from an agent; several for ECMP).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteNextHop {
    /// The remote compute node's fabric address.
    pub address: Option<Ipv4Addr>,
    /// MPLS label (or the VNI when VXLAN is used).
    pub label: u32,
    /// VXLAN network identifier, when given.
    pub vni: Option<u32>,
    /// The remote vrouter's MAC, when given.
    pub mac: Option<String>,
    /// Encapsulations the remote accepts (`gre`, `udp`, `vxlan`, `native`).
    pub encapsulations: Vec<String>,
    /// Its virtual network.
    pub virtual_network: Option<String>,
    /// Tags.
    pub tags: Vec<u32>,
}

/// One route of an update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteItem {
    /// The item id (the prefix, or `MAC,IP/len` for EVPN).
    pub id: String,
    /// The prefix, when the NLRI address is one.
    pub prefix: Option<IpNet>,
    /// Next hops: several make an ECMP route.
    pub next_hops: Vec<RouteNextHop>,
    /// The route's virtual network.
    pub virtual_network: Option<String>,
    /// Security groups.
    pub security_groups: Vec<u32>,
    /// BGP local preference.
    pub local_preference: Option<u32>,
    /// Sequence number (mobility).
    pub sequence: Option<u64>,
    /// EVPN: the MAC of the NLRI (the destination's).
    pub mac: Option<String>,
    /// EVPN: the ethernet tag of the NLRI (the VNI in VXLAN mode).
    pub ethernet_tag: Option<u32>,
}

/// A control node's route message for one VRF and family: items or retracts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteUpdate {
    /// Address family.
    pub family: Family,
    /// The VRF (routing instance) name.
    pub vrf: String,
    /// Routes added or replaced.
    pub items: Vec<RouteItem>,
    /// Ids of routes withdrawn.
    pub retracts: Vec<String>,
}

/// A stanza from the control node, as the vrouter acts on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// Routes for one VRF and family.
    Routes(RouteUpdate),
    /// The end of the initial route burst.
    EndOfRib,
    /// IF-MAP configuration (`<iq type="set"><config>`), as received.
    Config(Element),
    /// Anything else (IQ results, features): named, not acted on.
    Other(String),
}

/// Why a stanza from the control node cannot be used (logged; the channel stays up).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable {what}: {why}")]
pub struct DecodeError {
    /// What was being read.
    pub what: &'static str,
    /// Why it is unusable.
    pub why: String,
}

fn bad(what: &'static str, why: impl Into<String>) -> DecodeError {
    DecodeError { what, why: why.into() }
}

impl Incoming {
    /// Reads a stanza from the control node.
    pub fn decode(stanza: &Element) -> Result<Incoming, DecodeError> {
        match stanza.name.as_str() {
            "message" => {
                let Some(items) = stanza.child("event").and_then(|e| e.child("items")) else {
                    return Ok(Incoming::Other("message".into()));
                };
                let node = items.attr("node").ok_or_else(|| bad("items", "no node attribute"))?;
                if node == END_OF_RIB {
                    return Ok(Incoming::EndOfRib);
                }
                RouteUpdate::decode(node, items).map(Incoming::Routes)
            }
            "iq" => match stanza.child("config") {
                Some(config) => Ok(Incoming::Config(config.clone())),
                None => Ok(Incoming::Other("iq".into())),
            },
            other => Ok(Incoming::Other(other.into())),
        }
    }
}

impl RouteUpdate {
    fn decode(node: &str, items: &Element) -> Result<RouteUpdate, DecodeError> {
        // AFI/SAFI/VRF; the VRF name may itself contain '/'.
        let mut parts = node.splitn(3, '/');
        let (Some(afi), Some(safi), Some(vrf)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad("items", format!("node {node:?} is not AFI/SAFI/VRF")));
        };
        let number = |s: &str| s.parse::<u16>().map_err(|_| bad("items", format!("node {node:?}")));
        let family = Family::of(number(afi)?, number(safi)?);
        let mut update = RouteUpdate {
            family,
            vrf: vrf.to_string(),
            items: Vec::new(),
            retracts: Vec::new(),
        };
        for child in &items.children {
            match child.name.as_str() {
                "item" => update.items.push(RouteItem::decode(child)?),
                "retract" => {
                    let id = child.attr("id").ok_or_else(|| bad("retract", "no id"))?;
                    update.retracts.push(id.to_string());
                }
                _ => {}
            }
        }
        Ok(update)
    }
}

impl RouteItem {
    fn decode(item: &Element) -> Result<RouteItem, DecodeError> {
        let id = item.attr("id").ok_or_else(|| bad("item", "no id"))?.to_string();
        let entry = item
            .child("entry")
            .ok_or_else(|| bad("item", format!("{id}: no entry")))?;
        let nlri = entry.child("nlri");
        if let Some(nlri) = nlri {
            number::<u16>(nlri, "af")?;
            number::<u16>(nlri, "safi")?;
        }
        // Numbers the agent's generated decoder checks even where it does not use them.
        number::<u64>(entry, "version")?;
        number::<u32>(entry, "med")?;
        let address = nlri.and_then(|n| n.child_text("address")).unwrap_or(&id);
        let next_hops = match entry.child("next-hops") {
            Some(n) => n
                .children_named("next-hop")
                .map(RouteNextHop::decode)
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(RouteItem {
            prefix: address.parse().ok(),
            next_hops,
            virtual_network: text(entry, "virtual-network"),
            security_groups: numbers(entry.child("security-group-list"), "security-group")?,
            local_preference: number(entry, "local-preference")?,
            sequence: number(entry, "sequence-number")?,
            mac: nlri.and_then(|n| text(n, "mac")),
            ethernet_tag: match nlri {
                Some(n) => number(n, "ethernet-tag")?,
                None => None,
            },
            id,
        })
    }
}

impl RouteNextHop {
    fn decode(nh: &Element) -> Result<RouteNextHop, DecodeError> {
        number::<u16>(nh, "af")?;
        let address = match nh.child_text("address").filter(|a| !a.is_empty()) {
            Some(a) => Some(a.parse().map_err(|_| bad("next-hop", format!("address {a:?}")))?),
            None => None,
        };
        Ok(RouteNextHop {
            address,
            label: number(nh, "label")?.unwrap_or(0),
            vni: number(nh, "vni")?.filter(|v| *v != 0),
            mac: text(nh, "mac"),
            encapsulations: nh
                .child("tunnel-encapsulation-list")
                .map(|l| {
                    l.children_named("tunnel-encapsulation")
                        .map(|e| e.text.clone())
                        .collect()
                })
                .unwrap_or_default(),
            virtual_network: text(nh, "virtual-network"),
            tags: numbers(nh.child("tag-list"), "tag")?,
        })
    }
}

/// A child's text, if present and not empty.
fn text(e: &Element, name: &str) -> Option<String> {
    e.child_text(name).filter(|t| !t.is_empty()).map(str::to_string)
}

/// The number in child `name`: `None` when absent or empty, an error when it is
/// not a number (the whole item is then refused, as the agent refuses it).
fn number<T: std::str::FromStr>(e: &Element, name: &'static str) -> Result<Option<T>, DecodeError> {
    match e.child_text(name).filter(|t| !t.is_empty()) {
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| bad(name, format!("{t:?} is not a number"))),
        None => Ok(None),
    }
}

/// The numbers in the children named `name` of `list`.
fn numbers<T: std::str::FromStr>(list: Option<&Element>, name: &'static str) -> Result<Vec<T>, DecodeError> {
    let Some(list) = list else { return Ok(Vec::new()) };
    list.children_named(name)
        .map(|e| {
            e.text
                .parse()
                .map_err(|_| bad(name, format!("{:?} is not a number", e.text)))
        })
        .collect()
}

/// The stream open the agent writes (no XML declaration; `xmlns` is the subcluster
/// name, normally empty), byte for byte.
pub fn stream_open(host: &str) -> String {
    format!(
        "<stream:stream from=\"{}\" to=\"{CONTROL_NODE}\" version=\"1.0\" xml:lang=\"en\" xmlns=\"\" xmlns:stream=\"http://etherx.jabber.org/streams\" >",
        escape(host)
    )
}

/// The stream open a control node answers with, towards `host` (as OpenSDN's does:
/// the agent checks none of it).
pub fn control_node_stream_open(host: &str) -> String {
    format!(
        "<stream:stream from=\"{CONTROL_NODE}\" to=\"{}\" id=\"++1\" version=\"1.0\" xml:lang=\"en\" xmlns=\"\" xmlns:stream=\"http://etherx.jabber.org/streams\" >",
        escape(host)
    )
}

/// The stream close.
pub const STREAM_CLOSE: &str = "</stream:stream>";

/// Subscribes VRF `vrf` (its routes) with the vrouter's index for it, as the agent
/// does before it publishes into the VRF; `id` numbers the IQ.
pub fn subscribe(host: &str, id: u64, vrf: &str, instance_id: u32) -> String {
    format!(
        "<iq type=\"set\" from=\"{}\" to=\"{CONTROL_NODE}/bgp-peer\" id=\"subscribe{id}\"><pubsub xmlns=\"{PUBSUB}\"><subscribe node=\"{}\"><options><instance-id>{instance_id}</instance-id></options></subscribe></pubsub></iq>",
        escape(host),
        escape(vrf)
    )
}

/// The config node of this vrouter, which the agent subscribes on the channel that
/// serves configuration.
pub fn virtual_router_node(host: &str) -> String {
    format!("virtual-router:default-global-system-config:{host}")
}

/// Subscribes a config node (`virtual-router:...` for the node, `virtual-machine:UUID`
/// per VM), as the agent does: no IQ id, on the `config` resource.
pub fn config_subscribe(host: &str, node: &str) -> String {
    format!(
        "<iq type=\"set\" from=\"{}\" to=\"{CONTROL_NODE}/config\"><pubsub xmlns=\"{PUBSUB}\"><subscribe node=\"{}\" /></pubsub></iq>",
        escape(host),
        escape(node)
    )
}

/// Unsubscribes a config node (a `virtual-machine:UUID` whose last port went).
pub fn config_unsubscribe(host: &str, node: &str) -> String {
    format!(
        "<iq type=\"set\" from=\"{}\" to=\"{CONTROL_NODE}/config\"><pubsub xmlns=\"{PUBSUB}\"><unsubscribe node=\"{}\" /></pubsub></iq>",
        escape(host),
        escape(node)
    )
}

/// A config message from the control node to vrouter `host` (what a control node
/// sends: an IQ set to the vrouter's `config` resource holding `<config>`).
pub fn config_message(host: &str, config: &str) -> String {
    format!(
        "<iq type=\"set\" from=\"{CONTROL_NODE}\" to=\"{}/config\">{config}</iq>",
        escape(host)
    )
}

/// This node's end-of-RIB, sent once per connection after its initial routes: an IQ
/// publish with no item, the form a control node takes as the end of a peer's routes
/// for every family (tf-controller `BgpXmppChannel::ReceiveUpdate`: an empty items
/// list is the end-of-RIB marker), so that after this vrouter restarts the control
/// node sweeps the paths it did not send again at once instead of after its 300 s
/// end-of-RIB timer. (The real agent writes a `<message>` with an `0/0/EndOfRib`
/// items node, which the control node does not act on; its own test agent writes
/// this form, without an IQ id.)
pub fn end_of_rib(host: &str) -> String {
    format!(
        "<iq type=\"set\" from=\"{}\" to=\"{CONTROL_NODE}/bgp-peer\"><pubsub xmlns=\"{PUBSUB}\"><publish /></pubsub></iq>",
        escape(host)
    )
}

/// Unsubscribes VRF `vrf`.
pub fn unsubscribe(host: &str, id: u64, vrf: &str) -> String {
    format!(
        "<iq type=\"set\" from=\"{}\" to=\"{CONTROL_NODE}/bgp-peer\" id=\"unsubscribe{id}\"><pubsub xmlns=\"{PUBSUB}\"><unsubscribe node=\"{}\" /></pubsub></iq>",
        escape(host),
        escape(vrf)
    )
}

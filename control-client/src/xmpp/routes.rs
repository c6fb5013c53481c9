//! What a control node's route message asks of the forwarding state: each item
//! becomes a route (one next hop: a tunnel; several: ECMP; a member at this node's
//! own fabric address: the local interface its label names), each retract a
//! removal. Pure: the caller applies the changes as one publication.

use super::messages::{Family, RouteItem, RouteNextHop, RouteUpdate};
use crate::{DesiredState, RouteSpec, RouteTarget};
use ipnet::IpNet;
use nexthop::encap::Encap;
use nexthop::MacAddr;
use std::net::Ipv4Addr;

/// One change a route message makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Add or replace the route for this prefix.
    Set(RouteSpec),
    /// Add or replace the route for this prefix, which the control node leaked into
    /// this VRF from another network (the route's virtual network is that other
    /// one's: a service chain's or a network policy's route).
    Leaked(RouteSpec),
    /// Remove the route for this prefix in this VRF.
    Remove {
        /// VRF.
        vrf: String,
        /// Prefix.
        prefix: IpNet,
    },
}

/// An item or retract that could not be used, with why (logged, counted; the rest
/// of the message still applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The item or retract id.
    pub id: String,
    /// Why.
    pub why: String,
}

/// What this node knows that the mapping needs.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// This node's fabric address: a next hop there is one of our own interfaces.
    pub fabric_ip: Option<Ipv4Addr>,
    /// The desired state, for the interface that owns a label.
    pub state: &'a DesiredState,
}

/// The changes `update` asks for (inet and inet6; EVPN and other families are not
/// mapped yet and are all skipped), and what was skipped.
pub fn changes(update: &RouteUpdate, local: Local<'_>) -> (Vec<RouteChange>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    if update.family == Family::Evpn {
        return evpn_changes(update, local);
    }
    if !matches!(update.family, Family::Inet | Family::Inet6) {
        let why = format!("{:?} routes are not mapped yet", update.family);
        let ids = update
            .items
            .iter()
            .map(|i| i.id.clone())
            .chain(update.retracts.iter().cloned());
        skipped.extend(ids.map(|id| Skipped { id, why: why.clone() }));
        return (out, skipped);
    }
    // A route naming another network than the instance's own was leaked into it.
    let own_network = super::agent::virtual_network(&update.vrf);
    for item in &update.items {
        let leaked = item
            .virtual_network
            .as_deref()
            .is_some_and(|vn| !vn.is_empty() && vn != own_network);
        match route(&update.vrf, item, local) {
            Ok(spec) if leaked => out.push(RouteChange::Leaked(spec)),
            Ok(spec) => out.push(RouteChange::Set(spec)),
            Err(why) => skipped.push(Skipped {
                id: item.id.clone(),
                why,
            }),
        }
    }
    for id in &update.retracts {
        match id.parse::<IpNet>() {
            Ok(prefix) => out.push(RouteChange::Remove {
                vrf: update.vrf.clone(),
                prefix: prefix.trunc(),
            }),
            Err(_) => skipped.push(Skipped {
                id: id.clone(),
                why: "not a prefix".into(),
            }),
        }
    }
    (out, skipped)
}

/// EVPN (MAC+IP, type 2) items as routes to their IP address: a VXLAN member's
/// label is the VNI, and the inner destination MAC is the next hop's router MAC when
/// it names one, else the destination's own (the agent's bridged form, which a
/// Tungsten vrouter takes). MAC-only and broadcast items (bridging) and this node's
/// own routes reflected back are not for an L3 vrouter: ignored, not reported.
fn evpn_changes(update: &RouteUpdate, local: Local<'_>) -> (Vec<RouteChange>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for item in &update.items {
        let Some(prefix) = item.prefix.filter(|p| !p.addr().is_unspecified()) else {
            continue;
        };
        if item.mac.as_deref() == Some("ff:ff:ff:ff:ff:ff") {
            continue;
        }
        let remote: Vec<&RouteNextHop> = item
            .next_hops
            .iter()
            .filter(|nh| nh.address.is_some() && nh.address != local.fabric_ip)
            .collect();
        if remote.is_empty() && !item.next_hops.is_empty() {
            continue;
        }
        // An EVPN route over MPLS is bridging (its label an L2 label): not for an L3
        // vrouter. Over VXLAN the label is the VNI.
        if remote.iter().any(|nh| !nh.encapsulations.iter().any(|e| e == "vxlan")) {
            continue;
        }
        let dest_mac = item.mac.as_deref().and_then(|m| m.parse::<MacAddr>().ok());
        let members: Result<Vec<RouteTarget>, String> = remote
            .iter()
            .map(|nh| {
                Ok(RouteTarget::Tunnel {
                    remote: nh.address.ok_or("next hop without an address")?,
                    label: nh.vni.unwrap_or(nh.label),
                    encaps: vec![Encap::Vxlan],
                    mac: nh.mac.as_deref().and_then(|m| m.parse::<MacAddr>().ok()).or(dest_mac),
                })
            })
            .collect();
        let target = match members {
            Ok(m) if m.len() == 1 => m.into_iter().next().expect("one member"),
            Ok(m) if m.is_empty() => {
                skipped.push(Skipped {
                    id: item.id.clone(),
                    why: "no next hop".into(),
                });
                continue;
            }
            Ok(members) => RouteTarget::Ecmp { members },
            Err(why) => {
                skipped.push(Skipped {
                    id: item.id.clone(),
                    why,
                });
                continue;
            }
        };
        out.push(RouteChange::Set(RouteSpec {
            vrf: update.vrf.clone(),
            prefix: prefix.trunc(),
            target,
        }));
    }
    for id in &update.retracts {
        match evpn_prefix(id) {
            Some(prefix) if prefix.addr().is_unspecified() => {}
            Some(prefix) => out.push(RouteChange::Remove {
                vrf: update.vrf.clone(),
                prefix: prefix.trunc(),
            }),
            None => skipped.push(Skipped {
                id: id.clone(),
                why: "not [TAG-]MAC,IP/LEN".into(),
            }),
        }
    }
    (out, skipped)
}

/// The IP prefix of an EVPN item id, `[TAG-]MAC,IP/LEN`.
pub fn evpn_prefix(id: &str) -> Option<IpNet> {
    id.split_once(',')?.1.parse().ok()
}

/// The MAC of an EVPN item id, `[TAG-]MAC,IP/LEN`.
pub fn evpn_mac(id: &str) -> Option<&str> {
    id.split_once(',')?.0.rsplit('-').next()
}

fn route(vrf: &str, item: &RouteItem, local: Local<'_>) -> Result<RouteSpec, String> {
    let prefix = item.prefix.ok_or("no prefix")?.trunc();
    let members: Vec<RouteTarget> = item
        .next_hops
        .iter()
        .map(|nh| member(nh, local))
        .collect::<Result<_, _>>()?;
    let target = match members.len() {
        0 => return Err("no next hop".into()),
        1 => members.into_iter().next().expect("one member"),
        _ => RouteTarget::Ecmp { members },
    };
    Ok(RouteSpec {
        vrf: vrf.to_string(),
        prefix,
        target,
    })
}

/// One next hop as a route target: a tunnel to another node, or our own interface.
fn member(nh: &RouteNextHop, local: Local<'_>) -> Result<RouteTarget, String> {
    let remote = nh.address.ok_or("next hop without an address")?;
    if Some(remote) == local.fabric_ip {
        let name = local
            .state
            .interface_with_label(nh.label)
            .ok_or_else(|| format!("no local interface has label {}", nh.label))?;
        return Ok(RouteTarget::Interface { name: name.to_string() });
    }
    // udp -> MPLSoUDP, gre -> MPLSoGRE, vxlan -> VXLAN; others (native) are not ours.
    let encaps: Vec<Encap> = nh
        .encapsulations
        .iter()
        .filter_map(|e| match e.as_str() {
            "udp" => Some(Encap::MplsOverUdp),
            "gre" => Some(Encap::MplsOverGre),
            "vxlan" => Some(Encap::Vxlan),
            _ => None,
        })
        .collect();
    // VXLAN beside MPLS encapsulations without a VNI: the label is an MPLS label,
    // which is no VNI; VXLAN to that node is what its EVPN route says.
    let encaps: Vec<Encap> = if nh.vni.is_none() && encaps.len() > 1 {
        encaps.into_iter().filter(|e| *e != Encap::Vxlan).collect()
    } else {
        encaps
    };
    // A next hop that names none is taken as GRE, then UDP (the agent's fallback).
    let encaps = if encaps.is_empty() {
        vec![Encap::MplsOverGre, Encap::MplsOverUdp]
    } else {
        encaps
    };
    // VXLAN-only members carry the VNI as the label.
    let label = match (encaps.as_slice(), nh.vni) {
        ([Encap::Vxlan], Some(vni)) => vni,
        _ => nh.label,
    };
    let mac = nh.mac.as_deref().and_then(|m| m.parse::<MacAddr>().ok());
    Ok(RouteTarget::Tunnel {
        remote,
        label,
        encaps,
        mac,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::{Element, Incoming};
    use crate::InterfaceSpec;

    fn update(stanza: &str) -> RouteUpdate {
        match Incoming::decode(&Element::parse(stanza).unwrap()).unwrap() {
            Incoming::Routes(u) => u,
            other => panic!("{other:?}"),
        }
    }

    /// A node at 198.18.0.1 with pod `p` in VRF red.
    fn node() -> DesiredState {
        let mut s = DesiredState::new(16);
        s.set_fabric("fabric0");
        s.add_interface(InterfaceSpec {
            name: "p".into(),
            vrf: "red".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            ..InterfaceSpec::default()
        })
        .unwrap();
        s
    }

    const FABRIC: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// This node (at [`FABRIC`]) with `state`.
    fn here(state: &DesiredState) -> Local<'_> {
        Local {
            fabric_ip: Some(FABRIC),
            state,
        }
    }

    #[test]
    fn a_captured_item_becomes_a_tunnel_route_by_the_encapsulations_it_names() {
        let state = node();
        let local = here(&state);
        let u = update(include_str!(
            "../../testdata/xmpp/10_cn_route_update_inet_single_nh_2016.xml"
        ));
        let (got, skipped) = changes(&u, local);
        assert!(skipped.is_empty(), "{skipped:?}");
        // The capture's route is VN-L's in VN-R's VRF: leaked by the policy that
        // joins the two networks.
        assert_eq!(
            got,
            [RouteChange::Leaked(RouteSpec {
                vrf: "default-domain:admin:VN-R:VN-R".into(),
                prefix: "200.200.200.0/24".parse().unwrap(),
                target: RouteTarget::Tunnel {
                    remote: Ipv4Addr::new(172, 222, 45, 2),
                    label: 23,
                    encaps: vec![Encap::MplsOverGre, Encap::MplsOverUdp],
                    mac: None,
                },
            })]
        );
    }

    #[test]
    fn an_item_of_another_virtual_network_is_a_route_leaked_into_the_vrf() {
        let state = node();
        let local = here(&state);
        let item = |prefix: &str, vn: &str| {
            format!(
                r#"<item id="{prefix}"><entry><nlri><af>1</af><safi>1</safi><address>{prefix}</address></nlri><next-hops><next-hop><af>1</af><address>198.18.0.2</address><label>20</label></next-hop></next-hops>{vn}</entry></item>"#
            )
        };
        // In VRF `d:p:red:red` (network `d:p:red`): its own network's route, one
        // with no network named, and one a service chain re-originated from blue.
        let stanza = format!(
            r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/d:p:red:red">{}{}{}</items></event></message>"#,
            item("198.19.1.0/24", "<virtual-network>d:p:red</virtual-network>"),
            item("198.19.2.0/24", ""),
            item("198.19.3.0/24", "<virtual-network>d:p:blue</virtual-network>"),
        );
        let (got, skipped) = changes(&update(&stanza), local);
        assert!(skipped.is_empty(), "{skipped:?}");
        let kinds: Vec<(&str, String)> = got
            .iter()
            .map(|c| match c {
                RouteChange::Set(r) => ("own", r.prefix.to_string()),
                RouteChange::Leaked(r) => ("leaked", r.prefix.to_string()),
                RouteChange::Remove { prefix, .. } => ("removed", prefix.to_string()),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("own", "198.19.1.0/24".to_string()),
                ("own", "198.19.2.0/24".to_string()),
                ("leaked", "198.19.3.0/24".to_string()),
            ]
        );
        // An instance that is not its network's own (the fabric's `__default__`)
        // belongs to its parent network all the same: its routes are its own.
        let fabric = format!(
            r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/d:p:ip-fabric:__default__">{}</items></event></message>"#,
            item("198.19.4.0/24", "<virtual-network>d:p:ip-fabric</virtual-network>"),
        );
        let (got, _) = changes(&update(&fabric), local);
        assert!(matches!(got.as_slice(), [RouteChange::Set(_)]), "{got:?}");
    }

    #[test]
    fn ecmp_with_a_member_here_uses_the_local_interface_of_its_label() {
        let state = node();
        let label = state.port_identity("p").unwrap().label;
        let stanza = format!(
            r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/red"><item id="198.19.0.0/24"><entry><nlri><af>1</af><safi>1</safi><address>198.19.0.0/24</address></nlri><next-hops>
            <next-hop><af>1</af><address>198.18.0.2</address><label>20</label><tunnel-encapsulation-list><tunnel-encapsulation>udp</tunnel-encapsulation></tunnel-encapsulation-list></next-hop>
            <next-hop><af>1</af><address>198.18.0.1</address><label>{label}</label></next-hop>
            <next-hop><af>1</af><address>198.18.0.3</address><label>5000</label><vni>5000</vni><mac>00:00:5e:00:01:00</mac><tunnel-encapsulation-list><tunnel-encapsulation>vxlan</tunnel-encapsulation></tunnel-encapsulation-list></next-hop>
            </next-hops></entry></item>
            <item id="198.19.9.9/32"><entry><next-hops><next-hop><af>1</af><address>198.18.0.1</address><label>999</label></next-hop></next-hops></entry></item>
            </items></event></message>"#
        );
        let local = here(&state);
        let (got, skipped) = changes(&update(&stanza), local);
        let [RouteChange::Set(spec)] = &got[..] else {
            panic!("{got:?}")
        };
        let RouteTarget::Ecmp { members } = &spec.target else {
            panic!("{spec:?}")
        };
        assert_eq!(members.len(), 3);
        assert_eq!(members[1], RouteTarget::Interface { name: "p".into() });
        assert!(
            matches!(&members[2], RouteTarget::Tunnel { label: 5000, encaps, mac: Some(_), .. } if encaps == &[Encap::Vxlan])
        );
        assert_eq!(skipped.len(), 1, "an own-address member with a label nobody here has");
        assert!(skipped[0].why.contains("label 999"), "{skipped:?}");
    }

    #[test]
    fn retracts_remove_their_routes() {
        let state = node();
        let local = here(&state);
        let retract = r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="2/1/red"><retract id="2001:db8::1/128"/><retract id="junk"/></items></event></message>"#;
        let (got, skipped) = changes(&update(retract), local);
        assert_eq!(
            got,
            [RouteChange::Remove {
                vrf: "red".into(),
                prefix: "2001:db8::1/128".parse().unwrap()
            }]
        );
        assert_eq!(skipped[0].id, "junk");
    }

    #[test]
    fn evpn_mac_ip_items_become_vxlan_routes_and_bridging_items_are_ignored() {
        let state = node();
        let local = here(&state);
        let nh = |addr: &str, label: u32, mac: &str| {
            format!(
                "<next-hop><af>1</af><address>{addr}</address><mac>{mac}</mac><label>{label}</label><l3-label>0</l3-label><tunnel-encapsulation-list><tunnel-encapsulation>vxlan</tunnel-encapsulation></tunnel-encapsulation-list></next-hop>"
            )
        };
        let item = |id: &str, mac: &str, address: &str, hops: &str| {
            format!(
                "<item id=\"{id}\"><entry><nlri><af>25</af><safi>242</safi><ethernet-tag>5001</ethernet-tag><mac>{mac}</mac><address>{address}</address></nlri><next-hops>{hops}</next-hops><virtual-network>red</virtual-network><local-preference>100</local-preference><med>0</med><sequence-number>0</sequence-number></entry></item>"
            )
        };
        let items = [
            // A MAC+IP route from another node, as the control node sends it.
            item(
                "5001-02:00:00:00:00:09,198.18.1.9/32",
                "02:00:00:00:00:09",
                "198.18.1.9/32",
                &nh("10.0.0.9", 5001, ""),
            ),
            // The same with the remote's router MAC given, and an ECMP pair.
            item(
                "5001-02:00:00:00:00:0a,198.18.1.10/32",
                "02:00:00:00:00:0a",
                "198.18.1.10/32",
                &(nh("10.0.0.9", 5001, "00:00:5e:00:01:09") + &nh("10.0.0.8", 5001, "")),
            ),
            // MAC-only, broadcast and this node's own: not for an L3 vrouter.
            item(
                "02:00:00:00:00:09,0.0.0.0/32",
                "02:00:00:00:00:09",
                "0.0.0.0/32",
                &nh("10.0.0.9", 5001, ""),
            ),
            item(
                "ff:ff:ff:ff:ff:ff,0.0.0.0/32",
                "ff:ff:ff:ff:ff:ff",
                "0.0.0.0/32",
                &nh("10.0.0.9", 5001, ""),
            ),
            item(
                "02:00:00:00:00:02,198.18.1.2/32",
                "02:00:00:00:00:02",
                "198.18.1.2/32",
                &nh(&FABRIC.to_string(), 5001, ""),
            ),
            // Over MPLS (an L2 label): bridging.
            item(
                "02:00:00:00:00:0b,198.18.1.11/32",
                "02:00:00:00:00:0b",
                "198.18.1.11/32",
                &nh("10.0.0.9", 77, "").replace("vxlan", "gre"),
            ),
        ];
        let stanza = format!(
            "<message><event xmlns=\"http://jabber.org/protocol/pubsub\"><items node=\"25/242/red\">{}</items></event></message>",
            items.concat()
        );
        let (got, skipped) = changes(&update(&stanza), local);
        assert!(skipped.is_empty(), "{skipped:?}");
        let dest = "02:00:00:00:00:09".parse().ok();
        assert_eq!(
            got[0],
            RouteChange::Set(RouteSpec {
                vrf: "red".into(),
                prefix: "198.18.1.9/32".parse().unwrap(),
                target: RouteTarget::Tunnel {
                    remote: "10.0.0.9".parse().unwrap(),
                    label: 5001,
                    encaps: vec![Encap::Vxlan],
                    mac: dest,
                },
            })
        );
        let RouteChange::Set(RouteSpec {
            target: RouteTarget::Ecmp { members },
            ..
        }) = &got[1]
        else {
            panic!("{:?}", got[1]);
        };
        assert!(
            matches!(&members[0], RouteTarget::Tunnel { mac: Some(m), .. } if m.to_string() == "00:00:5e:00:01:09")
        );
        assert_eq!(got.len(), 2);
        // Retracts name the item as it was sent, the tag or not.
        let retract = r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="25/242/red"><retract id="5001-02:00:00:00:00:09,198.18.1.9/32"/><retract id="02:00:00:00:00:09,0.0.0.0/32"/><retract id="junk"/></items></event></message>"#;
        let (got, skipped) = changes(&update(retract), local);
        assert_eq!(
            got,
            [RouteChange::Remove {
                vrf: "red".into(),
                prefix: "198.18.1.9/32".parse().unwrap()
            }]
        );
        assert_eq!(skipped.len(), 1);
    }
}

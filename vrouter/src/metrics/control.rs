//! The control side's families: services and ECMP groups, fabric source NAT, the
//! channels to control nodes, policies, the control task and the configuration.
//! Views that scan the flow table (services, SNAT) do so once per scrape, off the
//! forwarding cores.

use super::families::{counter, gauge, none, protocol, Labels};
use crate::control::task::ControlHandle;
use crate::control::views::Views;
use prometheus_client::encoding::DescriptorEncoder;
use std::fmt;
use std::sync::atomic::Ordering;

/// Writes the control side's families.
pub fn encode(views: &Views, control: &ControlHandle, encoder: &mut DescriptorEncoder) -> fmt::Result {
    services(views, encoder)?;
    ecmp(views, encoder)?;
    snat(views, encoder)?;
    xmpp(views, encoder)?;
    policies(views, encoder)?;
    task(control, encoder)?;
    config(views, encoder)
}

fn services(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let list = views.services();
    let labels = |s: &vrouter_api::ServiceView| -> Labels {
        vec![
            ("service", s.name.clone()),
            ("vrf", s.vrf.clone()),
            ("address", s.ip.to_string()),
            ("protocol", protocol(s.proto)),
            ("port", s.port.to_string()),
        ]
    };
    gauge(
        e,
        "service_backends",
        "Backends of the service port, by state (up: in its ECMP group; down: taken out by its health check)",
        None,
        list.iter().flat_map(|s| {
            let mut up = labels(s);
            up.push(("state", "up".into()));
            let mut down = labels(s);
            down.push(("state", "down".into()));
            [(up, s.backends.len()), (down, s.down.len())]
        }),
    )?;
    gauge(
        e,
        "service_flows",
        "Connections to the service port in the flow table now",
        None,
        list.iter().map(|s| (labels(s), s.flows)),
    )
}

fn ecmp(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let snap = views.snapshot();
    let groups: Vec<(Labels, usize)> = views
        .nexthops()
        .iter()
        .filter_map(|nh| match nh.nexthop {
            nexthop::NextHop::Composite { id } => Some((
                vec![("nexthop", nh.id.to_string())],
                snap.composites.get(id as usize).map_or(0, |c| c.members.len()),
            )),
            _ => None,
        })
        .collect();
    gauge(
        e,
        "ecmp_groups",
        "ECMP (composite) next hops in use",
        None,
        [(none(), groups.len())],
    )?;
    gauge(
        e,
        "ecmp_group_members",
        "Members of each ECMP next hop in use",
        None,
        groups,
    )
}

fn snat(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let view = views.snat();
    let ranges: Vec<(&str, vrouter_api::SnatPortsView)> = [("tcp", view.tcp), ("udp", view.udp), ("icmp", view.icmp)]
        .into_iter()
        .filter_map(|(p, r)| Some((p, r?)))
        .collect();
    let labels = |p: &str| vec![("protocol", p.to_string())];
    gauge(
        e,
        "snat_ports",
        "Ports of fabric source NAT's range",
        None,
        ranges
            .iter()
            .map(|(p, r)| (labels(p), u32::from(r.last) - u32::from(r.first) + 1)),
    )?;
    gauge(
        e,
        "snat_ports_in_use",
        "Source NAT ports some connection uses now",
        None,
        ranges.iter().map(|(p, r)| (labels(p), r.ports_in_use)),
    )?;
    gauge(
        e,
        "snat_connections",
        "Connections translated by fabric source NAT now",
        None,
        ranges.iter().map(|(p, r)| (labels(p), r.connections)),
    )?;
    gauge(
        e,
        "snat_busiest_destination_connections",
        "Connections to the destination (address and port) most connections go to: a port serves one connection per destination, so this against snat_ports is how full the range is",
        None,
        ranges.iter().map(|(p, r)| (labels(p), r.busiest_destination)),
    )
}

fn xmpp(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let channels = views.xmpp();
    let labels = |c: &vrouter_api::XmppChannelView| vec![("peer", c.peer.to_string()), ("server", c.server.clone())];
    gauge(
        e,
        "xmpp_channel_up",
        "1 while the XMPP channel to the control node is up",
        None,
        channels.iter().map(|c| (labels(c), u64::from(c.up))),
    )?;
    counter(
        e,
        "xmpp_channel_established",
        "Times the channel came up",
        None,
        channels.iter().map(|c| (labels(c), c.established)),
    )?;
    counter(
        e,
        "xmpp_channel_flaps",
        "Times the channel went down after it had come up",
        None,
        channels
            .iter()
            .map(|c| (labels(c), c.established.saturating_sub(u64::from(c.up)))),
    )?;
    counter(
        e,
        "xmpp_route_messages",
        "Route messages received from the control node",
        None,
        channels.iter().map(|c| (labels(c), c.route_messages)),
    )?;
    counter(
        e,
        "xmpp_unusable_stanzas",
        "Stanzas from the control node that could not be used (malformed or unknown)",
        None,
        channels.iter().map(|c| (labels(c), c.unusable)),
    )?;
    gauge(
        e,
        "xmpp_routes",
        "Paths the control node taught, per VRF",
        None,
        channels.iter().flat_map(|c| {
            c.routes_per_vrf.iter().map(move |(vrf, n)| {
                let mut l = labels(c);
                l.push(("vrf", vrf.clone()));
                (l, *n)
            })
        }),
    )
}

fn policies(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let list = views.policies();
    counter(
        e,
        "policy_denied_connections",
        "Connections the network policy denied (counted at flow setup)",
        None,
        list.iter().map(|p| (vec![("policy", p.name.clone())], p.denied)),
    )?;
    gauge(
        e,
        "policy_local_pods",
        "Pods on this node the network policy isolates",
        None,
        list.iter()
            .map(|p| (vec![("policy", p.name.clone())], p.local_pods.len())),
    )
}

fn task(control: &ControlHandle, e: &mut DescriptorEncoder) -> fmt::Result {
    let stats = control.stats();
    counter(
        e,
        "control_changes",
        "Changes the control task applied or refused",
        None,
        [(none(), stats.done.load(Ordering::Relaxed))],
    )?;
    counter(
        e,
        "control_changes_abandoned",
        "Changes skipped because their requester gave up before they started",
        None,
        [(none(), stats.abandoned.load(Ordering::Relaxed))],
    )?;
    gauge(
        e,
        "control_queue_changes",
        "Changes waiting for the control task",
        None,
        [(none(), control.queued())],
    )
}

fn config(views: &Views, e: &mut DescriptorEncoder) -> fmt::Result {
    let c = views.config();
    gauge(
        e,
        "config_synced",
        "1 once the control node serving configuration has sent all of it",
        None,
        [(none(), u64::from(c.synced))],
    )?;
    gauge(
        e,
        "config_objects",
        "Configuration objects received from the control node",
        None,
        [(none(), c.objects)],
    )?;
    counter(
        e,
        "config_refused_updates",
        "Configuration updates refused (malformed or inconsistent)",
        None,
        [(none(), c.refused_updates)],
    )
}

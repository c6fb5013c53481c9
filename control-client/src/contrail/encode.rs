//! Writes configuration operations as a control node sends them (`<config>` with
//! `<update>` and `<delete>` blocks), for the lab's control-node peer and the tests:
//! what [`super::ifmap::decode`] reads back into the same operations.

use super::{ConfigOp, Link, ObjectKey, Properties};
use quick_xml::escape::escape;
use std::fmt::Write;

/// The `<config>` element holding `ops`, in order (consecutive updates share an
/// `<update>` block, consecutive deletes a `<delete>` block).
pub fn encode(ops: &[ConfigOp]) -> String {
    let mut out = String::from("<config>");
    let mut open: Option<bool> = None;
    for op in ops {
        let delete = matches!(op, ConfigOp::DeleteNode { .. } | ConfigOp::DeleteLink(_));
        if open != Some(delete) {
            close(&mut out, open);
            out.push_str(if delete { "<delete>" } else { "<update>" });
            open = Some(delete);
        }
        match op {
            ConfigOp::UpdateNode { key, uuid, props } => {
                let _ = write!(
                    out,
                    "<node type=\"{}\"><name>{}</name>",
                    escape(key.kind.as_str()),
                    escape(&key.name)
                );
                if let Some(uuid) = uuid {
                    let (high, low) = uuid.as_u64_pair();
                    let _ = write!(
                        out,
                        "<id-perms><uuid><uuid-mslong>{high}</uuid-mslong><uuid-lslong>{low}</uuid-lslong></uuid></id-perms>"
                    );
                }
                properties(&mut out, props);
                out.push_str("</node>");
            }
            ConfigOp::DeleteNode { key } => node_ref(&mut out, key),
            ConfigOp::UpdateLink(link) | ConfigOp::DeleteLink(link) => link_ref(&mut out, link),
        }
    }
    close(&mut out, open);
    out.push_str("</config>");
    out
}

fn close(out: &mut String, open: Option<bool>) {
    match open {
        Some(true) => out.push_str("</delete>"),
        Some(false) => out.push_str("</update>"),
        None => {}
    }
}

fn node_ref(out: &mut String, key: &ObjectKey) {
    let _ = write!(
        out,
        "<node type=\"{}\"><name>{}</name></node>",
        escape(key.kind.as_str()),
        escape(&key.name)
    );
}

fn link_ref(out: &mut String, link: &Link) {
    out.push_str("<link>");
    node_ref(out, &link.left);
    node_ref(out, &link.right);
    let _ = write!(out, "<metadata type=\"{}\" /></link>", escape(&link.metadata));
}

fn properties(out: &mut String, props: &Properties) {
    match props {
        Properties::VirtualRouter { ip } => {
            if let Some(ip) = ip {
                let _ = write!(out, "<virtual-router-ip-address>{ip}</virtual-router-ip-address>");
            }
        }
        Properties::VirtualMachineInterface(vmi) => {
            out.push_str("<virtual-machine-interface-mac-addresses>");
            for mac in &vmi.macs {
                let _ = write!(out, "<mac-address>{mac}</mac-address>");
            }
            out.push_str("</virtual-machine-interface-mac-addresses>");
            let _ = write!(
                out,
                "<virtual-machine-interface-properties><sub-interface-vlan-tag>{}</sub-interface-vlan-tag></virtual-machine-interface-properties>",
                vmi.vlan_tag
            );
            out.push_str("<virtual-machine-interface-allowed-address-pairs>");
            for pair in &vmi.allowed_address_pairs {
                let _ = write!(
                    out,
                    "<allowed-address-pair><ip><ip-prefix>{}</ip-prefix><ip-prefix-len>{}</ip-prefix-len></ip></allowed-address-pair>",
                    pair.addr(),
                    pair.prefix_len()
                );
            }
            out.push_str("</virtual-machine-interface-allowed-address-pairs>");
            let _ = write!(
                out,
                "<virtual-machine-interface-disable-policy>{}</virtual-machine-interface-disable-policy><port-security-enabled>{}</port-security-enabled>",
                vmi.disable_policy, vmi.port_security
            );
        }
        Properties::VirtualNetwork(vn) => {
            if let Some(id) = vn.network_id {
                let _ = write!(out, "<virtual-network-network-id>{id}</virtual-network-network-id>");
            }
            let _ = write!(
                out,
                "<virtual-network-properties><vxlan-network-identifier>{}</vxlan-network-identifier></virtual-network-properties><router-external>{}</router-external>",
                vn.vxlan_id.unwrap_or(0),
                vn.router_external
            );
        }
        Properties::RoutingInstance { is_default } => {
            let _ = write!(
                out,
                "<routing-instance-is-default>{is_default}</routing-instance-is-default>"
            );
        }
        Properties::InstanceIp { address } => {
            if let Some(a) = address {
                let _ = write!(out, "<instance-ip-address>{a}</instance-ip-address>");
            }
        }
        Properties::FloatingIp(fip) => {
            if let Some(a) = fip.address {
                let _ = write!(out, "<floating-ip-address>{a}</floating-ip-address>");
            }
            if let Some(a) = fip.fixed_ip {
                let _ = write!(out, "<floating-ip-fixed-ip-address>{a}</floating-ip-fixed-ip-address>");
            }
            let _ = write!(
                out,
                "<floating-ip-port-mappings-enable>{}</floating-ip-port-mappings-enable><floating-ip-port-mappings>",
                fip.port_mappings_enable
            );
            for pm in &fip.port_mappings {
                let _ = write!(
                    out,
                    "<port-mappings><protocol>{}</protocol><src-port>{}</src-port><dst-port>{}</dst-port></port-mappings>",
                    pm.protocol, pm.src_port, pm.dst_port
                );
            }
            out.push_str("</floating-ip-port-mappings>");
        }
        Properties::IpamSubnets(subnets) => {
            out.push_str("<value>");
            for s in subnets {
                let _ = write!(
                    out,
                    "<ipam-subnets><subnet><ip-prefix>{}</ip-prefix><ip-prefix-len>{}</ip-prefix-len></subnet>",
                    s.prefix.addr(),
                    s.prefix.prefix_len()
                );
                if let Some(g) = s.gateway {
                    let _ = write!(out, "<default-gateway>{g}</default-gateway>");
                }
                if let Some(d) = s.dns_server {
                    let _ = write!(out, "<dns-server-address>{d}</dns-server-address>");
                }
                out.push_str("</ipam-subnets>");
            }
            out.push_str("</value>");
        }
        Properties::GlobalVrouter(g) => {
            out.push_str("<encapsulation-priorities>");
            for e in &g.encapsulation_priorities {
                let name = match e {
                    nexthop::encap::Encap::MplsOverUdp => "MPLSoUDP",
                    nexthop::encap::Encap::MplsOverGre => "MPLSoGRE",
                    nexthop::encap::Encap::Vxlan => "VXLAN",
                };
                let _ = write!(out, "<encapsulation>{name}</encapsulation>");
            }
            let mode = match g.vxlan_mode {
                super::VxlanMode::Automatic => "automatic",
                super::VxlanMode::Configured => "configured",
            };
            let _ = write!(
                out,
                "</encapsulation-priorities><vxlan-network-identifier-mode>{mode}</vxlan-network-identifier-mode><flow-aging-timeout-list>"
            );
            for t in &g.flow_aging {
                let _ = write!(
                    out,
                    "<flow-aging-timeout><protocol>{}</protocol><port>{}</port><timeout-in-seconds>{}</timeout-in-seconds></flow-aging-timeout>",
                    t.protocol, t.port, t.timeout_secs
                );
            }
            out.push_str("</flow-aging-timeout-list><port-translation-pools>");
            for p in &g.port_translation_pools {
                let _ = write!(
                    out,
                    "<port-translation-pool><protocol>{}</protocol><port-range><start-port>{}</start-port><end-port>{}</end-port></port-range></port-translation-pool>",
                    p.protocol, p.start, p.end
                );
            }
            out.push_str("</port-translation-pools>");
        }
        Properties::Loadbalancer(lb) => {
            out.push_str("<loadbalancer-properties>");
            if let Some(vip) = lb.vip {
                let _ = write!(out, "<vip-address>{vip}</vip-address>");
            }
            let _ = write!(
                out,
                "<admin-state>{}</admin-state></loadbalancer-properties>",
                lb.admin_up
            );
            if let Some(p) = &lb.provider {
                let _ = write!(
                    out,
                    "<loadbalancer-provider>{}</loadbalancer-provider>",
                    escape(p.as_str())
                );
            }
        }
        Properties::Listener(l) => {
            out.push_str("<loadbalancer-listener-properties>");
            if let Some(p) = l.protocol {
                let _ = write!(out, "<protocol>{}</protocol>", protocol_name(p));
            }
            if let Some(port) = l.port {
                let _ = write!(out, "<protocol-port>{port}</protocol-port>");
            }
            out.push_str("</loadbalancer-listener-properties>");
        }
        Properties::Member(m) => {
            out.push_str("<loadbalancer-member-properties>");
            if let Some(a) = m.address {
                let _ = write!(out, "<address>{a}</address>");
            }
            if let Some(port) = m.port {
                let _ = write!(out, "<protocol-port>{port}</protocol-port>");
            }
            let _ = write!(
                out,
                "<admin-state>{}</admin-state></loadbalancer-member-properties>",
                m.admin_up
            );
        }
        Properties::SecurityGroup(sg) => {
            if let Some(id) = sg.id {
                let _ = write!(out, "<security-group-id>{id}</security-group-id>");
            }
            out.push_str("<security-group-entries>");
            super::rules::write(out, &sg.rules, false);
            out.push_str("</security-group-entries>");
        }
        Properties::AccessControlList(rules) => {
            out.push_str("<access-control-list-entries>");
            super::rules::write(out, rules, true);
            out.push_str("</access-control-list-entries>");
        }
        Properties::Opaque => {}
    }
}

/// A listener protocol as the schema names it.
fn protocol_name(number: u8) -> &'static str {
    match number {
        17 => "UDP",
        132 => "SCTP",
        _ => "TCP",
    }
}

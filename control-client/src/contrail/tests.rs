//! The object model against real config documents (the OpenSDN tutorial's, which a
//! real agent accepted, and tf-controller's IF-MAP fixture) and hand-made updates
//! and deletes.

use super::*;
use crate::xmpp::{Element, Frame, Framer, Incoming};
use nexthop::encap::Encap;
use std::net::Ipv4Addr;
use std::path::Path;

/// The `<config>` elements of a file of config stanzas.
fn configs(name: &str) -> Vec<Element> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/xmpp").join(name);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut framer = Framer::new(1 << 20);
    framer.push(&bytes);
    let mut out = Vec::new();
    while let Some(frame) = framer.next_frame().unwrap() {
        let Frame::Stanza(s) = frame else { continue };
        match Incoming::decode(&Element::parse(&s).unwrap()).unwrap() {
            Incoming::Config(c) => out.push(c),
            other => panic!("{name}: not config: {other:?}"),
        }
    }
    out
}

fn load(graph: &mut ConfigGraph, name: &str) -> usize {
    let mut applied = 0;
    for config in configs(name) {
        let (ops, errors) = ifmap::decode(&config);
        assert!(errors.is_empty(), "{name}: {errors:?}");
        let outcome = graph.apply(ops);
        assert_eq!(outcome.refused, 0);
        applied += outcome.changed;
    }
    applied
}

const TUTORIAL: [&str; 6] = [
    "global-config.xml",
    "default-project.xml",
    "admin-project.xml",
    "cont1.xml",
    "cont2.xml",
    "vn-vmi-vm.xml",
];

#[test]
fn every_tutorial_document_reads_without_a_skipped_entry() {
    for file in TUTORIAL {
        let mut graph = ConfigGraph::new();
        let changed = load(&mut graph, &format!("opensdn_tutorial_config/{file}"));
        assert!(changed > 0, "{file}");
        assert!(graph.object_count() > 0 && graph.link_count() > 0, "{file}");
    }
}

#[test]
fn tutorial_compiles_into_the_two_containers_ports() {
    let mut graph = ConfigGraph::new();
    for file in &TUTORIAL[..5] {
        load(&mut graph, &format!("opensdn_tutorial_config/{file}"));
    }
    let compiled = compile(&graph, "opensdn-VirtualBox");
    assert_eq!(compiled.vrouter_ip, Some(Ipv4Addr::new(10, 0, 2, 15)));
    assert_eq!(
        compiled.encap_priority,
        Some(vec![Encap::MplsOverUdp, Encap::MplsOverGre, Encap::Vxlan])
    );
    let cont1 = compiled
        .ports
        .values()
        .find(|p| p.name == "default-domain:admin:cont1-port")
        .expect("cont1's port");
    assert_eq!(cont1.uuid, Uuid::from_u64_pair(0, 2));
    assert_eq!(cont1.virtual_machine.as_deref(), Some("cont1"));
    assert_eq!(cont1.virtual_network.as_deref(), Some("default-domain:admin:vn-A"));
    assert_eq!(cont1.vrf.as_deref(), Some("default-domain:admin:vn-A:vn-A"));
    assert_eq!(cont1.mac, Some("76:84:d4:e1:04:75".parse().unwrap()));
    assert_eq!(cont1.ipv4, Some(Ipv4Addr::new(10, 10, 10, 11)));
    assert_eq!(cont1.vlan, None);
    let cont2 = compiled.ports.get(&Uuid::from_u64_pair(0, 3)).expect("cont2's port");
    assert_eq!(cont2.ipv4, Some(Ipv4Addr::new(10, 10, 10, 22)));
    // Network id 3, automatic VXLAN mode: the VNI of the network's VRF.
    assert_eq!(compiled.vrf_vnis.get("default-domain:admin:vn-A:vn-A"), Some(&3));
    let spec = cont1.interface_spec("tapcont1", None).unwrap();
    assert_eq!(spec.vrf, "default-domain:admin:vn-A:vn-A");
    assert_eq!(spec.ipv4, Some(Ipv4Addr::new(10, 10, 10, 11)));
}

#[test]
fn tf_controller_ifmap_fixture_reads_every_update() {
    let mut graph = ConfigGraph::new();
    let changed = load(
        &mut graph,
        "tf-controller_src_ifmap_testdata_cli1_vn1_vm3_add.master_output.xml.stream",
    );
    assert!(changed >= 32, "{changed}");
    assert!(graph
        .get(&ObjectKey::new(
            ObjectType::VirtualRouter,
            "default-global-system-config:a1s27.contrail.juniper.net"
        ))
        .is_some());
    assert!(graph.objects_of(&ObjectType::VirtualMachineInterface).count() >= 1);
}

#[test]
fn elided_capture_reads_what_is_there_and_skips_nothing_silently() {
    // The 2015 capture has `...` where its author cut text: text, not elements, so
    // the nodes and links around it still read.
    let mut graph = ConfigGraph::new();
    for config in configs("06_cn_config_update_vm_2015_elided.xml") {
        let (ops, errors) = ifmap::decode(&config);
        assert!(
            errors.iter().all(|e| e.0.contains("link without two nodes")),
            "{errors:?}"
        );
        graph.apply(ops);
    }
    let ip = ObjectKey::new(ObjectType::InstanceIp, "abc3bd27-d5df-495a-9fb8-dab474470258");
    assert_eq!(
        graph.get(&ip).map(|o| o.props.clone()),
        Some(Properties::InstanceIp {
            address: Some("10.0.0.3".parse().unwrap())
        })
    );
}

fn config(xml: &str) -> Vec<ConfigOp> {
    let (ops, errors) = ifmap::decode(&Element::parse(xml).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    ops
}

const POD: &str = r#"<config><update>
  <node type="virtual-machine-interface"><name>default-domain:k8s-default:pod-a</name>
    <id-perms><uuid><uuid-mslong>1</uuid-mslong><uuid-lslong>10</uuid-lslong></uuid></id-perms>
    <virtual-machine-interface-mac-addresses><mac-address>02:00:00:00:00:0a</mac-address></virtual-machine-interface-mac-addresses>
  </node>
  <node type="virtual-network"><name>default-domain:k8s-default:cluster-network</name>
    <virtual-network-network-id>5</virtual-network-network-id>
    <virtual-network-properties><vxlan-network-identifier>5005</vxlan-network-identifier></virtual-network-properties>
  </node>
  <node type="instance-ip"><name>pod-a-ip</name><instance-ip-address>198.18.1.10</instance-ip-address></node>
  <node type="virtual-network-network-ipam"><name>attr(default-domain:k8s-default:cluster-network,default-domain:k8s-default:pod-ipam)</name>
    <value><ipam-subnets><subnet><ip-prefix>198.18.1.0</ip-prefix><ip-prefix-len>24</ip-prefix-len></subnet><default-gateway>198.18.1.1</default-gateway></ipam-subnets></value>
  </node>
  <link><node type="virtual-machine-interface"><name>default-domain:k8s-default:pod-a</name></node>
    <node type="virtual-network"><name>default-domain:k8s-default:cluster-network</name></node>
    <metadata type="virtual-machine-interface-virtual-network"/></link>
  <link><node type="instance-ip"><name>pod-a-ip</name></node>
    <node type="virtual-machine-interface"><name>default-domain:k8s-default:pod-a</name></node>
    <metadata type="instance-ip-virtual-machine-interface"/></link>
  <link><node type="virtual-network"><name>default-domain:k8s-default:cluster-network</name></node>
    <node type="virtual-network-network-ipam"><name>attr(default-domain:k8s-default:cluster-network,default-domain:k8s-default:pod-ipam)</name></node>
    <metadata type="virtual-network-network-ipam"/></link>
</update></config>"#;

#[test]
fn a_pod_port_gets_the_networks_vrf_gateway_and_vni() {
    let mut graph = ConfigGraph::new();
    graph.apply(config(POD));
    let compiled = compile(&graph, "node-a");
    let port = &compiled.ports[&Uuid::from_u64_pair(1, 10)];
    assert_eq!(
        port.vrf.as_deref(),
        Some("default-domain:k8s-default:cluster-network:cluster-network")
    );
    assert_eq!(port.gateway4, Some(Ipv4Addr::new(198, 18, 1, 1)));
    assert_eq!(
        compiled
            .vrf_vnis
            .get("default-domain:k8s-default:cluster-network:cluster-network"),
        Some(&5)
    );
    // Configured VXLAN mode takes the network's own VNI.
    graph.apply(config(
        r#"<config><update><node type="global-vrouter-config"><name>default-global-system-config:default-global-vrouter-config</name>
        <encapsulation-priorities><encapsulation>VXLAN</encapsulation><encapsulation>MPLSoGRE</encapsulation><encapsulation>bogus</encapsulation></encapsulation-priorities>
        <vxlan-network-identifier-mode>configured</vxlan-network-identifier-mode></node></update></config>"#,
    ));
    let compiled = compile(&graph, "node-a");
    assert_eq!(compiled.encap_priority, Some(vec![Encap::Vxlan, Encap::MplsOverGre]));
    assert_eq!(compiled.vrf_vnis.values().copied().collect::<Vec<_>>(), vec![5005]);
}

#[test]
fn deletes_undo_updates_and_a_node_delete_takes_its_links() {
    let mut graph = ConfigGraph::new();
    graph.apply(config(POD));
    let links = graph.link_count();
    // The instance IP's link goes: the port has no address, so it is incomplete.
    graph.apply(config(
        r#"<config><delete><link><node type="instance-ip"><name>pod-a-ip</name></node>
        <node type="virtual-machine-interface"><name>default-domain:k8s-default:pod-a</name></node>
        <metadata type="instance-ip-virtual-machine-interface"/></link></delete></config>"#,
    ));
    assert_eq!(graph.link_count(), links - 1);
    let port = &compile(&graph, "n").ports[&Uuid::from_u64_pair(1, 10)];
    assert_eq!(port.ipv4, None);
    assert_eq!(port.interface_spec("tap0", None).unwrap_err(), "no instance IP");
    // Deleting the network drops its links too.
    let outcome = graph.apply(config(
        r#"<config><delete><node type="virtual-network"><name>default-domain:k8s-default:cluster-network</name></node></delete></config>"#,
    ));
    assert_eq!(outcome.changed, 1);
    assert_eq!(graph.link_count(), 0);
    // A delete of what is not there changes nothing.
    let outcome = graph.apply(config(
        r#"<config><delete><node type="virtual-network"><name>nothing</name></node></delete></config>"#,
    ));
    assert_eq!(outcome.changed, 0);
}

#[test]
fn a_nested_sub_interface_names_its_parent_and_tag() {
    let mut graph = ConfigGraph::new();
    graph.apply(config(POD));
    graph.apply(config(
        r#"<config><update>
        <node type="virtual-machine-interface"><name>default-domain:k8s-default:nested-pod</name>
          <id-perms><uuid><uuid-mslong>1</uuid-mslong><uuid-lslong>11</uuid-lslong></uuid></id-perms>
          <virtual-machine-interface-mac-addresses><mac-address>02:00:00:00:00:0b</mac-address></virtual-machine-interface-mac-addresses>
          <virtual-machine-interface-properties><sub-interface-vlan-tag>100</sub-interface-vlan-tag></virtual-machine-interface-properties>
        </node>
        <link><node type="virtual-machine-interface"><name>default-domain:k8s-default:nested-pod</name></node>
          <node type="virtual-machine-interface"><name>default-domain:k8s-default:pod-a</name></node>
          <metadata type="virtual-machine-interface-sub-interface"/></link>
        <link><node type="virtual-machine-interface"><name>default-domain:k8s-default:nested-pod</name></node>
          <node type="virtual-network"><name>default-domain:k8s-default:cluster-network</name></node>
          <metadata type="virtual-machine-interface-virtual-network"/></link>
        <node type="instance-ip"><name>nested-ip</name><instance-ip-address>198.18.1.11</instance-ip-address></node>
        <link><node type="instance-ip"><name>nested-ip</name></node>
          <node type="virtual-machine-interface"><name>default-domain:k8s-default:nested-pod</name></node>
          <metadata type="instance-ip-virtual-machine-interface"/></link>
        </update></config>"#,
    ));
    let compiled = compile(&graph, "n");
    let nested = &compiled.ports[&Uuid::from_u64_pair(1, 11)];
    assert_eq!(
        nested.vlan,
        Some(PortVlan {
            parent: Uuid::from_u64_pair(1, 10),
            tag: 100
        })
    );
    // Attached only once its parent is bound here, as a sub-interface of it.
    assert!(nested.interface_spec("sub", None).unwrap_err().contains("parent"));
    let spec = nested.interface_spec("sub", Some("vm-port")).unwrap();
    assert_eq!(spec.vlan.map(|v| (v.parent, v.id)), Some(("vm-port".to_string(), 100)));
    assert_eq!(spec.gateway4, Some(Ipv4Addr::new(198, 18, 1, 1)));
}

#[test]
fn malformed_entries_are_reported_and_the_rest_applies() {
    let (ops, errors) = ifmap::decode(
        &Element::parse(
            r#"<config><update><node><name>x</name></node><node type="project"></node>
            <link><node type="project"><name>p</name></node></link>
            <node type="project"><name>default-domain:p</name></node><junk/></update><bogus/></config>"#,
        )
        .unwrap(),
    );
    assert_eq!(ops.len(), 1);
    assert_eq!(errors.len(), 5, "{errors:?}");
}

#[test]
fn a_new_generation_sweeps_what_the_old_server_alone_sent() {
    let mut graph = ConfigGraph::new();
    graph.next_generation();
    graph.apply(config(POD));
    let before = (graph.object_count(), graph.link_count());
    graph.next_generation();
    // The new server sends the port and the network again, not the address.
    let mut resent = config(POD);
    resent.retain(|op| match op {
        ConfigOp::UpdateNode { key, .. } => key.kind != ObjectType::InstanceIp,
        ConfigOp::UpdateLink(l) => l.left.kind != ObjectType::InstanceIp,
        _ => true,
    });
    graph.apply(resent);
    let swept = graph.sweep_older_than(graph.generation());
    assert_eq!(swept, 2);
    assert_eq!((graph.object_count(), graph.link_count()), (before.0 - 1, before.1 - 1));
}

fn lab_port(vlan: Option<(String, u16)>, n: u128) -> PortObjects {
    PortObjects {
        host: "node-1".into(),
        vm: Uuid::from_u128(0x100 + n),
        vmi: Uuid::from_u128(0x200 + n),
        vmi_name: format!("default-domain:k8s-default:pod-{n}"),
        network: "default-domain:k8s-default:cluster-network".into(),
        network_id: 7,
        subnets: vec![IpamSubnet {
            prefix: "198.18.1.0/24".parse().unwrap(),
            gateway: Some("198.18.1.1".parse().unwrap()),
            dns_server: Some("198.18.1.2".parse().unwrap()),
        }],
        mac: nexthop::MacAddr([2, 0, 0, 0, 0, n as u8]),
        addresses: vec![
            format!("198.18.1.{}", 10 + n).parse().unwrap(),
            format!("2001:2:0:1::{}", 10 + n).parse().unwrap(),
        ],
        vlan,
    }
}

#[test]
fn written_objects_read_back_as_the_same_operations_and_port() {
    let vm_port = lab_port(None, 1);
    let nested = lab_port(Some((vm_port.vmi_name.clone(), 100)), 2);
    let mut ops = vm_port.updates();
    ops.extend(nested.updates());
    // Through the wire format: the same operations come back.
    let xml = encode(&ops);
    let (read, errors) = ifmap::decode(&Element::parse(&xml).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(read, ops);
    let mut graph = ConfigGraph::new();
    graph.apply(read);
    let compiled = compile(&graph, "node-1");
    let port = &compiled.ports[&vm_port.vmi];
    assert_eq!(port.vrf.as_deref(), Some(vm_port.vrf().as_str()));
    assert_eq!(port.ipv4, Some("198.18.1.11".parse().unwrap()));
    assert_eq!(port.ipv6, Some("2001:2:0:1::11".parse().unwrap()));
    assert_eq!(port.gateway4, Some("198.18.1.1".parse().unwrap()));
    assert_eq!(port.gateway6, None, "no IPv6 subnet configured");
    assert_eq!(port.virtual_machine, Some(vm_port.vm.to_string()));
    assert_eq!(
        compiled.ports[&nested.vmi].vlan,
        Some(PortVlan {
            parent: vm_port.vmi,
            tag: 100
        })
    );
    assert_eq!(compiled.vrf_vnis[&vm_port.vrf()], 7);
    // Deleting the nested pod leaves the VM's port.
    let deletes = encode(&nested.deletes());
    let (read, _) = ifmap::decode(&Element::parse(&deletes).unwrap());
    graph.apply(read);
    let compiled = compile(&graph, "node-1");
    assert!(compiled.ports.contains_key(&vm_port.vmi));
    assert!(!compiled.ports.contains_key(&nested.vmi));
}

#[test]
fn a_full_graph_refuses_more_and_keeps_what_it_holds() {
    let mut graph = ConfigGraph::new();
    let ops: Vec<ConfigOp> = (0..MAX_OBJECTS + 2)
        .map(|i| ConfigOp::UpdateNode {
            key: ObjectKey::new(ObjectType::Project, format!("p{i}")),
            uuid: None,
            props: Properties::Opaque,
        })
        .collect();
    let outcome = graph.apply(ops);
    assert_eq!(outcome.refused, 2);
    assert_eq!(outcome.first_error, Some(GraphError::TooManyObjects(MAX_OBJECTS)));
    assert_eq!(graph.object_count(), MAX_OBJECTS);
    // An update of an object it holds still applies.
    let outcome = graph.apply(vec![ConfigOp::UpdateNode {
        key: ObjectKey::new(ObjectType::Project, "p0"),
        uuid: Some(Uuid::from_u128(1)),
        props: Properties::Opaque,
    }]);
    assert_eq!((outcome.changed, outcome.refused), (1, 0));
}

#[test]
fn load_balancer_objects_read_back_as_written() {
    let ops = vec![
        ConfigOp::UpdateNode {
            key: ObjectKey::new(ObjectType::Loadbalancer, "default-domain:k8s-default:web"),
            uuid: Some(Uuid::from_u128(7)),
            props: Properties::Loadbalancer(LoadbalancerProps {
                vip: Some("198.18.100.10".parse().unwrap()),
                provider: Some("native".into()),
                admin_up: true,
            }),
        },
        ConfigOp::UpdateNode {
            key: ObjectKey::new(ObjectType::LoadbalancerListener, "web-80"),
            uuid: None,
            props: Properties::Listener(ListenerProps {
                protocol: Some(17),
                port: Some(53),
            }),
        },
        ConfigOp::UpdateNode {
            key: ObjectKey::new(ObjectType::LoadbalancerMember, "web-80-m0"),
            uuid: None,
            props: Properties::Member(MemberProps {
                address: Some("2001:2:0:1::21".parse().unwrap()),
                port: Some(5353),
                admin_up: false,
            }),
        },
    ];
    let (read, errors) = ifmap::decode(&Element::parse(&encode(&ops)).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(read, ops);
}

#[test]
fn a_networks_acl_from_the_tutorial_reads_as_typed_rules() {
    use super::rules::{Endpoint, PortRange, RuleAction};
    let mut graph = ConfigGraph::new();
    for file in &TUTORIAL[..5] {
        load(&mut graph, &format!("opensdn_tutorial_config/{file}"));
    }
    let compiled = compile(&graph, "opensdn-VirtualBox");
    let rules = &compiled.network_acls["default-domain:admin:vn-A"];
    assert!(rules.len() >= 2, "{rules:?}");
    let first = &rules[0];
    assert!(first.bidirectional);
    assert_eq!(first.protocol, None, "any");
    assert_eq!(first.action, RuleAction::Pass);
    assert_eq!(first.src, [Endpoint::Subnet("0.0.0.0/0".parse().unwrap())]);
    assert_eq!(first.src_ports, [PortRange::ANY]);
    assert_eq!(first.dst, [Endpoint::Any]);
    assert_eq!(
        rules[1].src,
        [Endpoint::VirtualNetwork("default-domain:admin:public".into())]
    );
    // Enforced: vn-A's list as the network tier's policy of its bound ports. Its
    // first rule passes everything both ways, so everything passes.
    assert_eq!(
        compiled.network_subnets.get("default-domain:admin:A-vn"),
        Some(&vec!["10.10.10.0/24".parse().unwrap()]),
        "a network's subnets are what rules naming it stand for"
    );
    let bound = compiled.ports.keys().copied().collect();
    let out = super::network_acls::policies(&compiled, &bound);
    let policy = &out.policies["config:vn:default-domain:admin:vn-A"];
    assert_eq!(policy.tier, crate::model::PolicyTier::Network);
    assert!(!policy.pods.is_empty(), "{policy:?}");
    for rules in [&policy.ingress, &policy.egress] {
        let everything = rules
            .as_deref()
            .unwrap()
            .iter()
            .any(|r| r.ports.is_empty() && r.peers.iter().any(|p| p.cidr.prefix_len() == 0 && p.except.is_empty()));
        assert!(everything, "{policy:?}");
    }
}

#[test]
fn a_dynamic_access_control_list_decides_nothing() {
    let entries = |dynamic: &str| {
        format!(
            "<access-control-list-entries><dynamic>{dynamic}</dynamic><acl-rule><match-condition><protocol>any</protocol></match-condition><action-list><simple-action>deny</simple-action></action-list></acl-rule></access-control-list-entries>"
        )
    };
    let read = |dynamic: &str| super::rules::acl_rules(&Element::parse(&entries(dynamic)).unwrap());
    assert_eq!(read("false").len(), 1);
    assert!(read("true").is_empty());
}

#[test]
fn a_ports_security_groups_compile_with_their_rules_and_ids_and_read_back_as_written() {
    use super::rules::{Endpoint, PortRange, Rule, RuleAction};
    let port = lab_port(None, 1);
    let sg = ObjectKey::new(ObjectType::SecurityGroup, "default-domain:k8s-default:web-sg");
    let rules = vec![
        Rule {
            bidirectional: false,
            protocol: Some(6),
            ethertype: Some(4),
            src: vec![Endpoint::SecurityGroup("local".into())],
            src_ports: vec![PortRange::ANY],
            dst: vec![Endpoint::Subnet("198.18.0.0/15".parse().unwrap())],
            dst_ports: vec![PortRange { start: 80, end: 443 }],
            action: RuleAction::Pass,
        },
        Rule {
            bidirectional: true,
            protocol: None,
            ethertype: None,
            src: vec![Endpoint::Any],
            src_ports: vec![],
            dst: vec![Endpoint::VirtualNetwork(
                "default-domain:k8s-default:cluster-network".into(),
            )],
            dst_ports: vec![],
            action: RuleAction::Pass,
        },
    ];
    let mut ops = port.updates();
    ops.push(ConfigOp::UpdateNode {
        key: sg.clone(),
        uuid: None,
        props: Properties::SecurityGroup(SecurityGroupProps {
            id: Some(8_000_002),
            rules: rules.clone(),
        }),
    });
    ops.push(ConfigOp::UpdateLink(Link {
        left: ObjectKey::new(ObjectType::VirtualMachineInterface, port.vmi_name.clone()),
        right: sg.clone(),
        metadata: "virtual-machine-interface-security-group".into(),
    }));
    let (read, errors) = ifmap::decode(&Element::parse(&encode(&ops)).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(read, ops, "the rules survive the wire format");
    let mut graph = ConfigGraph::new();
    graph.apply(read);
    let compiled = compile(&graph, "node-1");
    let p = &compiled.ports[&port.vmi];
    assert_eq!(p.security_groups, std::slice::from_ref(&sg.name));
    assert_eq!(p.security_group_ids, [8_000_002]);
    assert_eq!(compiled.security_groups[&sg.name].rules, rules);
    assert_eq!(p.interface_spec("tap1", None).unwrap().security_groups, [8_000_002]);
}

#[test]
fn a_floating_ip_with_port_mappings_on_several_ports_is_a_service() {
    let (a, b) = (lab_port(None, 1), lab_port(None, 2));
    let mut ops = a.updates();
    ops.extend(b.updates());
    let fip = ObjectKey::new(
        ObjectType::FloatingIp,
        "default-domain:k8s-default:cluster-network:pool:web",
    );
    let pool = ObjectKey::new(
        ObjectType::FloatingIpPool,
        "default-domain:k8s-default:cluster-network:pool",
    );
    let network = ObjectKey::new(ObjectType::VirtualNetwork, a.network.clone());
    ops.push(ConfigOp::UpdateNode {
        key: pool.clone(),
        uuid: None,
        props: Properties::Opaque,
    });
    ops.push(ConfigOp::UpdateNode {
        key: fip.clone(),
        uuid: None,
        props: Properties::FloatingIp(FloatingIpProps {
            address: Some("198.18.100.10".parse().unwrap()),
            fixed_ip: None,
            port_mappings_enable: true,
            port_mappings: vec![
                PortMapping {
                    protocol: 6,
                    src_port: 80,
                    dst_port: 9376,
                },
                PortMapping {
                    protocol: 6,
                    src_port: 443,
                    dst_port: 9377,
                },
            ],
        }),
    });
    let link = |l: &ObjectKey, r: ObjectKey, m: &str| {
        ConfigOp::UpdateLink(Link {
            left: l.clone(),
            right: r,
            metadata: m.into(),
        })
    };
    ops.push(link(&network, pool.clone(), "virtual-network-floating-ip-pool"));
    ops.push(link(&pool, fip.clone(), "floating-ip-pool-floating-ip"));
    for p in [&a, &b] {
        ops.push(link(
            &fip,
            ObjectKey::new(ObjectType::VirtualMachineInterface, p.vmi_name.clone()),
            "floating-ip-virtual-machine-interface",
        ));
    }
    let (read, errors) = ifmap::decode(&Element::parse(&encode(&ops)).unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    let mut graph = ConfigGraph::new();
    graph.apply(read);
    let compiled = compile(&graph, "node-1");
    assert!(compiled.floating_ips.is_empty(), "not a 1:1 floating IP");
    let service = &compiled.services[&fip.name];
    assert_eq!(service.vrf, a.vrf());
    assert_eq!(service.ports, [(6, 80, 9376), (6, 443, 9377)]);
    let backends: Vec<std::net::IpAddr> = vec!["198.18.1.11".parse().unwrap(), "198.18.1.12".parse().unwrap()];
    assert_eq!(service.backends, backends);
}

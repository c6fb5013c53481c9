//! The control side's handling of configuration, on a control side without a data
//! plane: bound ports follow the config server's objects; nothing is detached
//! before the initial sync is over; another control node's config is ignored.

use super::*;
use crate::store::StateStore;
use control_client::contrail::{encode, IpamSubnet, PortObjects};
use control_client::DesiredState;

fn detached_control(dir: &std::path::Path) -> Control {
    let store = StateStore::open(dir).unwrap();
    let mut model = DesiredState::new(64);
    model.set_fabric("fabric0");
    let (mut control, _publisher) = Control::detached(model, store, 1000);
    control.set_config_host("node-1");
    control
}

fn objects(ip: &str) -> PortObjects {
    PortObjects {
        host: "node-1".into(),
        vm: Uuid::from_u128(1),
        vmi: Uuid::from_u128(2),
        vmi_name: "default-domain:k8s-default:pod-a".into(),
        network: "default-domain:k8s-default:cluster-network".into(),
        network_id: 9,
        subnets: vec![IpamSubnet {
            prefix: "198.18.1.0/24".parse().unwrap(),
            gateway: Some("198.18.1.1".parse().unwrap()),
            dns_server: None,
        }],
        mac: nexthop::MacAddr([2, 0, 0, 0, 0, 1]),
        addresses: vec![ip.parse().unwrap()],
        vlan: None,
    }
}

fn send(control: &mut Control, peer: u8, ops: &[control_client::contrail::ConfigOp], now: Instant) {
    let element = Element::parse(&encode(ops)).unwrap();
    control.apply_config(PeerId(peer), &element, now);
    control.reconcile_config();
}

/// A control side with port `tap-a` bound and control node 0 its config server.
fn bound_to_config_server(dir: &std::path::Path) -> (Control, Instant) {
    let mut control = detached_control(dir);
    control.bind_port(binding()).unwrap();
    control.config_server(PeerId(0));
    (control, Instant::now())
}

fn binding() -> PortBinding {
    PortBinding {
        name: "tap-a".into(),
        vmi: Uuid::from_u128(2),
        vm: Some(Uuid::from_u128(1)),
        mtu: Some(1500),
    }
}

#[test]
fn a_bound_port_follows_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut control = detached_control(dir.path());
    let view = control.bind_port(binding()).unwrap();
    assert!(!view.attached);
    assert_eq!(view.waiting_for.as_deref(), Some("configuration of its interface"));
    assert_eq!(control.config.interest.vms().1, vec![Uuid::from_u128(1)]);
    let t0 = Instant::now();
    control.config_server(PeerId(0));
    send(&mut control, 0, &objects("198.18.1.10").updates(), t0);
    let spec = control.model.interface_spec("tap-a").expect("attached").clone();
    assert_eq!(spec.vrf, "default-domain:k8s-default:cluster-network:cluster-network");
    assert_eq!(spec.ipv4, Some("198.18.1.10".parse().unwrap()));
    assert_eq!(spec.gateway4, Some("198.18.1.1".parse().unwrap()));
    assert_eq!(control.model.vrf_vnis().get(&spec.vrf), Some(&9));
    let label = control.model.port_identity("tap-a").unwrap().label;
    // The address changes before the initial sync is over: the attached port stays
    // as it is until then (the configuration may be partial), then takes it, under
    // its label.
    send(&mut control, 0, &objects("198.18.1.20").updates(), t0);
    let spec = control.model.interface_spec("tap-a").unwrap();
    assert_eq!(spec.ipv4, Some("198.18.1.10".parse().unwrap()));
    control.config_tick(t0 + CONFIG_QUIET);
    let spec = control.model.interface_spec("tap-a").unwrap();
    assert_eq!(spec.ipv4, Some("198.18.1.20".parse().unwrap()));
    assert_eq!(control.model.port_identity("tap-a").unwrap().label, label);
    // Deleted: gone at once now that the sync is over.
    send(&mut control, 0, &objects("198.18.1.20").deletes(), t0 + CONFIG_QUIET);
    assert!(control.model.interface_spec("tap-a").is_none());
    let view = control.config.view.lock().unwrap().clone();
    assert!(view.synced);
    assert_eq!(
        view.ports[0].waiting_for.as_deref(),
        Some("configuration of its interface")
    );
    // Removing the port forgets the binding.
    control.remove_interface("tap-a").unwrap();
    assert!(control.config.bindings.is_empty());
    assert!(control.config.interest.vms().1.is_empty());
}

#[test]
fn only_the_config_server_configures_and_a_new_one_sweeps_what_it_did_not_send() {
    let dir = tempfile::tempdir().unwrap();
    let (mut control, t0) = bound_to_config_server(dir.path());
    // Control node 1 does not serve configuration: what it sends is ignored.
    send(&mut control, 1, &objects("198.18.1.10").updates(), t0);
    assert!(control.model.interface_spec("tap-a").is_none());
    send(&mut control, 0, &objects("198.18.1.10").updates(), t0);
    control.config_tick(t0 + CONFIG_QUIET);
    assert!(control.model.interface_spec("tap-a").is_some());
    // Control node 0 goes; 1 takes over. As long as it sends nothing (its database
    // not loaded yet), nothing is swept, however long that lasts.
    control.config_server_down(PeerId(0));
    let t1 = t0 + Duration::from_secs(10);
    control.config_server(PeerId(1));
    control.config_tick(t1 + Duration::from_secs(3600));
    assert!(control.model.interface_spec("tap-a").is_some(), "swept without a sync");
    // It sends other configuration, not this node's virtual router: still no sync.
    let global = control_client::contrail::ConfigOp::UpdateNode {
        key: control_client::contrail::ObjectKey::new(
            control_client::contrail::ObjectType::GlobalSystemConfig,
            "default-global-system-config",
        ),
        uuid: None,
        props: control_client::contrail::Properties::Opaque,
    };
    send(&mut control, 1, std::slice::from_ref(&global), t1);
    control.config_tick(t1 + CONFIG_QUIET);
    assert!(
        control.model.interface_spec("tap-a").is_some(),
        "swept before its node's config"
    );
    // Its node's configuration without the port: once quiet, the port goes.
    let mut node_only: Vec<_> = objects("198.18.1.10").updates();
    node_only.truncate(1);
    send(&mut control, 1, &node_only, t1);
    control.config_tick(t1 + Duration::from_secs(1));
    assert!(control.model.interface_spec("tap-a").is_some(), "swept before the sync");
    control.config_tick(t1 + CONFIG_QUIET);
    assert!(control.model.interface_spec("tap-a").is_none());
}

#[test]
fn an_attached_port_is_kept_as_it_is_when_its_new_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut control = detached_control(dir.path());
    control.bind_port(binding()).unwrap();
    // Another port holds 198.18.1.20 in the same VRF.
    control
        .add_interface(control_client::InterfaceSpec {
            name: "tap-b".into(),
            vrf: objects("198.18.1.10").vrf(),
            mac: nexthop::MacAddr([2, 0, 0, 0, 0, 9]),
            ipv4: Some("198.18.1.20".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let t0 = Instant::now();
    control.config_server(PeerId(0));
    send(&mut control, 0, &objects("198.18.1.10").updates(), t0);
    control.config_tick(t0 + CONFIG_QUIET);
    let label = control.model.port_identity("tap-a").unwrap().label;
    // The configuration moves it to the address tap-b has: refused, kept as it was.
    send(&mut control, 0, &objects("198.18.1.20").updates(), t0 + CONFIG_QUIET);
    let spec = control.model.interface_spec("tap-a").expect("still attached");
    assert_eq!(spec.ipv4, Some("198.18.1.10".parse().unwrap()));
    assert_eq!(control.model.port_identity("tap-a").unwrap().label, label);
    let view = control.config.view.lock().unwrap().clone();
    assert!(
        view.ports[0]
            .waiting_for
            .as_deref()
            .is_some_and(|w| w.contains("refused")),
        "{view:?}"
    );
}

#[test]
fn a_binding_is_refused_for_a_port_attached_otherwise_or_an_interface_bound_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let mut control = detached_control(dir.path());
    control.bind_port(binding()).unwrap();
    let twice = PortBinding {
        name: "tap-b".into(),
        ..binding()
    };
    let e = control.bind_port(twice).unwrap_err();
    assert!(matches!(e, ControlError::Binding(ErrorCode::AlreadyExists, _)), "{e}");
    let bad = PortBinding {
        name: "no/slash".into(),
        vmi: Uuid::from_u128(3),
        ..binding()
    };
    assert!(control.bind_port(bad).is_err());
    // A port attached through the API is not taken over by a binding.
    control
        .add_interface(control_client::InterfaceSpec {
            name: "tap-c".into(),
            vrf: "red".into(),
            mac: nexthop::MacAddr([2, 0, 0, 0, 0, 3]),
            ipv4: Some("198.18.2.3".parse().unwrap()),
            ..Default::default()
        })
        .unwrap();
    let taken = PortBinding {
        name: "tap-c".into(),
        vmi: Uuid::from_u128(4),
        ..binding()
    };
    let e = control.bind_port(taken).unwrap_err();
    assert!(
        matches!(
            e,
            ControlError::Model(control_client::ModelError::DuplicateInterface(_))
        ),
        "{e}"
    );
    // The binding survives a restart of the control side.
    drop(control);
    let mut control = detached_control(dir.path());
    control.restore();
    assert!(control.config.bindings.contains_key("tap-a"));
    assert!(!control.config.bindings.contains_key("tap-c"));
}

#[test]
fn a_floating_ip_of_a_bound_port_comes_from_the_configuration() {
    use control_client::contrail::{ConfigOp, FloatingIpProps, Link, ObjectKey, ObjectType, Properties};
    let dir = tempfile::tempdir().unwrap();
    let (mut control, t0) = bound_to_config_server(dir.path());
    let port = objects("198.18.1.10");
    let public = "default-domain:k8s-default:public";
    let key = |kind, name: &str| ObjectKey::new(kind, name);
    let fip_name = format!("{public}:pool:fip-1");
    let fip = key(ObjectType::FloatingIp, &fip_name);
    let pool = key(ObjectType::FloatingIpPool, &format!("{public}:pool"));
    let network = key(ObjectType::VirtualNetwork, public);
    let link = |l: &ObjectKey, r: &ObjectKey, m: &str| {
        ConfigOp::UpdateLink(Link {
            left: l.clone(),
            right: r.clone(),
            metadata: m.into(),
        })
    };
    let mut ops = port.updates();
    ops.extend([
        ConfigOp::UpdateNode {
            key: network.clone(),
            uuid: None,
            props: Properties::VirtualNetwork(Default::default()),
        },
        ConfigOp::UpdateNode {
            key: pool.clone(),
            uuid: None,
            props: Properties::Opaque,
        },
        ConfigOp::UpdateNode {
            key: fip.clone(),
            uuid: None,
            props: Properties::FloatingIp(FloatingIpProps {
                address: Some("198.18.9.9".parse().unwrap()),
                ..Default::default()
            }),
        },
        link(&network, &pool, "virtual-network-floating-ip-pool"),
        link(&pool, &fip, "floating-ip-pool-floating-ip"),
        link(
            &fip,
            &key(ObjectType::VirtualMachineInterface, &port.vmi_name),
            "floating-ip-virtual-machine-interface",
        ),
    ]);
    send(&mut control, 0, &ops, t0);
    let fips: Vec<FloatingIpSpec> = control.model.floating_ips().cloned().collect();
    assert_eq!(
        fips,
        vec![FloatingIpSpec {
            name: format!("config:{fip_name}"),
            vrf: format!("{public}:public"),
            ip: "198.18.9.9".parse().unwrap(),
            interface: "tap-a".into(),
            egress_only: false,
        }]
    );
    // Deleted in the configuration: gone once the initial sync is over.
    send(&mut control, 0, &[ConfigOp::DeleteNode { key: fip }], t0);
    assert_eq!(control.model.floating_ips().count(), 1, "kept until the sync is over");
    control.config_tick(t0 + CONFIG_QUIET);
    assert_eq!(control.model.floating_ips().count(), 0);
}

#[test]
fn a_native_load_balancer_becomes_a_service_and_follows_its_members() {
    use control_client::contrail::{
        ConfigOp, Link, ListenerProps, LoadbalancerProps, MemberProps, ObjectKey, ObjectType, Properties,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut control = detached_control(dir.path());
    let t0 = Instant::now();
    control.config_server(PeerId(0));
    let port = objects("198.18.1.10");
    let key = |kind, name: &str| ObjectKey::new(kind, name);
    let link = |l: &ObjectKey, r: &ObjectKey, m: &str| {
        ConfigOp::UpdateLink(Link {
            left: l.clone(),
            right: r.clone(),
            metadata: m.into(),
        })
    };
    let node = |k: &ObjectKey, props| ConfigOp::UpdateNode {
        key: k.clone(),
        uuid: None,
        props,
    };
    let lb = key(ObjectType::Loadbalancer, "default-domain:k8s-default:web");
    let vip_port = key(ObjectType::VirtualMachineInterface, &port.vmi_name);
    let mut ops = port.updates();
    ops.push(node(
        &lb,
        Properties::Loadbalancer(LoadbalancerProps {
            vip: Some("198.18.100.10".parse().unwrap()),
            provider: Some("native".into()),
            admin_up: true,
        }),
    ));
    ops.push(link(&lb, &vip_port, "loadbalancer-virtual-machine-interface"));
    let members = ["198.18.1.21", "198.18.1.22"];
    for (listener, proto, port, target) in [("web-80", 6, 80, 9376), ("dns-53", 17, 53, 5353)] {
        let l = key(ObjectType::LoadbalancerListener, listener);
        let pool = key(ObjectType::LoadbalancerPool, &format!("{listener}-pool"));
        ops.push(node(
            &l,
            Properties::Listener(ListenerProps {
                protocol: Some(proto),
                port: Some(port),
            }),
        ));
        ops.push(node(&pool, Properties::Opaque));
        ops.push(link(&l, &lb, "loadbalancer-listener-loadbalancer"));
        ops.push(link(&pool, &l, "loadbalancer-pool-loadbalancer-listener"));
        for (i, address) in members.iter().enumerate() {
            let m = key(ObjectType::LoadbalancerMember, &format!("{listener}-m{i}"));
            ops.push(node(
                &m,
                Properties::Member(MemberProps {
                    address: Some(address.parse().unwrap()),
                    port: Some(target),
                    admin_up: true,
                }),
            ));
            ops.push(link(&pool, &m, "loadbalancer-pool-loadbalancer-member"));
        }
    }
    send(&mut control, 0, &ops, t0);
    let services: Vec<control_client::ServiceSpec> = control.model.services().cloned().collect();
    assert_eq!(services.len(), 1, "{services:?}");
    let s = &services[0];
    assert_eq!(s.name, "config:default-domain:k8s-default:web");
    assert_eq!(s.vrf, port.vrf());
    assert_eq!(s.ip, "198.18.100.10".parse::<std::net::IpAddr>().unwrap());
    let ports: Vec<(u8, u16, u16)> = s
        .ports
        .iter()
        .map(|p| (p.protocol.number(), p.port, p.target_port))
        .collect();
    assert_eq!(ports, [(6, 80, 9376), (17, 53, 5353)]);
    assert_eq!(s.backends.len(), 2);
    // A member goes (both listeners' pools): the service has one backend left.
    let gone = [
        ConfigOp::DeleteNode {
            key: key(ObjectType::LoadbalancerMember, "web-80-m1"),
        },
        ConfigOp::DeleteNode {
            key: key(ObjectType::LoadbalancerMember, "dns-53-m1"),
        },
    ];
    send(&mut control, 0, &gone, t0);
    let s = control.model.services().next().unwrap();
    assert_eq!(s.backends, ["198.18.1.21".parse::<std::net::IpAddr>().unwrap()]);
    // The load balancer goes: its service too, once the initial sync is over.
    send(&mut control, 0, &[ConfigOp::DeleteNode { key: lb }], t0);
    control.config_tick(t0 + CONFIG_QUIET);
    assert_eq!(control.model.services().count(), 0);
}

#[test]
fn the_global_vrouter_configs_flow_aging_sets_the_tables_idle_timeouts() {
    use control_client::contrail::{
        ConfigOp, FlowAgingTimeout, GlobalVrouterProps, ObjectKey, ObjectType, PortTranslationPool, Properties,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut control = detached_control(dir.path());
    let flows = Arc::new(crate::flows::Flows::new(
        &crate::flows::FlowConfig {
            entries: 64,
            ..Default::default()
        },
        4,
    ));
    control.share_flows(Arc::clone(&flows));
    let t0 = Instant::now();
    control.config_server(PeerId(0));
    let gvc = ConfigOp::UpdateNode {
        key: ObjectKey::new(
            ObjectType::GlobalVrouterConfig,
            "default-global-system-config:default-global-vrouter-config",
        ),
        uuid: None,
        props: Properties::GlobalVrouter(GlobalVrouterProps {
            flow_aging: vec![FlowAgingTimeout {
                protocol: 17,
                port: 53,
                timeout_secs: 15,
            }],
            port_translation_pools: vec![PortTranslationPool {
                protocol: 6,
                start: 56000,
                end: 57023,
            }],
            ..Default::default()
        }),
    };
    send(&mut control, 0, std::slice::from_ref(&gvc), t0);
    assert_eq!(
        flows.aging_overrides(),
        [crate::flows::AgingOverride {
            protocol: 17,
            port: 53,
            timeout_secs: 15
        }]
    );
    // Read back through the wire format as written.
    let element = Element::parse(&encode(std::slice::from_ref(&gvc))).unwrap();
    let (ops, errors) = control_client::contrail::ifmap::decode(&element);
    assert!(errors.is_empty());
    assert_eq!(ops, [gvc]);
}

/// A route message of one item in `vrf`, carrying `groups`.
fn route_with_groups(vrf: &str, prefix: &str, groups: &[u32]) -> control_client::xmpp::RouteUpdate {
    let list: String = groups
        .iter()
        .map(|g| format!("<security-group>{g}</security-group>"))
        .collect();
    let stanza = format!(
        r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/{vrf}"><item id="{prefix}"><entry><nlri><af>1</af><safi>1</safi><address>{prefix}</address></nlri><next-hops><next-hop><af>1</af><address>198.18.0.2</address><label>20</label><tunnel-encapsulation-list><tunnel-encapsulation>udp</tunnel-encapsulation></tunnel-encapsulation-list></next-hop></next-hops><security-group-list>{list}</security-group-list></entry></item></items></event></message>"#
    );
    match control_client::xmpp::Incoming::decode(&Element::parse(&stanza).unwrap()).unwrap() {
        control_client::xmpp::Incoming::Routes(update) => update,
        other => panic!("a route update, not {other:?}"),
    }
}

#[test]
fn a_bound_ports_security_groups_become_policies_whose_members_follow_the_routes() {
    use control_client::contrail::rules::{Endpoint, PortRange, Rule};
    use control_client::contrail::SecurityGroupProps;
    let dir = tempfile::tempdir().unwrap();
    let (mut control, t0) = bound_to_config_server(dir.path());
    let web = "default-domain:k8s-default:web";
    // Web allows TCP 80 from the client group (id 11, no port of it here).
    let from_clients = Rule::security_group(
        true,
        Endpoint::SecurityGroup("default-domain:k8s-default:client".into()),
        Some(6),
        vec![PortRange { start: 80, end: 80 }],
    );
    let port = objects("198.18.1.10");
    let mut ops = port.updates();
    ops.extend(port.security_group(
        web,
        SecurityGroupProps {
            id: Some(10),
            rules: vec![from_clients],
        },
    ));
    send(&mut control, 0, &ops, t0);
    let name = format!("config:sg:{web}");
    let policy = |c: &Control| c.model.policies().find(|p| p.name == name).cloned();
    let spec = policy(&control).expect("the group's policy");
    assert_eq!(spec.pods.len(), 1);
    assert_eq!(spec.pods[0].ip, "198.18.1.10".parse::<std::net::IpAddr>().unwrap());
    // No client is known yet: nothing may come in, nothing go out.
    assert_eq!(spec.ingress, Some(vec![]));
    assert_eq!(spec.egress, Some(vec![]));
    // A client's route arrives carrying group 11 (the client group's id is known
    // only from routes here: its object is not on this node): it is let in.
    let vrf = control.model.interface_spec("tap-a").unwrap().vrf.clone();
    let client = route_with_groups(&vrf, "198.18.1.20/32", &[11]);
    control.apply_route_update(PeerId(0), &client);
    assert!(control.config_dirty());
    control.reconcile_config();
    assert_eq!(
        policy(&control).unwrap().ingress,
        Some(vec![]),
        "no group is named for id 11 yet"
    );
    // The configuration names the client group: now routes with 11 are its members.
    let client_group = PortObjects {
        vmi_name: "default-domain:k8s-default:unbound".into(),
        ..objects("198.18.1.99")
    }
    .security_group(
        "default-domain:k8s-default:client",
        SecurityGroupProps {
            id: Some(11),
            rules: Vec::new(),
        },
    );
    send(&mut control, 0, &client_group[..1], t0);
    let ingress = policy(&control).unwrap().ingress.unwrap();
    let peers: Vec<String> = ingress
        .iter()
        .flat_map(|r| r.peers.iter().map(|p| p.cidr.to_string()))
        .collect();
    assert_eq!(peers, ["198.18.1.20/32"]);
    // The client's route goes: so does its allowance (after the queue empties).
    let mut retract = client.clone();
    retract.items.clear();
    retract.retracts = vec!["198.18.1.20/32".into()];
    control.apply_route_update(PeerId(0), &retract);
    assert!(control.config_dirty());
    control.reconcile_config();
    assert_eq!(policy(&control).unwrap().ingress, Some(vec![]));
    // Back, then its control node is lost for good: gone again.
    control.apply_route_update(PeerId(0), &client);
    control.reconcile_config();
    assert_eq!(policy(&control).unwrap().ingress.unwrap().len(), 1);
    control.forget_peer(PeerId(0));
    control.reconcile_config();
    assert_eq!(policy(&control).unwrap().ingress, Some(vec![]));
    // The port leaves the group (after the initial sync): its policy goes.
    control.config_tick(t0 + CONFIG_QUIET);
    let unlink = control_client::contrail::ConfigOp::DeleteLink(match &ops.last().unwrap() {
        control_client::contrail::ConfigOp::UpdateLink(l) => l.clone(),
        other => panic!("the group link, not {other:?}"),
    });
    send(&mut control, 0, &[unlink], t0 + CONFIG_QUIET);
    assert!(
        policy(&control).is_none(),
        "{:?}",
        control.model.policies().collect::<Vec<_>>()
    );
}

#[test]
fn a_bound_ports_network_access_list_becomes_a_network_tier_policy() {
    use control_client::contrail::rules::{Endpoint, PortRange, Rule, RuleAction};
    use control_client::contrail::SecurityGroupProps;
    let dir = tempfile::tempdir().unwrap();
    let (mut control, t0) = bound_to_config_server(dir.path());
    let port = objects("198.18.1.10");
    // The network denies TCP 22 from 198.18.9.0/24, then passes anything.
    let rule = |src: Endpoint, protocol, ports: PortRange, action| {
        Rule::one_way(
            src,
            Endpoint::VirtualNetwork(port.network.clone()),
            protocol,
            vec![ports],
            action,
        )
    };
    let list = vec![
        rule(
            Endpoint::Subnet("198.18.9.0/24".parse().unwrap()),
            Some(6),
            PortRange { start: 22, end: 22 },
            RuleAction::Deny,
        ),
        rule(Endpoint::Any, None, PortRange::ANY, RuleAction::Pass),
    ];
    let mut ops = port.updates();
    ops.extend(port.network_acl(list));
    // And a security group allowing TCP 22 from anywhere: both tiers at once.
    ops.extend(port.security_group(
        "default-domain:k8s-default:ssh",
        SecurityGroupProps {
            id: Some(12),
            rules: vec![Rule::security_group(
                true,
                Endpoint::Any,
                Some(6),
                vec![PortRange { start: 22, end: 22 }],
            )],
        },
    ));
    send(&mut control, 0, &ops, t0);
    let name = format!("config:vn:{}", port.network);
    let spec = control
        .model
        .policies()
        .find(|p| p.name == name)
        .cloned()
        .expect("the network's policy");
    assert_eq!(spec.tier, control_client::PolicyTier::Network);
    assert_eq!(spec.pods[0].ip, "198.18.1.10".parse::<std::net::IpAddr>().unwrap());
    // Compiled into the snapshot: a connection to TCP 22 from 198.18.9.7 is denied
    // by the network although the group allows it; from elsewhere both allow.
    let snap = control.publication.publisher().load_full();
    let vrf_name = control.model.interface_spec("tap-a").unwrap().vrf.clone();
    let vrf = snap.vrf_by_name(&vrf_name).expect("the port's VRF").id;
    let check = |src: &str| {
        snap.policies.check(&nexthop::policy::Connection {
            src_vrf: vrf,
            src: src.parse().unwrap(),
            dst_vrf: vrf,
            dst: "198.18.1.10".parse().unwrap(),
            proto: 6,
            dst_port: 22,
        })
    };
    let denied = check("198.18.9.7").denied_by().expect("denied");
    assert_eq!(snap.policies.name(denied.1), name);
    assert!(check("198.18.8.7").allowed());
    // The list goes (after the initial sync): so does the policy.
    control.config_tick(t0 + CONFIG_QUIET);
    let acl = port.network_acl(Vec::new());
    let control_client::contrail::ConfigOp::UpdateNode { key, .. } = &acl[0] else {
        panic!("the list's node");
    };
    send(
        &mut control,
        0,
        &[control_client::contrail::ConfigOp::DeleteNode { key: key.clone() }],
        t0 + CONFIG_QUIET,
    );
    assert!(control.model.policies().all(|p| p.name != name));
}

//! Compiling the desired state into an immutable forwarding snapshot.

use super::*;
use nexthop::{NatAddr, ServiceEntry, ServiceKey, VlanTag};

impl DesiredState {
    /// Compiles the state into a stand-alone forwarding snapshot of `generation`. A
    /// process that publishes one snapshot after another uses a [`SnapshotBuilder`]
    /// instead, so that flows survive publications that do not change their routes.
    pub fn build(&self, generation: u64, router_mac: MacAddr) -> Snapshot {
        SnapshotBuilder::new(generation).build(self, router_mac)
    }
}

/// One build in progress: the builder's identities plus the tables being filled.
struct Compile<'a> {
    ids: &'a mut SnapshotBuilder,
    state: &'a DesiredState,
    generation: u64,
    snap: Snapshot,
}

impl SnapshotBuilder {
    /// Compiles `state` into the next snapshot. Next hops, composites and routes that
    /// were in the previous snapshot keep their ids and slots.
    pub fn build(&mut self, state: &DesiredState, router_mac: MacAddr) -> Snapshot {
        let generation = self.begin_full();
        let vrf_count = state.vrf_ids.values().max().map_or(0, |m| m.index() + 1);
        let mut vrfs: Vec<Vrf> = (0..vrf_count)
            .map(|id| Vrf {
                id: VrfId(id as u16),
                ..Vrf::default()
            })
            .collect();
        for (name, id) in &state.vrf_ids {
            vrfs[id.index()].name = name.clone();
        }
        let mut compile = Compile {
            ids: self,
            state,
            generation,
            snap: Snapshot {
                router_mac,
                vrfs,
                fabric: state.fabric_info,
                vxlan: state
                    .vrf_vnis
                    .iter()
                    .filter_map(|(v, n)| Some((*n, *state.vrf_ids.get(v)?)))
                    .collect(),
                ..Snapshot::default()
            },
        };
        compile.interfaces(router_mac);
        compile.gateways();
        let floating = compile.floating_ips();
        for route in state.routes.iter().chain(state.effective_learned()) {
            compile.route(route);
        }
        compile.service_chains();
        let services = compile.services();
        let mut snap = compile.snap;
        self.finish(&mut snap, generation);
        self.finish_services(&mut snap, services, floating, generation);
        self.finish_policies(&mut snap, state, generation);
        snap
    }
}

impl<'a> Compile<'a> {
    /// Each service port: its backends and target port, addresses in the arena.
    fn services(&mut self) -> FastMap<ServiceKey, ServiceEntry> {
        let mut out = FastMap::default();
        for spec in self.state.services() {
            let Some(vrf) = self.state.vrf_ids.get(&spec.vrf).copied() else {
                continue;
            };
            let ip = self.ids.nat_address(spec.ip);
            // What its health check took out is no backend until it answers again.
            let healthy: Vec<IpAddr> = spec
                .backends
                .iter()
                .copied()
                .filter(|b| !self.state.backend_down(&spec.name, *b))
                .collect();
            let backends: Vec<NatAddr> = healthy.iter().map(|b| self.ids.nat_address(*b)).collect();
            let down: Vec<NatAddr> = spec
                .backends
                .iter()
                .filter(|b| !healthy.contains(b))
                .map(|b| self.ids.nat_address(*b))
                .collect();
            let ids: Vec<u64> = healthy.iter().map(|b| super::builder::backend_id(*b)).collect();
            let name: std::sync::Arc<str> = spec.name.as_str().into();
            // The node's fabric address, for node ports of IPv4 services.
            let node = self.state.fabric_info.ip.map(IpAddr::V4).filter(|_| spec.ip.is_ipv4());
            for port in &spec.ports {
                let proto = port.protocol.number();
                // The cluster IP, each external IP on the same port, the node port.
                let node_port = node.zip(port.node_port);
                let addresses = std::iter::once((spec.ip, port.port, false))
                    .chain(spec.external_ips.iter().map(|e| (*e, port.port, true)))
                    .chain(node_port.map(|(addr, p)| (addr, p, true)));
                for (addr, service_port, external) in addresses {
                    let key = ServiceKey {
                        vrf,
                        ip: addr,
                        proto,
                        port: service_port,
                    };
                    let entry = ServiceEntry {
                        name: std::sync::Arc::clone(&name),
                        ip: Some(if addr == spec.ip {
                            ip
                        } else {
                            self.ids.nat_address(addr)
                        }),
                        target_port: port.target_port,
                        backends: backends.clone(),
                        ids: ids.clone(),
                        affinity_timeout_secs: spec.affinity_timeout_secs.unwrap_or(0),
                        external,
                        down: down.clone(),
                    };
                    out.insert(key, entry);
                }
            }
        }
        out
    }

    /// The floating IPs whose interface is attached, with the pod's address of the
    /// floating address's family (one without such an address is not in force); each
    /// gets a host route in its VRF to the pod's interface (so that the vrouter
    /// answers ARP for it there, and its traffic arrives).
    fn floating_ips(&mut self) -> nexthop::FloatingIps {
        let mut out = nexthop::FloatingIps::default();
        for spec in self.state.floating_ips() {
            let (Some(vrf), Some((id, pod))) = (
                self.state.vrf_ids.get(&spec.vrf).copied(),
                self.state.interfaces.get(&spec.interface),
            ) else {
                continue;
            };
            // A port now in the floating address's own VRF has no use for it.
            let Some(pod_vrf) = self.state.vrf_ids.get(&pod.vrf).copied().filter(|v| *v != vrf) else {
                continue;
            };
            let pod_addr = match spec.ip {
                IpAddr::V4(_) => pod.ipv4.map(IpAddr::V4),
                IpAddr::V6(_) => pod.ipv6.map(IpAddr::V6),
            };
            let Some(pod_addr) = pod_addr else { continue };
            let mut service_ports: Vec<(u8, u16)> = self
                .state
                .services()
                .filter(|s| s.vrf == spec.vrf && s.backends.contains(&spec.ip))
                .flat_map(|s| s.ports.iter().map(|p| (p.protocol.number(), p.target_port)))
                .collect();
            service_ports.sort_unstable();
            service_ports.dedup();
            let nh = self.ids.nexthop(
                NextHop::Interface {
                    vif: id.vif,
                    dst_mac: pod.mac,
                },
                self.generation,
            );
            self.insert_derived(vrf, IpNet::from(spec.ip), nh);
            let target = |ids: &mut SnapshotBuilder, a: IpAddr| match a {
                IpAddr::V4(v4) => nexthop::NatTarget::V4(v4),
                IpAddr::V6(_) => nexthop::NatTarget::V6(ids.nat_address(a)),
            };
            out.insert(nexthop::FloatingEntry {
                name: spec.name.as_str().into(),
                vif: id.vif,
                pod_vrf,
                pod: pod_addr,
                pod_target: target(self.ids, pod_addr),
                vrf,
                address: spec.ip,
                target: target(self.ids, spec.ip),
                egress_only: spec.egress_only,
                service_ports,
            });
        }
        out
    }

    fn place(&mut self, i: Interface) {
        let slot = i.vif.index();
        if self.snap.interfaces.len() <= slot {
            self.snap.interfaces.resize(slot + 1, None);
        }
        self.snap.interfaces[slot] = Some(i);
    }

    /// A table entry for a pod's own address or gateway (not from a route).
    fn insert_derived(&mut self, vrf: VrfId, prefix: IpNet, nh: NextHopId) {
        self.ids.derive(vrf, prefix);
        self.insert(vrf, prefix, nh);
    }

    fn insert(&mut self, vrf: VrfId, prefix: IpNet, nh: NextHopId) {
        let route = self.ids.route(vrf, prefix, nh, self.generation);
        let table = &mut self.snap.vrfs[vrf.index()];
        match prefix {
            IpNet::V4(p) => table.v4.insert(v4_key(p.network()), p.prefix_len(), route),
            IpNet::V6(p) => table.v6.insert(v6_key(p.network()), p.prefix_len(), route),
        };
    }

    /// The fabric and the pods: an interface next hop, an MPLS label and host routes
    /// for each pod.
    fn interfaces(&mut self, router_mac: MacAddr) {
        let state = self.state;
        if let Some((name, vif)) = &state.fabric {
            self.place(Interface {
                vif: *vif,
                label: None,
                name: name.clone(),
                kind: InterfaceKind::Fabric,
                mac: router_mac,
                vrf: VrfId::FABRIC,
                ipv4: None,
                ipv6: None,
                gateway4: None,
                gateway6: None,
                allowed_sources: Vec::new(),
                mtu: 0,
                vlan: None,
                security_groups: Vec::new(),
                local_preference: None,
            });
        }
        for (name, (id, spec)) in &state.interfaces {
            let vrf = state.vrf_ids[&spec.vrf];
            let nexthop = NextHop::Interface {
                vif: id.vif,
                dst_mac: spec.mac,
            };
            let nh = self.ids.nexthop(nexthop, self.generation);
            self.snap.mpls.insert(id.label, nh);
            // A sub-interface's parent is attached (the model keeps it so).
            let vlan_tag = spec.vlan.as_ref().and_then(|v| {
                let parent = state.interfaces.get(&v.parent)?.0.vif;
                Some(VlanTag { parent, id: v.id })
            });
            if let Some(tag) = vlan_tag {
                self.snap.subinterfaces.insert(tag, id.vif);
            }
            if let Some(a) = spec.ipv4 {
                self.insert_derived(vrf, IpNet::from(IpAddr::V4(a)), nh);
                self.snap.owner4.insert(a, vrf);
            }
            if let Some(a) = spec.ipv6 {
                self.insert_derived(vrf, IpNet::from(IpAddr::V6(a)), nh);
                self.snap.owner6.insert(a, vrf);
            }
            let host = state.host_interface.as_deref() == Some(name.as_str());
            if host {
                self.snap.host = Some(nexthop::HostPort {
                    vif: id.vif,
                    nexthop: nh,
                });
                let snat = state.snat.as_ref().zip(state.fabric_info.ip);
                self.snap.snat = snat.and_then(|((vrf, ranges), addr)| {
                    Some(nexthop::Snat {
                        addr,
                        vrf: *state.vrf_ids.get(vrf)?,
                        tcp: ranges.tcp,
                        udp: ranges.udp,
                        icmp: ranges.icmp,
                    })
                });
            }
            self.place(Interface {
                vif: id.vif,
                label: Some(id.label),
                name: name.clone(),
                kind: if host { InterfaceKind::Host } else { InterfaceKind::Pod },
                mac: spec.mac,
                vrf,
                ipv4: spec.ipv4,
                ipv6: spec.ipv6,
                gateway4: spec.gateway4,
                gateway6: spec.gateway6,
                allowed_sources: if state.is_chain_interface(name) {
                    // A service instance forwards the other network's packets.
                    vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())]
                } else {
                    spec.allowed_address_pairs.iter().map(|p| p.trunc()).collect()
                },
                mtu: spec.mtu.unwrap_or(0),
                vlan: vlan_tag,
                security_groups: spec.security_groups.clone(),
                local_preference: spec.local_preference,
            });
        }
    }

    /// Receive routes for gateways, after pod addresses so that a pod address wins.
    fn gateways(&mut self) {
        let state = self.state;
        for (_, spec) in state.interfaces.values() {
            let vrf = state.vrf_ids[&spec.vrf];
            let gateways = [spec.gateway4.map(IpAddr::V4), spec.gateway6.map(IpAddr::V6)];
            for g in gateways.into_iter().flatten() {
                let table = &self.snap.vrfs[vrf.index()];
                let taken = match g {
                    IpAddr::V4(a) => table.v4.get_exact(v4_key(a), 32).is_some(),
                    IpAddr::V6(a) => table.v6.get_exact(v6_key(a), 128).is_some(),
                };
                if !taken {
                    self.insert_derived(vrf, IpNet::from(g), NH_RECEIVE);
                }
            }
        }
    }

    /// Each service chain in force: the prefixes of each of its networks (its
    /// pods' addresses and its routes, but not the instance's own nor routes leaked
    /// into it from elsewhere) routed in the other into the instance's interface
    /// there, where that network has no route of its own for them. Not its own: a
    /// route leaked from another network (another node's instance of the chain,
    /// which yields to this one), or one into this instance (its own advertisement,
    /// which a control node sends back). Of two chains joining the same networks,
    /// the first by name takes a prefix.
    fn service_chains(&mut self) {
        let state = self.state;
        let mut in_force = Vec::new();
        let mut claimed: std::collections::BTreeSet<(VrfId, IpNet)> = std::collections::BTreeSet::new();
        for (chain, left, right) in state.chains_in_force() {
            let (left_id, right_id) = (state.vrf_ids[left], state.vrf_ids[right]);
            let into = |name: &str| {
                let (id, spec) = &state.interfaces[name];
                NextHop::Interface {
                    vif: id.vif,
                    dst_mac: spec.mac,
                }
            };
            let to_left = self.ids.nexthop(into(&chain.left_interface), self.generation);
            let to_right = self.ids.nexthop(into(&chain.right_interface), self.generation);
            let from_right = chain_prefixes(state, right);
            let from_left = chain_prefixes(state, left);
            let mut leaked = [Vec::new(), Vec::new()];
            let sides = [
                (left, left_id, from_right, to_left, &chain.left_interface),
                (right, right_id, from_left, to_right, &chain.right_interface),
            ];
            for (side, (name, vrf, prefixes, nh, instance)) in sides.into_iter().enumerate() {
                for prefix in prefixes {
                    // Claimed by the chain that routes it, not by one that declined
                    // it: a later chain whose own advertisement is the route in
                    // effect (sent back by a control node) still takes it.
                    if claimed.contains(&(vrf, prefix)) {
                        continue;
                    }
                    let table = &self.snap.vrfs[vrf.index()];
                    let taken = match prefix {
                        IpNet::V4(p) => table.v4.get_exact(v4_key(p.network()), p.prefix_len()).is_some(),
                        IpNet::V6(p) => table.v6.get_exact(v6_key(p.network()), p.prefix_len()).is_some(),
                    };
                    let yields = || {
                        state
                            .learned_in_effect(name, prefix)
                            .is_some_and(|(route, leaked)| leaked || route.target.mentions(instance))
                    };
                    if !taken || yields() {
                        claimed.insert((vrf, prefix));
                        self.insert_derived(vrf, prefix, nh);
                        leaked[side].push(prefix);
                    }
                }
            }
            let vif = |name: &str| state.interfaces[name].0.vif;
            in_force.push(nexthop::ServiceChain {
                name: chain.name.clone(),
                left: (vif(&chain.left_interface), left_id),
                right: (vif(&chain.right_interface), right_id),
                leaked: leaked.into(),
            });
        }
        self.snap.service_chains = std::sync::Arc::new(in_force);
    }

    fn route(&mut self, route: &RouteSpec) {
        let nh = self.ids.resolve(self.state, &route.target, self.generation);
        self.insert(self.state.vrf_ids[&route.vrf], route.prefix, nh);
    }
}

impl SnapshotBuilder {
    /// The next-hop id of a route target (a composite for ECMP), interned in
    /// `generation`. Targets were validated when the route was added.
    pub(super) fn resolve(&mut self, state: &DesiredState, target: &RouteTarget, generation: u64) -> NextHopId {
        match target {
            RouteTarget::Ecmp { members } => {
                let resolved: Vec<(NextHopId, u64)> =
                    members.iter().map(|m| self.member(state, m, generation)).collect();
                let group = Composite {
                    members: resolved.iter().map(|r| r.0).collect(),
                    ids: resolved.iter().map(|r| r.1).collect(),
                };
                self.composite(group, generation)
            }
            other => self.member(state, other, generation).0,
        }
    }

    /// A next hop for one non-ECMP target, with its stable ECMP member identity.
    fn member(&mut self, state: &DesiredState, t: &RouteTarget, generation: u64) -> (NextHopId, u64) {
        match t {
            RouteTarget::Discard | RouteTarget::Ecmp { .. } => (NH_DISCARD, 0),
            RouteTarget::Interface { name } => {
                let Some((id, spec)) = state.interfaces.get(name) else {
                    return (NH_DISCARD, 0);
                };
                // The same value the interface's own next hop was interned with: the same id.
                let nh = self.nexthop(
                    NextHop::Interface {
                        vif: id.vif,
                        dst_mac: spec.mac,
                    },
                    generation,
                );
                (nh, nexthop::ecmp::member_id(&[1, u64::from(nh.0)]))
            }
            RouteTarget::Tunnel {
                remote,
                label,
                encaps,
                mac,
            } => {
                let encap = state.choose_encap(encaps).unwrap_or(Encap::MplsOverUdp);
                let inner_mac = mac.unwrap_or(DEFAULT_REMOTE_MAC);
                // Routes to the same remote, label and encapsulation share one next hop.
                let tunnel = NextHop::Tunnel {
                    encap,
                    remote: *remote,
                    label: *label,
                    outer_mac: state.neighbors.get(remote).copied().unwrap_or_default(),
                    inner_mac,
                };
                let nh = self.nexthop(tunnel, generation);
                let member = nexthop::ecmp::member_id(&[2, u64::from(u32::from(*remote)), u64::from(*label)]);
                (nh, member)
            }
        }
    }
}

/// The prefixes VRF `vrf` offers a service chain, each once: its pods' addresses
/// and its routes, except a service instance's interfaces, what routes into them,
/// the node's own interface and routes leaked into the VRF from another network
/// (no chain of chains).
fn chain_prefixes(state: &DesiredState, vrf: &str) -> std::collections::BTreeSet<IpNet> {
    let pods = state
        .interfaces
        .iter()
        .filter(|(name, (_, s))| {
            s.vrf == vrf && !state.is_chain_interface(name) && state.host_interface() != Some(name.as_str())
        })
        .flat_map(|(_, (_, s))| [s.ipv4.map(IpAddr::V4), s.ipv6.map(IpAddr::V6)])
        .flatten()
        .map(IpNet::from);
    let routes = state
        .routes
        .iter()
        .filter(|r| r.vrf == vrf)
        .chain(
            state
                .effective_learned_paths()
                .filter(|p| p.route.vrf == vrf && !p.leaked)
                .map(|p| &p.route),
        )
        .filter(|r| {
            !state
                .service_chains()
                .any(|c| r.target.mentions(&c.left_interface) || r.target.mentions(&c.right_interface))
        })
        .map(|r| r.prefix.trunc());
    pods.chain(routes).collect()
}

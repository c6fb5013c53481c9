//! Compiling the desired state into an immutable forwarding snapshot.

use super::*;

impl DesiredState {
    /// Compiles the state into a forwarding snapshot.
    pub fn build(&self, generation: u64, router_mac: MacAddr) -> Snapshot {
        let vrf_count = self.vrf_ids.values().max().map_or(0, |m| *m as usize + 1);
        let mut vrfs: Vec<Vrf> = (0..vrf_count)
            .map(|id| Vrf {
                id: id as VrfId,
                ..Vrf::default()
            })
            .collect();
        for (name, id) in &self.vrf_ids {
            vrfs[*id as usize].name = name.clone();
        }
        let mut nexthops = vec![NextHop::Discard, NextHop::Receive];
        let mut interfaces: Vec<Option<Interface>> = Vec::new();
        let mut interface_nh: BTreeMap<&str, NextHopId> = BTreeMap::new();
        let place = |interfaces: &mut Vec<Option<Interface>>, i: Interface| {
            let slot = i.vif as usize;
            if interfaces.len() <= slot {
                interfaces.resize(slot + 1, None);
            }
            interfaces[slot] = Some(i);
        };
        if let Some((name, vif)) = &self.fabric {
            place(
                &mut interfaces,
                Interface {
                    vif: *vif,
                    name: name.clone(),
                    kind: InterfaceKind::Fabric,
                    mac: router_mac,
                    vrf: 0,
                    ipv4: None,
                    ipv6: None,
                    gateway4: None,
                    gateway6: None,
                },
            );
        }
        let mut snapshot_owner4 = FastMap::default();
        let mut snapshot_owner6 = FastMap::default();
        let mut mpls = FastMap::default();
        for (name, (vif, spec)) in &self.interfaces {
            let vrf = self.vrf_ids[&spec.vrf];
            let nh = nexthops.len() as NextHopId;
            nexthops.push(NextHop::Interface {
                vif: *vif,
                dst_mac: spec.mac,
            });
            interface_nh.insert(name.as_str(), nh);
            mpls.insert(label_of(*vif), nh);
            let table = &mut vrfs[vrf as usize];
            if let Some(a) = spec.ipv4 {
                table.v4.insert(v4_key(a), 32, nh);
                snapshot_owner4.insert(a, vrf);
            }
            if let Some(a) = spec.ipv6 {
                table.v6.insert(v6_key(a), 128, nh);
                snapshot_owner6.insert(a, vrf);
            }
            place(
                &mut interfaces,
                Interface {
                    vif: *vif,
                    name: name.clone(),
                    kind: InterfaceKind::Pod,
                    mac: spec.mac,
                    vrf,
                    ipv4: spec.ipv4,
                    ipv6: spec.ipv6,
                    gateway4: spec.gateway4,
                    gateway6: spec.gateway6,
                },
            );
        }
        // Gateways go in after pod addresses so that a pod address always wins.
        for (_, spec) in self.interfaces.values() {
            let table = &mut vrfs[self.vrf_ids[&spec.vrf] as usize];
            if let Some(g) = spec.gateway4 {
                if table.v4.get_exact(v4_key(g), 32).is_none() {
                    table.v4.insert(v4_key(g), 32, NH_RECEIVE);
                }
            }
            if let Some(g) = spec.gateway6 {
                if table.v6.get_exact(v6_key(g), 128).is_none() {
                    table.v6.insert(v6_key(g), 128, NH_RECEIVE);
                }
            }
        }
        let mut tunnels: BTreeMap<(Encap, Ipv4Addr, u32, MacAddr), NextHopId> = BTreeMap::new();
        let mut composites: Vec<Composite> = Vec::new();
        for route in &self.routes {
            let mut resolve = |t: &RouteTarget, nexthops: &mut Vec<NextHop>| -> (NextHopId, u64) {
                match t {
                    RouteTarget::Discard => (NH_DISCARD, 0),
                    RouteTarget::Interface { name } => {
                        let nh = interface_nh[name.as_str()];
                        (nh, nexthop::ecmp::member_id(&[1, u64::from(nh)]))
                    }
                    RouteTarget::Tunnel {
                        remote,
                        label,
                        encaps,
                        mac,
                    } => {
                        let encap = self.choose_encap(encaps).unwrap_or(Encap::MplsOverUdp);
                        let inner_mac = mac.unwrap_or(DEFAULT_REMOTE_MAC);
                        let nh = *tunnels.entry((encap, *remote, *label, inner_mac)).or_insert_with(|| {
                            nexthops.push(NextHop::Tunnel {
                                encap,
                                remote: *remote,
                                label: *label,
                                outer_mac: self.neighbors.get(remote).copied().unwrap_or_default(),
                                inner_mac,
                            });
                            nexthops.len() as NextHopId - 1
                        });
                        (
                            nh,
                            nexthop::ecmp::member_id(&[2, u64::from(u32::from(*remote)), u64::from(*label)]),
                        )
                    }
                    RouteTarget::Ecmp { .. } => (NH_DISCARD, 0),
                }
            };
            let nh = match &route.target {
                RouteTarget::Ecmp { members } => {
                    let resolved: Vec<(NextHopId, u64)> = members.iter().map(|m| resolve(m, &mut nexthops)).collect();
                    composites.push(Composite {
                        members: resolved.iter().map(|r| r.0).collect(),
                        ids: resolved.iter().map(|r| r.1).collect(),
                    });
                    nexthops.push(NextHop::Composite {
                        id: composites.len() as u32 - 1,
                    });
                    nexthops.len() as NextHopId - 1
                }
                other => resolve(other, &mut nexthops).0,
            };
            let table = &mut vrfs[self.vrf_ids[&route.vrf] as usize];
            match route.prefix {
                IpNet::V4(p) => {
                    table.v4.insert(v4_key(p.network()), p.prefix_len(), nh);
                }
                IpNet::V6(p) => {
                    table.v6.insert(v6_key(p.network()), p.prefix_len(), nh);
                }
            }
        }
        Snapshot {
            generation,
            router_mac,
            interfaces,
            vrfs,
            nexthops,
            owner4: snapshot_owner4,
            owner6: snapshot_owner6,
            fabric: self.fabric_info,
            mpls,
            vxlan: self.vrf_vnis.iter().map(|(v, n)| (*n, self.vrf_ids[v])).collect(),
            composites,
        }
    }
}

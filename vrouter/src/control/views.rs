//! Read-only views: answered from the published snapshot and the workers' counters,
//! without the control state and without a lock, so a slow change never delays them.

use crate::drops::DropReason;
use crate::flows::flow_matches;
use crate::flows::{FlowAction, Flows};
use crate::stats::{tunnel_totals, vif_totals, WorkerStats};
use control_client::SnapshotPublisher;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nexthop::{NextHopId, Snapshot};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

mod ingress;
pub(crate) mod policy;
mod snat;
pub use ingress::IngressShared;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use vrouter_api::{
    ApiError, ErrorCode, Request, RouteCursor, RouteView, StatusView, TunnelTotals, WorkerView, MAX_FLOWS_PER_ANSWER,
    MAX_ROUTES_PER_ANSWER,
};
use vrouter_api::{
    DropStatsView, FlowActionView, FlowFilter, FlowStatsView, FlowView, InterfaceView, NextHopView, ServiceView,
};

/// What the views read: shared handles only.
#[derive(Debug)]
pub struct Views {
    publisher: SnapshotPublisher,
    stats: Vec<Arc<WorkerStats>>,
    flows: Arc<Flows>,
    forwarding_cores: Vec<usize>,
    flow_rate: Mutex<(Instant, u64, f64)>,
    ready: Arc<AtomicBool>,
    channels: Vec<Arc<crate::xmpp::ChannelStats>>,
    config: Arc<Mutex<vrouter_api::ConfigView>>,
    learned: super::learned::LearnedView,
    recent: Arc<crate::flow_export::recent::RecentRecords>,
    captures: Arc<crate::capture::Captures>,
    ingress: Option<IngressShared>,
}

impl Views {
    /// Views over these handles.
    pub fn new(
        publisher: SnapshotPublisher,
        stats: Vec<Arc<WorkerStats>>,
        flows: Arc<Flows>,
        forwarding_cores: Vec<usize>,
    ) -> Self {
        Self {
            publisher,
            stats,
            flows,
            forwarding_cores,
            flow_rate: Mutex::new((Instant::now(), 0, 0.0)),
            ready: Arc::new(AtomicBool::new(false)),
            channels: Vec::new(),
            config: Arc::default(),
            learned: Arc::default(),
            recent: Arc::new(crate::flow_export::recent::RecentRecords::new(0)),
            captures: Arc::default(),
            ingress: None,
        }
    }

    /// These views with the packet capture sessions of the workers.
    pub fn with_captures(mut self, captures: Arc<crate::capture::Captures>) -> Self {
        self.captures = captures;
        self
    }

    /// These views with the flow records the aging thread keeps.
    pub fn with_flow_records(mut self, recent: Arc<crate::flow_export::recent::RecentRecords>) -> Self {
        self.recent = recent;
        self
    }

    /// These views with the state of the channels to control nodes.
    pub fn with_channels(mut self, channels: Vec<Arc<crate::xmpp::ChannelStats>>) -> Self {
        self.channels = channels;
        self
    }

    /// These views with the per-control-node route counts the control task keeps.
    pub fn with_learned(mut self, learned: super::learned::LearnedView) -> Self {
        self.learned = learned;
        self
    }

    /// These views with the configuration view the control task keeps current.
    pub fn with_config(mut self, config: Arc<Mutex<vrouter_api::ConfigView>>) -> Self {
        self.config = config;
        self
    }

    /// The flag the control task sets once the state directory is restored.
    pub fn ready_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.ready)
    }

    /// The answer to a view request (a change request is an internal error here: the
    /// server sends those to the control task).
    pub fn answer(&self, request: &Request) -> Result<serde_json::Value, ApiError> {
        let value = match request {
            Request::Interfaces => serde_json::to_value(self.interfaces()),
            Request::Routes { vrf, limit, after } => {
                serde_json::to_value(self.routes(vrf.as_deref(), *limit, after.as_ref())?)
            }
            Request::NextHops => serde_json::to_value(self.nexthops()),
            Request::DropStats => serde_json::to_value(self.drop_stats()),
            Request::Status => serde_json::to_value(self.status()),
            Request::Flows {
                filter,
                limit,
                from_index,
            } => serde_json::to_value(self.flows(filter, *limit, *from_index)),
            Request::FlowStats => serde_json::to_value(self.flow_stats()),
            Request::FlowRecords { after, limit } => serde_json::to_value(self.recent.since(*after, *limit)),
            Request::CaptureStart { vif, snaplen } => serde_json::to_value(self.capture_start(*vif, *snaplen)?),
            Request::CaptureRead { id, limit } => serde_json::to_value(self.capture_read(*id, *limit)?),
            Request::CaptureStop { id } => {
                self.captures.stop(*id);
                serde_json::to_value(())
            }
            Request::Mpls => serde_json::to_value(self.mpls()),
            Request::Vxlan => serde_json::to_value(self.vxlan()),
            Request::Tunnels => serde_json::to_value(self.tunnels()),
            Request::Xmpp => serde_json::to_value(self.xmpp()),
            Request::Services => serde_json::to_value(self.services()),
            Request::Snat => serde_json::to_value(self.snat()),
            Request::FloatingIps => serde_json::to_value(self.floating_ips()),
            Request::ServiceChains => serde_json::to_value(self.service_chains()),
            Request::Ingresses => serde_json::to_value(self.ingresses()),
            Request::Policies => serde_json::to_value(self.policies()),
            Request::Config => serde_json::to_value(self.config()),
            other => {
                return Err(ApiError::new(
                    ErrorCode::Internal,
                    format!("{other:?} is a change, not a view"),
                ))
            }
        };
        value.map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))
    }

    /// The configuration view the control task keeps current.
    pub fn config(&self) -> vrouter_api::ConfigView {
        self.config.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn capture_start(&self, vif: u32, snaplen: u32) -> Result<u64, ApiError> {
        if self.snapshot().interface(nexthop::Vif(vif)).is_none() {
            return Err(ApiError::new(
                ErrorCode::NotFound,
                format!("no interface with vif {vif}"),
            ));
        }
        self.captures
            .start(nexthop::Vif(vif), snaplen)
            .map_err(|e| ApiError::new(ErrorCode::Busy, e.to_string()))
    }

    fn capture_read(&self, id: u64, limit: usize) -> Result<vrouter_api::CapturedPacketsView, ApiError> {
        let (packets, lost) = self
            .captures
            .read(id, limit.clamp(1, vrouter_api::MAX_FLOWS_PER_ANSWER))
            .map_err(|e| ApiError::new(ErrorCode::NotFound, e.to_string()))?;
        let packets = packets
            .into_iter()
            .map(|p| {
                let (stage, drop_reason) = match p.stage {
                    crate::capture::Stage::Received => ("received", None),
                    crate::capture::Stage::Sent => ("sent", None),
                    crate::capture::Stage::Dropped(r) => ("dropped", Some(r.label().to_string())),
                };
                vrouter_api::CapturedPacketView {
                    at_ns: p.at_ns,
                    worker: p.worker,
                    stage: stage.to_string(),
                    drop_reason,
                    len: p.len,
                    hex: vrouter_api::to_hex(&p.bytes),
                }
            })
            .collect();
        Ok(vrouter_api::CapturedPacketsView { packets, lost })
    }

    /// The published snapshot.
    pub fn snapshot(&self) -> std::sync::Arc<Snapshot> {
        self.publisher.load_full()
    }

    /// The `vif` view.
    pub fn interfaces(&self) -> Vec<InterfaceView> {
        let snap = self.snapshot();
        let stats = &self.stats;
        snap.interfaces
            .iter()
            .flatten()
            .map(|i| InterfaceView {
                vif: i.vif.0,
                label: i.label,
                name: i.name.clone(),
                kind: i.kind,
                vrf: snap.vrf(i.vrf).map(|v| v.name.clone()).unwrap_or_default(),
                mac: i.mac,
                ipv4: i.ipv4,
                ipv6: i.ipv6,
                gateway4: i.gateway4,
                gateway6: i.gateway6,
                vlan: i.vlan,
                counters: vif_totals(stats, i.vif),
            })
            .collect()
    }

    /// The `rt` view: at most `limit` routes (capped at [`MAX_ROUTES_PER_ANSWER`])
    /// in listing order, after `after` if given.
    pub fn routes(
        &self,
        vrf: Option<&str>,
        limit: usize,
        after: Option<&RouteCursor>,
    ) -> Result<Vec<RouteView>, ApiError> {
        let limit = limit.min(MAX_ROUTES_PER_ANSWER);
        let snap = self.snapshot();
        let not_found =
            |name: &str, what: &str| ApiError::new(ErrorCode::NotFound, format!("no VRF named {name:?}{what}"));
        if let Some(name) = vrf {
            snap.vrf_by_name(name).ok_or_else(|| not_found(name, ""))?;
        }
        let start = match after {
            Some(c) => {
                let id = snap
                    .vrf_by_name(&c.vrf)
                    .ok_or_else(|| not_found(&c.vrf, " (the page's VRF is gone: list again from the start)"))?
                    .id;
                Some((id, listing_key(c.prefix)))
            }
            None => None,
        };
        let mut out = Vec::with_capacity(limit.min(1024));
        let chosen = snap
            .vrfs
            .iter()
            .filter(|v| vrf.is_none_or(|n| n == v.name))
            .filter(|v| start.is_none_or(|(id, _)| v.id >= id));
        for v in chosen {
            let after_key = start.filter(|(id, _)| *id == v.id).map(|(_, key)| key);
            let v4 =
                v.v4.entries()
                    .into_iter()
                    .map(|(k, len, r)| (IpNet::from(Ipv4Net::new(Ipv4Addr::from(k), len).unwrap_or_default()), r));
            let v6 =
                v.v6.entries()
                    .into_iter()
                    .map(|(k, len, r)| (IpNet::from(Ipv6Net::new(Ipv6Addr::from(k), len).unwrap_or_default()), r));
            for (prefix, route) in v4.chain(v6) {
                if after_key.is_some_and(|a| listing_key(prefix) <= a) {
                    continue;
                }
                if out.len() >= limit {
                    return Ok(out);
                }
                out.push(RouteView {
                    vrf: v.name.clone(),
                    prefix,
                    nh: route.nexthop.0,
                });
            }
        }
        Ok(out)
    }

    /// The `nh` view: the next hops in use (ids stay put across changes, so unused
    /// ids between them are left out).
    pub fn nexthops(&self) -> Vec<NextHopView> {
        let snap = self.snapshot();
        let mut uses = vec![0usize; snap.nexthops.len()];
        let mut in_use = vec![false; snap.nexthops.len()];
        let mut mark = |id: NextHopId| {
            if let Some(u) = in_use.get_mut(id.index()) {
                *u = true;
            }
        };
        mark(NextHopId(0));
        mark(NextHopId(1));
        snap.composites.iter().flat_map(|c| &c.members).for_each(|id| mark(*id));
        snap.mpls.values().for_each(|id| mark(*id));
        for v in &snap.vrfs {
            let routes =
                v.v4.entries()
                    .into_iter()
                    .map(|e| e.2)
                    .chain(v.v6.entries().into_iter().map(|e| e.2));
            for route in routes {
                uses[route.nexthop.index()] += 1;
            }
        }
        snap.nexthops
            .iter()
            .enumerate()
            .filter(|(id, _)| in_use[*id] || uses[*id] > 0)
            .map(|(id, nh)| NextHopView {
                id: id as u32,
                nexthop: *nh,
                routes: uses[id],
            })
            .collect()
    }

    /// The `dropstats` view.
    pub fn drop_stats(&self) -> DropStatsView {
        let stats = &self.stats;
        DropStatsView {
            reasons: DropReason::ALL
                .iter()
                .map(|r| {
                    (
                        r.label().to_string(),
                        stats.iter().map(|w| w.drops[r.index()].get()).sum(),
                    )
                })
                .collect(),
            icmp_errors_sent: stats.iter().map(|w| w.icmp_errors_sent.get()).sum(),
            icmp_errors_suppressed: stats.iter().map(|w| w.icmp_errors_suppressed.get()).sum(),
        }
    }

    /// The `status` view.
    pub fn status(&self) -> StatusView {
        let snap = self.snapshot();
        let stats = &self.stats;
        StatusView {
            ready: self.ready.load(Ordering::Acquire),
            generation: snap.generation,
            forwarding_cores: self.forwarding_cores.clone(),
            interfaces: snap.interfaces.iter().flatten().count(),
            vrfs: snap.vrfs.iter().filter(|v| !v.name.is_empty()).count(),
            cycles_per_second: crate::cycles::cycles_per_second() as u64,
            workers: stats
                .iter()
                .enumerate()
                .map(|(index, w)| WorkerView {
                    index,
                    core: self.forwarding_cores.get(index).copied().unwrap_or_default(),
                    busy_loops: w.busy_loops.get(),
                    idle_loops: w.idle_loops.get(),
                    rx_packets: w.vifs.iter().map(|v| v.rx_packets.get()).sum(),
                    tx_packets: w.vifs.iter().map(|v| v.tx_packets.get()).sum(),
                    drops: w.drops.iter().map(|d| d.get()).sum(),
                    busy_cycles: w.busy_cycles.get(),
                    idle_cycles: w.idle_cycles.get(),
                    drops_by_reason: DropReason::ALL
                        .iter()
                        .map(|r| (r.label().to_string(), w.drops[r.index()].get()))
                        .filter(|(_, n)| *n > 0)
                        .collect(),
                    chains_received: w.chains_received.get(),
                    chains_sent: w.chains_sent.get(),
                    tx_checksum_offload: w.tx_checksum_offload.load(std::sync::atomic::Ordering::Relaxed),
                    checksum_offloads: w.checksum_offloads.get(),
                    frame_double_releases: w.frame_double_releases.get(),
                })
                .collect(),
        }
    }

    /// The `service` view: every service port, by name, address and port.
    pub fn services(&self) -> Vec<ServiceView> {
        let snap = self.snapshot();
        let counts = self.service_counts(&snap);
        let mut out: Vec<ServiceView> = snap
            .services
            .by_key
            .iter()
            .map(|(key, entry)| ServiceView {
                name: entry.name.to_string(),
                vrf: snap.vrf(key.vrf).map(|v| v.name.clone()).unwrap_or_default(),
                ip: key.ip,
                proto: key.proto,
                port: key.port,
                target_port: entry.target_port,
                backends: entry.backends.iter().filter_map(|b| snap.nat_address(*b)).collect(),
                down: entry.down.iter().filter_map(|b| snap.nat_address(*b)).collect(),
                affinity_timeout_secs: (entry.affinity_timeout_secs != 0).then_some(entry.affinity_timeout_secs),
                flows: counts.get(key).map_or(0, |c| c.0),
                packets: counts.get(key).map_or(0, |c| c.1),
                bytes: counts.get(key).map_or(0, |c| c.2),
            })
            .collect();
        out.sort_by(|a, b| (&a.name, a.proto, a.port).cmp(&(&b.name, b.proto, b.port)));
        out
    }

    /// The channels, each with the routes its control node taught per VRF.
    pub fn xmpp(&self) -> Vec<vrouter_api::XmppChannelView> {
        let counts = self.learned.lock().map(|c| c.clone()).unwrap_or_default();
        self.channels
            .iter()
            .map(|c| {
                let mut view = c.view();
                view.routes_per_vrf = counts
                    .iter()
                    .filter(|((peer, _), _)| *peer == view.peer)
                    .map(|((_, vrf), n)| (vrf.clone(), *n))
                    .collect();
                view
            })
            .collect()
    }

    /// The floating IPs in force (their interface attached), by name.
    pub fn floating_ips(&self) -> Vec<vrouter_api::FloatingIpView> {
        let snap = self.snapshot();
        let vrf_name = |id| snap.vrf(id).map(|v| v.name.clone()).unwrap_or_default();
        let mut out: Vec<vrouter_api::FloatingIpView> = snap
            .floating
            .by_address
            .values()
            .map(|e| vrouter_api::FloatingIpView {
                name: e.name.to_string(),
                vrf: vrf_name(e.vrf),
                ip: e.address,
                interface: snap.interface(e.vif).map(|i| i.name.clone()).unwrap_or_default(),
                pod_vrf: vrf_name(e.pod_vrf),
                pod_ip: e.pod,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The service chains in force, by name.
    pub fn service_chains(&self) -> Vec<vrouter_api::ServiceChainView> {
        let snap = self.snapshot();
        let vrf_name = |id| snap.vrf(id).map(|v| v.name.clone()).unwrap_or_default();
        let interface = |vif| snap.interface(vif).map(|i| i.name.clone()).unwrap_or_default();
        let mut out: Vec<vrouter_api::ServiceChainView> = snap
            .service_chains
            .iter()
            .map(|c| vrouter_api::ServiceChainView {
                name: c.name.clone(),
                left_interface: interface(c.left.0),
                left_vrf: vrf_name(c.left.1),
                right_interface: interface(c.right.0),
                right_vrf: vrf_name(c.right.1),
                routes_in_left: u32::try_from(c.leaked.0.len()).unwrap_or(u32::MAX),
                routes_in_right: u32::try_from(c.leaked.1.len()).unwrap_or(u32::MAX),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Per service port: the flows to it in the table now, and their packets and
    /// bytes in both directions (one pass over the table; nothing is counted on the
    /// forwarding path beyond each flow's own counters).
    fn service_counts(&self, snap: &Snapshot) -> std::collections::HashMap<nexthop::ServiceKey, (u64, u64, u64)> {
        let mut out: std::collections::HashMap<nexthop::ServiceKey, (u64, u64, u64)> = Default::default();
        if snap.services.by_key.is_empty() {
            return out;
        }
        let table = &self.flows.table;
        table.scan(0, |r, activity| {
            if FlowAction::is_reverse(r.value.data) || !FlowAction::is_translated(r.value.data) {
                return ControlFlow::Continue(());
            }
            let own = nexthop::ServiceKey {
                vrf: nexthop::VrfId(r.key.vrf()),
                ip: r.key.dst_addr(),
                proto: r.key.proto(),
                port: r.key.dst_port(),
            };
            // A service of its VRF, or (a pod with a floating IP reaching a service
            // of the floating address's VRF) of that VRF.
            let listed = |k: &nexthop::ServiceKey| snap.services.by_key.contains_key(k);
            let elsewhere = || {
                let floating = snap.floating.of(nexthop::Vif(r.value.owner)).iter();
                floating
                    .filter(|e| e.pod == r.key.src_addr())
                    .map(|e| nexthop::ServiceKey { vrf: e.vrf, ..own })
                    .find(listed)
            };
            if let Some(key) = Some(own).filter(listed).or_else(elsewhere) {
                let back = r.reverse.map(|i| table.activity(i)).unwrap_or_default();
                let c = out.entry(key).or_default();
                c.0 += 1;
                c.1 += activity.packets + back.packets;
                c.2 += activity.bytes + back.bytes;
            }
            ControlFlow::Continue(())
        });
        out
    }

    /// Flows matching `filter` from entry `from_index` on, at most `limit` (capped at
    /// [`MAX_FLOWS_PER_ANSWER`]): the `flow -l` / `flow --match` view.
    pub fn flows(&self, filter: &FlowFilter, limit: usize, from_index: u32) -> Vec<FlowView> {
        let limit = limit.min(MAX_FLOWS_PER_ANSWER);
        let snap = self.snapshot();
        let table = &self.flows.table;
        let now = table.now();
        let mut out = Vec::with_capacity(limit.min(1024));
        table.scan(from_index, |r, activity| {
            if out.len() >= limit {
                return ControlFlow::Break(());
            }
            if !flow_matches(
                filter,
                &r.key,
                snap.vrf(nexthop::VrfId(r.key.vrf())).map(|v| v.name.as_str()),
            ) {
                return ControlFlow::Continue(());
            }
            let action = match FlowAction::decode(r.value.data) {
                Some(FlowAction::Forward(nh)) => match snap.nexthop(nh) {
                    Some(nexthop::NextHop::Interface { vif, .. }) => FlowActionView::ToInterface {
                        nexthop: nh.0,
                        vif: vif.0,
                    },
                    Some(nexthop::NextHop::Tunnel { remote, label, .. }) => FlowActionView::ToTunnel {
                        nexthop: nh.0,
                        remote: *remote,
                        label: *label,
                    },
                    _ => FlowActionView::Forward { nexthop: nh.0 },
                },
                Some(FlowAction::Drop(reason)) => FlowActionView::Drop {
                    reason: reason.label().to_string(),
                },
                None => FlowActionView::Unknown,
            };
            let translation = self
                .flows
                .translation(r)
                .and_then(|t| Some((nexthop::Nat::decode(t.nat)?, t.pair)));
            let policy = policy::flow_policy(&snap, &r.key, FlowAction::is_reverse(r.value.data), translation);
            let nat = translation.and_then(|(n, pair)| crate::flow_export::nat_view(&snap, &r.key, n, pair.as_ref()));
            out.push(FlowView {
                index: r.index,
                reverse: r.reverse,
                vrf: snap
                    .vrf(nexthop::VrfId(r.key.vrf()))
                    .map(|v| v.name.clone())
                    .unwrap_or_default(),
                src: r.key.src_addr(),
                dst: r.key.dst_addr(),
                proto: r.key.proto(),
                src_port: r.key.src_port(),
                dst_port: r.key.dst_port(),
                action,
                nat,
                interface: r.value.owner,
                generation: r.value.generation,
                stale: !snap.decision_holds(r.value.generation, FlowAction::slot(r.value.data)),
                packets: activity.packets,
                bytes: activity.bytes,
                policy,
                idle_secs: now.saturating_sub(activity.last_seen),
                tcp_flags: activity.tcp_flags,
            });
            ControlFlow::Continue(())
        });
        out
    }

    /// The flow statistics view, with the setup rate since the previous call.
    pub fn flow_stats(&self) -> FlowStatsView {
        let mut view = self.flow_totals();
        let mut rate = self.flow_rate.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = rate.0.elapsed().as_secs_f64();
        if elapsed >= 0.2 {
            rate.2 = (view.created_entries.saturating_sub(rate.1)) as f64 / 2.0 / elapsed;
            *rate = (Instant::now(), view.created_entries, rate.2);
        }
        view.setup_rate_per_sec = rate.2;
        view
    }

    /// The flow table's counts without the setup rate (which only
    /// [`Views::flow_stats`] advances, so a metrics scrape leaves it alone).
    pub fn flow_totals(&self) -> FlowStatsView {
        let t = self.flows.table.stats();
        let drops = self.drop_stats();
        FlowStatsView {
            capacity: t.capacity,
            active_entries: t.active,
            created_entries: t.created,
            deleted_entries: t.deleted,
            aged_flows: self.flows.aged.load(std::sync::atomic::Ordering::Relaxed),
            refused_table_full: drops.get("flow_table_full"),
            refused_interface_limit: drops.get("flow_limit"),
            setup_rate_per_sec: 0.0,
            memory_bytes: self.flows.table.memory_bytes() as u64,
            fragment_records: self.flows.fragments.records(),
            fragments: self.flows.fragments.counts(),
        }
    }

    /// New connections refused for want of a fabric source NAT port.
    pub fn snat_exhausted(&self) -> u64 {
        self.flows.snat_exhausted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// New connections to a service refused for a live connection's reply key.
    pub fn nat_clashes(&self) -> u64 {
        self.flows.nat_clashes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The forwarding cores, by worker.
    pub fn forwarding_cores(&self) -> &[usize] {
        &self.forwarding_cores
    }

    /// The MPLS label table (label -> next hop).
    pub fn mpls(&self) -> Vec<(u32, u32)> {
        let snap = self.snapshot();
        let mut out: Vec<(u32, u32)> = snap.mpls.iter().map(|(l, nh)| (*l, nh.0)).collect();
        out.sort_unstable();
        out
    }

    /// Packets and bytes to and from each remote node.
    pub fn tunnels(&self) -> Vec<TunnelTotals> {
        tunnel_totals(&self.stats)
    }

    /// The VXLAN table (VNI -> VRF name).
    pub fn vxlan(&self) -> Vec<(u32, String)> {
        let snap = self.snapshot();
        let mut out: Vec<(u32, String)> = snap
            .vxlan
            .iter()
            .map(|(n, v)| (*n, snap.vrf(*v).map(|v| v.name.clone()).unwrap_or_default()))
            .collect();
        out.sort_unstable();
        out
    }
}

/// A route's place in the listing order within its VRF: IPv4 first, longest prefixes
/// first, then by address (the order [`nexthop::LpmTable::entries`] gives).
fn listing_key(prefix: IpNet) -> (u8, u8, u128) {
    match prefix {
        IpNet::V4(p) => (0, u8::MAX - p.prefix_len(), u128::from(u32::from(p.network()))),
        IpNet::V6(p) => (1, u8::MAX - p.prefix_len(), u128::from(p.network())),
    }
}

#[cfg(test)]
mod tests;

//! The control state: what the operator asked for, the published snapshot, the
//! datapath's ports and the state directory, changed together or not at all.

use crate::api::{DropStatsView, InterfaceView, NextHopView, RouteView, StatusView, WorkerView};
use crate::api::{FlowFilter, FlowStatsView, FlowView};
use crate::datapath::Datapath;
use crate::flows::{FlowAction, Flows};
use crate::packet::DropReason;
use crate::stats::VifTotals;
use crate::store::StateStore;
use anyhow::{anyhow, bail};
use control_client::{DesiredState, InterfaceSpec, PortIdentity, RouteSpec, SnapshotBuilder, SnapshotPublisher};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use nexthop::{MacAddr, Snapshot};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What [`Control::new`] takes.
#[derive(Debug)]
pub struct ControlSetup {
    /// The desired state (with the fabric registered).
    pub model: DesiredState,
    /// The builder that made the published snapshot (it keeps ids and route slots
    /// stable across publications).
    pub builder: SnapshotBuilder,
    /// The vrouter MAC.
    pub router_mac: MacAddr,
    /// Where snapshots are published.
    pub publisher: SnapshotPublisher,
    /// The running workers.
    pub datapath: Datapath,
    /// The state directory.
    pub store: StateStore,
    /// Route limit (`tables.routes`).
    pub max_routes: usize,
    /// Cores of the workers, for the status view.
    pub forwarding_cores: Vec<usize>,
    /// The flow table.
    pub flows: Arc<Flows>,
}

/// Everything the control thread owns.
#[derive(Debug)]
pub struct Control {
    model: DesiredState,
    builder: SnapshotBuilder,
    router_mac: MacAddr,
    publisher: SnapshotPublisher,
    datapath: Datapath,
    store: StateStore,
    max_routes: usize,
    forwarding_cores: Vec<usize>,
    flows: Arc<Flows>,
    flow_rate: Mutex<(Instant, u64, f64)>,
    /// Recorded routes that cannot be applied yet (their interface or VRF is not
    /// back): kept in the state directory and retried when a port is attached.
    pending_routes: Vec<RouteSpec>,
}

impl Control {
    /// Wraps a started datapath; `setup.model` already holds the fabric.
    pub fn new(setup: ControlSetup) -> Self {
        let ControlSetup {
            model,
            builder,
            router_mac,
            publisher,
            datapath,
            store,
            max_routes,
            forwarding_cores,
            flows,
        } = setup;
        Self {
            model,
            builder,
            router_mac,
            publisher,
            datapath,
            store,
            max_routes,
            forwarding_cores,
            flows,
            flow_rate: Mutex::new((Instant::now(), 0, 0.0)),
            pending_routes: Vec::new(),
        }
    }

    fn publish(&mut self) {
        self.publisher.publish(self.builder.build(&self.model, self.router_mac));
    }

    /// Re-attaches the ports and routes kept in the state directory. Ports come back
    /// under their recorded vif and label; a port whose interface is missing keeps
    /// its file and its identity (no other port gets them); routes that cannot be
    /// applied yet stay recorded and are retried when a port is attached.
    pub fn restore(&mut self) {
        let (ports, problems) = self.store.load_ports();
        let (next_label, label_problems) = self.store.load_next_label();
        problems
            .iter()
            .chain(&label_problems)
            .for_each(|p| tracing::warn!("state file skipped: {p}"));
        let highest = ports.iter().filter_map(|p| p.identity).map(|i| i.label + 1).max();
        self.model.advance_label_sequence(next_label.max(highest.unwrap_or(0)));
        for record in &ports {
            if let Some(id) = record.identity {
                self.model.reserve_identity(&record.spec.name, id);
            }
        }
        for record in ports {
            let name = record.spec.name.clone();
            let result = match record.identity {
                Some(id) => self.attach(record.spec, Some(id), false),
                // A file from before identities were recorded: give it one, and record it.
                None => self.attach(record.spec, None, true),
            };
            match result {
                Ok(id) => tracing::info!(interface = %name, vif = id.vif, label = id.label, "port restored"),
                Err(e) => tracing::warn!(interface = %name, "port file kept but not attached: {e:#}"),
            }
        }
        let (vnis, vni_problems) = self.store.load_vnis();
        vni_problems
            .iter()
            .for_each(|p| tracing::warn!("state file skipped: {p}"));
        for (vrf, vni) in vnis {
            if let Err(e) = self.model.set_vrf_vni(&vrf, vni) {
                tracing::warn!(vrf, vni, "stored VNI not restored: {e}");
            }
        }
        let loaded = self.store.load_routes();
        loaded
            .problems
            .iter()
            .for_each(|p| tracing::warn!("stored route skipped: {p}"));
        self.pending_routes = loaded.routes;
        self.apply_pending_routes();
        for r in &self.pending_routes {
            tracing::warn!(vrf = %r.vrf, prefix = %r.prefix, "stored route kept, not applied yet (its interface or VRF is missing)");
        }
        self.publish();
    }

    /// Applies the recorded routes that can be applied now; the rest stay pending
    /// (and recorded).
    fn apply_pending_routes(&mut self) -> bool {
        let mut applied = false;
        for r in std::mem::take(&mut self.pending_routes) {
            let text = format!("{} {}", r.vrf, r.prefix);
            match self.model.add_route(r.clone()) {
                Ok(()) => applied = true,
                Err(e) => {
                    tracing::debug!(route = %text, "recorded route not applicable yet: {e}");
                    self.pending_routes.push(r);
                }
            }
        }
        applied
    }

    /// The route list the state directory keeps: live and pending.
    fn recorded_routes(&self) -> Vec<RouteSpec> {
        let mut all = self.model.routes().to_vec();
        all.extend(self.pending_routes.iter().cloned());
        all
    }

    /// Attaches a port under `identity` (restored) or a fresh one. With `persist`,
    /// the port is recorded before it is applied; if that fails nothing is applied.
    fn attach(
        &mut self,
        spec: InterfaceSpec,
        identity: Option<PortIdentity>,
        persist: bool,
    ) -> anyhow::Result<PortIdentity> {
        let mut next = self.model.clone();
        let vif = match identity {
            Some(id) => next.restore_interface(spec.clone(), id)?,
            None => next.add_interface(spec.clone())?,
        };
        let id = next.port_identity(&spec.name).expect("just attached");
        let recorded_before = self.store.has_port(&spec.name);
        if persist {
            self.store
                .save_next_label(next.next_label())
                .and_then(|()| self.store.save_port(&spec, id))
                .map_err(|e| e.context("port not attached: the state directory could not record it"))?;
        }
        if let Err(e) = self.datapath.add_port(vif, &spec.name) {
            if persist && !recorded_before {
                let _ = self.store.delete_port(&spec.name);
            }
            return Err(e);
        }
        self.model = next;
        if !self.pending_routes.is_empty() {
            self.apply_pending_routes();
        }
        self.publish();
        Ok(id)
    }

    /// Attaches a pod interface and records it. A port recorded before a restart
    /// whose interface was missing then gets its recorded vif and label back.
    pub fn add_interface(&mut self, spec: InterfaceSpec) -> anyhow::Result<PortIdentity> {
        let kept = self.model.reserved_identity(&spec.name);
        self.attach(spec, kept, true)
    }

    /// Detaches a pod interface and forgets it. A name known only to the state
    /// directory (a pod gone while the vrouter was down) just loses its file and
    /// its kept identity.
    pub fn remove_interface(&mut self, name: &str) -> anyhow::Result<()> {
        if !crate::store::valid_port_name(name) {
            return Err(control_client::ModelError::InvalidInterfaceName(name.to_string()).into());
        }
        let mut next = self.model.clone();
        let (vif, _) = match next.remove_interface(name) {
            Ok(v) => v,
            Err(e) if self.store.has_port(name) || self.model.reserved_identity(name).is_some() => {
                self.store.delete_port(name)?;
                self.model.release_identity(name);
                tracing::info!(interface = name, "stale port file removed ({e})");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        self.store
            .delete_port(name)
            .map_err(|e| e.context("port not detached: the state directory could not forget it"))?;
        self.model = next;
        self.publish();
        self.datapath.remove_port(vif);
        Ok(())
    }

    /// Adds a route: recorded first, then applied; neither if either fails.
    pub fn add_route(&mut self, route: RouteSpec) -> anyhow::Result<()> {
        if self.model.routes().len() + self.pending_routes.len() >= self.max_routes {
            bail!("route table full ({} routes): raise tables.routes", self.max_routes);
        }
        let (vrf, prefix) = (route.vrf.clone(), route.prefix);
        self.model.add_route(route)?;
        if let Err(e) = self.store.save_routes(&self.recorded_routes()) {
            self.model.remove_route(&vrf, prefix)?;
            return Err(e.context("route not added: the state directory could not record it"));
        }
        self.publish();
        Ok(())
    }

    /// Removes a route (live or pending): recorded first, then applied.
    pub fn remove_route(&mut self, vrf: &str, prefix: IpNet) -> anyhow::Result<()> {
        let prefix = prefix.trunc();
        if let Some(pos) = self
            .pending_routes
            .iter()
            .position(|r| r.vrf == vrf && r.prefix == prefix)
        {
            let removed = self.pending_routes.remove(pos);
            if let Err(e) = self.store.save_routes(&self.recorded_routes()) {
                self.pending_routes.insert(pos, removed);
                return Err(e.context("route not removed: the state directory could not record it"));
            }
            return Ok(());
        }
        let removed = self.model.remove_route(vrf, prefix)?;
        if let Err(e) = self.store.save_routes(&self.recorded_routes()) {
            self.model.add_route(removed)?;
            return Err(e.context("route not removed: the state directory could not record it"));
        }
        self.publish();
        Ok(())
    }

    fn snapshot(&self) -> std::sync::Arc<Snapshot> {
        self.publisher.load_full()
    }

    /// The `vif` view.
    pub fn interfaces(&self) -> Vec<InterfaceView> {
        let snap = self.snapshot();
        let stats = self.datapath.stats();
        snap.interfaces
            .iter()
            .flatten()
            .map(|i| InterfaceView {
                vif: i.vif,
                label: i.label,
                name: i.name.clone(),
                kind: i.kind,
                vrf: snap.vrf(i.vrf).map(|v| v.name.clone()).unwrap_or_default(),
                mac: i.mac,
                ipv4: i.ipv4,
                ipv6: i.ipv6,
                gateway4: i.gateway4,
                gateway6: i.gateway6,
                counters: VifTotals::sum(&stats, i.vif),
            })
            .collect()
    }

    /// The `rt` view.
    pub fn routes(&self, vrf: Option<&str>) -> anyhow::Result<Vec<RouteView>> {
        let snap = self.snapshot();
        if let Some(name) = vrf {
            snap.vrf_by_name(name).ok_or_else(|| anyhow!("no VRF named {name:?}"))?;
        }
        let mut out = Vec::new();
        for v in snap.vrfs.iter().filter(|v| vrf.is_none_or(|n| n == v.name)) {
            for (k, len, route) in v.v4.entries() {
                let prefix = Ipv4Net::new(Ipv4Addr::from(k), len).map_err(|e| anyhow!("{e}"))?;
                out.push(RouteView {
                    vrf: v.name.clone(),
                    prefix: prefix.into(),
                    nh: route.nexthop,
                });
            }
            for (k, len, route) in v.v6.entries() {
                let prefix = Ipv6Net::new(Ipv6Addr::from(k), len).map_err(|e| anyhow!("{e}"))?;
                out.push(RouteView {
                    vrf: v.name.clone(),
                    prefix: prefix.into(),
                    nh: route.nexthop,
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
        let mut mark = |id: u32| {
            if let Some(u) = in_use.get_mut(id as usize) {
                *u = true;
            }
        };
        mark(0);
        mark(1);
        snap.composites.iter().flat_map(|c| &c.members).for_each(|id| mark(*id));
        snap.mpls.values().for_each(|id| mark(*id));
        for v in &snap.vrfs {
            let routes =
                v.v4.entries()
                    .into_iter()
                    .map(|e| e.2)
                    .chain(v.v6.entries().into_iter().map(|e| e.2));
            for route in routes {
                uses[route.nexthop as usize] += 1;
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
        let stats = self.datapath.stats();
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
        let stats = self.datapath.stats();
        StatusView {
            generation: snap.generation,
            forwarding_cores: self.forwarding_cores.clone(),
            interfaces: snap.interfaces.iter().flatten().count(),
            vrfs: snap.vrfs.len(),
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
                })
                .collect(),
        }
    }

    /// Flows matching `filter`, at most `limit` (the `flow -l` / `flow --match` view).
    pub fn flows(&self, filter: &FlowFilter, limit: usize) -> Vec<FlowView> {
        let snap = self.snapshot();
        let table = &self.flows.table;
        let now = table.now();
        let mut out = Vec::new();
        table.for_each(|r, activity| {
            if out.len() >= limit || !filter.matches(&r.key, snap.vrf(u32::from(r.key.vrf())).map(|v| v.name.as_str()))
            {
                return;
            }
            let action = match FlowAction::decode(r.value.data) {
                Some(FlowAction::Forward(nh)) => match snap.nexthops.get(nh as usize) {
                    Some(nexthop::NextHop::Interface { vif, .. }) => format!("forward nh {nh} vif {vif}"),
                    Some(nexthop::NextHop::Tunnel { remote, label, .. }) => {
                        format!("forward nh {nh} tunnel {remote} label {label}")
                    }
                    _ => format!("forward nh {nh}"),
                },
                Some(FlowAction::Drop(reason)) => format!("drop {}", reason.label()),
                None => "unknown".into(),
            };
            out.push(FlowView {
                index: r.index,
                reverse: r.reverse,
                vrf: snap
                    .vrf(u32::from(r.key.vrf()))
                    .map(|v| v.name.clone())
                    .unwrap_or_default(),
                src: r.key.src_addr(),
                dst: r.key.dst_addr(),
                proto: r.key.proto(),
                src_port: r.key.src_port(),
                dst_port: r.key.dst_port(),
                action,
                interface: r.value.owner,
                generation: r.value.generation,
                stale: !snap.decision_holds(r.value.generation, FlowAction::slot(r.value.data)),
                packets: activity.packets,
                bytes: activity.bytes,
                idle_secs: now.saturating_sub(activity.last_seen),
                tcp_flags: activity.tcp_flags,
            });
        });
        out
    }

    /// The flow statistics view, with the setup rate since the previous call.
    pub fn flow_stats(&self) -> FlowStatsView {
        let t = self.flows.table.stats();
        let mut rate = self.flow_rate.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = rate.0.elapsed().as_secs_f64();
        if elapsed >= 0.2 {
            rate.2 = (t.created.saturating_sub(rate.1)) as f64 / 2.0 / elapsed;
            *rate = (Instant::now(), t.created, rate.2);
        }
        let drops = self.drop_stats();
        FlowStatsView {
            capacity: t.capacity,
            active_entries: t.active,
            created_entries: t.created,
            deleted_entries: t.deleted,
            aged_flows: self.flows.aged.load(std::sync::atomic::Ordering::Relaxed),
            refused_table_full: drops.get("flow_table_full"),
            refused_interface_limit: drops.get("flow_limit"),
            setup_rate_per_sec: rate.2,
            memory_bytes: self.flows.table.memory_bytes() as u64,
        }
    }

    /// Refreshes the fabric MACs of tunnel endpoints from the kernel; publishes a new
    /// snapshot if one changed. Unresolved endpoints are solicited.
    pub fn refresh_neighbors(&mut self) {
        let endpoints = self.model.tunnel_endpoints();
        if endpoints.is_empty() {
            return;
        }
        let arp = crate::neighbors::arp_table();
        let mut changed = false;
        for remote in endpoints {
            let hop = crate::neighbors::next_hop(remote);
            match arp.get(&hop) {
                Some(mac) => changed |= self.model.set_neighbor(remote, *mac),
                None => crate::neighbors::solicit(remote),
            }
        }
        if changed {
            self.publish();
        }
    }

    /// Gives a VRF its VXLAN network identifier: recorded first, then applied.
    pub fn set_vrf_vni(&mut self, vrf: &str, vni: u32) -> anyhow::Result<()> {
        let mut next = self.model.clone();
        next.set_vrf_vni(vrf, vni)?;
        self.store
            .save_vnis(&next.vrf_vnis())
            .map_err(|e| e.context("VNI not set: the state directory could not record it"))?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// The MPLS label table (label -> next hop).
    pub fn mpls(&self) -> Vec<(u32, u32)> {
        let snap = self.snapshot();
        let mut out: Vec<(u32, u32)> = snap.mpls.iter().map(|(l, nh)| (*l, *nh)).collect();
        out.sort_unstable();
        out
    }

    /// Packets and bytes to and from each remote node.
    pub fn tunnels(&self) -> Vec<crate::stats::TunnelTotals> {
        crate::stats::TunnelTotals::collect(&self.datapath.stats())
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

    /// Detaches everything and stops the workers; the state directory is kept.
    pub fn shutdown(&mut self) {
        self.datapath.shutdown();
    }
}

//! The control side: the state the operator asked for, the published snapshot, the
//! data plane's ports and the state directory, changed together or not at all.
//!
//! Contract:
//! - [`Control`] owns the state; one task ([`task::spawn`], its own thread) applies
//!   changes one at a time, taking typed [`task::Change`]s over a channel, the way
//!   Firecracker's VMM thread takes `VmmAction`s. A slow change (a port attach waits
//!   for the workers) never blocks the API or the runtime's timers.
//! - [`views::Views`] answer read-only requests from the published snapshot and the
//!   counters, without the control state and without a lock.
//! - A change is recorded in the state directory before it is applied; if either
//!   fails, neither happens ([`ControlError`] says which).

pub mod config;
mod health;
mod ingress;
pub mod task;
pub mod timing;
pub mod views;

use crate::store::{RouteChange, StateStore};
use control_client::{
    DesiredState, FloatingIpSpec, InterfaceSpec, ModelError, PortIdentity, Publication, PublicationStats, RouteSpec,
    ServiceSpec, SnapshotBuilder, SnapshotPublisher,
};
use ipnet::IpNet;
use nexthop::{MacAddr, Vif};
use vrouter_api::{ApiError, ErrorCode};

/// The data plane's side of a port: attach and detach (the workers' sockets and the
/// XDP program). [`crate::datapath::Datapath`] is the one that forwards.
pub trait Ports: Send + std::fmt::Debug {
    /// Attaches interface `ifname` as `vif`; on error nothing stays attached.
    fn add_port(&mut self, vif: Vif, ifname: &str) -> anyhow::Result<()>;
    /// Detaches `vif`.
    fn remove_port(&mut self, vif: Vif);
    /// Detaches everything and stops forwarding.
    fn shutdown(&mut self);
    /// Makes the fabric steer exactly these node ports and external IP ports to the
    /// vrouter (besides tunnels). Ports without a fabric program (tools, tests of
    /// the control side) have nothing to steer.
    fn set_fabric_claims(&mut self, _wanted: &std::collections::BTreeSet<crate::afxdp::Claim>) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Ports for crate::datapath::Datapath {
    fn add_port(&mut self, vif: Vif, ifname: &str) -> anyhow::Result<()> {
        crate::datapath::Datapath::add_port(self, vif, ifname)
    }
    fn remove_port(&mut self, vif: Vif) {
        crate::datapath::Datapath::remove_port(self, vif)
    }
    fn shutdown(&mut self) {
        crate::datapath::Datapath::shutdown(self)
    }
    fn set_fabric_claims(&mut self, wanted: &std::collections::BTreeSet<crate::afxdp::Claim>) -> anyhow::Result<()> {
        crate::datapath::Datapath::set_fabric_claims(self, wanted)
    }
}

/// Why a change was not made. Nothing of a refused change is applied.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The change is invalid for the current state.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The state directory could not record it.
    #[error("{0:#}")]
    StateDirectory(anyhow::Error),
    /// The data plane could not attach the port.
    #[error("{0:#}")]
    Datapath(anyhow::Error),
    /// `tables.routes` reached.
    #[error("route table full ({0} routes): raise tables.routes")]
    RouteTableFull(usize),
    /// A port binding was refused.
    #[error("{1}")]
    Binding(ErrorCode, String),
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        let code = match &e {
            ControlError::Model(m) => ErrorCode::from(m),
            ControlError::StateDirectory(_) => ErrorCode::StateDirectory,
            ControlError::Datapath(_) => ErrorCode::Datapath,
            ControlError::RouteTableFull(_) => ErrorCode::ResourceExhausted,
            ControlError::Binding(code, _) => *code,
        };
        ApiError::new(code, e.to_string())
    }
}

/// Ports for a control side without a data plane ([`Control::detached`]): every
/// attach succeeds and nothing forwards.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDataplane;

impl Ports for NoDataplane {
    fn add_port(&mut self, _vif: Vif, _ifname: &str) -> anyhow::Result<()> {
        Ok(())
    }
    fn remove_port(&mut self, _vif: Vif) {}
    fn shutdown(&mut self) {}
}

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
    /// The data plane's ports.
    pub ports: Box<dyn Ports>,
    /// The state directory.
    pub store: StateStore,
    /// Route limit (`tables.routes`).
    pub max_routes: usize,
    /// The node's own interface (`[host]`), attached after the recorded ports.
    pub host: Option<InterfaceSpec>,
}

/// Everything the control task owns.
#[derive(Debug)]
pub struct Control {
    model: DesiredState,
    builder: SnapshotBuilder,
    router_mac: MacAddr,
    publication: Publication,
    ports: Box<dyn Ports>,
    store: StateStore,
    max_routes: usize,
    /// Recorded routes that cannot be applied yet (their interface or VRF is not
    /// back): kept in the state directory and retried when a port is attached.
    pending_routes: Vec<RouteSpec>,
    /// The kernel's index of each attached interface when it was attached: an
    /// interface that is gone, or was recreated under the same name, is detached.
    ifindex: std::collections::BTreeMap<String, u32>,
    /// Control nodes whose channel is up.
    peers_up: std::collections::BTreeSet<control_client::PeerId>,
    /// Control nodes whose channel is down, since when: their routes are swept after
    /// `graceful_restart` while another control node is up (never when none is:
    /// headless, the last state keeps forwarding).
    peers_down: std::collections::BTreeMap<control_client::PeerId, std::time::Instant>,
    graceful_restart: std::time::Duration,
    /// Configuration from the control node and the ports bound to it.
    config: config::ConfigState,
    /// Paths each control node taught, per VRF, for the `xmpp` view.
    learned_view: learned::LearnedView,
    /// The MAC whose EVPN item holds each address, per control node and VRF.
    evpn_macs: std::collections::HashMap<(control_client::PeerId, String, IpNet), String>,
    /// The security groups each learned route carries (group membership).
    route_groups: config::RouteGroups,
    /// The node ports and external IP ports the fabric steers to the vrouter now.
    fabric_claims: std::collections::BTreeSet<crate::afxdp::Claim>,
    /// The node's own interface, attached at restore.
    host: Option<InterfaceSpec>,
    /// The backends the health prober probes.
    probe_targets: crate::health::Targets,
    /// The ingresses the ingress supervisor runs instances of.
    ingress_targets: crate::ingress::Targets,
    /// Build and route-update times, for the metrics endpoint.
    timings: timing::ControlTimings,
}

/// The IPv4 service ports of `snap` reached from outside the cluster.
fn fabric_claims(snap: &nexthop::Snapshot) -> std::collections::BTreeSet<crate::afxdp::Claim> {
    // Without the node's interface nothing from outside is served: the ports stay
    // the kernel's.
    if snap.host.is_none() {
        return Default::default();
    }
    snap.services
        .external
        .keys()
        .filter_map(|(addr, proto, port)| match addr {
            std::net::IpAddr::V4(addr) => Some(crate::afxdp::Claim {
                addr: *addr,
                proto: *proto,
                port: *port,
            }),
            std::net::IpAddr::V6(_) => None,
        })
        .collect()
}

impl Control {
    /// Wraps started ports; `setup.model` already holds the fabric.
    pub fn new(setup: ControlSetup) -> Self {
        let ControlSetup {
            model,
            builder,
            router_mac,
            publisher,
            ports,
            store,
            max_routes,
            host,
        } = setup;
        Self {
            model,
            builder,
            router_mac,
            publication: Publication::new(publisher),
            ports,
            store,
            max_routes,
            pending_routes: Vec::new(),
            ifindex: std::collections::BTreeMap::new(),
            peers_up: Default::default(),
            peers_down: Default::default(),
            graceful_restart: learned::DEFAULT_GRACEFUL_RESTART,
            config: config::ConfigState::default(),
            learned_view: Default::default(),
            evpn_macs: Default::default(),
            route_groups: Default::default(),
            fabric_claims: Default::default(),
            host,
            probe_targets: Default::default(),
            ingress_targets: Default::default(),
            timings: Default::default(),
        }
    }

    /// The build and route-update timings this control side records.
    pub fn timings(&self) -> timing::ControlTimings {
        self.timings.clone()
    }

    /// A control side with no data plane (ports attach without workers), publishing
    /// `model` with Contrail's default vrouter MAC: for tools, benchmarks and tests
    /// that exercise the control side alone. Returns the publisher to read from.
    pub fn detached(model: DesiredState, store: StateStore, max_routes: usize) -> (Control, SnapshotPublisher) {
        let mut builder = SnapshotBuilder::new(1);
        let router_mac = control_client::DEFAULT_REMOTE_MAC;
        let publisher = SnapshotPublisher::new(builder.build(&model, router_mac));
        let control = Control::new(ControlSetup {
            model,
            builder,
            router_mac,
            publisher: publisher.clone(),
            ports: Box::new(NoDataplane),
            store,
            max_routes,
            host: None,
        });
        (control, publisher)
    }

    fn publish(&mut self) {
        let started = std::time::Instant::now();
        let snap = self.builder.build(&self.model, self.router_mac);
        let claims = fabric_claims(&snap);
        self.publication.publish(snap);
        self.timings.observe_publication(true, started.elapsed());
        self.refresh_learned_view();
        self.refresh_probe_targets();
        // After the publication: the workers know a claimed port before its packets come.
        if claims != self.fabric_claims {
            match self.ports.set_fabric_claims(&claims) {
                Ok(()) => self.fabric_claims = claims,
                Err(e) => tracing::warn!("fabric steering of node ports and external IPs not updated: {e:#}"),
            }
        }
    }

    /// Publishes a change to one route: as a patch of the current snapshot when the
    /// builder can make one (the common case, O(1) in the routes), else in full.
    fn publish_route(&mut self, vrf: &str, prefix: IpNet) {
        self.publish_routes(&[(vrf.to_string(), prefix)]);
    }

    /// Publishes changes to several routes at once, in one publication.
    fn publish_routes(&mut self, changed: &[(String, IpNet)]) {
        let started = std::time::Instant::now();
        let changed: Vec<(&str, IpNet)> = changed.iter().map(|(v, p)| (v.as_str(), *p)).collect();
        let current = self.publication.publisher().load_full();
        match self.builder.patch_routes(&self.model, &changed, &current) {
            Some(patch) => {
                drop(current);
                self.publication.publish_patch(patch);
                self.timings.observe_publication(false, started.elapsed());
            }
            None => self.publish(),
        }
    }

    /// How publications went (in place, copied, full).
    pub fn publication_stats(&self) -> PublicationStats {
        self.publication.stats()
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
        // Parents before their VLAN sub-interfaces.
        let mut ports = ports;
        ports.sort_by_key(|p| p.spec.vlan.is_some());
        for record in ports {
            let name = record.spec.name.clone();
            let result = match record.identity {
                Some(id) => self.attach(record.spec, Some(id), false),
                // A file from before identities were recorded: give it one, and record it.
                None => self.attach(record.spec, None, true),
            };
            match result {
                Ok(id) => tracing::info!(interface = %name, vif = id.vif.0, label = id.label, "port restored"),
                Err(e) => tracing::warn!(interface = %name, "port file kept but not attached: {e:#}"),
            }
        }
        let (services, service_problems) = self.store.load_services();
        service_problems
            .iter()
            .for_each(|p| tracing::warn!("state file skipped: {p}"));
        for spec in services {
            let name = spec.name.clone();
            if let Err(e) = self.model.add_service(spec) {
                tracing::warn!(service = %name, "stored service not restored: {e}");
            }
        }
        let (fips, fip_problems) = self.store.load_floating_ips();
        fip_problems
            .iter()
            .for_each(|p| tracing::warn!("state file skipped: {p}"));
        for spec in fips {
            let name = spec.name.clone();
            if let Err(e) = self.model.add_floating_ip(spec) {
                tracing::warn!(floating_ip = %name, "stored floating IP not restored: {e}");
            }
        }
        let (chains, chain_problems) = self.store.load_service_chains();
        chain_problems
            .iter()
            .for_each(|p| tracing::warn!("state file skipped: {p}"));
        for spec in chains {
            let name = spec.name.clone();
            if let Err(e) = self.model.add_service_chain(spec) {
                tracing::warn!(service_chain = %name, "stored service chain not restored: {e}");
            }
        }
        self.restore_ingresses();
        let (policies, policy_problems) = self.store.load_policies();
        policy_problems
            .iter()
            .for_each(|p| tracing::warn!("state file skipped: {p}"));
        for spec in policies {
            let name = spec.name.clone();
            if let Err(e) = self.model.add_policy(spec) {
                tracing::warn!(policy = %name, "stored network policy not restored: {e}");
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
        self.restore_bindings();
        if let Some(spec) = self.host.clone() {
            // Not recorded: the configuration makes it at every start.
            let name = spec.name.clone();
            self.model.set_host_interface(&name);
            match self.attach(spec, None, false) {
                Ok(id) => tracing::info!(interface = %name, vif = id.vif.0, "node interface attached"),
                Err(e) => tracing::error!(interface = %name, "node interface not attached: {e:#}"),
            }
        }
        // Start with an empty journal (nothing is lost if this fails: it is kept).
        if let Err(e) = self.store.fold_routes(&self.recorded_routes()) {
            tracing::warn!("routes journal not folded at start: {e:#}");
        }
        self.publish();
    }

    /// Applies the recorded routes that can be applied now; the rest stay pending
    /// (and recorded).
    fn apply_pending_routes(&mut self) {
        for r in std::mem::take(&mut self.pending_routes) {
            if self.model.routes().len() >= self.max_routes {
                // tables.routes holds at restore too: the rest stay recorded.
                tracing::debug!(vrf = %r.vrf, prefix = %r.prefix, "recorded route not applied: tables.routes reached");
                self.pending_routes.push(r);
                continue;
            }
            if let Err(e) = self.model.add_route(r.clone()) {
                tracing::debug!(vrf = %r.vrf, prefix = %r.prefix, "recorded route not applicable yet: {e}");
                self.pending_routes.push(r);
            }
        }
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
    ) -> Result<PortIdentity, ControlError> {
        let mut spec = spec;
        // A VLAN sub-interface has no socket of its own: its frames ride on its parent.
        let parent = spec.vlan.as_ref().map(|v| v.parent.clone());
        if spec.mtu.is_none() {
            // The host end's MTU: what the kernel lets through to the pod (veth ends
            // are created alike); the CNI plugin states it when it knows better.
            spec.mtu = match &parent {
                Some(parent) => self.model.interface_spec(parent).and_then(|p| p.mtu),
                None => crate::datapath::interface_mtu(&spec.name),
            };
        }
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
                .map_err(|e| {
                    ControlError::StateDirectory(
                        e.context("port not attached: the state directory could not record it"),
                    )
                })?;
        }
        if parent.is_none() {
            if let Err(e) = self.ports.add_port(vif, &spec.name) {
                if persist && !recorded_before {
                    let _ = self.store.delete_port(&spec.name);
                }
                return Err(ControlError::Datapath(e));
            }
            if let Some(index) = crate::datapath::interface_index(&spec.name) {
                self.ifindex.insert(spec.name.clone(), index);
            }
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
    pub fn add_interface(&mut self, spec: InterfaceSpec) -> Result<PortIdentity, ControlError> {
        let kept = self.model.reserved_identity(&spec.name);
        self.attach(spec, kept, true)
    }

    /// Detaches a pod interface and forgets it. A name known only to the state
    /// directory (a pod gone while the vrouter was down) just loses its file and
    /// its kept identity.
    pub fn remove_interface(&mut self, name: &str) -> Result<(), ControlError> {
        if !crate::store::valid_port_name(name) {
            return Err(ModelError::InvalidInterfaceName(name.to_string()).into());
        }
        // A port the model refuses to detach (routes or sub-interfaces use it) keeps
        // its binding; otherwise it is unbound first (else the configuration would
        // attach it again).
        if self.model.interface_spec(name).is_some() {
            self.model.clone().remove_interface(name)?;
        }
        if self.unbind_port(name)? && self.model.interface_spec(name).is_none() {
            self.model.release_identity(name);
            return Ok(());
        }
        let mut next = self.model.clone();
        let (vif, spec) = match next.remove_interface(name) {
            Ok(v) => v,
            // Only a port the model does not hold: one it refuses to remove (routes
            // or sub-interfaces use it) keeps its record.
            Err(e @ ModelError::UnknownInterface(_))
                if self.store.has_port(name) || self.model.reserved_identity(name).is_some() =>
            {
                self.store.delete_port(name).map_err(ControlError::StateDirectory)?;
                self.model.release_identity(name);
                tracing::info!(interface = name, "stale port file removed ({e})");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        self.store.delete_port(name).map_err(|e| {
            ControlError::StateDirectory(e.context("port not detached: the state directory could not forget it"))
        })?;
        self.model = next;
        self.publish();
        if spec.vlan.is_none() {
            self.ports.remove_port(vif);
        }
        self.ifindex.remove(name);
        Ok(())
    }

    /// Detaches every attached port whose interface vanished under the vrouter (a
    /// pod's veth deleted without `vif delete`) or was recreated under the same name.
    /// Its record stays, with its vif and label kept for it: adding it again brings
    /// it back as it was; the routes to it wait, recorded, until then.
    pub fn detach_vanished_ports(&mut self) {
        let vanished: Vec<String> = self
            .ifindex
            .iter()
            .filter(|(name, index)| crate::datapath::interface_index(name) != Some(**index))
            .map(|(name, _)| name.clone())
            .collect();
        if vanished.is_empty() {
            return;
        }
        for name in vanished {
            self.ifindex.remove(&name);
            // Its VLAN sub-interfaces go with it (their frames rode on it).
            for sub in self.model.subinterfaces_of(&name) {
                self.detach_kept(&sub, "its parent interface vanished");
            }
            let detached = self.detach_kept(&name, "interface vanished under the vrouter");
            // Published before the port goes, so no worker sends to it after.
            self.publish();
            if let Some(vif) = detached {
                self.ports.remove_port(vif);
            }
        }
    }

    /// Detaches port `name` but keeps its record, vif and label (adding it again
    /// brings it back as it was; the routes to it wait, recorded, until then).
    fn detach_kept(&mut self, name: &str, why: &str) -> Option<Vif> {
        let id = self.model.port_identity(name)?;
        let routes = self.model.take_routes_to(name);
        let Ok((vif, _)) = self.model.remove_interface(name) else {
            // Refused (cannot happen once its routes and sub-interfaces are gone):
            // the routes go back.
            for route in routes {
                let _ = self.model.add_route(route);
            }
            return None;
        };
        tracing::warn!(
            interface = %name,
            vif = vif.0,
            label = id.label,
            "{why}: port detached (its record, vif and label are kept; add it again to reattach)"
        );
        self.model.reserve_identity(name, id);
        self.pending_routes.extend(routes);
        Some(vif)
    }

    /// Adds a route: recorded first, then applied; neither if either fails.
    pub fn add_route(&mut self, route: RouteSpec) -> Result<(), ControlError> {
        if self.model.routes().len() + self.pending_routes.len() >= self.max_routes {
            return Err(ControlError::RouteTableFull(self.max_routes));
        }
        let (vrf, prefix) = (route.vrf.clone(), route.prefix);
        self.model.add_route(route.clone())?;
        let change = RouteChange::Add {
            route: RouteSpec {
                prefix: prefix.trunc(),
                ..route
            },
        };
        let recorded = self.store.record_route_change(&change, || self.recorded_routes());
        if let Err(e) = recorded {
            let _ = self.model.remove_route(&vrf, prefix);
            return Err(ControlError::StateDirectory(
                e.context("route not added: the state directory could not record it"),
            ));
        }
        self.publish_route(&vrf, prefix);
        Ok(())
    }

    /// Removes a route (live or pending): recorded first, then applied.
    pub fn remove_route(&mut self, vrf: &str, prefix: IpNet) -> Result<(), ControlError> {
        let prefix = prefix.trunc();
        let change = RouteChange::Remove {
            vrf: vrf.to_string(),
            prefix,
        };
        if let Some(pos) = self
            .pending_routes
            .iter()
            .position(|r| r.vrf == vrf && r.prefix == prefix)
        {
            let removed = self.pending_routes.remove(pos);
            if let Err(e) = self.store.record_route_change(&change, || self.recorded_routes()) {
                self.pending_routes.insert(pos, removed);
                return Err(ControlError::StateDirectory(
                    e.context("route not removed: the state directory could not record it"),
                ));
            }
            return Ok(());
        }
        let removed = self.model.remove_route(vrf, prefix)?;
        if let Err(e) = self.store.record_route_change(&change, || self.recorded_routes()) {
            let _ = self.model.add_route(removed);
            return Err(ControlError::StateDirectory(
                e.context("route not removed: the state directory could not record it"),
            ));
        }
        self.publish_route(vrf, prefix);
        Ok(())
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
    pub fn set_vrf_vni(&mut self, vrf: &str, vni: u32) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.set_vrf_vni(vrf, vni)?;
        self.store.save_vnis(&next.vrf_vnis()).map_err(|e| {
            ControlError::StateDirectory(e.context("VNI not set: the state directory could not record it"))
        })?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// Adds or replaces a service: recorded first, then applied; neither if either
    /// fails.
    pub fn add_service(&mut self, spec: ServiceSpec) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.add_service(spec)?;
        self.record_services(&next, "service not added")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// Removes a service: recorded first, then applied.
    pub fn remove_service(&mut self, name: &str) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.remove_service(name)?;
        self.record_services(&next, "service not removed")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// Adds or replaces a floating IP: recorded first, then applied.
    pub fn add_floating_ip(&mut self, spec: FloatingIpSpec) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.add_floating_ip(spec)?;
        self.record_floating_ips(&next, "floating IP not added")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// Removes a floating IP: recorded first, then applied.
    pub fn remove_floating_ip(&mut self, name: &str) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.remove_floating_ip(name)?;
        self.record_floating_ips(&next, "floating IP not removed")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// Adds or replaces a service chain: recorded first, then applied.
    pub fn add_service_chain(&mut self, spec: control_client::ServiceChainSpec) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.add_service_chain(spec)?;
        self.record_service_chains(&next, "service chain not added")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// Removes a service chain: recorded first, then applied.
    pub fn remove_service_chain(&mut self, name: &str) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.remove_service_chain(name)?;
        self.record_service_chains(&next, "service chain not removed")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    fn record_service_chains(&self, model: &DesiredState, what: &'static str) -> Result<(), ControlError> {
        let chains: Vec<control_client::ServiceChainSpec> = model.service_chains().cloned().collect();
        self.store.save_service_chains(&chains).map_err(|e| {
            ControlError::StateDirectory(e.context(format!("{what}: the state directory could not record it")))
        })
    }

    /// Adds or replaces a network policy: recorded first, then applied.
    pub fn add_policy(&mut self, spec: control_client::PolicySpec) -> Result<(), ControlError> {
        self.set_policies(vec![spec], &[])
    }

    /// Removes a network policy: recorded first, then applied.
    pub fn remove_policy(&mut self, name: &str) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.remove_policy(name)?;
        self.record_policies(&next, "network policy not removed")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    /// Adds or replaces `specs` and removes the policies named in `remove` (absent ones
    /// are skipped), as one change: recorded, then published once; nothing if any
    /// policy is refused.
    pub fn set_policies(
        &mut self,
        specs: Vec<control_client::PolicySpec>,
        remove: &[String],
    ) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        for name in remove {
            let _ = next.remove_policy(name);
        }
        for spec in specs {
            next.add_policy(spec)?;
        }
        self.record_policies(&next, "network policies not set")?;
        self.model = next;
        self.publish();
        Ok(())
    }

    fn record_policies(&self, model: &DesiredState, what: &'static str) -> Result<(), ControlError> {
        let policies: Vec<control_client::PolicySpec> = model.policies().cloned().collect();
        self.store.save_policies(&policies).map_err(|e| {
            ControlError::StateDirectory(e.context(format!("{what}: the state directory could not record it")))
        })
    }

    fn record_floating_ips(&self, model: &DesiredState, what: &'static str) -> Result<(), ControlError> {
        let fips: Vec<FloatingIpSpec> = model.floating_ips().cloned().collect();
        self.store.save_floating_ips(&fips).map_err(|e| {
            ControlError::StateDirectory(e.context(format!("{what}: the state directory could not record it")))
        })
    }

    fn record_services(&self, model: &DesiredState, what: &'static str) -> Result<(), ControlError> {
        let services: Vec<ServiceSpec> = model.services().cloned().collect();
        self.store.save_services(&services).map_err(|e| {
            ControlError::StateDirectory(e.context(format!("{what}: the state directory could not record it")))
        })
    }

    /// Detaches everything and stops the workers; the state directory is kept.
    pub fn shutdown(&mut self) {
        self.ports.shutdown();
    }
}

pub mod learned;
#[cfg(test)]
mod tests;

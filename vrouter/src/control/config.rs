//! Ports configured by the control node: the IF-MAP configuration one control node
//! serves (the config server: the first channel up, as the agent elects it) is kept
//! in a [`ConfigGraph`]; ports bound to a virtual machine interface of it
//! ([`PortBinding`], the agent's port add) are attached, changed and detached as its
//! compilation says, with the VRF's VNI and the encapsulation priorities it gives.
//!
//! - Config messages are applied to the graph as they come (cheap); the graph is
//!   compiled and the ports reconciled once the control task's queue is empty, so a
//!   burst of messages costs one compilation.
//! - A new config server starts a new generation: what the old one sent stays in
//!   force (headless, the data plane keeps forwarding) until the new one has sent
//!   this node's virtual router and been quiet for [`CONFIG_QUIET`] since (the
//!   protocol has no end-of-config marker), then what it did not send again is
//!   swept. Only then does a missing or changed configuration detach or change an
//!   attached port: a port restored from the state directory keeps forwarding until
//!   the configuration says otherwise; a change the model refuses leaves the port
//!   as it was.

mod policies;

pub use policies::RouteGroups;

use super::{Control, ControlError};
use control_client::contrail::{compile, ifmap, ConfigGraph, PortBinding, Uuid};
use control_client::xmpp::Element;
use control_client::{FloatingIpSpec, PeerId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vrouter_api::{ConfigView, ErrorCode, PortBindingView};

/// How long the config server stays quiet before its configuration counts as
/// complete (and what the previous server alone sent is swept).
pub const CONFIG_QUIET: Duration = Duration::from_secs(3);

/// How often bound ports whose attach was refused are tried again.
pub const CONFIG_RETRY: Duration = Duration::from_secs(5);

/// The name prefix of floating IPs and services taken from the configuration.
pub const CONFIG_PREFIX: &str = "config:";

/// No channel serves configuration.
const NO_SERVER: u8 = u8::MAX;

/// What the channels and the control task share about configuration: which channel
/// serves it, and which virtual machines to subscribe.
#[derive(Debug)]
pub struct ConfigInterest {
    server: AtomicU8,
    vms: Mutex<Vec<Uuid>>,
    vms_version: AtomicU64,
}

impl Default for ConfigInterest {
    fn default() -> Self {
        Self {
            server: AtomicU8::new(NO_SERVER),
            vms: Mutex::new(Vec::new()),
            vms_version: AtomicU64::new(0),
        }
    }
}

impl ConfigInterest {
    /// Makes `peer` the config server if none is: true if it is now.
    pub fn claim(&self, peer: PeerId) -> bool {
        match self
            .server
            .compare_exchange(NO_SERVER, peer.0, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(current) => current == peer.0,
        }
    }

    /// `peer`'s channel went down: it no longer serves configuration.
    pub fn release(&self, peer: PeerId) {
        let _ = self
            .server
            .compare_exchange(peer.0, NO_SERVER, Ordering::AcqRel, Ordering::Acquire);
    }

    /// True if `peer` serves configuration now.
    pub fn is_server(&self, peer: PeerId) -> bool {
        self.server.load(Ordering::Acquire) == peer.0
    }

    /// The virtual machines of the bound ports, and a version that changes with them.
    pub fn vms(&self) -> (u64, Vec<Uuid>) {
        let vms = self.vms.lock().map(|v| v.clone()).unwrap_or_default();
        (self.vms_version.load(Ordering::Acquire), vms)
    }

    fn set_vms(&self, vms: Vec<Uuid>) {
        if let Ok(mut current) = self.vms.lock() {
            if *current != vms {
                *current = vms;
                self.vms_version.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

/// The control task's configuration state.
#[derive(Debug, Default)]
pub struct ConfigState {
    host: String,
    graph: ConfigGraph,
    bindings: BTreeMap<String, PortBinding>,
    server: Option<PeerId>,
    last_message: Option<Instant>,
    synced: bool,
    dirty: bool,
    skipped: u64,
    refused: u64,
    waiting: BTreeMap<String, String>,
    interest: Arc<ConfigInterest>,
    view: Arc<Mutex<ConfigView>>,
    /// The configuration's interfaces, as the view shows them.
    interfaces: Vec<vrouter_api::ConfigInterfaceView>,
    flows: Option<Arc<crate::flows::Flows>>,
    last_retry: Option<Instant>,
    /// Security group rules left out at the last reconcile (each logged once).
    groups_left_out: Vec<String>,
    /// Network access control rules left out at the last reconcile.
    acls_left_out: Vec<String>,
}

impl Control {
    /// Names this node towards the control node (`xmpp.host`): its virtual router's
    /// configuration is the one compiled.
    pub fn set_config_host(&mut self, host: &str) {
        self.config.host = host.to_string();
    }

    /// The flow table, whose idle timeouts by protocol and port the global vrouter
    /// config sets.
    pub fn share_flows(&mut self, flows: Arc<crate::flows::Flows>) {
        self.config.flows = Some(flows);
    }

    /// Shares `interest` with the channels and `view` with the API's views (both
    /// made before the control side).
    pub fn share_config(&mut self, interest: Arc<ConfigInterest>, view: Arc<Mutex<ConfigView>>) {
        self.config.interest = interest;
        self.config.view = view;
        self.after_bindings_changed();
        self.refresh_config_view();
    }

    /// True when configuration changed since the ports were last reconciled.
    pub fn config_dirty(&self) -> bool {
        self.config.dirty
    }

    /// Restores the recorded bindings (their ports come back from their own records).
    pub(super) fn restore_bindings(&mut self) {
        let (bindings, problems) = self.store.load_bindings();
        problems.iter().for_each(|p| tracing::warn!("state file skipped: {p}"));
        for binding in bindings {
            self.config.bindings.insert(binding.name.clone(), binding);
        }
        self.after_bindings_changed();
        self.refresh_config_view();
    }

    /// Binds a port to a virtual machine interface: recorded, then attached as soon as
    /// its configuration is complete (now, if it is).
    pub fn bind_port(&mut self, binding: PortBinding) -> Result<PortBindingView, ControlError> {
        if !crate::store::valid_port_name(&binding.name) {
            return Err(control_client::ModelError::InvalidInterfaceName(binding.name).into());
        }
        if let Some((other, _)) = self
            .config
            .bindings
            .iter()
            .find(|(n, b)| b.vmi == binding.vmi && **n != binding.name)
        {
            return Err(ControlError::Binding(
                ErrorCode::AlreadyExists,
                format!("interface {} is bound to port {other:?} already", binding.vmi),
            ));
        }
        if self.model.interface_spec(&binding.name).is_some() && !self.config.bindings.contains_key(&binding.name) {
            return Err(control_client::ModelError::DuplicateInterface(binding.name).into());
        }
        let mut next: Vec<PortBinding> = self
            .config
            .bindings
            .values()
            .filter(|b| b.name != binding.name)
            .cloned()
            .collect();
        next.push(binding.clone());
        self.store.save_bindings(&next).map_err(|e| {
            ControlError::StateDirectory(e.context("port not bound: the state directory could not record it"))
        })?;
        self.config.bindings.insert(binding.name.clone(), binding.clone());
        self.after_bindings_changed();
        self.reconcile_config();
        let view = self.binding_view(&binding);
        Ok(view)
    }

    /// Forgets the binding of port `name`, if it has one; true if it had.
    pub(super) fn unbind_port(&mut self, name: &str) -> Result<bool, ControlError> {
        if !self.config.bindings.contains_key(name) {
            return Ok(false);
        }
        let next: Vec<PortBinding> = self
            .config
            .bindings
            .values()
            .filter(|b| b.name != name)
            .cloned()
            .collect();
        self.store.save_bindings(&next).map_err(|e| {
            ControlError::StateDirectory(e.context("port not unbound: the state directory could not record it"))
        })?;
        self.config.bindings.remove(name);
        self.config.waiting.remove(name);
        self.after_bindings_changed();
        self.refresh_config_view();
        Ok(true)
    }

    fn after_bindings_changed(&mut self) {
        let mut vms: Vec<Uuid> = self.config.bindings.values().filter_map(|b| b.vm).collect();
        vms.sort();
        vms.dedup();
        self.config.interest.set_vms(vms);
    }

    /// `peer` serves configuration from now on: a new generation starts.
    pub fn config_server(&mut self, peer: PeerId) {
        let generation = self.config.graph.next_generation();
        tracing::info!(peer = peer.0, generation, "control node serves configuration");
        self.config.server = Some(peer);
        self.config.synced = false;
        // The quiet period starts with its first message: a control node that has
        // sent nothing yet (just restarted, its database not loaded) ends no sync.
        self.config.last_message = None;
        self.refresh_config_view();
    }

    /// A config message from `peer` (ignored unless it serves configuration).
    pub fn apply_config(&mut self, peer: PeerId, config: &Element, now: Instant) {
        if self.config.server != Some(peer) {
            tracing::debug!(
                peer = peer.0,
                "config from a control node that does not serve it: ignored"
            );
            return;
        }
        let (ops, errors) = ifmap::decode(config);
        for e in errors.iter().take(3) {
            tracing::warn!(peer = peer.0, "{e}");
        }
        self.config.skipped += errors.len() as u64;
        let outcome = self.config.graph.apply(ops);
        if let Some(e) = outcome.first_error {
            tracing::warn!(peer = peer.0, refused = outcome.refused, "config updates refused: {e}");
        }
        self.config.refused += outcome.refused as u64;
        self.config.last_message = Some(now);
        self.config.dirty |= outcome.changed > 0;
    }

    /// Reconciles again, at most every [`CONFIG_RETRY`], while a bound port waits
    /// with its configuration complete (its attach was refused: the data plane or
    /// the state directory may let it through now).
    pub fn config_retry(&mut self, now: Instant) {
        let refused = self
            .config
            .waiting
            .values()
            .any(|why| !why.starts_with("configuration of") && !why.starts_with("no "));
        let due = self.config.last_retry.is_none_or(|t| now >= t + CONFIG_RETRY);
        if refused && due {
            self.config.last_retry = Some(now);
            self.reconcile_config();
        }
    }

    /// When the control task must call [`Control::config_tick`] next, if at all.
    pub fn config_deadline(&self) -> Option<Instant> {
        match (self.config.server, self.config.synced, self.config.last_message) {
            (Some(_), false, Some(last)) => Some(last + CONFIG_QUIET),
            _ => None,
        }
    }

    /// Ends the initial sync once the config server has sent this node's virtual
    /// router and been quiet long enough since: what it did not send is swept, and
    /// ports without configuration are detached.
    pub fn config_tick(&mut self, now: Instant) {
        let Some(deadline) = self.config_deadline() else { return };
        if now < deadline {
            return;
        }
        let vrouter = control_client::contrail::ObjectKey::new(
            control_client::contrail::ObjectType::VirtualRouter,
            format!("default-global-system-config:{}", self.config.host),
        );
        if !self.config.graph.is_current(&vrouter) {
            // Not this node's configuration yet: wait for more (nothing is swept).
            self.config.last_message = None;
            return;
        }
        let swept = self.config.graph.sweep_older_than(self.config.graph.generation());
        tracing::info!(
            swept,
            objects = self.config.graph.object_count(),
            "configuration synced with the control node"
        );
        self.config.synced = true;
        self.config.dirty = true;
        self.reconcile_config();
    }

    /// Compiles the configuration and brings the bound ports, the VNIs and the
    /// encapsulation priorities in line with it.
    pub fn reconcile_config(&mut self) {
        self.config.dirty = false;
        let compiled = compile(&self.config.graph, &self.config.host);
        if let Some(priority) = &compiled.encap_priority {
            if self.model.encap_priority() != priority.as_slice() {
                tracing::info!(?priority, "encapsulation priorities from the global vrouter config");
                self.model.set_encap_priority(priority.clone());
                self.publish();
            }
        }
        // Parents before their sub-interfaces.
        let mut names: Vec<(bool, String)> = self
            .config
            .bindings
            .values()
            .map(|b| {
                let nested = compiled.ports.get(&b.vmi).is_some_and(|p| p.vlan.is_some());
                (nested, b.name.clone())
            })
            .collect();
        names.sort();
        for (_, name) in names {
            let outcome = self.reconcile_port(&name, &compiled);
            match outcome {
                Ok(()) => self.config.waiting.remove(&name),
                Err(why) => self.config.waiting.insert(name, why),
            };
        }
        if let Some(flows) = &self.config.flows {
            let overrides: Vec<crate::flows::AgingOverride> = compiled
                .flow_aging
                .iter()
                .map(|t| crate::flows::AgingOverride {
                    protocol: t.protocol,
                    port: t.port,
                    timeout_secs: t.timeout_secs,
                })
                .collect();
            if flows.aging_overrides() != overrides {
                tracing::info!(?overrides, "flow idle timeouts from the global vrouter config");
                flows.set_aging_overrides(overrides);
            }
        }
        self.config.interfaces = compiled.ports.values().map(interface_view).collect();
        self.reconcile_floating_ips(&compiled);
        self.reconcile_services(&compiled);
        self.reconcile_security_groups(&compiled);
        self.reconcile_network_acls(&compiled);
        for (vrf, vni) in &compiled.vrf_vnis {
            let in_use = self.model.interfaces().any(|(_, s)| &s.vrf == vrf);
            if in_use && self.model.vrf_vnis().get(vrf) != Some(vni) {
                if let Err(e) = self.set_vrf_vni(vrf, *vni) {
                    tracing::warn!(vrf, vni, "VNI from the configuration not set: {e}");
                }
            }
        }
        self.refresh_config_view();
    }

    /// Brings port `name` in line with its configuration; why it is not attached.
    fn reconcile_port(
        &mut self,
        name: &str,
        compiled: &control_client::contrail::CompiledConfig,
    ) -> Result<(), String> {
        let binding = self.config.bindings.get(name).cloned().ok_or("not bound")?;
        let desired = match compiled.ports.get(&binding.vmi) {
            None => Err("configuration of its interface".to_string()),
            Some(port) => {
                let parent = port.vlan.and_then(|v| {
                    self.config
                        .bindings
                        .values()
                        .find(|b| b.vmi == v.parent)
                        .map(|b| b.name.clone())
                });
                port.interface_spec(name, parent.as_deref())
            }
        };
        let current = self.model.interface_spec(name).cloned();
        let mut spec = match desired {
            Ok(spec) => spec,
            Err(why) => {
                if current.is_some() && self.config.synced {
                    self.detach_configured(name, "its configuration is gone");
                    let _ = self.store.delete_port(name);
                }
                return match current {
                    Some(_) if !self.config.synced => Ok(()),
                    _ => Err(why),
                };
            }
        };
        spec.mtu = binding.mtu.or(current.as_ref().and_then(|c| c.mtu));
        if current.as_ref() == Some(&spec) {
            return Ok(());
        }
        if current.is_some() {
            // Until the initial sync is over the configuration may be partial (a
            // routing instance link or a gateway still to come): an attached port
            // (restored, or from before a failover) stays as it is until then.
            if !self.config.synced {
                return Ok(());
            }
            // Tried first on a copy: a new configuration the model refuses leaves the
            // port attached as it was.
            if self.model.subinterfaces_of(name).is_empty() {
                let mut trial = self.model.clone();
                let _ = trial.take_routes_to(name);
                if trial.remove_interface(name).is_ok() {
                    if let Err(e) = trial.add_interface(spec.clone()) {
                        return Err(format!("its new configuration is refused ({e}); kept as it was"));
                    }
                }
            }
            self.detach_configured(name, "its configuration changed");
        }
        self.add_interface(spec).map(|_| ()).map_err(|e| e.to_string())
    }

    /// Brings the floating IPs of bound ports in line with the configuration (those
    /// it made are named `config:NAME`; an operator's are left alone). Floating IPs
    /// with port mappings (Kubernetes services, as kube-manager makes them) are not
    /// taken from here: services are.
    fn reconcile_floating_ips(&mut self, compiled: &control_client::contrail::CompiledConfig) {
        let mut desired: BTreeMap<String, FloatingIpSpec> = BTreeMap::new();
        for (name, f) in &compiled.floating_ips {
            if !f.port_mappings.is_empty() {
                continue;
            }
            let Some(binding) = self.config.bindings.values().find(|b| b.vmi == f.port) else {
                continue;
            };
            let name = format!("{CONFIG_PREFIX}{name}");
            let spec = FloatingIpSpec {
                name: name.clone(),
                vrf: f.vrf.clone(),
                ip: f.ip,
                interface: binding.name.clone(),
                egress_only: false,
            };
            desired.insert(name, spec);
        }
        let current: Vec<FloatingIpSpec> = self
            .model
            .floating_ips()
            .filter(|f| f.name.starts_with(CONFIG_PREFIX))
            .cloned()
            .collect();
        for f in current {
            let gone = !desired.contains_key(&f.name);
            // Gone from the configuration: removed once the initial sync is over.
            if gone && self.config.synced {
                if let Err(e) = self.remove_floating_ip(&f.name) {
                    tracing::warn!(floating_ip = %f.name, "not removed: {e}");
                }
            }
        }
        for (name, spec) in desired {
            if self.model.floating_ips().any(|f| *f == spec) {
                continue;
            }
            if let Err(e) = self.add_floating_ip(spec) {
                tracing::warn!(floating_ip = %name, "floating IP from the configuration not applied: {e}");
            }
        }
    }

    /// Brings the services made from native load balancers in line with the
    /// configuration (named `config:NAME`; an operator's are left alone). A listener
    /// on another protocol than TCP or UDP is left out (logged).
    fn reconcile_services(&mut self, compiled: &control_client::contrail::CompiledConfig) {
        use control_client::{L4Protocol, ServicePort, ServiceSpec};
        let mut desired: BTreeMap<String, ServiceSpec> = BTreeMap::new();
        for (name, s) in &compiled.services {
            let name = format!("{CONFIG_PREFIX}{name}");
            let ports: Vec<ServicePort> = s
                .ports
                .iter()
                .filter_map(|(protocol, port, target_port)| {
                    let protocol = match protocol {
                        6 => L4Protocol::Tcp,
                        17 => L4Protocol::Udp,
                        other => {
                            tracing::warn!(service = %name, protocol = other, "listener protocol not served: left out");
                            return None;
                        }
                    };
                    Some(ServicePort {
                        protocol,
                        port: *port,
                        target_port: *target_port,
                        node_port: None,
                    })
                })
                .collect();
            if ports.is_empty() {
                continue;
            }
            let spec = ServiceSpec {
                name: name.clone(),
                vrf: s.vrf.clone(),
                ip: s.ip,
                ports,
                backends: s.backends.clone(),
                // Contrail's pools carry no client-address affinity kube-manager sets.
                affinity_timeout_secs: None,
                external_ips: Vec::new(),
                health_check: None,
                load_balancer: false,
            };
            desired.insert(name, spec);
        }
        let current: Vec<ServiceSpec> = self
            .model
            .services()
            .filter(|s| s.name.starts_with(CONFIG_PREFIX))
            .cloned()
            .collect();
        for s in current {
            if !desired.contains_key(&s.name) && self.config.synced {
                if let Err(e) = self.remove_service(&s.name) {
                    tracing::warn!(service = %s.name, "not removed: {e}");
                }
            }
        }
        for (name, spec) in desired {
            if self.model.services().any(|s| *s == spec) {
                continue;
            }
            if let Err(e) = self.add_service(spec) {
                tracing::warn!(service = %name, "service from the configuration not applied: {e}");
            }
        }
    }

    /// Detaches a configured port (and its sub-interfaces first), keeping its vif
    /// and label for it.
    fn detach_configured(&mut self, name: &str, why: &str) {
        for sub in self.model.subinterfaces_of(name) {
            self.detach_configured(&sub, "its parent's configuration changed");
        }
        let nested = self.model.interface_spec(name).is_some_and(|s| s.vlan.is_some());
        let detached = self.detach_kept(name, why);
        self.publish();
        if let (Some(vif), false) = (detached, nested) {
            self.ports.remove_port(vif);
        }
        self.ifindex.remove(name);
    }

    fn binding_view(&self, binding: &PortBinding) -> PortBindingView {
        let attached = self.model.interface_spec(&binding.name);
        PortBindingView {
            name: binding.name.clone(),
            vmi: binding.vmi.to_string(),
            config_name: None,
            vrf: attached.map(|s| s.vrf.clone()),
            attached: attached.is_some(),
            waiting_for: self.config.waiting.get(&binding.name).cloned(),
        }
    }

    fn refresh_config_view(&mut self) {
        let compiled_names: BTreeMap<Uuid, String> = self
            .config
            .graph
            .objects_of(&control_client::contrail::ObjectType::VirtualMachineInterface)
            .filter_map(|(k, o)| Some((o.uuid?, k.name.clone())))
            .collect();
        let ports = self
            .config
            .bindings
            .values()
            .map(|b| PortBindingView {
                config_name: compiled_names.get(&b.vmi).cloned(),
                ..self.binding_view(b)
            })
            .collect();
        let view = ConfigView {
            server: self.config.server.map(|p| p.0),
            synced: self.config.synced,
            objects: self.config.graph.object_count(),
            links: self.config.graph.link_count(),
            skipped_entries: self.config.skipped,
            refused_updates: self.config.refused,
            ports,
            interfaces: self.config.interfaces.clone(),
        };
        if let Ok(mut shared) = self.config.view.lock() {
            *shared = view;
        }
    }

    /// The config server's channel went down: configuration stays as it is
    /// (headless) until another serves it.
    pub fn config_server_down(&mut self, peer: PeerId) {
        if self.config.server == Some(peer) {
            self.config.server = None;
            self.refresh_config_view();
        }
    }
}

/// A configured interface as the config view shows it.
fn interface_view(p: &control_client::contrail::PortConfig) -> vrouter_api::ConfigInterfaceView {
    use std::net::IpAddr;
    let v4 = p.ipv4.zip(p.prefix_lens.0).and_then(|(a, l)| {
        let net = ipnet::Ipv4Net::new(a, l).ok()?;
        Some((ipnet::IpNet::V4(net), p.gateway4.map(IpAddr::V4)))
    });
    let v6 = p.ipv6.zip(p.prefix_lens.1).and_then(|(a, l)| {
        let net = ipnet::Ipv6Net::new(a, l).ok()?;
        Some((ipnet::IpNet::V6(net), p.gateway6.map(IpAddr::V6)))
    });
    vrouter_api::ConfigInterfaceView {
        vmi: p.uuid.to_string(),
        vm: p.virtual_machine_uuid.map(|u| u.to_string()),
        vrf: p.vrf.clone(),
        mac: p.mac,
        addresses: v4.into_iter().chain(v6).collect(),
        vlan: p.vlan.map(|v| v.tag),
    }
}

#[cfg(test)]
mod tests;

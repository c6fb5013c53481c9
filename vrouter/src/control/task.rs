//! The control task: one thread owns [`Control`], restores the state directory, then
//! applies typed changes one at a time, in the order they arrive; between changes it
//! detaches ports whose interface vanished (when the kernel announces a link change,
//! and every [`LINK_SWEEP`] behind that) and refreshes the tunnel endpoints' fabric
//! MACs.
//!
//! A change whose requester has given up (its answer channel closed, e.g. the API
//! client disconnected while the change waited in the queue) is skipped, not applied
//! behind the requester's back. A change that has started runs to its end: it is
//! applied whole or not at all.

use super::Control;
use control_client::contrail::PortBinding;
use control_client::xmpp::{Element, RouteUpdate};
use control_client::{InterfaceSpec, PeerId, RouteSpec, ServiceSpec};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use ipnet::IpNet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use vrouter_api::{ApiError, AttachedView, ErrorCode, Request};

/// Log lines a control node's refused changes write per second at most.
static REFUSED_LOG: crate::log_limit::SharedLogLimit = crate::log_limit::SharedLogLimit::new(10);

/// Changes waiting for the control task at most; more are refused as busy.
pub const QUEUE_DEPTH: usize = 1024;

/// How often attached ports are checked against the kernel without a link message
/// (rtnetlink drops messages when its socket overflows; this catches those).
pub const LINK_SWEEP: Duration = Duration::from_secs(10);

/// A change to the forwarding state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Attach a pod interface.
    AddInterface(InterfaceSpec),
    /// Detach a pod interface.
    RemoveInterface(String),
    /// Add a route.
    AddRoute(RouteSpec),
    /// Remove a route.
    RemoveRoute {
        /// VRF.
        vrf: String,
        /// Prefix.
        prefix: IpNet,
    },
    /// Give a VRF its VNI.
    SetVrfVni {
        /// VRF.
        vrf: String,
        /// VNI.
        vni: u32,
    },
    /// Add or replace a service.
    AddService(ServiceSpec),
    /// Remove a service.
    RemoveService(String),
    /// A control node's channel came (back) up: its routes are stale until sent again.
    PeerUp(PeerId),
    /// A control node's channel went down.
    PeerDown(PeerId),
    /// A control node's initial routes are all sent: its stale routes are swept.
    PeerSynced(PeerId),
    /// Add or replace a floating IP.
    AddFloatingIp(control_client::FloatingIpSpec),
    /// Add or replace a network policy.
    AddPolicy(control_client::PolicySpec),
    /// Add or replace policies and remove others, at once.
    SetPolicies(Vec<control_client::PolicySpec>, Vec<String>),
    /// Remove a network policy.
    RemovePolicy(String),
    /// Remove a floating IP.
    RemoveFloatingIp(String),
    /// Add or replace a service chain.
    AddServiceChain(control_client::ServiceChainSpec),
    /// Remove a service chain.
    RemoveServiceChain(String),
    /// Add or replace an ingress.
    AddIngress(control_client::IngressSpec),
    /// Remove an ingress.
    RemoveIngress(String),
    /// Bind a port to a virtual machine interface of the configuration.
    BindPort(PortBinding),
    /// A control node serves configuration from now on.
    ConfigServer(PeerId),
    /// A config message from a control node.
    Config {
        /// Which control node.
        peer: PeerId,
        /// Its `<config>` element.
        config: Element,
    },
    /// A backend's health check took it out of its service's group, or put it back.
    BackendHealth {
        /// The service.
        service: String,
        /// The backend.
        backend: std::net::IpAddr,
        /// Whether it answers.
        healthy: bool,
    },
    /// A control node's route message (applied as one publication).
    RouteUpdate {
        /// Which control node.
        peer: PeerId,
        /// Its routes for one VRF and family.
        update: RouteUpdate,
    },
}

impl Change {
    /// The change a request asks for; `None` for views.
    pub fn from_request(request: Request) -> Option<Change> {
        Some(match request {
            Request::AddInterface { spec } => Change::AddInterface(spec),
            Request::RemoveInterface { name } => Change::RemoveInterface(name),
            Request::AddRoute { route } => Change::AddRoute(route),
            Request::RemoveRoute { vrf, prefix } => Change::RemoveRoute { vrf, prefix },
            Request::SetVrfVni { vrf, vni } => Change::SetVrfVni { vrf, vni },
            Request::AddService { spec } => Change::AddService(spec),
            Request::RemoveService { name } => Change::RemoveService(name),
            Request::BindPort { binding } => Change::BindPort(binding),
            Request::AddFloatingIp { spec } => Change::AddFloatingIp(spec),
            Request::AddPolicy { spec } => Change::AddPolicy(spec),
            Request::RemovePolicy { name } => Change::RemovePolicy(name),
            Request::SetPolicies { specs, remove } => Change::SetPolicies(specs, remove),
            Request::RemoveFloatingIp { name } => Change::RemoveFloatingIp(name),
            Request::AddServiceChain { spec } => Change::AddServiceChain(spec),
            Request::RemoveServiceChain { name } => Change::RemoveServiceChain(name),
            Request::AddIngress { spec } => Change::AddIngress(spec),
            Request::RemoveIngress { name } => Change::RemoveIngress(name),
            _ => return None,
        })
    }
}

/// The answer to a change.
pub type ChangeResult = Result<serde_json::Value, ApiError>;

enum Message {
    Change(Change, oneshot::Sender<ChangeResult>),
    /// A change nobody waits for (from a control node's channel), and when it was
    /// posted.
    Posted(Change, Instant),
    /// The kernel announced link changes: check the attached ports now.
    LinksChanged,
    Shutdown,
}

/// Counters of the control task.
#[derive(Debug, Default)]
pub struct TaskStats {
    /// Changes applied or refused.
    pub done: AtomicU64,
    /// Changes skipped because their requester had given up.
    pub abandoned: AtomicU64,
    /// Neighbour refreshes run.
    pub refreshes: AtomicU64,
}

/// Sends changes to the control task; cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlHandle {
    tx: Sender<Message>,
    stats: Arc<TaskStats>,
}

/// The running task: its handle, and the thread to join at shutdown.
#[derive(Debug)]
pub struct ControlTask {
    handle: ControlHandle,
    thread: std::thread::JoinHandle<()>,
}

impl ControlHandle {
    /// Queues `change`; the answer arrives on the returned channel. Refused (busy) when
    /// the queue is full, unavailable when the task has stopped.
    pub fn submit(&self, change: Change) -> Result<oneshot::Receiver<ChangeResult>, ApiError> {
        let (reply, answer) = oneshot::channel();
        match self.tx.try_send(Message::Change(change, reply)) {
            Ok(()) => Ok(answer),
            Err(TrySendError::Full(_)) => Err(ApiError::new(
                ErrorCode::Busy,
                format!("{QUEUE_DEPTH} changes are waiting already; retry"),
            )),
            Err(TrySendError::Disconnected(_)) => {
                Err(ApiError::new(ErrorCode::Unavailable, "the vrouter is shutting down"))
            }
        }
    }

    /// Queues `change` with nobody waiting for its answer (a control node's routes:
    /// applied in order; what is refused is logged).
    pub fn post(&self, change: Change) -> Result<(), ApiError> {
        match self.tx.try_send(Message::Posted(change, Instant::now())) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(ApiError::new(ErrorCode::Busy, "the control task's queue is full")),
            Err(TrySendError::Disconnected(_)) => {
                Err(ApiError::new(ErrorCode::Unavailable, "the vrouter is shutting down"))
            }
        }
    }

    /// Queues `change` and waits for its answer (for callers outside the runtime).
    pub fn apply_blocking(&self, change: Change) -> ChangeResult {
        self.submit(change)?
            .blocking_recv()
            .unwrap_or_else(|_| Err(ApiError::new(ErrorCode::Unavailable, "the control task stopped")))
    }

    /// Changes waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// The task's counters.
    pub fn stats(&self) -> &TaskStats {
        &self.stats
    }
}

impl ControlTask {
    /// A handle to send changes with.
    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }

    /// Finishes the change in progress, skips the queued ones, shuts the data plane
    /// down and ends the thread.
    pub fn shutdown(self) {
        let _ = self.handle.tx.send(Message::Shutdown);
        let _ = self.thread.join();
    }
}

/// Starts the control task on its own thread: it restores the state directory, sets
/// `ready`, then takes changes; it refreshes tunnel neighbours every `refresh`
/// between changes.
pub fn spawn(control: Control, refresh: Duration, ready: Arc<AtomicBool>) -> std::io::Result<ControlTask> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_DEPTH);
    let stats = Arc::new(TaskStats::default());
    let task_stats = Arc::clone(&stats);
    // One wake-up at a time waits in the queue, however many link messages arrive.
    let links_pending = Arc::new(AtomicBool::new(false));
    let (wake, pending) = (tx.clone(), Arc::clone(&links_pending));
    let watch = crate::link_watch::spawn(move || {
        if !pending.swap(true, Ordering::AcqRel) && wake.try_send(Message::LinksChanged).is_err() {
            pending.store(false, Ordering::Release);
        }
    })
    .map_err(|e| tracing::warn!("{e:#}; vanished ports are found every {LINK_SWEEP:?} instead"))
    .ok();
    let thread = std::thread::Builder::new()
        .name("vrouter-control".into())
        .spawn(move || {
            let _watch = watch;
            run(control, &rx, refresh, &task_stats, &ready, &links_pending)
        })?;
    Ok(ControlTask {
        handle: ControlHandle { tx, stats },
        thread,
    })
}

fn run(
    mut control: Control,
    rx: &Receiver<Message>,
    refresh: Duration,
    stats: &TaskStats,
    ready: &AtomicBool,
    links_pending: &AtomicBool,
) {
    // The API already serves views while the state directory is restored (status
    // says `ready: false`); changes wait in the queue until it is done.
    let timings = control.timings();
    control.restore();
    ready.store(true, Ordering::Release);
    let mut next_refresh = Instant::now() + refresh;
    let mut next_link_sweep = Instant::now() + LINK_SWEEP;
    loop {
        if rx.is_empty() && control.config_dirty() {
            // A burst of config messages is compiled once, when it is over.
            control.reconcile_config();
        }
        let until = control.config_deadline().map_or(next_refresh, |d| d.min(next_refresh));
        let wait = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Message::Change(change, reply)) => {
                if reply.is_closed() {
                    stats.abandoned.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(?change, "change skipped: its requester gave up before it started");
                    continue;
                }
                let result = apply(&mut control, change);
                stats.done.fetch_add(1, Ordering::Relaxed);
                let _ = reply.send(result);
            }
            Ok(Message::Posted(change, posted)) => {
                let route_update = matches!(change, Change::RouteUpdate { .. });
                if let Err(e) = apply(&mut control, change) {
                    if REFUSED_LOG.admit("changes from control nodes refused") {
                        tracing::warn!(reason = %e.message, "change from a control node refused");
                    }
                }
                if route_update {
                    timings.observe_route_update(posted.elapsed());
                }
                stats.done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Message::LinksChanged) => {
                links_pending.store(false, Ordering::Release);
                control.detach_vanished_ports();
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                control.config_tick(now);
                control.config_retry(now);
                if now < next_refresh {
                    continue;
                }
                control.sweep_lost_peers(now);
                if now >= next_link_sweep {
                    control.detach_vanished_ports();
                    next_link_sweep = now + LINK_SWEEP;
                }
                control.refresh_neighbors();
                stats.refreshes.fetch_add(1, Ordering::Relaxed);
                next_refresh = Instant::now() + refresh;
            }
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    control.shutdown();
}

fn apply(control: &mut Control, change: Change) -> ChangeResult {
    let value = match change {
        Change::AddInterface(spec) => {
            let id = control.add_interface(spec)?;
            serde_json::to_value(AttachedView {
                vif: id.vif.0,
                label: id.label,
            })
            .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        }
        Change::RemoveInterface(name) => {
            control.remove_interface(&name)?;
            serde_json::Value::Null
        }
        Change::AddRoute(route) => {
            control.add_route(route)?;
            serde_json::Value::Null
        }
        Change::RemoveRoute { vrf, prefix } => {
            control.remove_route(&vrf, prefix)?;
            serde_json::Value::Null
        }
        Change::SetVrfVni { vrf, vni } => {
            control.set_vrf_vni(&vrf, vni)?;
            serde_json::Value::Null
        }
        Change::AddService(spec) => {
            control.add_service(spec)?;
            serde_json::Value::Null
        }
        Change::RemoveService(name) => {
            control.remove_service(&name)?;
            serde_json::Value::Null
        }
        Change::PeerUp(peer) => {
            control.peer_up(peer);
            serde_json::Value::Null
        }
        Change::AddFloatingIp(spec) => {
            control.add_floating_ip(spec)?;
            serde_json::Value::Null
        }
        Change::AddPolicy(spec) => {
            control.add_policy(spec)?;
            serde_json::Value::Null
        }
        Change::RemovePolicy(name) => {
            control.remove_policy(&name)?;
            serde_json::Value::Null
        }
        Change::SetPolicies(specs, remove) => {
            control.set_policies(specs, &remove)?;
            serde_json::Value::Null
        }
        Change::RemoveFloatingIp(name) => {
            control.remove_floating_ip(&name)?;
            serde_json::Value::Null
        }
        Change::AddServiceChain(spec) => {
            control.add_service_chain(spec)?;
            serde_json::Value::Null
        }
        Change::RemoveServiceChain(name) => {
            control.remove_service_chain(&name)?;
            serde_json::Value::Null
        }
        Change::AddIngress(spec) => {
            control.add_ingress(spec)?;
            serde_json::Value::Null
        }
        Change::RemoveIngress(name) => {
            control.remove_ingress(&name)?;
            serde_json::Value::Null
        }
        Change::BindPort(binding) => {
            let view = control.bind_port(binding)?;
            serde_json::to_value(view).map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        }
        Change::ConfigServer(peer) => {
            control.config_server(peer);
            serde_json::Value::Null
        }
        Change::Config { peer, config } => {
            control.apply_config(peer, &config, Instant::now());
            serde_json::Value::Null
        }
        Change::PeerDown(peer) => {
            control.config_server_down(peer);
            control.peer_down(peer, Instant::now());
            serde_json::Value::Null
        }
        Change::BackendHealth {
            service,
            backend,
            healthy,
        } => {
            control.set_backend_health(&service, backend, healthy);
            serde_json::Value::Null
        }
        Change::PeerSynced(peer) => {
            control.peer_synced(peer);
            serde_json::Value::Null
        }
        Change::RouteUpdate { peer, update } => {
            let refused = control.apply_route_update(peer, &update);
            serde_json::Value::from(refused)
        }
    };
    Ok(value)
}

#[cfg(test)]
mod tests;

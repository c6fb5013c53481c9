//! The ingress supervisor: the agent's part in Contrail's ingress. On a node whose
//! `[ingress] role` is set it runs one haproxy instance per ingress (namespace, veth,
//! haproxy; see `vrouter_ingress::instance`) and attaches the veth's host end as a
//! port holding the VIP, advertised with the role's local preference (active 200,
//! standby 100): the control node sends everyone the active's path while it
//! advertises, the standby's when it does not.
//!
//! Every instance is probed every `probe_interval_ms` (`GET /healthz` on its health
//! socket; all instances at once, so one hung instance delays no other). Beyond
//! Tungsten, where only a lost node moves the VIP: an instance whose haproxy exited,
//! or fails `probe_failures` probes in a row (hung, overloaded), gives up the VIP at
//! once (its port is detached, so its route is withdrawn; a detach the control task
//! refuses is tried again on every tick) and is restarted; it takes the VIP back
//! once it has answered for `reclaim_delay_ms`. A port the control side dropped
//! (its veth gone, `vif delete`) is noticed in the published snapshot and attached
//! again, or the instance set up anew. A changed ingress is reloaded (haproxy's
//! master starts new workers; old ones finish their connections) once `haproxy -c`
//! accepts the new configuration; a removed one, and every one at shutdown, leaves
//! no process, namespace, port or file behind.

mod running;

use crate::config::IngressConfig;
use crate::control::task::{Change, ControlHandle};
use control_client::{IngressSpec, SnapshotPublisher};
use running::Running;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use vrouter_api::IngressInstanceView;
use vrouter_ingress::instance::{self, InstanceNames, Setup};

/// The ingresses the node holds, kept by the control side.
pub type Targets = Arc<Mutex<Vec<IngressSpec>>>;

/// What the supervisor reports of each instance, by ingress name (for the views).
pub type Status = Arc<Mutex<BTreeMap<String, IngressInstanceView>>>;

/// A probe not answered in this long failed.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// A failed setup is tried again after this long.
const SETUP_RETRY: Duration = Duration::from_secs(2);
/// Attaches refused in a row before the instance is set up anew (its veth may be
/// gone).
const ATTACH_RETRIES: u32 = 5;

/// A lock whose holder panicked still holds good data here (whole values are
/// swapped in): go on with it rather than take an empty list for "remove all".
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running supervisor; [`Supervisor::stop`] removes every instance.
#[derive(Debug)]
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the supervisor is given.
#[derive(Debug)]
pub struct SupervisorSetup {
    /// `[ingress]`.
    pub config: IngressConfig,
    /// The state directory (instances live under `ingress/` in it).
    pub state_dir: PathBuf,
    /// Forwarding workers (the veths' queue count).
    pub queues: usize,
    /// The workers finish checksums: the instance may leave them to the kernel.
    pub checksum_offload: bool,
    /// The ingresses, kept by the control side.
    pub targets: Targets,
    /// Where it reports its instances.
    pub status: Status,
    /// The control task (ports attached and detached through it).
    pub control: ControlHandle,
    /// The published snapshots (whether a port is really attached).
    pub publisher: SnapshotPublisher,
}

impl Supervisor {
    /// Starts supervising on its own thread (blocking work: iproute2, haproxy); none
    /// when the node runs no instance, after removing what an earlier run left.
    pub fn spawn(setup: SupervisorSetup) -> anyhow::Result<Option<Supervisor>> {
        let base = setup.state_dir.join("ingress");
        for leftover in instance::leftovers(&base) {
            tracing::info!(netns = %leftover.netns, "removing an ingress instance an earlier run left");
            instance::remove(&leftover);
            // Its port record too (restored from the state directory, or kept).
            let _ = setup
                .control
                .apply_blocking(Change::RemoveInterface(leftover.host_if().to_string()));
        }
        let config = &setup.config;
        let (Some(role), Some(gateway)) = (config.role, config.gateway) else {
            return Ok(None);
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut s = Supervising {
            setup: Setup {
                haproxy: config.haproxy.clone(),
                gateway,
                queues: setup.queues,
                mtu: config.mtu,
                checksum_offload: setup.checksum_offload,
            },
            base,
            policy: running::Policy {
                local_preference: role.local_preference(),
                failures_allowed: config.probe_failures,
                reclaim_delay: Duration::from_millis(u64::from(config.reclaim_delay_ms)),
                gateway,
            },
            interval: Duration::from_millis(u64::from(config.probe_interval_ms)),
            targets: setup.targets,
            status: setup.status,
            control: setup.control,
            publisher: setup.publisher,
            running: BTreeMap::new(),
            retry_at: BTreeMap::new(),
        };
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("ingress".into()).spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                s.tick();
                // In slices: a stop is seen within 20 ms whatever the interval.
                while started.elapsed() < s.interval && !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20).min(s.interval));
                }
            }
            s.remove_all();
        })?;
        tracing::info!(?role, "ingress instances run on this node");
        Ok(Some(Supervisor {
            stop,
            thread: Some(thread),
        }))
    }

    /// Removes every instance and stops (the control task must still run: ports are
    /// detached through it).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Dropped on an early return too: its instances never outlive the vrouter.
impl Drop for Supervisor {
    fn drop(&mut self) {
        self.halt();
    }
}

struct Supervising {
    setup: Setup,
    base: PathBuf,
    policy: running::Policy,
    interval: Duration,
    targets: Targets,
    status: Status,
    control: ControlHandle,
    publisher: SnapshotPublisher,
    running: BTreeMap<String, Running>,
    /// Ingresses whose setup failed, and when to try again.
    retry_at: BTreeMap<String, Instant>,
}

impl Supervising {
    fn tick(&mut self) {
        let desired: Vec<IngressSpec> = locked(&self.targets).clone();
        // Gone, or on another address (set up anew below).
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(n, r)| {
                !desired
                    .iter()
                    .any(|d| &d.name == *n && (d.vip, &d.vrf) == (r.spec.vip, &r.spec.vrf))
            })
            .map(|(n, _)| n.clone())
            .collect();
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                r.remove(&self.control);
            }
        }
        self.retry_at.retain(|n, _| desired.iter().any(|d| &d.name == n));
        for spec in &desired {
            match self.running.get_mut(&spec.name) {
                Some(r) => r.reconfigure(spec, &self.setup),
                None => self.create(spec),
            }
        }
        let snap = self.publisher.load_full();
        let mut rebuild = Vec::new();
        for r in self.running.values_mut() {
            r.check_process(&self.setup, &self.control);
            if !r.check_port(&snap) {
                rebuild.push(r.spec.name.clone());
            }
        }
        for name in rebuild {
            if let Some(r) = self.running.remove(&name) {
                r.remove(&self.control);
            }
            // Not at once: a port refused for good (its VIP another port's address)
            // would otherwise be set up and torn down on every tick.
            self.retry_at.insert(name, Instant::now() + SETUP_RETRY * 5);
        }
        // Every live instance probed at once.
        let answers: Vec<(String, bool)> = std::thread::scope(|scope| {
            let probes: Vec<_> = self
                .running
                .values()
                .filter(|r| r.is_live())
                .map(|r| {
                    let (name, names) = (r.spec.name.clone(), &r.names);
                    scope.spawn(move || (name, instance::probe(names, PROBE_TIMEOUT)))
                })
                .collect();
            probes.into_iter().filter_map(|p| p.join().ok()).collect()
        });
        for (name, answered) in answers {
            if let Some(r) = self.running.get_mut(&name) {
                r.probed(answered, &self.policy, &self.control);
            }
        }
        *locked(&self.status) = self.running.iter().map(|(n, r)| (n.clone(), r.view())).collect();
    }

    /// Sets up `spec`'s instance, unless its last try failed a moment ago or its
    /// names are another running ingress's.
    fn create(&mut self, spec: &IngressSpec) {
        if self.retry_at.get(&spec.name).is_some_and(|t| *t > Instant::now()) {
            return;
        }
        let names = InstanceNames::of(&spec.name, &self.base);
        if let Some(other) = self.running.values().find(|r| r.names.netns == names.netns) {
            tracing::warn!(ingress = %spec.name, other = %other.spec.name, "instance names collide: not set up");
            self.retry_at
                .insert(spec.name.clone(), Instant::now() + SETUP_RETRY * 15);
            return;
        }
        // A port of that name restored from the state directory goes first.
        let _ = self
            .control
            .apply_blocking(Change::RemoveInterface(names.host_if().to_string()));
        match Running::start(spec, names, &self.setup) {
            Ok(r) => {
                self.retry_at.remove(&spec.name);
                self.running.insert(spec.name.clone(), r);
            }
            Err(e) => {
                tracing::warn!(ingress = %spec.name, "instance not set up: {e:#}");
                self.retry_at.insert(spec.name.clone(), Instant::now() + SETUP_RETRY);
            }
        }
    }

    fn remove_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            r.remove(&self.control);
        }
        locked(&self.status).clear();
    }
}

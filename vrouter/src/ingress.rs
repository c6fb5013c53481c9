//! The ingress supervisor: the agent's part in Contrail's ingress. On a node whose
//! `[ingress] role` is set it runs one haproxy instance per ingress (namespace, veth,
//! haproxy; see `vrouter_ingress::instance`) and attaches the veth's host end as a
//! port holding the VIP, advertised with the role's local preference (active 200,
//! standby 100): the control node sends everyone the active's path while it
//! advertises, the standby's when it does not.
//!
//! Each instance is probed every `probe_interval_ms` (`GET /healthz` on its health
//! socket). Beyond Tungsten, where only a lost node moves the VIP: an instance whose
//! haproxy exited, or fails `probe_failures` probes in a row (hung, overloaded),
//! gives up the VIP at once (its port is detached, so its route is withdrawn) and
//! is restarted; it takes the VIP back once it has answered for `reclaim_delay_ms`. A changed ingress is
//! reloaded (haproxy's master starts new workers; old ones finish their
//! connections); a removed one, and every one at shutdown, leaves no process,
//! namespace, port or file behind.

use crate::config::IngressConfig;
use crate::control::task::{Change, ControlHandle};
use control_client::{IngressSpec, InterfaceSpec};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
/// haproxy that exits before it ever answers is started again after at least this
/// long, doubling up to [`MAX_BACKOFF`] (a configuration it refuses, a port taken).
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between starts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The last line of a log file (what haproxy said before it exited).
fn last_line(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string))
        .unwrap_or_default()
}

/// One instance this node runs.
struct Running {
    spec: IngressSpec,
    names: InstanceNames,
    child: Option<Child>,
    /// Its port is attached (its VIP advertised).
    attached: bool,
    failures: u32,
    failing_since: Option<Instant>,
    /// When haproxy was last started, and how long to wait before starting it again
    /// if it exits (doubling while it keeps exiting without answering a probe).
    started: Instant,
    backoff: Duration,
    /// Since when it has answered every probe (none: its last probe failed).
    answering_since: Option<Instant>,
    view: IngressInstanceView,
}

/// The running supervisor; [`Supervisor::stop`] removes every instance.
#[derive(Debug)]
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    /// Starts supervising on its own thread (blocking work: iproute2, haproxy); none
    /// when the node runs no instance, after removing what an earlier run left.
    pub fn spawn(
        config: &IngressConfig,
        state_dir: PathBuf,
        queues: usize,
        targets: Targets,
        status: Status,
        control: ControlHandle,
    ) -> anyhow::Result<Option<Supervisor>> {
        let base = state_dir.join("ingress");
        for leftover in instance::leftovers(&base) {
            tracing::info!(netns = %leftover.netns, "removing an ingress instance an earlier run left");
            instance::remove(&leftover);
        }
        let (Some(role), Some(gateway)) = (config.role, config.gateway) else {
            return Ok(None);
        };
        let setup = Setup {
            haproxy: config.haproxy.clone(),
            gateway,
            queues,
            mtu: config.mtu,
        };
        let mut s = Supervising {
            setup,
            base,
            local_preference: role.local_preference(),
            interval: Duration::from_millis(u64::from(config.probe_interval_ms)),
            failures_allowed: config.probe_failures,
            reclaim_delay: Duration::from_millis(u64::from(config.reclaim_delay_ms)),
            targets,
            status,
            control,
            running: BTreeMap::new(),
            retry_at: BTreeMap::new(),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new().name("ingress".into()).spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let started = Instant::now();
                s.tick();
                std::thread::sleep(s.interval.saturating_sub(started.elapsed()));
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
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Supervising {
    setup: Setup,
    base: PathBuf,
    local_preference: u32,
    interval: Duration,
    failures_allowed: u32,
    reclaim_delay: Duration,
    targets: Targets,
    status: Status,
    control: ControlHandle,
    running: BTreeMap<String, Running>,
    /// Ingresses whose setup failed, and when to try again.
    retry_at: BTreeMap<String, Instant>,
}

impl Supervising {
    fn tick(&mut self) {
        let desired: Vec<IngressSpec> = self.targets.lock().map(|t| t.clone()).unwrap_or_default();
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !desired.iter().any(|d| &d.name == *n))
            .cloned()
            .collect();
        for name in gone {
            if let Some(r) = self.running.remove(&name) {
                self.remove(r);
            }
        }
        self.retry_at.retain(|n, _| desired.iter().any(|d| &d.name == n));
        for spec in desired {
            self.supervise(spec);
        }
        if let Ok(mut shared) = self.status.lock() {
            *shared = self.running.iter().map(|(n, r)| (n.clone(), r.view.clone())).collect();
        }
    }

    fn supervise(&mut self, spec: IngressSpec) {
        let moved = self
            .running
            .get(&spec.name)
            .is_some_and(|r| (r.spec.vip, r.spec.external_ip, &r.spec.vrf) != (spec.vip, spec.external_ip, &spec.vrf));
        if moved {
            // A new address: set up anew.
            if let Some(r) = self.running.remove(&spec.name) {
                self.remove(r);
            }
        }
        let Some(r) = self.running.get_mut(&spec.name) else {
            if self.retry_at.get(&spec.name).is_some_and(|t| *t > Instant::now()) {
                return;
            }
            match self.create(&spec) {
                Ok(r) => {
                    self.retry_at.remove(&spec.name);
                    self.running.insert(spec.name.clone(), r);
                }
                Err(e) => {
                    tracing::warn!(ingress = %spec.name, "instance not set up: {e:#}");
                    self.retry_at.insert(spec.name.clone(), Instant::now() + SETUP_RETRY);
                }
            }
            return;
        };
        if r.spec != spec {
            reconfigure(r, spec, &self.setup);
        }
        let exited = match r.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            Some(Ok(None)) => None,
            None => Some("not running".into()),
        };
        if let Some(why) = exited {
            r.answering_since = None;
            if r.child.take().is_some() {
                let said = last_line(&r.names.dir.join("haproxy.log"));
                tracing::warn!(ingress = %r.spec.name, "haproxy exited ({why}): {said}");
                withdraw(r, &self.control, &format!("haproxy exited ({why}): {said}"));
            }
            if r.started.elapsed() < r.backoff {
                return;
            }
            match instance::start_haproxy(&r.names, &self.setup) {
                Ok(child) => {
                    r.child = Some(child);
                    r.view.restarts += 1;
                    r.view.state = "starting".into();
                    r.started = Instant::now();
                    r.backoff = (r.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
                }
                Err(e) => {
                    r.child = None;
                    r.view.state = format!("haproxy not started: {e}");
                }
            }
            return;
        }
        if instance::probe(&r.names, PROBE_TIMEOUT) {
            r.failures = 0;
            r.failing_since = None;
            r.backoff = Duration::ZERO;
            let since = *r.answering_since.get_or_insert_with(Instant::now);
            // After giving the VIP up, it takes it back only once it has answered
            // for a while: no flapping between the two instances.
            let settled = r.view.withdrawals == 0 || since.elapsed() >= self.reclaim_delay;
            if !r.attached && settled {
                attach(r, &self.control, self.local_preference, self.setup.gateway);
            }
            return;
        }
        r.answering_since = None;
        r.failures += 1;
        let since = *r.failing_since.get_or_insert_with(Instant::now);
        // A starting haproxy (never answered since it started) gets more time.
        let starting = !r.attached && r.view.state == "starting";
        let allowed = if starting {
            self.failures_allowed * 10
        } else {
            self.failures_allowed
        };
        if r.failures < allowed {
            if !starting {
                r.view.state = format!("failing ({} probes)", r.failures);
            }
            return;
        }
        let after = since.elapsed();
        withdraw(
            r,
            &self.control,
            &format!("{} probes failed in {} ms", r.failures, after.as_millis()),
        );
        r.view.last_withdrawal_ms = Some(after.as_millis() as u64);
        // Killed, workers too (a hung one would hold the listener): the next tick
        // starts it again.
        instance::kill_all(&r.names);
        if let Some(c) = r.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        r.failures = 0;
        r.failing_since = None;
    }

    /// Sets up `spec`'s instance: network, configuration (checked), haproxy. Its port
    /// is attached once it answers its first probe.
    fn create(&self, spec: &IngressSpec) -> anyhow::Result<Running> {
        let names = InstanceNames::of(&spec.name, &self.base);
        // A port of that name restored from the state directory goes first.
        let _ = self
            .control
            .apply_blocking(Change::RemoveInterface(names.host_if().to_string()));
        instance::write_config(spec, &names)?;
        instance::check_config(&names, &self.setup)?;
        instance::create_network(spec, &names, &self.setup)?;
        let child = match instance::start_haproxy(&names, &self.setup) {
            Ok(c) => c,
            Err(e) => {
                instance::remove_network(&names);
                return Err(e.into());
            }
        };
        tracing::info!(ingress = %spec.name, netns = %names.netns, vip = %spec.vip, "ingress instance started");
        let view = IngressInstanceView {
            port: names.host_if().to_string(),
            netns: names.netns.clone(),
            state: "starting".into(),
            attached: false,
            restarts: 0,
            reloads: 0,
            withdrawals: 0,
            last_withdrawal_ms: None,
            config: names.dir.join("haproxy.cfg").display().to_string(),
        };
        Ok(Running {
            spec: spec.clone(),
            names,
            child: Some(child),
            attached: false,
            failures: 0,
            failing_since: None,
            started: Instant::now(),
            backoff: MIN_BACKOFF,
            answering_since: None,
            view,
        })
    }

    /// Detaches the port, stops haproxy, removes the network and the files.
    fn remove(&self, mut r: Running) {
        withdraw(&mut r, &self.control, "ingress removed");
        if let Some(mut c) = r.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Workers a reload left behind are in the namespace too.
        instance::remove(&r.names);
        tracing::info!(ingress = %r.spec.name, "ingress instance removed");
    }

    fn remove_all(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            self.remove(r);
        }
        if let Ok(mut shared) = self.status.lock() {
            shared.clear();
        }
    }
}

/// A changed ingress on the same addresses: the new configuration, checked, then a
/// reload (a configuration haproxy refuses leaves the running one serving).
fn reconfigure(r: &mut Running, spec: IngressSpec, setup: &Setup) {
    let result = instance::write_config(&spec, &r.names).and_then(|changed| {
        if changed {
            instance::check_config(&r.names, setup)?;
            if let Some(c) = &r.child {
                instance::reload(c)?;
            }
        }
        Ok(changed)
    });
    match result {
        Ok(changed) => {
            if changed {
                r.view.reloads += 1;
                tracing::info!(ingress = %spec.name, "ingress instance reloaded");
            }
            r.spec = spec;
        }
        Err(e) => {
            tracing::warn!(ingress = %spec.name, "new configuration not loaded: {e}");
            r.view.state = format!("serving the previous configuration: {e}");
            // Not tried again until the ingress changes again.
            r.spec = spec;
        }
    }
}

/// Attaches the instance's port: its VIP is advertised.
fn attach(r: &mut Running, control: &ControlHandle, local_preference: u32, gateway: std::net::Ipv4Addr) {
    let spec = InterfaceSpec {
        name: r.names.host_if().to_string(),
        vrf: r.spec.vrf.clone(),
        mac: r.names.mac,
        ipv4: Some(r.spec.vip),
        gateway4: Some(gateway),
        local_preference: Some(local_preference),
        ..InterfaceSpec::default()
    };
    match control.apply_blocking(Change::AddInterface(spec)) {
        Ok(_) => {
            r.attached = true;
            r.view.attached = true;
            r.view.state = "serving".into();
            tracing::info!(ingress = %r.spec.name, vip = %r.spec.vip, local_preference, "ingress instance answers: VIP advertised");
        }
        Err(e) => {
            r.view.state = format!("port not attached: {}", e.message);
            tracing::warn!(ingress = %r.spec.name, "port not attached: {}", e.message);
        }
    }
}

/// Detaches the instance's port (its VIP route is withdrawn), if attached.
fn withdraw(r: &mut Running, control: &ControlHandle, why: &str) {
    r.view.state = why.to_string();
    if !r.attached {
        return;
    }
    if let Err(e) = control.apply_blocking(Change::RemoveInterface(r.names.host_if().to_string())) {
        tracing::warn!(ingress = %r.spec.name, "port not detached: {}", e.message);
    }
    r.attached = false;
    r.view.attached = false;
    r.view.withdrawals += 1;
    tracing::warn!(ingress = %r.spec.name, "VIP given up: {why}");
}

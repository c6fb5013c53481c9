//! One instance the supervisor runs, and what happens to it: started, reloaded,
//! probed, its VIP given up and taken back, restarted, removed.

use super::{Change, ControlHandle, ATTACH_RETRIES};
use control_client::{IngressSpec, InterfaceSpec};
use std::process::Child;
use std::time::{Duration, Instant};
use vrouter_api::IngressInstanceView;
use vrouter_ingress::instance::{self, InstanceNames, Setup};

/// haproxy that exits before it ever answers is started again after at least this
/// long, doubling up to [`MAX_BACKOFF`] (a configuration it refuses, a port taken).
const MIN_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between starts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A port attached this long ago must be in the published snapshot.
const PUBLISH_GRACE: Duration = Duration::from_secs(1);
/// A configuration that could not be loaded is tried again after this long.
const RECONFIGURE_RETRY: Duration = Duration::from_secs(5);
/// Detaches tried when an instance is removed, before it goes anyway.
const DETACH_TRIES: u32 = 5;

/// How instances behave on this node.
#[derive(Debug, Clone, Copy)]
pub(super) struct Policy {
    /// The local preference their VIPs are advertised with.
    pub local_preference: u32,
    /// Probes failed in a row before the VIP is given up.
    pub failures_allowed: u32,
    /// Answering this long before the VIP is taken back.
    pub reclaim_delay: Duration,
    /// The instances' gateway.
    pub gateway: std::net::Ipv4Addr,
}

/// One instance.
pub(super) struct Running {
    pub spec: IngressSpec,
    pub names: InstanceNames,
    child: Option<Child>,
    /// Its port is attached (its VIP advertised), since when.
    attached: Option<Instant>,
    attach_failures: u32,
    failures: u32,
    failing_since: Option<Instant>,
    /// When haproxy was last started, and how long to wait before starting it again
    /// if it exits (doubling while it keeps exiting without answering a probe).
    started: Instant,
    backoff: Duration,
    /// Since when it has answered every probe (none: its last probe failed).
    answering_since: Option<Instant>,
    /// Its haproxy answered a probe since it was last started.
    answered: bool,
    /// The last thing logged as a warning (each is logged once, not every tick).
    warned: String,
    /// A new configuration that could not be loaded, and when.
    refused: Option<(IngressSpec, Instant)>,
    pub view: IngressInstanceView,
}

impl Running {
    /// Sets `spec`'s instance up: configuration (checked), network, haproxy. Its port
    /// is attached once it answers its first probe. What a failed step made is
    /// removed.
    pub fn start(spec: &IngressSpec, names: InstanceNames, setup: &Setup) -> anyhow::Result<Running> {
        let made = instance::write_config(spec, &names, setup)
            .and_then(|_| instance::create_network(spec, &names, setup))
            .and_then(|()| instance::start_haproxy(&names, setup));
        let child = match made {
            Ok(c) => c,
            Err(e) => {
                instance::remove(&names);
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
            attached: None,
            attach_failures: 0,
            failures: 0,
            failing_since: None,
            started: Instant::now(),
            backoff: MIN_BACKOFF,
            answering_since: None,
            answered: false,
            warned: String::new(),
            refused: None,
            view,
        })
    }

    /// What the views show of it.
    pub fn view(&self) -> IngressInstanceView {
        IngressInstanceView {
            attached: self.attached.is_some(),
            ..self.view.clone()
        }
    }

    /// haproxy runs (and is worth probing).
    pub fn is_live(&self) -> bool {
        self.child.is_some()
    }

    /// Sets the state; a new warning is logged once.
    fn warn(&mut self, state: String) {
        if state != self.warned {
            tracing::warn!(ingress = %self.spec.name, "{state}");
            self.warned = state.clone();
        }
        self.view.state = state;
    }

    /// A changed ingress on the same address: the new configuration, checked by
    /// haproxy, then a reload; one haproxy refuses leaves the running one serving.
    pub fn reconfigure(&mut self, spec: &IngressSpec, setup: &Setup) {
        if self.spec == *spec {
            return;
        }
        if self
            .refused
            .as_ref()
            .is_some_and(|(s, at)| s == spec && at.elapsed() < RECONFIGURE_RETRY)
        {
            return;
        }
        let result = instance::write_config(spec, &self.names, setup).and_then(|changed| {
            if let Some(c) = self.child.as_ref().filter(|_| changed) {
                instance::reload(c)?;
            }
            Ok(changed)
        });
        match result {
            Ok(changed) => {
                self.spec = spec.clone();
                self.refused = None;
                if changed && self.child.is_some() {
                    self.view.reloads += 1;
                    tracing::info!(ingress = %spec.name, "ingress instance reloaded");
                }
            }
            // Tried again a while later (a transient failure), or when it changes.
            Err(e) => {
                self.refused = Some((spec.clone(), Instant::now()));
                self.warn(format!("serving the previous configuration: {e}"));
            }
        }
    }

    /// Handles an haproxy that exited: the VIP given up, what is left of it killed,
    /// started again after its back-off.
    pub fn check_process(&mut self, setup: &Setup, control: &ControlHandle) {
        let exited = match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => return,
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            None => None,
        };
        // The VIP first (traffic goes to the standby at once), then the rest; still to
        // withdraw if an earlier detach was refused.
        self.withdraw(control, "haproxy is not running");
        if let Some(why) = exited {
            self.child = None;
            self.answering_since = None;
            let said = last_line(&self.names.dir.join("haproxy.log"));
            self.warn(format!("haproxy exited ({why}): {said}"));
            // Workers of the old master may live on (hung ones hold the listener).
            instance::kill_all(&self.names);
        }
        // Not started again while its VIP is still advertised (a refused detach):
        // a new haproxy must not take traffic it may not answer yet.
        if self.attached.is_some() || self.started.elapsed() < self.backoff {
            return;
        }
        match instance::start_haproxy(&self.names, setup) {
            Ok(child) => {
                self.child = Some(child);
                self.view.restarts += 1;
                self.view.state = "starting".into();
                self.answered = false;
                self.started = Instant::now();
                self.backoff = (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF);
            }
            Err(e) => self.warn(format!("haproxy not started: {e}")),
        }
    }

    /// False when the instance must be set up anew (its port is refused again and
    /// again: its veth is gone). A port the control side dropped is attached again
    /// on the next answered probe.
    pub fn check_port(&mut self, snap: &nexthop::Snapshot) -> bool {
        if let Some(since) = self.attached {
            let port = self.names.host_if();
            let present = snap.interfaces.iter().flatten().any(|i| i.name == port);
            if !present && since.elapsed() > PUBLISH_GRACE {
                self.warn("its port was detached by the control side: attaching it again".into());
                self.attached = None;
            }
        }
        self.attach_failures < ATTACH_RETRIES
    }

    /// The result of one probe.
    pub fn probed(&mut self, answered: bool, policy: &Policy, control: &ControlHandle) {
        if answered {
            self.answered = true;
            self.failures = 0;
            self.failing_since = None;
            self.backoff = Duration::ZERO;
            let since = *self.answering_since.get_or_insert_with(Instant::now);
            // After giving the VIP up, it takes it back only once it has answered
            // for a while: no flapping between the two instances.
            let settled = self.view.withdrawals == 0 || since.elapsed() >= policy.reclaim_delay;
            if self.attached.is_none() && settled {
                self.attach(control, policy);
            } else if self.attached.is_some() {
                self.view.state = "serving".into();
            } else {
                let left = policy.reclaim_delay.saturating_sub(since.elapsed());
                self.view.state = format!("answering; takes the VIP back in {} ms", left.as_millis());
            }
            return;
        }
        self.answering_since = None;
        self.failures += 1;
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        // A starting haproxy (never answered since it started) gets more time.
        let starting = !self.answered;
        let allowed = if starting {
            policy.failures_allowed * 10
        } else {
            policy.failures_allowed
        };
        if self.failures < allowed {
            if !starting {
                self.view.state = format!("failing ({} probes)", self.failures);
            }
            return;
        }
        let after = since.elapsed();
        let why = format!("{} probes failed in {} ms", self.failures, after.as_millis());
        if self.attached.is_some() {
            self.view.last_withdrawal_ms = Some(after.as_millis() as u64);
        }
        self.withdraw(control, &why);
        // Killed, workers too (a hung one would hold the listener); started again
        // on the next tick.
        instance::kill_all(&self.names);
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.child = None;
        self.failures = 0;
        self.failing_since = None;
        self.warn(format!("restarted: {why}"));
    }

    /// Attaches the instance's port: its VIP is advertised.
    fn attach(&mut self, control: &ControlHandle, policy: &Policy) {
        let spec = InterfaceSpec {
            name: self.names.host_if().to_string(),
            vrf: self.spec.vrf.clone(),
            mac: self.names.mac,
            ipv4: Some(self.spec.vip),
            gateway4: Some(policy.gateway),
            local_preference: Some(policy.local_preference),
            ..InterfaceSpec::default()
        };
        match control.apply_blocking(Change::AddInterface(spec)) {
            Ok(_) => {
                self.attached = Some(Instant::now());
                self.attach_failures = 0;
                self.view.state = "serving".into();
                self.warned.clear();
                tracing::info!(ingress = %self.spec.name, vip = %self.spec.vip, local_preference = policy.local_preference, "ingress instance answers: VIP advertised");
            }
            Err(e) => {
                // A busy or stopping control task says nothing about the port.
                if !matches!(
                    e.code,
                    vrouter_api::ErrorCode::Busy | vrouter_api::ErrorCode::Unavailable
                ) {
                    self.attach_failures += 1;
                }
                self.warn(format!("port not attached: {}", e.message));
            }
        }
    }

    /// Detaches the instance's port (its VIP route is withdrawn), if attached; a
    /// refused detach leaves it attached, to be tried again.
    fn withdraw(&mut self, control: &ControlHandle, why: &str) {
        if self.attached.is_none() {
            return;
        }
        match control.apply_blocking(Change::RemoveInterface(self.names.host_if().to_string())) {
            Ok(_) => {
                self.attached = None;
                self.view.withdrawals += 1;
                tracing::warn!(ingress = %self.spec.name, "VIP given up: {why}");
            }
            Err(e) => self.warn(format!("VIP not given up ({why}): {}", e.message)),
        }
    }

    /// Detaches the port (also one the control side detached by itself: its record
    /// goes), stops haproxy, removes the network and the files.
    pub fn remove(mut self, control: &ControlHandle) {
        let port = self.names.host_if().to_string();
        for _ in 0..DETACH_TRIES {
            match control.apply_blocking(Change::RemoveInterface(port.clone())) {
                Err(e) if e.code != vrouter_api::ErrorCode::NotFound => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => break,
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Workers a reload left behind are in the namespace too.
        instance::remove(&self.names);
        tracing::info!(ingress = %self.spec.name, "ingress instance removed");
    }
}

/// The last line of a log file (what haproxy said before it exited).
fn last_line(path: &std::path::Path) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().rev().find(|l| !l.trim().is_empty()).map(str::to_string))
        .unwrap_or_default()
}

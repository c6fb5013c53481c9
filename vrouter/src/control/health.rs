//! The control side of backend health checks: which backends the prober probes
//! (kept on every publication), and a backend taken out of or put back into its
//! service's group (published; not recorded: a restart probes afresh).

use super::Control;
use crate::health::{ProbeTarget, Targets};
use std::net::IpAddr;

impl Control {
    /// Shares the prober's target list (made before the control side).
    pub fn share_probe_targets(&mut self, targets: Targets) {
        self.probe_targets = targets;
        self.refresh_probe_targets();
    }

    /// The backends of every service with a health check.
    pub(super) fn refresh_probe_targets(&self) {
        let targets: Vec<ProbeTarget> = self
            .model
            .services()
            .filter_map(|s| Some((s, s.health_check.as_ref()?)))
            .flat_map(|(s, check)| {
                // A ping has no port.
                let port = match check.kind {
                    control_client::HealthCheckKind::Icmp => Some(0),
                    _ => check.target_port(s),
                };
                s.backends.iter().filter_map(move |b| {
                    Some(ProbeTarget {
                        service: s.name.clone(),
                        backend: *b,
                        port: port?,
                        check: check.clone(),
                        down: self.model.backend_down(&s.name, *b),
                    })
                })
            })
            .collect();
        if let Ok(mut shared) = self.probe_targets.lock() {
            if *shared != targets {
                *shared = targets;
            }
        }
    }

    /// Takes `backend` of `service` out of its group, or puts it back.
    pub fn set_backend_health(&mut self, service: &str, backend: IpAddr, healthy: bool) {
        if self.model.set_backend_health(service, backend, healthy) {
            self.publish();
        }
    }
}

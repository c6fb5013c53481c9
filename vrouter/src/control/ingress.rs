//! The control side of ingresses: they are kept in the model and recorded (a restart
//! runs their instances again), and shared with the ingress supervisor, which runs
//! this node's instances and attaches their ports through ordinary changes.

use super::{Control, ControlError};
use control_client::{DesiredState, IngressSpec};

impl Control {
    /// Shares the supervisor's list of ingresses (made before the control side).
    pub fn share_ingress_targets(&mut self, targets: crate::ingress::Targets) {
        self.ingress_targets = targets;
        self.refresh_ingress_targets();
    }

    fn refresh_ingress_targets(&self) {
        let now: Vec<IngressSpec> = self.model.ingresses().cloned().collect();
        if let Ok(mut shared) = self.ingress_targets.lock() {
            *shared = now;
        }
    }

    /// Adds or replaces an ingress: recorded first, then handed to the supervisor.
    pub fn add_ingress(&mut self, spec: IngressSpec) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.add_ingress(spec)?;
        self.record_ingresses(&next, "ingress not added")?;
        self.model = next;
        self.refresh_ingress_targets();
        Ok(())
    }

    /// Removes an ingress: recorded first; the supervisor removes its instance.
    pub fn remove_ingress(&mut self, name: &str) -> Result<(), ControlError> {
        let mut next = self.model.clone();
        next.remove_ingress(name)?;
        self.record_ingresses(&next, "ingress not removed")?;
        self.model = next;
        self.refresh_ingress_targets();
        Ok(())
    }

    fn record_ingresses(&self, model: &DesiredState, what: &'static str) -> Result<(), ControlError> {
        let all: Vec<IngressSpec> = model.ingresses().cloned().collect();
        self.store.save_ingresses(&all).map_err(|e| {
            ControlError::StateDirectory(e.context(format!("{what}: the state directory could not record it")))
        })
    }

    /// The recorded ingresses, back in the model.
    pub(super) fn restore_ingresses(&mut self) {
        let (ingresses, problems) = self.store.load_ingresses();
        problems.iter().for_each(|p| tracing::warn!("state file skipped: {p}"));
        for spec in ingresses {
            let name = spec.name.clone();
            if let Err(e) = self.model.add_ingress(spec) {
                tracing::warn!(ingress = %name, "stored ingress not restored: {e}");
            }
        }
        self.refresh_ingress_targets();
    }
}

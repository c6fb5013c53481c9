//! `[ingress]`: whether this node runs haproxy instances of the ingresses it is
//! told of, and as which of the pair (Contrail runs each ingress on two nodes,
//! active and standby).

use super::{invalid, ConfigError};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Which instance of each ingress this node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IngressRole {
    /// The preferred instance: its VIP is advertised with local preference 200.
    Active,
    /// The other: advertised with 100, it takes the VIP while the active does not
    /// advertise (its haproxy stopped answering, its node or vrouter went away).
    Standby,
}

impl IngressRole {
    /// The BGP local preference of the instance's VIP (Contrail's 200 and 100).
    pub fn local_preference(self) -> u32 {
        match self {
            IngressRole::Active => 200,
            IngressRole::Standby => 100,
        }
    }
}

/// `[ingress]`; without `role` this node runs no instance.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngressConfig {
    /// `active` or `standby`; unset: no instance here.
    pub role: Option<IngressRole>,
    /// The address instances route through (the cluster network's gateway, which
    /// the vrouter answers for); required with `role`.
    pub gateway: Option<Ipv4Addr>,
    /// The haproxy binary.
    pub haproxy: PathBuf,
    /// Milliseconds between health probes of an instance.
    pub probe_interval_ms: u32,
    /// Probes failed in a row before the instance gives up the VIP (and is
    /// restarted).
    pub probe_failures: u32,
    /// After giving the VIP up, an instance takes it back once it has answered every
    /// probe for this many milliseconds (no flapping between active and standby).
    pub reclaim_delay_ms: u32,
    /// The MTU of an instance's veth.
    pub mtu: u16,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            role: None,
            gateway: None,
            haproxy: PathBuf::from("/usr/sbin/haproxy"),
            probe_interval_ms: 200,
            probe_failures: 3,
            reclaim_delay_ms: 5000,
            mtu: 1500,
        }
    }
}

impl IngressConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.role.is_some() && self.gateway.is_none() {
            return Err(invalid("ingress.gateway", "required when ingress.role is set"));
        }
        if !(20..=60_000).contains(&self.probe_interval_ms) {
            return Err(invalid(
                "ingress.probe_interval_ms",
                format!("{} is not in 20..=60000", self.probe_interval_ms),
            ));
        }
        if !(1..=100).contains(&self.probe_failures) {
            return Err(invalid(
                "ingress.probe_failures",
                format!("{} is not in 1..=100", self.probe_failures),
            ));
        }
        if self.reclaim_delay_ms > 3_600_000 {
            return Err(invalid(
                "ingress.reclaim_delay_ms",
                format!("{} is more than an hour", self.reclaim_delay_ms),
            ));
        }
        if !(576..=9000).contains(&self.mtu) {
            return Err(invalid("ingress.mtu", format!("{} is not in 576..=9000", self.mtu)));
        }
        Ok(())
    }
}

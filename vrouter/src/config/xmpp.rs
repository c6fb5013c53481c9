//! `[xmpp]`: the Tungsten Fabric / OpenSDN control nodes this vrouter peers with.

use super::{invalid, ConfigError};
use serde::Deserialize;
use std::net::SocketAddr;

/// `[xmpp]`; without servers the vrouter takes routes from its local API only.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XmppConfig {
    /// Control nodes as `address:port` (the agent's port is 5269), at most two; both
    /// are full peers: each gets every subscription and local route.
    pub servers: Vec<String>,
    /// This node's name towards them (its `from`); default: the host name.
    pub host: Option<String>,
    /// Seconds without anything received before a channel is dropped; keepalives go
    /// out every third of it (the agent's 90).
    pub hold_time_secs: u32,
    /// Seconds a lost control node's routes are kept while another control node is
    /// up (with none up they are kept: headless).
    pub graceful_restart_secs: u32,
}

impl Default for XmppConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            host: None,
            hold_time_secs: 90,
            graceful_restart_secs: 60,
        }
    }
}

impl XmppConfig {
    /// The control nodes' addresses, checked.
    pub fn server_addrs(&self) -> Result<Vec<SocketAddr>, ConfigError> {
        if self.servers.len() > 2 {
            return Err(invalid(
                "xmpp.servers",
                format!("{} given: at most two control nodes", self.servers.len()),
            ));
        }
        self.servers
            .iter()
            .map(|s| {
                s.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        "xmpp.servers",
                        format!("{s:?} is not address:port (e.g. \"198.18.0.10:5269\")"),
                    )
                })
            })
            .collect()
    }

    /// Checks every key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server_addrs()?;
        if !(3..=3600).contains(&self.hold_time_secs) {
            return Err(invalid(
                "xmpp.hold_time_secs",
                format!("{} is not in 3..=3600", self.hold_time_secs),
            ));
        }
        if !(1..=3600).contains(&self.graceful_restart_secs) {
            return Err(invalid(
                "xmpp.graceful_restart_secs",
                format!("{} is not in 1..=3600", self.graceful_restart_secs),
            ));
        }
        if let Some(host) = &self.host {
            if host.is_empty() || host.len() > 255 || host.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(invalid(
                    "xmpp.host",
                    format!("{host:?}: 1-255 characters, no '/' or whitespace"),
                ));
            }
        }
        Ok(())
    }

    /// The name this node gives: `host`, else the machine's host name.
    pub fn host_name(&self) -> String {
        self.host.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "vrouter".into())
        })
    }
}

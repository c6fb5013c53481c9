//! `[xmpp]`: the Tungsten Fabric / OpenSDN control nodes this vrouter peers with.

use super::{invalid, ConfigError};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

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
    /// Require TLS on the channels (STARTTLS, as the agent's `xmpp_auth_enable`);
    /// the control nodes must be configured alike.
    pub tls: bool,
    /// PEM file of the CA certificates the control nodes' certificates are checked
    /// against (required with `tls`).
    pub tls_ca: Option<PathBuf>,
    /// PEM file of this node's certificate chain, for control nodes that check
    /// their clients (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// PEM file of this node's private key (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// The name the control nodes' certificates must carry; default: each server's
    /// IP address (an IP address subject alternative name).
    pub tls_server_name: Option<String>,
}

impl Default for XmppConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            host: None,
            hold_time_secs: 90,
            graceful_restart_secs: 60,
            tls: false,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
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
        self.tls_client()?;
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

    /// The TLS client settings with the certificates loaded, when `tls` is on.
    pub fn tls_client(&self) -> Result<Option<Arc<rustls::ClientConfig>>, ConfigError> {
        let others = [
            ("xmpp.tls_ca", self.tls_ca.is_some()),
            ("xmpp.tls_cert", self.tls_cert.is_some()),
            ("xmpp.tls_key", self.tls_key.is_some()),
            ("xmpp.tls_server_name", self.tls_server_name.is_some()),
        ];
        if !self.tls {
            if let Some((key, _)) = others.iter().find(|(_, set)| *set) {
                return Err(invalid(key, "given without xmpp.tls = true"));
            }
            return Ok(None);
        }
        let ca = self
            .tls_ca
            .as_ref()
            .ok_or_else(|| invalid("xmpp.tls_ca", "required with xmpp.tls = true"))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in certificates("xmpp.tls_ca", ca)? {
            roots
                .add(cert)
                .map_err(|e| invalid("xmpp.tls_ca", format!("{}: {e}", ca.display())))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("xmpp.tls", e.to_string()))?
            .with_root_certificates(roots);
        let config = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let chain = certificates("xmpp.tls_cert", cert)?;
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| invalid("xmpp.tls_key", format!("{}: {e}", key.display())))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|e| invalid("xmpp.tls_key", e.to_string()))?
            }
            (None, None) => builder.with_no_client_auth(),
            (Some(_), None) => return Err(invalid("xmpp.tls_key", "required with xmpp.tls_cert")),
            (None, Some(_)) => return Err(invalid("xmpp.tls_cert", "required with xmpp.tls_key")),
        };
        if let Some(name) = &self.tls_server_name {
            ServerName::try_from(name.clone()).map_err(|_| {
                invalid(
                    "xmpp.tls_server_name",
                    format!("{name:?} is not a DNS name or IP address"),
                )
            })?;
        }
        Ok(Some(Arc::new(config)))
    }

    /// The name a control node's certificate must carry.
    pub fn tls_name_for(&self, server: &SocketAddr) -> ServerName<'static> {
        self.tls_server_name
            .as_ref()
            .and_then(|n| ServerName::try_from(n.clone()).ok())
            .unwrap_or_else(|| ServerName::IpAddress(server.ip().into()))
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

/// The certificates of PEM file `path` (at least one), for key `key`'s errors.
fn certificates(key: &'static str, path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(key, format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(invalid(key, format!("{}: no certificate in it", path.display())));
    }
    Ok(certs)
}

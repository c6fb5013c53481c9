//! The network configuration the runtime passes on stdin: the spec's fields and this
//! plugin's own (camelCase, as CNI configurations are spelled).

use crate::spec::{CniError, CniVersion, ErrorCode};
use serde::Deserialize;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Where the plugin keeps one record per attachment unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/vrouter";
/// The vrouter's API socket unless told otherwise (the daemon's own default).
pub const DEFAULT_API_SOCKET: &str = "/run/vrouter/api.sock";
/// How long ADD waits for the pod to reach its gateway unless told otherwise.
pub const DEFAULT_READY_TIMEOUT_MS: u64 = 10_000;

/// One network configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    /// The spec version the runtime speaks.
    pub cni_version: String,
    /// The network's name.
    pub name: String,
    /// The plugin's name (this binary).
    #[serde(rename = "type")]
    pub plugin_type: String,
    /// The vrouter's API socket.
    #[serde(default = "default_api_socket")]
    pub api_socket: PathBuf,
    /// The VRF the pods of this network are attached to; unset: the network's name.
    #[serde(default)]
    pub vrf: Option<String>,
    /// The pods' MTU (IP bytes).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// The network namespace the vrouter's ports live in (a path such as
    /// `/run/netns/node1`); unset: the plugin's own. Set where the vrouter runs in a
    /// namespace of its own (the lab's nodes).
    #[serde(default)]
    pub host_netns: Option<PathBuf>,
    /// Where the attachment records are kept.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// How long ADD waits for the pod to reach its gateway through the vrouter.
    #[serde(default = "default_ready_timeout_ms")]
    pub ready_timeout_ms: u64,
    /// The IPAM plugin's configuration (its `type` names the plugin run as delegate).
    #[serde(default)]
    pub ipam: Option<Value>,
    /// The spec's `dns` (`nameservers`, `domain`, `search`, `options`): returned in
    /// the result (a runtime writes the pod's resolv.conf from it), over what the
    /// IPAM plugin returned. `{namespace}` in a search domain is the pod's Kubernetes
    /// namespace (`K8S_POD_NAMESPACE`; the domain is left out without one), so
    /// `{namespace}.svc.cluster.local` is Kubernetes' first search domain.
    #[serde(default)]
    pub dns: Option<Value>,
    /// The previous result (CHECK and DEL).
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC: the attachments the runtime still knows.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<ValidAttachment>>,
}

/// One attachment the runtime still knows (GC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ValidAttachment {
    /// The container.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
}

fn default_api_socket() -> PathBuf {
    PathBuf::from(DEFAULT_API_SOCKET)
}
fn default_mtu() -> u16 {
    1500
}
fn default_state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}
fn default_ready_timeout_ms() -> u64 {
    DEFAULT_READY_TIMEOUT_MS
}

/// A parsed configuration with its raw text (what delegates get unchanged).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The fields.
    pub conf: NetConf,
    /// Its version.
    pub version: CniVersion,
    /// The bytes as the runtime sent them.
    pub raw: Vec<u8>,
}

impl NetConf {
    /// The `dns` of the result for a pod of Kubernetes namespace `namespace`.
    pub fn dns_for(&self, namespace: Option<&str>) -> Option<Value> {
        let mut dns = self.dns.clone()?;
        if let Some(search) = dns.get_mut("search").and_then(Value::as_array_mut) {
            search.retain_mut(|d| match (d.as_str(), namespace) {
                (Some(s), _) if !s.contains("{namespace}") => true,
                (Some(s), Some(ns)) => {
                    *d = Value::String(s.replace("{namespace}", ns));
                    true
                }
                _ => false,
            });
        }
        Some(dns)
    }
}

impl Loaded {
    /// Parses and checks a configuration: bad JSON is code 6, a supported version
    /// with bad values is code 7, an unknown version code 1.
    pub fn parse(raw: &[u8]) -> Result<Self, CniError> {
        let value: Value = serde_json::from_slice(raw).map_err(|e| {
            CniError::new(ErrorCode::Decode, "the network configuration is not JSON").with_details(e.to_string())
        })?;
        if let Some(v) = value.get("cniVersion").and_then(Value::as_str) {
            CniVersion::parse(v)?;
        }
        let conf: NetConf = serde_json::from_value(value).map_err(|e| {
            CniError::new(ErrorCode::InvalidConfig, "invalid network configuration").with_details(e.to_string())
        })?;
        let version = CniVersion::parse(&conf.cni_version)?;
        let bad = |what: String| Err(CniError::new(ErrorCode::InvalidConfig, what));
        if conf.name.is_empty() || conf.name.len() > 128 || conf.name.contains(['/', '\0']) {
            return bad(format!("invalid network name {:?}", conf.name));
        }
        if conf.dns.as_ref().is_some_and(|d| !d.is_object()) {
            return bad("dns is not an object (nameservers, domain, search, options)".into());
        }
        if !(576..=9000).contains(&conf.mtu) {
            return bad(format!("mtu {} is outside 576..=9000", conf.mtu));
        }
        if conf.ready_timeout_ms == 0 || conf.ready_timeout_ms > 300_000 {
            return bad(format!(
                "readyTimeoutMs {} is outside 1..=300000",
                conf.ready_timeout_ms
            ));
        }
        if let Some(ipam) = &conf.ipam {
            match ipam.get("type").and_then(Value::as_str) {
                Some(t) if !t.is_empty() && !t.contains('/') => {}
                _ => return bad("ipam needs a plugin name in \"type\"".into()),
            }
        }
        Ok(Loaded {
            conf,
            version,
            raw: raw.to_vec(),
        })
    }

    /// The VRF of this network's pods.
    pub fn vrf(&self) -> &str {
        self.conf.vrf.as_deref().unwrap_or(&self.conf.name)
    }

    /// How long ADD waits for reachability.
    pub fn ready_timeout(&self) -> Duration {
        Duration::from_millis(self.conf.ready_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Loaded, CniError> {
        Loaded::parse(text.as_bytes())
    }

    #[test]
    fn defaults_and_own_fields() {
        let l = parse(r#"{"cniVersion":"1.1.0","name":"cluster-network","type":"vrouter-cni"}"#).unwrap();
        assert_eq!(l.vrf(), "cluster-network");
        assert_eq!(l.conf.api_socket, PathBuf::from(DEFAULT_API_SOCKET));
        assert_eq!(l.conf.mtu, 1500);
        let l = parse(
            r#"{"cniVersion":"0.4.0","name":"n","type":"vrouter-cni","vrf":"red","mtu":9000,
                "hostNetns":"/run/netns/node1","ipam":{"type":"host-local","subnet":"198.18.1.0/24"},
                "runtimeConfig":{"x":1}}"#,
        )
        .unwrap();
        assert_eq!((l.vrf(), l.version), ("red", CniVersion::V040));
        assert_eq!(
            l.conf.host_netns.as_deref(),
            Some(std::path::Path::new("/run/netns/node1"))
        );
    }

    #[test]
    fn bad_configurations_get_the_spec_codes() {
        let code = |t: &str| parse(t).unwrap_err().code;
        assert_eq!(code("{not json"), ErrorCode::Decode);
        assert_eq!(
            code(r#"{"cniVersion":"9.9.9","name":"n","type":"t"}"#),
            ErrorCode::IncompatibleVersion
        );
        assert_eq!(code(r#"{"cniVersion":"1.0.0","type":"t"}"#), ErrorCode::InvalidConfig);
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":70000}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","mtu":100}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","dns":"198.18.100.10"}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{}}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"n","type":"t","ipam":{"type":"../x"}}"#),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(r#"{"cniVersion":"1.0.0","name":"a/b","type":"t"}"#),
            ErrorCode::InvalidConfig
        );
    }
}

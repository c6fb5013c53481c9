//! The CNI specification's side of the plugin: versions, error codes, and results as
//! the spec spells them for each version (1.1.0, 1.0.0, 0.4.0).

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::IpAddr;

/// The versions this plugin speaks, oldest first.
pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];

/// The newest version: what VERSION and errors without a readable config answer in.
pub const LATEST_VERSION: &str = "1.1.0";

/// A configuration's `cniVersion`, one of [`SUPPORTED_VERSIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CniVersion {
    /// 0.4.0: IPs carry `version`; CHECK exists.
    V040,
    /// 1.0.0: no `version` on IPs.
    V100,
    /// 1.1.0: STATUS and GC; interface `mtu`.
    V110,
}

impl CniVersion {
    /// Parses a `cniVersion`; an unknown one is error code 1.
    pub fn parse(text: &str) -> Result<Self, CniError> {
        match text {
            "0.4.0" => Ok(CniVersion::V040),
            "1.0.0" => Ok(CniVersion::V100),
            "1.1.0" => Ok(CniVersion::V110),
            other => Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("unsupported cniVersion {other:?}"),
            )
            .with_details(format!("this plugin supports {}", SUPPORTED_VERSIONS.join(", ")))),
        }
    }

    /// The spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V040 => "0.4.0",
            CniVersion::V100 => "1.0.0",
            CniVersion::V110 => "1.1.0",
        }
    }
}

/// The spec's error codes (1-99 are the spec's own; 100 and up are this plugin's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion = 1,
    /// 2: unsupported field in the network configuration.
    UnsupportedField = 2,
    /// 3: container unknown or does not exist.
    UnknownContainer = 3,
    /// 4: invalid necessary environment variables.
    InvalidEnvironment = 4,
    /// 5: I/O failure.
    Io = 5,
    /// 6: failed to decode content.
    Decode = 6,
    /// 7: invalid network config.
    InvalidConfig = 7,
    /// 11: try again later.
    TryAgainLater = 11,
    /// 50: the plugin is not available (STATUS: the vrouter is down or not ready).
    NotAvailable = 50,
    /// 100: the vrouter refused a request (its API error code is in the details).
    VrouterRefused = 100,
    /// 101: CHECK found the attachment different from what ADD made.
    CheckFailed = 101,
    /// 102: the pod did not become reachable in time.
    NotReachable = 102,
}

/// A failure, printed as the spec's error object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}{}", details.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
pub struct CniError {
    /// The code.
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// Longer details (command output, the vrouter's message).
    pub details: Option<String>,
}

impl CniError {
    /// An error without details.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: None,
        }
    }

    /// The same error with details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }

    /// The spec's JSON error object.
    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({"cniVersion": version, "code": self.code as u32, "msg": self.msg});
        if let Some(d) = &self.details {
            v["details"] = json!(d);
        }
        v
    }
}

/// One address of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// Address with prefix length.
    pub address: IpNet,
    /// The gateway of its subnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// One route of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteConfig {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; unset: the address family's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
}

/// One interface of a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceConfig {
    /// Its name.
    pub name: String,
    /// Its MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// Its MTU (1.1.0 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The namespace it is in (pod side only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// A result: what ADD returns, what an IPAM plugin returns, what CHECK and DEL get
/// back as `prevResult`. Fields of other plugins are kept as they came (`dns`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CniResult {
    /// Interfaces.
    #[serde(default)]
    pub interfaces: Vec<InterfaceConfig>,
    /// Addresses.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// DNS settings, passed on.
    #[serde(default)]
    pub dns: Value,
}

impl CniResult {
    /// Reads a result of any supported version (0.4.0's `version` on IPs is ignored).
    pub fn from_value(value: &Value) -> Result<Self, CniError> {
        serde_json::from_value(value.clone())
            .map_err(|e| CniError::new(ErrorCode::Decode, "cannot read the result").with_details(e.to_string()))
    }

    /// The result as `version` spells it.
    pub fn to_json(&self, version: CniVersion) -> Value {
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut v = json!({"name": i.name});
                if let Some(mac) = &i.mac {
                    v["mac"] = json!(mac);
                }
                if let (Some(mtu), CniVersion::V110) = (i.mtu, version) {
                    v["mtu"] = json!(mtu);
                }
                if let Some(s) = &i.sandbox {
                    v["sandbox"] = json!(s);
                }
                v
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut v = serde_json::to_value(ip).unwrap_or(Value::Null);
                if version == CniVersion::V040 {
                    v["version"] = json!(if ip.address.addr().is_ipv4() { "4" } else { "6" });
                }
                v
            })
            .collect();
        let mut out = json!({
            "cniVersion": version.as_str(),
            "interfaces": interfaces,
            "ips": ips,
            "routes": self.routes,
        });
        if !self.dns.is_null() {
            out["dns"] = self.dns.clone();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_spelled_per_version() {
        let result = CniResult {
            interfaces: vec![InterfaceConfig {
                name: "eth0".into(),
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                sandbox: Some("/run/netns/p".into()),
            }],
            ips: vec![IpConfig {
                address: "198.18.1.5/24".parse().unwrap(),
                gateway: Some("198.18.1.1".parse().unwrap()),
                interface: Some(0),
            }],
            routes: vec![RouteConfig {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: None,
            }],
            dns: Value::Null,
        };
        let v040 = result.to_json(CniVersion::V040);
        assert_eq!(v040["ips"][0]["version"], "4");
        assert!(v040["interfaces"][0].get("mtu").is_none());
        let v110 = result.to_json(CniVersion::V110);
        assert_eq!(v110["cniVersion"], "1.1.0");
        assert!(v110["ips"][0].get("version").is_none());
        assert_eq!(v110["interfaces"][0]["mtu"], 1500);
        assert_eq!(v110["ips"][0]["address"], "198.18.1.5/24");
        // What is printed reads back as the same result, whatever the version.
        for v in [v040, v110] {
            let back = CniResult::from_value(&v).unwrap();
            assert_eq!(back.ips, result.ips);
            assert_eq!(back.routes, result.routes);
        }
    }

    #[test]
    fn unknown_versions_are_code_1_and_errors_carry_their_code() {
        assert_eq!(
            CniVersion::parse("0.3.1").unwrap_err().code,
            ErrorCode::IncompatibleVersion
        );
        assert_eq!(CniVersion::parse("1.1.0").unwrap(), CniVersion::V110);
        let e = CniError::new(ErrorCode::TryAgainLater, "vrouter down").with_details("connect refused");
        let v = e.to_json("1.0.0");
        assert_eq!(
            (v["code"].as_u64(), v["msg"].as_str()),
            (Some(11), Some("vrouter down"))
        );
        assert_eq!(v["details"], "connect refused");
    }
}

//! The `CNI_*` variables: the verb and its parameters.

use crate::spec::{CniError, ErrorCode};
use std::collections::HashMap;
use std::path::PathBuf;

/// The verbs of CNI 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach.
    Add,
    /// Detach (idempotent).
    Del,
    /// Verify an attachment.
    Check,
    /// Is the plugin ready for ADD.
    Status,
    /// Release what the runtime no longer knows.
    Gc,
    /// Which versions the plugin speaks.
    Version,
}

/// The parameters of one invocation.
#[derive(Debug, Clone)]
pub struct CniEnv {
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: Option<String>,
    /// `CNI_NETNS`: the pod's network namespace (a path).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`: the interface to create inside it.
    pub ifname: Option<String>,
    /// `CNI_ARGS`: `KEY=VALUE;...` (Kubernetes passes the pod's namespace and name).
    pub args: HashMap<String, String>,
    /// `CNI_PATH`: where delegate plugins are looked up.
    pub path: Vec<PathBuf>,
}

/// The checked parameters of a verb that names an attachment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Attachment {
    /// The container.
    pub container_id: String,
    /// Its interface.
    pub ifname: String,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::InvalidEnvironment, msg)
}

impl CniEnv {
    /// Reads the variables from `vars` (the process environment in the binary).
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, CniError> {
        let vars: HashMap<String, String> = vars.into_iter().filter(|(k, _)| k.starts_with("CNI_")).collect();
        let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
        let command = match get("CNI_COMMAND").as_deref() {
            Some("ADD") => Command::Add,
            Some("DEL") => Command::Del,
            Some("CHECK") => Command::Check,
            Some("STATUS") => Command::Status,
            Some("GC") => Command::Gc,
            Some("VERSION") => Command::Version,
            Some(other) => return Err(invalid(format!("unknown CNI_COMMAND {other:?}"))),
            None => return Err(invalid("CNI_COMMAND is not set")),
        };
        let mut args = HashMap::new();
        // Only read, never required: a malformed pair is skipped (VERSION and DEL must
        // not fail on arguments the plugin does not use).
        for pair in get("CNI_ARGS").unwrap_or_default().split(';') {
            if let Some((k, v)) = pair.split_once('=') {
                args.insert(k.to_string(), v.to_string());
            }
        }
        Ok(CniEnv {
            command,
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname: get("CNI_IFNAME"),
            args,
            path: get("CNI_PATH")
                .map(|p| p.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect())
                .unwrap_or_default(),
        })
    }

    /// The container and interface, both required and checked as the spec says
    /// (container id: letters, digits, `_.-`; interface: a Linux name).
    pub fn attachment(&self) -> Result<Attachment, CniError> {
        let container_id = self
            .container_id
            .clone()
            .ok_or_else(|| invalid("CNI_CONTAINERID is not set"))?;
        if container_id.len() > 256
            || !container_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(invalid(format!(
                "CNI_CONTAINERID {container_id:?} is not a container id"
            )));
        }
        let ifname = self.ifname.clone().ok_or_else(|| invalid("CNI_IFNAME is not set"))?;
        if !valid_ifname(&ifname) {
            return Err(invalid(format!("CNI_IFNAME {ifname:?} is not an interface name")));
        }
        Ok(Attachment { container_id, ifname })
    }

    /// `CNI_NETNS`, required.
    pub fn netns(&self) -> Result<PathBuf, CniError> {
        self.netns.clone().ok_or_else(|| invalid("CNI_NETNS is not set"))
    }
}

/// An interface name this plugin takes: what Linux takes, limited to letters,
/// digits and `_.-` (the name goes into `ip -batch` text and file names, where `#`,
/// quotes or `:` would mean something else).
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        CniEnv::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn variables_are_read_and_checked() {
        let e = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc-123"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-1;IgnoreUnknown=1",
            ),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        ])
        .unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.attachment().unwrap().ifname, "eth0");
        assert_eq!(e.args["K8S_POD_NAME"], "web-1");
        assert_eq!(e.path.len(), 2);
    }

    #[test]
    fn missing_or_bad_variables_are_code_4() {
        let code = |pairs: &[(&str, &str)]| match env(pairs) {
            Err(e) => e.code,
            Ok(e) => e.attachment().unwrap_err().code,
        };
        assert_eq!(code(&[]), ErrorCode::InvalidEnvironment);
        assert_eq!(code(&[("CNI_COMMAND", "FROB")]), ErrorCode::InvalidEnvironment);
        assert_eq!(code(&[("CNI_COMMAND", "ADD")]), ErrorCode::InvalidEnvironment);
        for bad_id in ["a b", "x/y", "a;b"] {
            let pairs = [
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", bad_id),
                ("CNI_IFNAME", "eth0"),
            ];
            assert_eq!(code(&pairs), ErrorCode::InvalidEnvironment, "{bad_id}");
        }
        for bad_if in ["a-name-that-is-too-long", "..", "a/b", "a b", "lo#1", "'eth0", "a:b"] {
            let pairs = [
                ("CNI_COMMAND", "DEL"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_IFNAME", bad_if),
            ];
            assert_eq!(code(&pairs), ErrorCode::InvalidEnvironment, "{bad_if}");
        }
        let lenient = env(&[("CNI_COMMAND", "VERSION"), ("CNI_ARGS", "novalue;A=1")]).unwrap();
        assert_eq!(lenient.args.get("A").map(String::as_str), Some("1"));
    }
}

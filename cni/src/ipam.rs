//! IPAM by delegation, as the spec describes it: the plugin named by `ipam.type` is
//! looked up in `CNI_PATH` and run with the same configuration and variables (e.g.
//! the `host-local` plugin of Debian's `containernetworking-plugins`).

use crate::config::Loaded;
use crate::env::{Attachment, CniEnv};
use crate::spec::{CniError, CniResult, CniVersion, ErrorCode, SUPPORTED_VERSIONS};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What VERSION answered, for one installed delegate binary.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct VersionCache {
    program: PathBuf,
    len: u64,
    modified_ns: u128,
    versions: Vec<String>,
}
use std::process::{Command, Stdio};

/// The IPAM `type` that takes a pod's addresses from the vrouter's configuration
/// (what kube-manager assigned its interface) instead of a delegate plugin.
pub const VROUTER_IPAM: &str = "vrouter";

/// True if `conf`'s IPAM is the vrouter's configuration.
pub fn from_vrouter(conf: &Loaded) -> bool {
    conf.conf
        .ipam
        .as_ref()
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        == Some(VROUTER_IPAM)
}

/// The delegate of a configuration, if it names one.
#[derive(Debug, Clone)]
pub struct Delegate {
    program: PathBuf,
    /// The configuration as the delegate gets it: in the configuration's own version
    /// when the delegate speaks it, else in the newest older one it speaks (Debian's
    /// `host-local` stops at 1.0.0; its results read the same).
    config: Vec<u8>,
    /// The delegate speaks 1.1.0 (STATUS and GC are passed on to it).
    speaks_1_1: bool,
}

impl Delegate {
    /// Finds the IPAM plugin the configuration names in `CNI_PATH`; None without
    /// `ipam`. A named plugin that is not there is an I/O failure (code 5).
    pub fn find(conf: &Loaded, env: &CniEnv) -> Result<Option<Self>, CniError> {
        let Some(kind) = conf
            .conf
            .ipam
            .as_ref()
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
        else {
            return Ok(None);
        };
        // The vrouter's configuration gives the addresses: no plugin to run.
        if kind == VROUTER_IPAM {
            return Ok(None);
        }
        let program = env
            .path
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                CniError::new(ErrorCode::Io, format!("IPAM plugin {kind:?} not found in CNI_PATH"))
                    .with_details(format!("searched {:?}", env.path))
            })?;
        let mut d = Delegate {
            program,
            config: conf.raw.clone(),
            speaks_1_1: false,
        };
        let version = d.version_for(conf.version, &conf.conf.state_dir)?;
        if version != conf.version {
            let mut v: Value = serde_json::from_slice(&conf.raw).map_err(|e| {
                CniError::new(ErrorCode::Decode, "re-reading the configuration").with_details(e.to_string())
            })?;
            v["cniVersion"] = Value::from(version.as_str());
            d.config = v.to_string().into_bytes();
        }
        Ok(Some(d))
    }

    /// The version to speak with the delegate: `wanted` if it supports it, else the
    /// newest older one both speak.
    fn version_for(&mut self, wanted: CniVersion, state_dir: &Path) -> Result<CniVersion, CniError> {
        let theirs = self.supported_versions(state_dir)?;
        let theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
        self.speaks_1_1 = theirs.contains(&"1.1.0");
        SUPPORTED_VERSIONS
            .iter()
            .rev()
            .filter_map(|v| CniVersion::parse(v).ok())
            .find(|v| *v <= wanted && theirs.contains(&v.as_str()))
            .ok_or_else(|| {
                CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!(
                        "IPAM plugin {} speaks none of our versions up to {}",
                        self.program.display(),
                        wanted.as_str()
                    ),
                )
                .with_details(format!("it speaks {theirs:?}"))
            })
    }

    /// The versions the delegate speaks: asked with VERSION once per installed binary
    /// (a Go plugin's start costs tens of milliseconds of CPU, and a burst of ADDs
    /// competes for it), then read from `STATE_DIR/delegates/<name>.json`, kept while
    /// the binary's size and modification time are the same.
    fn supported_versions(&self, state_dir: &Path) -> Result<Vec<String>, CniError> {
        let stamp = std::fs::metadata(&self.program).ok().and_then(|m| {
            let modified = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
            Some((m.len(), modified.as_nanos()))
        });
        let name = self
            .program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let cache = state_dir.join("delegates").join(format!("{name}.json"));
        let cached: Option<VersionCache> = std::fs::read(&cache).ok().and_then(|t| serde_json::from_slice(&t).ok());
        if let (Some(c), Some((len, modified))) = (&cached, stamp) {
            if c.program == self.program && c.len == len && c.modified_ns == modified {
                return Ok(c.versions.clone());
            }
        }
        let out = Command::new(&self.program)
            .env("CNI_COMMAND", "VERSION")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                CniError::new(ErrorCode::Io, format!("running {}", self.program.display())).with_details(e.to_string())
            })?;
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let versions: Vec<String> = answer["supportedVersions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        if let (Some((len, modified_ns)), false) = (stamp, versions.is_empty()) {
            let entry = VersionCache {
                program: self.program.clone(),
                len,
                modified_ns,
                versions: versions.clone(),
            };
            // Best effort: without the cache the next ADD asks again.
            let tmp = cache.with_extension(format!("{}.tmp", std::process::id()));
            let written = std::fs::create_dir_all(state_dir.join("delegates"))
                .and_then(|()| std::fs::write(&tmp, serde_json::to_vec(&entry).unwrap_or_default()))
                .and_then(|()| std::fs::rename(&tmp, &cache));
            if written.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        Ok(versions)
    }

    /// True if the delegate speaks 1.1.0.
    pub fn speaks_1_1(&self) -> bool {
        self.speaks_1_1
    }

    /// Runs a verb of no attachment (STATUS, GC) on the delegate.
    pub fn run_unattached(&self, verb: &str) -> Result<(), CniError> {
        self.exec(verb, None).map(drop)
    }

    /// Runs the delegate for `verb` and attachment `a` with `config` on stdin; its
    /// result (ADD), or nothing. Its own error is passed on as it gave it.
    pub fn run(&self, verb: &str, a: &Attachment) -> Result<Option<CniResult>, CniError> {
        self.exec(verb, Some(a))
    }

    fn exec(&self, verb: &str, a: Option<&Attachment>) -> Result<Option<CniResult>, CniError> {
        let io = |e: std::io::Error| {
            CniError::new(ErrorCode::Io, format!("running IPAM plugin {}", self.program.display()))
                .with_details(e.to_string())
        };
        let mut command = Command::new(&self.program);
        command.env("CNI_COMMAND", verb);
        match a {
            Some(a) => command
                .env("CNI_CONTAINERID", &a.container_id)
                .env("CNI_IFNAME", &a.ifname),
            None => command.env_remove("CNI_CONTAINERID").env_remove("CNI_IFNAME"),
        };
        // Its diagnostics go where the runtime reads this plugin's.
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(io)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&self.config).map_err(io)?;
        }
        let out = child.wait_with_output().map_err(io)?;
        let value: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            return Err(match value {
                Some(v) if v.get("code").is_some() => passed_on(&v, &self.program),
                _ => CniError::new(ErrorCode::Io, format!("IPAM plugin {} failed", self.program.display()))
                    .with_details(format!("exit status {} (its messages are on stderr)", out.status)),
            });
        }
        match (verb, value) {
            ("ADD", Some(v)) => CniResult::from_value(&v).map(Some),
            ("ADD", None) => Err(CniError::new(ErrorCode::Decode, "the IPAM plugin's result is not JSON")),
            _ => Ok(None),
        }
    }
}

/// A delegate's error object as this plugin's error: its code when it is one of the
/// spec's, with its message and details.
fn passed_on(v: &Value, program: &std::path::Path) -> CniError {
    let code = match v["code"].as_u64() {
        Some(1) => ErrorCode::IncompatibleVersion,
        Some(2) => ErrorCode::UnsupportedField,
        Some(3) => ErrorCode::UnknownContainer,
        Some(4) => ErrorCode::InvalidEnvironment,
        Some(6) => ErrorCode::Decode,
        Some(7) => ErrorCode::InvalidConfig,
        Some(11) => ErrorCode::TryAgainLater,
        _ => ErrorCode::Io,
    };
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut e = CniError::new(
        code,
        format!("IPAM ({name}): {}", v["msg"].as_str().unwrap_or("failed")),
    );
    if let Some(d) = v["details"].as_str() {
        e = e.with_details(d);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A delegate that counts its VERSION calls in a file beside it.
    fn fake_delegate(dir: &Path) -> PathBuf {
        let program = dir.join("fake-ipam");
        let script = format!(
            "#!/bin/sh\necho x >> {}/calls\necho '{{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}}'\n",
            dir.display()
        );
        std::fs::write(&program, script).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        program
    }

    #[test]
    fn the_delegates_versions_are_asked_once_per_installed_binary() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut d = Delegate {
            program: fake_delegate(dir.path()),
            config: Vec::new(),
            speaks_1_1: false,
        };
        let calls = || {
            std::fs::read_to_string(dir.path().join("calls"))
                .unwrap_or_default()
                .lines()
                .count()
        };
        assert_eq!(d.version_for(CniVersion::V110, &state).unwrap(), CniVersion::V100);
        assert_eq!(d.version_for(CniVersion::V040, &state).unwrap(), CniVersion::V040);
        assert_eq!(calls(), 1, "the second answer came from the cache");
        // A new binary (another size) is asked again.
        std::fs::write(
            dir.path().join("fake-ipam"),
            std::fs::read_to_string(&d.program).unwrap() + "\n",
        )
        .unwrap();
        assert_eq!(d.version_for(CniVersion::V110, &state).unwrap(), CniVersion::V100);
        assert_eq!(calls(), 2);
    }
}

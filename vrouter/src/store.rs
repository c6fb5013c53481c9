//! The state directory: ports and routes added through the API survive a restart
//! (as the Tungsten agent keeps its port files), so pods are not orphaned and keep
//! the vif and MPLS label remote nodes know them by.
//!
//! Layout: `ports/<interface>.json` (one [`PortRecord`] each), `routes.json` and
//! `routes.journal` (the changes since, one line each), `vnis.json`, `labels.json`
//! (where the label sequence goes on) and `lock`.
//!
//! Contract:
//! - One process at a time: [`StateStore::open`] takes an exclusive lock on `lock`
//!   and refuses a directory another vrouter holds.
//! - Writes are atomic and durable: a temporary file, fsync, rename, fsync of the
//!   directory. A crash or a full disk leaves the previous file whole; an error is
//!   returned before the caller applies the change.
//! - Nothing is lost to a bad file: an unreadable file is renamed aside
//!   (`<name>.unreadable-<unix time>`) and reported, never overwritten; one bad route
//!   entry does not cost the others.
//! - Names that become paths are validated ([`valid_port_name`]); a path outside the
//!   directory is refused.
//! - The directory is mode 0700 and files 0600, whatever the umask.

use anyhow::Context;
use control_client::contrail::PortBinding;
use control_client::{FloatingIpSpec, InterfaceSpec, PortIdentity, RouteSpec, ServiceSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

mod files;
mod journal;
#[cfg(test)]
mod tests;

pub use files::valid_port_name;
pub use journal::RouteChange;

/// A port as the state directory keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRecord {
    /// Its vif and label; `None` for a file written before they were recorded.
    pub identity: Option<PortIdentity>,
    /// What was asked for.
    pub spec: InterfaceSpec,
}

/// The routes file as read back: what parsed, and what did not (kept aside).
#[derive(Debug, Default)]
pub struct LoadedRoutes {
    /// Entries that parsed, in file order.
    pub routes: Vec<RouteSpec>,
    /// One line per problem (bad entries, an unreadable file and where it went).
    pub problems: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PortFile {
    vif: nexthop::Vif,
    label: u32,
    spec: InterfaceSpec,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum AnyPortFile {
    Current(PortFile),
    /// Before vifs and labels were recorded, a port file was the bare spec.
    Legacy(InterfaceSpec),
}

#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LabelsFile {
    next_label: u32,
}

/// The state directory, locked by this process for as long as the value lives.
#[derive(Debug)]
pub struct StateStore {
    dir: PathBuf,
    _lock: nix::fcntl::Flock<std::fs::File>,
    /// Lines in `routes.journal`.
    journal_lines: std::sync::atomic::AtomicUsize,
    /// Routes in `routes.json`.
    routes_in_base: std::sync::atomic::AtomicUsize,
}

impl StateStore {
    /// Opens (creating if needed, mode 0700) `dir` and locks it; fails if another
    /// process holds it.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let ports = dir.join("ports");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ports)
            .with_context(|| format!("state_dir {}", dir.display()))?;
        for d in [dir, ports.as_path()] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("state_dir: setting the mode of {}", d.display()))?;
        }
        let lock_path = dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .with_context(|| format!("state_dir: opening {}", lock_path.display()))?;
        let mut lock = match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((_, errno)) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                anyhow::bail!(
                    "state_dir {} is in use by another vrouter (pid {}): {errno}",
                    dir.display(),
                    holder.trim()
                );
            }
        };
        lock.set_len(0)?;
        writeln!(&mut *lock, "{}", std::process::id())?;
        Ok(Self {
            dir: dir.to_path_buf(),
            _lock: lock,
            journal_lines: Default::default(),
            routes_in_base: Default::default(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn port_path(&self, name: &str) -> anyhow::Result<PathBuf> {
        files::inside(&self.dir.join("ports"), &format!("{name}.json"), name)
    }

    /// Records a port with its identity (durably, before it is applied).
    pub fn save_port(&self, spec: &InterfaceSpec, identity: PortIdentity) -> anyhow::Result<()> {
        let file = PortFile {
            vif: identity.vif,
            label: identity.label,
            spec: spec.clone(),
        };
        files::write_durably(&self.port_path(&spec.name)?, &serde_json::to_vec_pretty(&file)?)
    }

    /// Forgets a port (no error if it was not recorded).
    pub fn delete_port(&self, name: &str) -> anyhow::Result<()> {
        let path = self.port_path(name)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("removing port file"),
            _ => files::sync_dir(path.parent().unwrap_or(&self.dir)),
        }
    }

    /// True if a port file exists for `name` (false for a name that is not a port's).
    pub fn has_port(&self, name: &str) -> bool {
        self.port_path(name).is_ok_and(|p| p.exists())
    }

    /// Every recorded port, ordered by recorded vif (files without one last, by
    /// name). Unreadable files are moved aside and reported.
    pub fn load_ports(&self) -> (Vec<PortRecord>, Vec<String>) {
        let mut ports = Vec::new();
        let mut problems = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.join("ports")) else {
            return (ports, problems);
        };
        let mut paths: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        for p in paths {
            let parsed = std::fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<AnyPortFile>(&b)?))
                .and_then(|f| {
                    let record = match f {
                        AnyPortFile::Current(f) => PortRecord {
                            identity: Some(PortIdentity {
                                vif: f.vif,
                                label: f.label,
                            }),
                            spec: f.spec,
                        },
                        AnyPortFile::Legacy(spec) => PortRecord { identity: None, spec },
                    };
                    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
                    anyhow::ensure!(
                        stem == record.spec.name,
                        "names interface {:?}, not {stem:?}",
                        record.spec.name
                    );
                    Ok(record)
                });
            match parsed {
                Ok(record) => ports.push(record),
                Err(e) => problems.push(files::move_aside(&p, &e)),
            }
        }
        ports.sort_by_key(|r| (r.identity.is_none(), r.identity.map(|i| i.vif), r.spec.name.clone()));
        (ports, problems)
    }

    /// Records the configured routes (including those not applied yet).
    pub fn save_routes(&self, routes: &[RouteSpec]) -> anyhow::Result<()> {
        files::write_durably(&self.dir.join("routes.json"), &serde_json::to_vec_pretty(routes)?)
    }

    /// The recorded routes: `routes.json` with the journal replayed over it. A file
    /// that is not a JSON list is moved aside; entries that do not parse are
    /// reported, and the file is copied aside so that they survive the next save.
    pub fn load_routes(&self) -> LoadedRoutes {
        let path = self.dir.join("routes.json");
        let mut out = LoadedRoutes::default();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::from(&b"[]"[..]),
            Err(e) => {
                out.problems.push(format!("{}: {e}", path.display()));
                return out;
            }
        };
        let entries: Vec<serde_json::Value> = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                out.problems.push(files::move_aside(&path, &e.into()));
                self.replay_journal(&mut out);
                return out;
            }
        };
        let mut bad = 0;
        for (i, entry) in entries.into_iter().enumerate() {
            match serde_json::from_value::<RouteSpec>(entry) {
                Ok(r) => out.routes.push(r),
                Err(e) => {
                    bad += 1;
                    out.problems.push(format!("{} entry {i}: {e}", path.display()));
                }
            }
        }
        if bad > 0 {
            out.problems.push(files::copy_aside(&path, bad));
        }
        self.routes_in_base
            .store(out.routes.len(), std::sync::atomic::Ordering::Relaxed);
        self.replay_journal(&mut out);
        out
    }

    /// Records the VNIs of VRFs.
    pub fn save_vnis(&self, vnis: &BTreeMap<String, u32>) -> anyhow::Result<()> {
        files::write_durably(&self.dir.join("vnis.json"), &serde_json::to_vec_pretty(vnis)?)
    }

    /// The recorded VNIs (none if unreadable: the file is moved aside and reported).
    pub fn load_vnis(&self) -> (BTreeMap<String, u32>, Vec<String>) {
        files::load_or_move_aside(&self.dir.join("vnis.json"))
    }

    /// Records the services.
    pub fn save_services(&self, services: &[ServiceSpec]) -> anyhow::Result<()> {
        files::write_durably(&self.dir.join("services.json"), &serde_json::to_vec_pretty(services)?)
    }

    /// The recorded services (none if unreadable: the file is moved aside and
    /// reported).
    pub fn load_services(&self) -> (Vec<ServiceSpec>, Vec<String>) {
        files::load_or_move_aside(&self.dir.join("services.json"))
    }

    /// Records the floating IPs.
    pub fn save_floating_ips(&self, fips: &[FloatingIpSpec]) -> anyhow::Result<()> {
        files::write_durably(&self.dir.join("floating_ips.json"), &serde_json::to_vec_pretty(fips)?)
    }

    /// The recorded floating IPs (none if unreadable: the file is moved aside and
    /// reported).
    pub fn load_floating_ips(&self) -> (Vec<FloatingIpSpec>, Vec<String>) {
        files::load_or_move_aside(&self.dir.join("floating_ips.json"))
    }

    /// Records the service chains.
    pub fn save_service_chains(&self, chains: &[control_client::ServiceChainSpec]) -> anyhow::Result<()> {
        files::write_durably(
            &self.dir.join("service_chains.json"),
            &serde_json::to_vec_pretty(chains)?,
        )
    }

    /// The recorded service chains (none if unreadable: the file is moved aside and
    /// reported).
    pub fn load_service_chains(&self) -> (Vec<control_client::ServiceChainSpec>, Vec<String>) {
        files::load_or_move_aside(&self.dir.join("service_chains.json"))
    }

    /// Records the ingresses.
    pub fn save_ingresses(&self, ingresses: &[control_client::IngressSpec]) -> anyhow::Result<()> {
        files::write_durably(&self.dir.join("ingresses.json"), &serde_json::to_vec_pretty(ingresses)?)
    }

    /// The recorded ingresses (none if unreadable: the file is moved aside and
    /// reported).
    pub fn load_ingresses(&self) -> (Vec<control_client::IngressSpec>, Vec<String>) {
        files::load_or_move_aside(&self.dir.join("ingresses.json"))
    }

    /// Records the network policies.
    pub fn save_policies(&self, policies: &[control_client::PolicySpec]) -> anyhow::Result<()> {
        files::write_durably(&self.dir.join("policies.json"), &serde_json::to_vec_pretty(policies)?)
    }

    /// The recorded network policies (none if unreadable: the file is moved aside
    /// and reported).
    pub fn load_policies(&self) -> (Vec<control_client::PolicySpec>, Vec<String>) {
        files::load_or_move_aside(&self.dir.join("policies.json"))
    }

    /// Records the ports bound to the control node's configuration.
    pub fn save_bindings(&self, bindings: &[PortBinding]) -> anyhow::Result<()> {
        files::write_durably(&self.dir.join("bindings.json"), &serde_json::to_vec_pretty(bindings)?)
    }

    /// The recorded port bindings (none if unreadable: the file is moved aside and
    /// reported).
    pub fn load_bindings(&self) -> (Vec<PortBinding>, Vec<String>) {
        files::load_or_move_aside(&self.dir.join("bindings.json"))
    }

    /// Records where the MPLS label sequence goes on.
    pub fn save_next_label(&self, next_label: u32) -> anyhow::Result<()> {
        let file = LabelsFile { next_label };
        files::write_durably(&self.dir.join("labels.json"), &serde_json::to_vec_pretty(&file)?)
    }

    /// Where the label sequence went on before the restart (0 if never recorded).
    pub fn load_next_label(&self) -> (u32, Vec<String>) {
        let (file, problems): (LabelsFile, _) = files::load_or_move_aside(&self.dir.join("labels.json"));
        (file.next_label, problems)
    }
}

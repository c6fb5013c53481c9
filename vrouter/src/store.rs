//! The state directory: ports and routes added through the API survive a restart
//! (as the Tungsten agent keeps its port files), so pods are not orphaned.
//!
//! Layout: `ports/<interface>.json` (one [`InterfaceSpec`] each) and `routes.json`.
//! Files are written to a temporary name and renamed, so a crash never leaves half a
//! file.

use anyhow::Context;
use control_client::{InterfaceSpec, RouteSpec};
use std::path::{Path, PathBuf};

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    /// Opens (creating if needed) `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("ports")).with_context(|| format!("state_dir {}", dir.display()))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    fn port_path(&self, name: &str) -> PathBuf {
        self.dir.join("ports").join(format!("{name}.json"))
    }

    fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
        Ok(())
    }

    /// Records a port.
    pub fn save_port(&self, spec: &InterfaceSpec) -> anyhow::Result<()> {
        Self::write_atomic(&self.port_path(&spec.name), &serde_json::to_vec_pretty(spec)?)
    }

    /// Forgets a port (no error if it was not recorded).
    pub fn delete_port(&self, name: &str) -> anyhow::Result<()> {
        match std::fs::remove_file(self.port_path(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).context("removing port file"),
            _ => Ok(()),
        }
    }

    /// True if a port file exists for `name`.
    pub fn has_port(&self, name: &str) -> bool {
        self.port_path(name).exists()
    }

    /// Every recorded port, by name; unreadable files are reported, not fatal.
    pub fn load_ports(&self) -> (Vec<InterfaceSpec>, Vec<String>) {
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
            match std::fs::read(&p)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<InterfaceSpec>(&b)?))
            {
                Ok(spec) => ports.push(spec),
                Err(e) => problems.push(format!("{}: {e}", p.display())),
            }
        }
        (ports, problems)
    }

    /// Records the configured routes.
    pub fn save_routes(&self, routes: &[RouteSpec]) -> anyhow::Result<()> {
        Self::write_atomic(&self.dir.join("routes.json"), &serde_json::to_vec_pretty(routes)?)
    }

    /// Records the VNIs of VRFs.
    pub fn save_vnis(&self, vnis: &std::collections::BTreeMap<String, u32>) -> anyhow::Result<()> {
        Self::write_atomic(&self.dir.join("vnis.json"), &serde_json::to_vec_pretty(vnis)?)
    }

    /// The recorded VNIs (none if unreadable; the problem is logged).
    pub fn load_vnis(&self) -> std::collections::BTreeMap<String, u32> {
        let path = self.dir.join("vnis.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}", path.display());
                Default::default()
            }),
            Err(_) => Default::default(),
        }
    }

    /// The recorded routes.
    pub fn load_routes(&self) -> anyhow::Result<Vec<RouteSpec>> {
        let path = self.dir.join("routes.json");
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).with_context(|| format!("{}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e).with_context(|| format!("{}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexthop::MacAddr;

    #[test]
    fn ports_and_routes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path()).unwrap();
        let spec = InterfaceSpec {
            name: "veth1".into(),
            vrf: "red".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            ipv4: Some("198.18.1.2".parse().unwrap()),
            ipv6: None,
            gateway4: None,
            gateway6: None,
        };
        store.save_port(&spec).unwrap();
        std::fs::write(dir.path().join("ports/broken.json"), b"{not json").unwrap();
        let (ports, problems) = store.load_ports();
        assert_eq!(ports, vec![spec]);
        assert_eq!(problems.len(), 1);
        store.delete_port("veth1").unwrap();
        store.delete_port("veth1").unwrap();
        assert!(!store.has_port("veth1"));
        let routes = vec![RouteSpec {
            vrf: "red".into(),
            prefix: "198.19.0.0/16".parse().unwrap(),
            target: control_client::RouteTarget::Discard,
        }];
        assert!(store.load_routes().unwrap().is_empty());
        store.save_routes(&routes).unwrap();
        assert_eq!(store.load_routes().unwrap(), routes);
    }
}

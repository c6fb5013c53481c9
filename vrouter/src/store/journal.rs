//! The routes journal: a route change is one line appended to `routes.journal` and
//! synced, so recording it costs the same with 100K routes as with ten. When the
//! journal outgrows the routes it describes it is folded into `routes.json`
//! (atomically) and emptied. Replaying is idempotent (an add replaces, a remove of an
//! absent route does nothing), so a crash between the fold and the emptying loses
//! nothing and adds nothing.

use super::{files, LoadedRoutes, StateStore};
use anyhow::Context;
use control_client::RouteSpec;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::atomic::Ordering;

/// One change to the recorded routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum RouteChange {
    /// Record (or replace) a route.
    Add {
        /// The route.
        route: RouteSpec,
    },
    /// Forget the route of `vrf` and `prefix`.
    Remove {
        /// VRF.
        vrf: String,
        /// Prefix.
        prefix: IpNet,
    },
}

/// Journal lines before a fold, at least; beyond it, a fold when the journal is longer
/// than the routes file.
const FOLD_AFTER: usize = 1024;

impl StateStore {
    /// Records `change` durably (appended and synced). When the journal has grown
    /// past the routes, `all` (every recorded route, the change included) is written
    /// as `routes.json` and the journal emptied.
    pub fn record_route_change(
        &self,
        change: &RouteChange,
        all: impl FnOnce() -> Vec<RouteSpec>,
    ) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(change)?;
        line.push(b'\n');
        let path = self.dir.join("routes.journal");
        let mut journal = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let written = journal.write_all(&line).and_then(|()| journal.sync_data());
        if let Err(e) = written {
            // Leave no half line behind: cut the journal back to what it was.
            if let Ok(len) = std::fs::metadata(&path).map(|m| m.len()) {
                let _ = journal.set_len(len.saturating_sub(line.len() as u64));
            }
            return Err(e).with_context(|| format!("appending to {}", path.display()));
        }
        let lines = self.journal_lines.fetch_add(1, Ordering::Relaxed) + 1;
        if lines > FOLD_AFTER.max(self.routes_in_base.load(Ordering::Relaxed)) {
            // A failed fold loses nothing: the journal still holds every change.
            if let Err(e) = self.fold_routes(&all()) {
                tracing::warn!("routes journal not folded (kept as it is): {e:#}");
            }
        }
        Ok(())
    }

    /// Writes `routes` as `routes.json` and empties the journal.
    pub fn fold_routes(&self, routes: &[RouteSpec]) -> anyhow::Result<()> {
        self.save_routes(routes)?;
        let path = self.dir.join("routes.journal");
        match std::fs::OpenOptions::new().write(true).open(&path) {
            Ok(f) => {
                f.set_len(0)?;
                f.sync_all()?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("emptying {}", path.display())),
        }
        self.journal_lines.store(0, Ordering::Relaxed);
        self.routes_in_base.store(routes.len(), Ordering::Relaxed);
        Ok(())
    }

    /// Replays the journal over `loaded` (the routes file's content). A line that is
    /// not a change (a torn last line after a crash, a damaged file) is reported and
    /// the journal copied aside.
    pub(super) fn replay_journal(&self, loaded: &mut LoadedRoutes) {
        let path = self.dir.join("routes.journal");
        let Ok(file) = std::fs::File::open(&path) else { return };
        let mut index: std::collections::HashMap<(String, IpNet), usize> = loaded
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.vrf.clone(), r.prefix), i))
            .collect();
        let mut slots: Vec<Option<RouteSpec>> = std::mem::take(&mut loaded.routes).into_iter().map(Some).collect();
        let (mut lines, mut bad) = (0, 0);
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let change = line
                .map_err(anyhow::Error::from)
                .and_then(|l| Ok(serde_json::from_str::<RouteChange>(&l)?));
            lines += 1;
            match change {
                Ok(RouteChange::Add { route }) => {
                    let key = (route.vrf.clone(), route.prefix);
                    match index.get(&key) {
                        Some(i) => slots[*i] = Some(route),
                        None => {
                            index.insert(key, slots.len());
                            slots.push(Some(route));
                        }
                    }
                }
                Ok(RouteChange::Remove { vrf, prefix }) => {
                    if let Some(i) = index.remove(&(vrf, prefix)) {
                        slots[i] = None;
                    }
                }
                Err(e) => {
                    bad += 1;
                    loaded
                        .problems
                        .push(format!("{} line {}: {e:#}", path.display(), n + 1));
                }
            }
        }
        if bad > 0 {
            loaded.problems.push(files::copy_aside(&path, bad));
        }
        loaded.routes = slots.into_iter().flatten().collect();
        self.journal_lines.store(lines, Ordering::Relaxed);
    }
}

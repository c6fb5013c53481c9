//! How long the control side takes to make a change usable by the workers: snapshot
//! builds (whole or patched) and a control node's route message from its arrival to
//! its publication. Observed by the control task (never on a forwarding core) and
//! exported by the metrics endpoint.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use std::time::Duration;

/// The kind of a publication: `full` (the whole snapshot built) or `patch` (routes
/// changed in a copy of the current one).
pub type PublicationLabel = [(&'static str, &'static str); 1];

type HistogramMaker = fn() -> Histogram;

/// Buckets from 10 µs to about 42 s by factors of 4: a route patch takes
/// microseconds, a full build of a large table can take seconds, and a route message
/// that waited behind a burst of changes longer still.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 4.0, 12))
}

/// The control side's timing histograms; shared (cheap to clone: the histograms are
/// handles to the same counts).
#[derive(Debug, Clone)]
pub struct ControlTimings {
    snapshot_build: Family<PublicationLabel, Histogram, HistogramMaker>,
    route_update: Histogram,
}

impl Default for ControlTimings {
    fn default() -> Self {
        Self {
            snapshot_build: Family::new_with_constructor(latency_histogram),
            route_update: latency_histogram(),
        }
    }
}

impl ControlTimings {
    /// Records a publication that took `took` from the start of its build.
    pub fn observe_publication(&self, full: bool, took: Duration) {
        let kind = if full { "full" } else { "patch" };
        self.snapshot_build
            .get_or_create(&[("kind", kind)])
            .observe(took.as_secs_f64());
    }

    /// Records a control node's route message published `took` after it arrived.
    pub fn observe_route_update(&self, took: Duration) {
        self.route_update.observe(took.as_secs_f64());
    }

    /// Adds the histograms to `registry` (under its prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register_with_unit(
            "snapshot_build",
            "Time to build and publish a forwarding snapshot, by kind (full: the whole snapshot; patch: changed routes in a copy)",
            Unit::Seconds,
            self.snapshot_build.clone(),
        );
        registry.register_with_unit(
            "xmpp_route_update_latency",
            "Time from a control node's route message reaching the vrouter to the workers forwarding by it",
            Unit::Seconds,
            self.route_update.clone(),
        );
    }
}

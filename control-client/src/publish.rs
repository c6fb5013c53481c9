//! Atomic publication of forwarding snapshots.

use arc_swap::ArcSwap;
use nexthop::Snapshot;
use std::sync::Arc;

/// Holds the current snapshot; cloning shares it (the control side publishes, every
/// worker reads).
#[derive(Debug, Clone)]
pub struct SnapshotPublisher {
    current: Arc<ArcSwap<Snapshot>>,
}

impl SnapshotPublisher {
    /// Starts with `initial` published.
    pub fn new(initial: Snapshot) -> Self {
        Self {
            current: Arc::new(ArcSwap::from_pointee(initial)),
        }
    }

    /// Replaces the published snapshot. Readers holding the old one keep it until
    /// they load again.
    pub fn publish(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
    }

    /// The current snapshot (cheap: no lock, no allocation on the common path).
    #[inline]
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }
}

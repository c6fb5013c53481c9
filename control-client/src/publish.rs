//! Atomic publication of forwarding snapshots.
//!
//! [`SnapshotPublisher`] is the shared slot workers load from. [`Publication`] is the
//! control side's end of it: besides whole snapshots it publishes route changes as
//! [`RoutePatch`]es applied in place to the previous snapshot's memory once no worker
//! reads it any more (the left-right pattern: that copy is one patch behind, so it
//! gets the previous patch and this one), so a route change costs what the change
//! is, not what the table is. It keeps two copies of the forwarding state.

use arc_swap::ArcSwap;
use nexthop::{RoutePatch, Snapshot};
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

    /// Replaces the published snapshot and returns the one it replaces. Every reader
    /// still holding that one holds a counted reference to it (`arc-swap` converts
    /// its readers' borrowed references when it swaps).
    fn swap(&self, snapshot: Arc<Snapshot>) -> Arc<Snapshot> {
        self.current.swap(snapshot)
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

/// Times the control side looks again for the spare copy to be free (the workers
/// move to the newest snapshot at their next batch, microseconds away) before it
/// copies the current snapshot instead.
const SPARE_ATTEMPTS: usize = 64;

/// How publications went: in place, or by copying the whole snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublicationStats {
    /// Whole snapshots published (full builds).
    pub full: u64,
    /// Patches applied to the spare copy in place.
    pub patched_in_place: u64,
    /// Patches applied to a copy of the current snapshot (the spare was busy,
    /// too far behind, or not there after a full build).
    pub patched_copy: u64,
}

/// The control side's end of a [`SnapshotPublisher`]; see the module doc.
#[derive(Debug)]
pub struct Publication {
    publisher: SnapshotPublisher,
    /// The snapshot published before the current one, and the patch that brings it
    /// up to the current one.
    spare: Option<(Arc<Snapshot>, RoutePatch)>,
    stats: PublicationStats,
}

impl Publication {
    /// Publishes through `publisher` (whose current snapshot is the last full build).
    pub fn new(publisher: SnapshotPublisher) -> Self {
        Self {
            publisher,
            spare: None,
            stats: PublicationStats::default(),
        }
    }

    /// The shared slot the workers load from.
    pub fn publisher(&self) -> &SnapshotPublisher {
        &self.publisher
    }

    /// How publications went so far.
    pub fn stats(&self) -> PublicationStats {
        self.stats
    }

    /// Publishes a whole snapshot (the spare copy is dropped: no patch leads to it).
    pub fn publish(&mut self, snapshot: Snapshot) {
        self.spare = None;
        self.publisher.publish(snapshot);
        self.stats.full += 1;
    }

    /// Publishes the current snapshot with `patch` applied (the patch was made
    /// against the current snapshot).
    pub fn publish_patch(&mut self, patch: RoutePatch) {
        let mut next = match self.take_spare() {
            Some((mut spare, behind)) => {
                self.stats.patched_in_place += 1;
                behind.apply(&mut spare);
                spare
            }
            None => {
                self.stats.patched_copy += 1;
                Snapshot::clone(&self.publisher.load_full())
            }
        };
        patch.apply(&mut next);
        let previous = self.publisher.swap(Arc::new(next));
        self.spare = Some((previous, patch));
    }

    /// The spare copy, owned, with the patch it is behind by; `None` if there is
    /// none or it is still read (a worker between batches, a view being answered).
    fn take_spare(&mut self) -> Option<(Snapshot, RoutePatch)> {
        let (mut spare, behind) = self.spare.take()?;
        for _ in 0..SPARE_ATTEMPTS {
            match Arc::try_unwrap(spare) {
                Ok(owned) => return Some((owned, behind)),
                Err(still_read) => spare = still_read,
            }
            std::thread::yield_now();
        }
        None
    }
}

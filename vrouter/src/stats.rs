//! Counters written by one worker and read by the control thread.
//!
//! Each counter has a single writer, so an increment is a relaxed load and store (no
//! locked instruction); readers sum the workers' copies.

use crate::packet::DropReason;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// A single-writer counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (only the owning worker calls this).
    #[inline]
    pub fn add(&self, n: u64) {
        self.0
            .store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// Overwrites the value (for mirrored kernel counters).
    #[inline]
    pub fn set(&self, n: u64) {
        self.0.store(n, Ordering::Relaxed);
    }

    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Per-interface counters of one worker.
#[derive(Debug, Default)]
pub struct VifCounters {
    /// Frames received.
    pub rx_packets: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Frames transmitted.
    pub tx_packets: Counter,
    /// Bytes transmitted.
    pub tx_bytes: Counter,
    /// Frames received here and dropped.
    pub drops: Counter,
    /// Frames for this interface dropped because its TX ring was full.
    pub tx_ring_full: Counter,
    /// Kernel: frames dropped before reaching the RX ring.
    pub kernel_rx_dropped: Counter,
    /// Kernel: times the RX ring was full.
    pub kernel_rx_ring_full: Counter,
    /// Kernel: times the fill ring was empty.
    pub kernel_fill_ring_empty: Counter,
}

/// Everything one worker counts.
#[derive(Debug)]
pub struct WorkerStats {
    /// Drops by reason.
    pub drops: Vec<Counter>,
    /// Per-vif counters, indexed by vif.
    pub vifs: Vec<VifCounters>,
    /// ICMP errors sent.
    pub icmp_errors_sent: Counter,
    /// ICMP errors suppressed by the rate limit.
    pub icmp_errors_suppressed: Counter,
    /// Loop iterations that found packets.
    pub busy_loops: Counter,
    /// Loop iterations that found none.
    pub idle_loops: Counter,
}

impl WorkerStats {
    /// Counters for `max_vifs` interfaces.
    pub fn new(max_vifs: usize) -> Self {
        Self {
            drops: (0..DropReason::COUNT).map(|_| Counter::default()).collect(),
            vifs: (0..max_vifs).map(|_| VifCounters::default()).collect(),
            icmp_errors_sent: Counter::default(),
            icmp_errors_suppressed: Counter::default(),
            busy_loops: Counter::default(),
            idle_loops: Counter::default(),
        }
    }

    /// Counts a drop of a frame received on `vif`.
    #[inline]
    pub fn drop_packet(&self, vif: u32, reason: DropReason) {
        self.drops[reason.index()].add(1);
        if let Some(v) = self.vifs.get(vif as usize) {
            v.drops.add(1);
        }
    }
}

/// A snapshot of one interface's counters, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VifTotals {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames received and dropped.
    pub drops: u64,
    /// Frames dropped on a full TX ring.
    pub tx_ring_full: u64,
    /// Kernel drops before the RX ring.
    pub kernel_rx_dropped: u64,
    /// Kernel RX ring full events.
    pub kernel_rx_ring_full: u64,
    /// Kernel fill ring empty events.
    pub kernel_fill_ring_empty: u64,
}

impl VifTotals {
    /// Sums the counters of `vif` over `workers`.
    pub fn sum(workers: &[std::sync::Arc<WorkerStats>], vif: u32) -> Self {
        let mut t = Self::default();
        for w in workers {
            let Some(c) = w.vifs.get(vif as usize) else {
                continue;
            };
            t.rx_packets += c.rx_packets.get();
            t.rx_bytes += c.rx_bytes.get();
            t.tx_packets += c.tx_packets.get();
            t.tx_bytes += c.tx_bytes.get();
            t.drops += c.drops.get();
            t.tx_ring_full += c.tx_ring_full.get();
            t.kernel_rx_dropped += c.kernel_rx_dropped.get();
            t.kernel_rx_ring_full += c.kernel_rx_ring_full.get();
            t.kernel_fill_ring_empty += c.kernel_fill_ring_empty.get();
        }
        t
    }
}

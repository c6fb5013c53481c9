//! Counters written by one worker and read by the control thread.
//!
//! Each counter has a single writer, so an increment is a relaxed load and store (no
//! locked instruction); readers sum the workers' copies.

use crate::drops::DropReason;
use nexthop::Vif;
use std::sync::atomic::{AtomicU64, Ordering};
pub use vrouter_api::{TunnelTotals, VifTotals};

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

/// One counter per drop reason ([`DropReason::index`]).
#[derive(Debug)]
pub struct DropCounters([Counter; DropReason::COUNT]);

impl Default for DropCounters {
    fn default() -> Self {
        Self(std::array::from_fn(|_| Counter::default()))
    }
}

impl std::ops::Deref for DropCounters {
    type Target = [Counter; DropReason::COUNT];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Per-interface counters of one worker.
#[derive(Debug, Default)]
pub struct VifCounters {
    /// Frames received here and dropped, by reason ([`DropReason::index`]).
    pub drop_reasons: DropCounters,
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

/// Slots in a worker's per-tunnel table (remote nodes it has talked to).
pub const TUNNEL_SLOTS: usize = 1024;

/// Counters of the tunnels to and from one remote node.
#[derive(Debug, Default)]
pub struct TunnelCounters {
    /// The remote's fabric address (0: free slot).
    pub remote: std::sync::atomic::AtomicU32,
    /// Packets encapsulated towards it.
    pub tx_packets: Counter,
    /// Bytes sent to it, outer headers included.
    pub tx_bytes: Counter,
    /// Packets received from it and decapsulated.
    pub rx_packets: Counter,
    /// Bytes received from it, outer headers included.
    pub rx_bytes: Counter,
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
    /// Cycles ([`crate::cycles`]) spent in iterations that found packets.
    pub busy_cycles: Counter,
    /// Cycles spent in iterations that found none (spinning or asleep in poll).
    pub idle_cycles: Counter,
    /// Packets received as a chain of descriptors (larger than a chunk).
    pub chains_received: Counter,
    /// Packets sent as a chain of descriptors.
    pub chains_sent: Counter,
    /// Set once the worker's UMEM has room for transmit metadata.
    pub tx_checksum_offload: std::sync::atomic::AtomicBool,
    /// TCP and UDP packets sent with their checksum left for the kernel to finish.
    pub checksum_offloads: Counter,
    /// Frames given back to the UMEM's free list while already in it, ignored
    /// ([`xsk::FramePool::double_releases`], mirrored): a bug if ever above 0.
    pub frame_double_releases: Counter,
    /// Per remote node, open addressing by address (only the owning worker inserts).
    pub tunnels: Vec<TunnelCounters>,
}

impl WorkerStats {
    /// Counts a tunnel packet to (`tx`) or from a remote node.
    #[inline]
    pub fn count_tunnel(&self, remote: std::net::Ipv4Addr, tx: bool, bytes: u32) {
        use std::sync::atomic::Ordering;
        let key = u32::from(remote).max(1);
        let mut i = (key.wrapping_mul(0x9e37_79b1) >> 22) as usize % TUNNEL_SLOTS;
        for _ in 0..TUNNEL_SLOTS {
            let slot = &self.tunnels[i];
            let current = slot.remote.load(Ordering::Relaxed);
            if current == 0 {
                slot.remote.store(key, Ordering::Release);
            }
            if current == 0 || current == key {
                let (p, b) = if tx {
                    (&slot.tx_packets, &slot.tx_bytes)
                } else {
                    (&slot.rx_packets, &slot.rx_bytes)
                };
                p.add(1);
                b.add(u64::from(bytes));
                return;
            }
            i = (i + 1) % TUNNEL_SLOTS;
        }
    }

    /// Counters for `max_vifs` interfaces.
    pub fn new(max_vifs: usize) -> Self {
        Self {
            drops: (0..DropReason::COUNT).map(|_| Counter::default()).collect(),
            vifs: (0..max_vifs).map(|_| VifCounters::default()).collect(),
            icmp_errors_sent: Counter::default(),
            icmp_errors_suppressed: Counter::default(),
            busy_loops: Counter::default(),
            idle_loops: Counter::default(),
            busy_cycles: Counter::default(),
            idle_cycles: Counter::default(),
            chains_received: Counter::default(),
            chains_sent: Counter::default(),
            tx_checksum_offload: std::sync::atomic::AtomicBool::new(false),
            checksum_offloads: Counter::default(),
            frame_double_releases: Counter::default(),
            tunnels: (0..TUNNEL_SLOTS).map(|_| TunnelCounters::default()).collect(),
        }
    }

    /// Counts a packet sent with its checksum left to the kernel, if `offloaded`.
    #[inline]
    pub fn count_checksum_offload(&self, offloaded: bool) {
        if offloaded {
            self.checksum_offloads.add(1);
        }
    }

    /// Counts a drop of a frame received on `vif`.
    #[inline]
    pub fn drop_packet(&self, vif: Vif, reason: DropReason) {
        self.drops[reason.index()].add(1);
        if let Some(v) = self.vifs.get(vif.index()) {
            v.drops.add(1);
            v.drop_reasons[reason.index()].add(1);
        }
    }
}

/// The counters of `vif` summed over `workers`.
pub fn vif_totals(workers: &[std::sync::Arc<WorkerStats>], vif: Vif) -> VifTotals {
    {
        let mut t = VifTotals::default();
        for w in workers {
            let Some(c) = w.vifs.get(vif.index()) else {
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
        t.drops_by_reason = DropReason::ALL
            .iter()
            .map(|r| {
                (
                    r.label().to_string(),
                    workers
                        .iter()
                        .filter_map(|w| w.vifs.get(vif.index()))
                        .map(|c| c.drop_reasons[r.index()].get())
                        .sum::<u64>(),
                )
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        t
    }
}

/// The traffic with every remote any worker counted, sorted by address.
pub fn tunnel_totals(workers: &[std::sync::Arc<WorkerStats>]) -> Vec<TunnelTotals> {
    {
        let mut by_remote: std::collections::BTreeMap<u32, TunnelTotals> = std::collections::BTreeMap::new();
        for w in workers {
            for t in &w.tunnels {
                let key = t.remote.load(std::sync::atomic::Ordering::Acquire);
                if key == 0 {
                    continue;
                }
                let e = by_remote.entry(key).or_insert_with(|| TunnelTotals {
                    remote: key.into(),
                    tx_packets: 0,
                    tx_bytes: 0,
                    rx_packets: 0,
                    rx_bytes: 0,
                });
                e.tx_packets += t.tx_packets.get();
                e.tx_bytes += t.tx_bytes.get();
                e.rx_packets += t.rx_packets.get();
                e.rx_bytes += t.rx_bytes.get();
            }
        }
        by_remote.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_counters_sum_per_remote() {
        let w = std::sync::Arc::new(WorkerStats::new(4));
        let a: std::net::Ipv4Addr = [198, 18, 0, 2].into();
        let b: std::net::Ipv4Addr = [198, 18, 0, 3].into();
        w.count_tunnel(a, true, 100);
        w.count_tunnel(a, true, 50);
        w.count_tunnel(a, false, 70);
        w.count_tunnel(b, false, 10);
        let t = tunnel_totals(&[w.clone(), w]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].remote, t[0].tx_packets, t[0].tx_bytes, t[0].rx_packets),
            (a, 4, 300, 2)
        );
        assert_eq!((t[1].remote, t[1].rx_bytes), (b, 20));
    }
}

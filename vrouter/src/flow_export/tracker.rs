//! Which flows began, went on and ended between two aging passes, as records with
//! the packets and bytes since each flow's previous record. The aging thread drives
//! it: it visits every entry once a pass and removes the expired ones, so it sees
//! every flow that lives until aging ends it; a flow removed by another path (a
//! backend re-steer, a detached port) is ended at the next pass with the counts it
//! last had. Nothing here runs on a forwarding core.

use super::{FlowEvent, FlowRecord};
use crate::flows::FlowAction;
use flow_table::{FlowActivity, FlowKey, FlowRef};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Hashes a flow entry's index: indexes are distinct small integers, so one multiply
/// spreads them over the map with none of SipHash's cost (the pass hashes every flow
/// of the table every second: at a million flows SipHash and the copies of a
/// get-then-insert made the records' pass a core's worth of work).
#[derive(Debug, Default, Clone, Copy)]
struct IndexHasher(u64);

impl Hasher for IndexHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u32(&mut self, i: u32) {
        self.0 = u64::from(i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// Tracked flows by entry index.
type ByIndex = HashMap<u32, Tracked, BuildHasherDefault<IndexHasher>>;

/// Why an entry ended (IPFIX flowEndReason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Idle for its timeout.
    Idle = 1,
    /// A long flow's periodic record (not an end).
    Active = 2,
    /// TCP closed (FIN both ways, or RST).
    EndOfFlow = 3,
    /// Removed by something else than aging (re-steered, port detached).
    Forced = 4,
}

impl EndReason {
    /// Its name in `flow watch`.
    pub fn label(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Active => "active",
            EndReason::EndOfFlow => "tcp_closed",
            EndReason::Forced => "removed",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Tracked {
    key: FlowKey,
    owner: u32,
    data: u64,
    transform: Option<super::Translation>,
    start_ms: u64,
    /// Counts at the last pass, and at the last record.
    seen: (u64, u64),
    exported: (u64, u64),
    last_seen_ms: u64,
    last_record_ms: u64,
    visited: bool,
}

/// Appends `t`'s record of `event` (the counts since its previous record) at pass
/// time `pass_ms`.
fn record(records: &mut Vec<FlowRecord>, pass_ms: u64, t: &mut Tracked, event: FlowEvent, end_ms: u64) {
    let (packets, bytes) = (
        t.seen.0.saturating_sub(t.exported.0),
        t.seen.1.saturating_sub(t.exported.1),
    );
    t.exported = t.seen;
    t.last_record_ms = pass_ms;
    records.push(FlowRecord {
        key: t.key,
        owner: t.owner,
        data: t.data,
        transform: t.transform,
        packets,
        bytes,
        total_packets: t.seen.0,
        total_bytes: t.seen.1,
        start_ms: t.start_ms,
        end_ms: end_ms.max(t.start_ms),
        event,
    });
}

/// Flow entries seen, by entry index.
#[derive(Debug)]
pub struct FlowTracker {
    tracked: ByIndex,
    active_timeout_ms: u64,
    /// Wall clock (ms since the epoch) and the table's coarse clock of this pass.
    pass: (u64, u32),
    records: Vec<FlowRecord>,
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl FlowTracker {
    /// A tracker sending a record for a long flow every `active_timeout_secs`.
    pub fn new(active_timeout_secs: u32) -> Self {
        Self {
            tracked: ByIndex::default(),
            active_timeout_ms: u64::from(active_timeout_secs.max(1)) * 1000,
            pass: (0, 0),
            records: Vec::new(),
        }
    }

    /// Starts a pass at coarse time `now`.
    pub fn begin_pass(&mut self, now: u32) {
        self.pass = (unix_ms(), now);
    }

    fn wall(&self, coarse: u32) -> u64 {
        self.pass
            .0
            .saturating_sub(u64::from(self.pass.1.saturating_sub(coarse)) * 1000)
    }

    fn record(&mut self, t: &mut Tracked, event: FlowEvent, end_ms: u64) {
        record(&mut self.records, self.pass.0, t, event, end_ms);
    }

    /// Visits entry `r` with its `activity`; `transform` gives its translation (if
    /// translated), asked only when the flow is new or moved since the last pass. A
    /// new one gets its first record, a long one a periodic record.
    pub fn visit(
        &mut self,
        r: &FlowRef,
        activity: FlowActivity,
        transform: impl FnOnce() -> Option<super::Translation>,
    ) {
        let last_ms = self.wall(activity.last_seen);
        // The common case, a flow seen before: updated in place, one lookup.
        // Counts that went back mean a new connection with the same key in a recycled
        // entry: that one goes the slow way, as a new flow.
        if let Some(t) = self.tracked.get_mut(&r.index) {
            if t.key == r.key && activity.packets >= t.seen.0 {
                if activity.packets != t.seen.0 {
                    t.transform = transform();
                }
                t.seen = (activity.packets, activity.bytes);
                t.last_seen_ms = last_ms;
                t.data = r.value.data;
                t.visited = true;
                if self.pass.0.saturating_sub(t.last_record_ms) >= self.active_timeout_ms && t.seen != t.exported {
                    record(&mut self.records, self.pass.0, t, FlowEvent::Updated, last_ms);
                }
                return;
            }
        }
        // New, or the index was reused for another flow since the last pass.
        let ended = self.tracked.remove(&r.index);
        if let Some(mut old) = ended {
            let end = old.last_seen_ms;
            self.record(&mut old, FlowEvent::Ended(EndReason::Forced), end);
        }
        let mut t = Tracked {
            key: r.key,
            owner: r.value.owner,
            data: r.value.data,
            transform: transform(),
            start_ms: last_ms.min(self.pass.0),
            seen: (activity.packets, activity.bytes),
            exported: (0, 0),
            last_seen_ms: last_ms,
            last_record_ms: 0,
            visited: true,
        };
        let event = match FlowAction::decode(r.value.data) {
            Some(FlowAction::Drop(_)) => FlowEvent::Denied,
            _ => FlowEvent::Created,
        };
        self.record(&mut t, event, last_ms);
        self.tracked.insert(r.index, t);
    }

    /// Entry `index` was removed by aging for `reason`.
    pub fn removed(&mut self, index: u32, reason: EndReason) {
        if let Some(mut t) = self.tracked.remove(&index) {
            let end = t.last_seen_ms;
            self.record(&mut t, FlowEvent::Ended(reason), end);
        }
    }

    /// Ends the pass: entries not visited are gone by another path. Returns the
    /// records of the pass.
    pub fn end_pass(&mut self) -> Vec<FlowRecord> {
        // One walk: the visited are reset for the next pass, the others collected.
        let mut gone = Vec::new();
        for (index, t) in &mut self.tracked {
            if !std::mem::take(&mut t.visited) {
                gone.push(*index);
            }
        }
        for index in gone {
            self.removed(index, EndReason::Forced);
        }
        std::mem::take(&mut self.records)
    }

    /// Ends every tracked flow (the vrouter stops: its flow table goes with it).
    pub fn end_all(&mut self) -> Vec<FlowRecord> {
        self.pass.0 = unix_ms();
        self.tracked.values_mut().for_each(|t| t.visited = false);
        self.end_pass()
    }

    /// Entries tracked now.
    pub fn len(&self) -> usize {
        self.tracked.len()
    }

    /// True when no entry is tracked.
    pub fn is_empty(&self) -> bool {
        self.tracked.is_empty()
    }
}

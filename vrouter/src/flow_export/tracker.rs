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

/// Flow entries seen, by entry index.
#[derive(Debug)]
pub struct FlowTracker {
    tracked: HashMap<u32, Tracked>,
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
            tracked: HashMap::new(),
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
        let (packets, bytes) = (
            t.seen.0.saturating_sub(t.exported.0),
            t.seen.1.saturating_sub(t.exported.1),
        );
        t.exported = t.seen;
        t.last_record_ms = self.pass.0;
        self.records.push(FlowRecord {
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

    /// Visits entry `r` with its `activity` and its translation (if translated): a new one gets its first record, a long one a
    /// periodic record.
    pub fn visit(&mut self, r: &FlowRef, activity: FlowActivity, transform: Option<super::Translation>) {
        let last_ms = self.wall(activity.last_seen);
        let mut ended = None;
        let mut t = match self.tracked.get(&r.index) {
            // Counts that went back: the same connection again in a recycled entry.
            Some(t) if t.key == r.key && activity.packets >= t.seen.0 => *t,
            other => {
                ended = other.copied();
                let mut t = Tracked {
                    key: r.key,
                    owner: r.value.owner,
                    data: r.value.data,
                    transform,
                    start_ms: last_ms.min(self.pass.0),
                    seen: (0, 0),
                    exported: (0, 0),
                    last_seen_ms: last_ms,
                    last_record_ms: 0,
                    visited: true,
                };
                t.seen = (activity.packets, activity.bytes);
                let event = match FlowAction::decode(r.value.data) {
                    Some(FlowAction::Drop(_)) => FlowEvent::Denied,
                    _ => FlowEvent::Created,
                };
                self.record(&mut t, event, last_ms);
                t
            }
        };
        if let Some(mut old) = ended {
            // The index was reused for another flow since the last pass.
            let end = old.last_seen_ms;
            self.record(&mut old, FlowEvent::Ended(EndReason::Forced), end);
        }
        t.seen = (activity.packets, activity.bytes);
        t.last_seen_ms = last_ms;
        t.data = r.value.data;
        t.transform = transform;
        t.visited = true;
        if self.pass.0.saturating_sub(t.last_record_ms) >= self.active_timeout_ms && t.seen != t.exported {
            self.record(&mut t, FlowEvent::Updated, last_ms);
        }
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
        let gone: Vec<u32> = self
            .tracked
            .iter()
            .filter(|(_, t)| !t.visited)
            .map(|(i, _)| *i)
            .collect();
        for index in gone {
            self.removed(index, EndReason::Forced);
        }
        self.tracked.values_mut().for_each(|t| t.visited = false);
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

//! The latest flow records, kept for `vrouter flow watch`: a bounded ring the aging
//! thread appends to and the API reads from, each record numbered so a reader asks
//! for what came after the last it saw and learns how many it missed.

use super::{nat_view, FlowEvent, FlowRecord};
use crate::flows::FlowAction;
use nexthop::{Nat, Snapshot};
use std::collections::VecDeque;
use std::sync::Mutex;
use vrouter_api::{FlowRecordView, FlowRecordsView, MAX_FLOWS_PER_ANSWER};

/// The ring.
#[derive(Debug)]
pub struct RecentRecords {
    capacity: usize,
    /// The records and the number of the newest.
    ring: Mutex<(VecDeque<FlowRecordView>, u64)>,
}

impl RecentRecords {
    /// A ring of `capacity` records (0: none kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ring: Mutex::new((VecDeque::with_capacity(capacity.min(1 << 16)), 0)),
        }
    }

    /// True if records are kept.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Appends `records`, described with `snap` (VRF names, translations, policy).
    pub fn push(&self, records: &[FlowRecord], snap: &Snapshot) {
        if self.capacity == 0 || records.is_empty() {
            return;
        }
        // Only the newest `capacity` can stay: the others are numbered, not described
        // (a pass over a full table makes a record per flow).
        let skipped = records.len().saturating_sub(self.capacity);
        let views: Vec<FlowRecordView> = records[skipped..].iter().map(|r| view(r, snap)).collect();
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if skipped > 0 {
            ring.0.clear();
            ring.1 += skipped as u64;
        }
        for mut v in views {
            ring.1 += 1;
            v.seq = ring.1;
            if ring.0.len() == self.capacity {
                ring.0.pop_front();
            }
            ring.0.push_back(v);
        }
    }

    /// The records after number `after`, at most `limit`.
    pub fn since(&self, after: u64, limit: usize) -> FlowRecordsView {
        let limit = limit.clamp(1, MAX_FLOWS_PER_ANSWER);
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        // A reader ahead of the newest (u64::MAX: "only new ones") starts there.
        let after = after.min(ring.1);
        let oldest = ring.0.front().map_or(ring.1 + 1, |r| r.seq);
        let lost = oldest.saturating_sub(after.saturating_add(1));
        let records: Vec<FlowRecordView> = ring.0.iter().filter(|r| r.seq > after).take(limit).cloned().collect();
        FlowRecordsView {
            last: records.last().map_or(after.max(oldest.saturating_sub(1)), |r| r.seq),
            records,
            lost,
            enabled: self.enabled(),
        }
    }
}

fn view(r: &FlowRecord, snap: &Snapshot) -> FlowRecordView {
    let k = &r.key;
    let (event, end_reason) = match r.event {
        FlowEvent::Created => ("created", None),
        FlowEvent::Denied => ("denied", None),
        FlowEvent::Updated => ("updated", None),
        FlowEvent::Ended(why) => ("ended", Some(why.label().to_string())),
    };
    let action = match FlowAction::decode(r.data) {
        Some(FlowAction::Drop(reason)) => format!("drop {}", reason.label()),
        Some(FlowAction::Forward(_)) => "forward".to_string(),
        None => "unknown".to_string(),
    };
    let translation = r.transform.and_then(|t| Some((Nat::decode(t.nat)?, t.pair)));
    FlowRecordView {
        seq: 0,
        event: event.to_string(),
        end_reason,
        vrf: snap
            .vrf(nexthop::VrfId(k.vrf()))
            .map(|v| v.name.clone())
            .unwrap_or_default(),
        src: k.src_addr(),
        dst: k.dst_addr(),
        proto: k.proto(),
        src_port: k.src_port(),
        dst_port: k.dst_port(),
        interface: r.owner,
        action,
        nat: translation.and_then(|(n, pair)| nat_view(snap, k, n, pair.as_ref())),
        policy: crate::control::views::policy::flow_policy(snap, k, FlowAction::is_reverse(r.data), translation),
        packets: r.packets,
        bytes: r.bytes,
        total_packets: r.total_packets,
        total_bytes: r.total_bytes,
        start_ms: r.start_ms,
        end_ms: r.end_ms,
    }
}

//! Which flows began, went on and ended between two aging passes, as records with
//! the packets and bytes since each flow's previous record. The aging thread drives
//! it: it visits every entry once a pass and removes the expired ones, so it sees
//! every flow that lives until aging ends it; a flow removed by another path (a
//! backend re-steer, a detached port) is ended at the next pass with the counts it
//! last had. Nothing here runs on a forwarding core.
//!
//! Per entry index up to the highest one used, a 48-byte slot in an array, which the
//! pass walks in index order beside the table (at most the table's entries times 48
//! bytes: 96 MB for 2M entries), and per tracked flow about 80 bytes of details read
//! only when a record is made. The map of whole records it replaces took about 190
//! bytes a flow, probed at random every pass.

use super::{FlowEvent, FlowRecord, Translation};
use crate::flows::FlowAction;
use flow_table::{FlowActivity, FlowKey, FlowRef};

/// The tag of a flow key: the table's own hash of it (the pass tags every flow of the
/// table every second), never 0 (an empty slot's).
fn tag(key: &FlowKey) -> u64 {
    key.hash() | 1
}

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

/// What every pass reads and writes of a tracked entry, in an array by entry index
/// (48 bytes): the pass walks the table in index order and this array beside it,
/// sequentially, instead of probing a hash map of whole records at random.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// The tracked flow's key tag; 0 when no flow is tracked at this index.
    tag: u64,
    /// Packets and bytes at the last pass.
    seen: (u64, u64),
    /// Its decision word (a policy change re-decides it in place).
    data: u64,
    /// Coarse clock of its last packet, and of its last record.
    last_seen: u32,
    last_record: u32,
    /// Its details in [`FlowTracker::details`].
    detail: u32,
    /// Packets came since its last record.
    unrecorded: bool,
}

/// What only a record needs: read when one is made (a flow's first, its periodic
/// ones, its end).
#[derive(Debug, Clone)]
struct Detail {
    key: FlowKey,
    owner: u32,
    /// Boxed: most flows are not translated.
    transform: Option<Box<Translation>>,
    start_ms: u64,
    /// Counts at the last record.
    exported: (u64, u64),
}

/// Flow entries seen, by entry index.
#[derive(Debug)]
pub struct FlowTracker {
    slots: Vec<Slot>,
    /// Details, by [`Slot::detail`], and the free places among them.
    details: Vec<Detail>,
    free: Vec<u32>,
    /// One bit per slot: visited in this pass.
    visited: Vec<u64>,
    /// Flows tracked, and visited in this pass: when both agree no flow went by
    /// another path, and the end of the pass walks nothing.
    tracked: usize,
    visited_count: usize,
    active_timeout_secs: u32,
    /// The flow table's entries: the slots never outgrow it.
    capacity: usize,
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
    /// A tracker of a table of `capacity` entries, sending a record for a long flow
    /// every `active_timeout_secs`.
    pub fn new(active_timeout_secs: u32, capacity: u32) -> Self {
        Self {
            slots: Vec::new(),
            details: Vec::new(),
            free: Vec::new(),
            visited: Vec::new(),
            tracked: 0,
            visited_count: 0,
            active_timeout_secs: active_timeout_secs.max(1),
            capacity: capacity as usize,
            pass: (0, 0),
            records: Vec::new(),
        }
    }

    /// The most a tracker of a table of `capacity` entries takes: a slot per entry,
    /// and the details of a flow in every one (with a translation, and a place on
    /// the free list).
    pub fn memory_bytes_for(capacity: u32) -> usize {
        use std::mem::size_of;
        let per_flow = size_of::<Detail>() + size_of::<Translation>() + size_of::<u32>();
        capacity as usize * (size_of::<Slot>() + per_flow)
    }

    /// What it takes now (each vector's capacity, and the translations it holds),
    /// never above [`FlowTracker::memory_bytes_for`] its table.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let translations = self.details.iter().filter(|d| d.transform.is_some()).count();
        self.slots.capacity() * size_of::<Slot>()
            + self.details.capacity() * size_of::<Detail>()
            + translations * size_of::<Translation>()
            + self.free.capacity() * size_of::<u32>()
    }

    /// `v` with room for one more, grown as the slots are: by half again, to the
    /// table's size at most, exactly (a vector's doubling would pass the bound
    /// [`FlowTracker::memory_bytes_for`] states).
    fn room_for_one_more<T>(v: &mut Vec<T>, capacity: usize) {
        if v.len() == v.capacity() {
            let len = (v.len() + 1).max((v.len() + v.len() / 2).min(capacity));
            v.reserve_exact(len - v.len());
        }
    }

    /// Starts a pass at coarse time `now`.
    pub fn begin_pass(&mut self, now: u32) {
        self.pass = (unix_ms(), now);
    }

    /// The wall clock of coarse time `coarse`.
    fn wall(&self, coarse: u32) -> u64 {
        self.pass
            .0
            .saturating_sub(u64::from(self.pass.1.saturating_sub(coarse)) * 1000)
    }

    fn mark_visited(&mut self, index: usize) {
        let (word, bit) = (index / 64, 1u64 << (index % 64));
        if self.visited[word] & bit == 0 {
            self.visited[word] |= bit;
            self.visited_count += 1;
        }
    }

    fn was_visited(&self, index: usize) -> bool {
        self.visited[index / 64] & (1u64 << (index % 64)) != 0
    }

    /// Appends the record of slot `index` for `event`: the counts since its previous
    /// record, its last packet at `end_ms`.
    fn record(&mut self, index: usize, event: FlowEvent, end_ms: u64) {
        let slot = &mut self.slots[index];
        slot.last_record = self.pass.1;
        slot.unrecorded = false;
        let d = &mut self.details[slot.detail as usize];
        let (packets, bytes) = (
            slot.seen.0.saturating_sub(d.exported.0),
            slot.seen.1.saturating_sub(d.exported.1),
        );
        d.exported = slot.seen;
        self.records.push(FlowRecord {
            key: d.key,
            owner: d.owner,
            data: slot.data,
            transform: d.transform.as_deref().copied(),
            packets,
            bytes,
            total_packets: slot.seen.0,
            total_bytes: slot.seen.1,
            start_ms: d.start_ms,
            end_ms: end_ms.max(d.start_ms),
            event,
        });
    }

    /// Ends the flow tracked at `index` (if any) for `reason`, freeing its slot.
    fn end(&mut self, index: usize, reason: EndReason) {
        if self.slots.get(index).is_none_or(|s| s.tag == 0) {
            return;
        }
        let end = self.wall(self.slots[index].last_seen);
        self.record(index, FlowEvent::Ended(reason), end);
        let slot = std::mem::take(&mut self.slots[index]);
        Self::room_for_one_more(&mut self.free, self.capacity);
        self.free.push(slot.detail);
        self.details[slot.detail as usize].transform = None;
        self.tracked -= 1;
        if self.was_visited(index) {
            self.visited[index / 64] &= !(1u64 << (index % 64));
            self.visited_count -= 1;
        }
    }

    /// Visits entry `r` with its `activity`; `transform` gives its translation (if
    /// translated), asked only when a record is made (the flow's first, a long
    /// flow's periodic one). A new one gets its first record, a long one a periodic
    /// record.
    pub fn visit(&mut self, r: &FlowRef, activity: FlowActivity, transform: impl FnOnce() -> Option<Translation>) {
        let index = r.index as usize;
        if index >= self.slots.len() {
            // Grown by half again (a filling table is not copied once per flow), to
            // the table's size at most, and exactly (no spare capacity).
            let len = (index + 1).max((self.slots.len() + self.slots.len() / 2).min(self.capacity));
            self.slots.reserve_exact(len - self.slots.len());
            self.slots.resize(len, Slot::default());
            self.visited.resize(len.div_ceil(64), 0);
        }
        let tag = tag(&r.key);
        // The common case, a flow seen before: updated in place, its slot alone.
        // Counts that went back mean a new connection with the same key in a
        // recycled entry: that one goes the slow way, as a new flow.
        let slot = &mut self.slots[index];
        if slot.tag == tag && activity.packets >= slot.seen.0 {
            slot.unrecorded |= activity.packets != slot.seen.0;
            slot.seen = (activity.packets, activity.bytes);
            slot.last_seen = activity.last_seen;
            slot.data = r.value.data;
            let due = slot.unrecorded && self.pass.1.saturating_sub(slot.last_record) >= self.active_timeout_secs;
            let detail = slot.detail as usize;
            self.mark_visited(index);
            if due {
                // Fixed at setup; asked again only if it was not known then.
                if self.details[detail].transform.is_none() {
                    self.details[detail].transform = transform().map(Box::new);
                }
                self.record(index, FlowEvent::Updated, self.wall(activity.last_seen));
            }
            return;
        }
        // New, or the index was reused for another flow since the last pass.
        self.end(index, EndReason::Forced);
        let last_ms = self.wall(activity.last_seen);
        let detail = Detail {
            key: r.key,
            owner: r.value.owner,
            transform: transform().map(Box::new),
            start_ms: last_ms.min(self.pass.0),
            exported: (0, 0),
        };
        let place = match self.free.pop() {
            Some(place) => {
                self.details[place as usize] = detail;
                place
            }
            None => {
                Self::room_for_one_more(&mut self.details, self.capacity);
                self.details.push(detail);
                u32::try_from(self.details.len() - 1).expect("fewer flows than entry indexes")
            }
        };
        self.slots[index] = Slot {
            tag,
            seen: (activity.packets, activity.bytes),
            data: r.value.data,
            last_seen: activity.last_seen,
            last_record: self.pass.1,
            detail: place,
            unrecorded: false,
        };
        self.tracked += 1;
        self.mark_visited(index);
        let event = match FlowAction::decode(r.value.data) {
            Some(FlowAction::Drop(_)) => FlowEvent::Denied,
            _ => FlowEvent::Created,
        };
        self.record(index, event, last_ms);
    }

    /// Entry `index` was removed by aging for `reason`.
    pub fn removed(&mut self, index: u32, reason: EndReason) {
        self.end(index as usize, reason);
    }

    /// Ends the pass: entries not visited are gone by another path. Returns the
    /// records of the pass.
    pub fn end_pass(&mut self) -> Vec<FlowRecord> {
        if self.visited_count < self.tracked {
            let gone: Vec<usize> = (0..self.slots.len())
                .filter(|i| self.slots[*i].tag != 0 && !self.was_visited(*i))
                .collect();
            for index in gone {
                self.end(index, EndReason::Forced);
            }
        }
        self.visited.iter_mut().for_each(|w| *w = 0);
        self.visited_count = 0;
        std::mem::take(&mut self.records)
    }

    /// Ends every tracked flow (the vrouter stops: its flow table goes with it).
    pub fn end_all(&mut self) -> Vec<FlowRecord> {
        self.pass.0 = unix_ms();
        self.visited.iter_mut().for_each(|w| *w = 0);
        self.visited_count = 0;
        self.end_pass()
    }

    /// Entries tracked now.
    pub fn len(&self) -> usize {
        self.tracked
    }

    /// True when no entry is tracked.
    pub fn is_empty(&self) -> bool {
        self.tracked == 0
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_slot_stays_48_bytes_and_a_detail_80() {
        assert_eq!(std::mem::size_of::<super::Slot>(), 48);
        assert_eq!(std::mem::size_of::<super::Detail>(), 80);
    }
}

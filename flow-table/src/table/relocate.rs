//! Making room when both of a key's buckets are full: one entry of either bucket
//! moves to its own other bucket (one cuckoo step).
//!
//! Inserts fill a key's home bucket first so that lookups nearly always find it there,
//! but then two full buckets turn up well before the table is full: at half the slots
//! in use (a table of 2M entries holding 1M), about one insert in a million found both
//! of its buckets full and was refused. A move holds the entry's write lock (its state
//! is WRITING, as for an update): removals deactivate first and fail meanwhile, so the
//! entry is neither freed nor reused halfway, and it is indexed in its new slot before
//! the old slot is cleared, so lookups always find it.

use super::*;

impl FlowTable {
    /// Frees a slot in one of `hash`'s buckets by moving an entry out to its other
    /// bucket; false if no entry of either bucket has room in its other bucket.
    pub(super) fn make_room(&self, hash: u64) -> bool {
        self.buckets_of(hash)
            .into_iter()
            .any(|b| (0..SLOTS).any(|s| self.move_out(b, s)))
    }

    /// Moves the entry in slot `s` of bucket `from` to a free slot of its other bucket.
    fn move_out(&self, from: usize, s: usize) -> bool {
        let slot = &self.buckets[from].0[s];
        let word = slot.load(Ordering::Acquire);
        if word == 0 {
            return true; // freed meanwhile: room already
        }
        let Some(r) = self.read((word as u32).wrapping_sub(1)) else {
            return false;
        };
        let hash = r.key.hash();
        let to = match self.buckets_of(hash) {
            _ if tag_of(hash) != word >> 32 => return false,
            [home, alt] if home == from && alt != from => alt,
            [home, alt] if alt == from && home != from => home,
            _ => return false,
        };
        let Some(free) = self.buckets[to].0.iter().find(|t| t.load(Ordering::Relaxed) == 0) else {
            return false;
        };
        if !self.lock(r.index, r.version) {
            return false;
        }
        let moved = free
            .compare_exchange(0, word, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok();
        if moved {
            // Only a removal clears an entry's slot, and removals of an entry being
            // written fail at their first step: this slot still holds the word.
            let cleared = slot.compare_exchange(word, 0, Ordering::AcqRel, Ordering::Relaxed);
            debug_assert!(cleared.is_ok(), "slot of a locked entry changed");
        }
        self.unlock(r.index, r.version);
        moved
    }
}

#[cfg(loom)]
impl FlowTable {
    /// Moves `key`'s entry to its other bucket, as a full bucket would (for the loom
    /// models); false if it is not indexed or cannot move.
    pub fn move_for_model(&self, key: &FlowKey) -> bool {
        let hash = key.hash();
        let Some(found) = self.lookup(key, hash) else {
            return false;
        };
        let word = tag_of(hash) << 32 | u64::from(found.index + 1);
        self.buckets_of(hash)
            .into_iter()
            .any(|b| (0..SLOTS).any(|s| self.buckets[b].0[s].load(Ordering::Acquire) == word && self.move_out(b, s)))
    }

    /// Index slots in use (for the loom models: nothing may be left behind).
    pub fn occupied_slots(&self) -> usize {
        self.buckets
            .iter()
            .flat_map(|b| &b.0)
            .filter(|s| s.load(Ordering::Acquire) != 0)
            .count()
    }
}

//! Inserting and removing entries: the free list, filling entries, claiming index
//! slots by CAS, and resolving races between concurrent inserts of one key.

use super::*;

impl FlowTable {
    pub(super) fn alloc(&self) -> Option<u32> {
        loop {
            let head = self.free_head.load(Ordering::Acquire);
            let Some(idx) = (head as u32).checked_sub(1) else { break };
            let next = self.entries[idx as usize].link.load(Ordering::Relaxed) & 0xffff_ffff;
            let new = ((head >> 32).wrapping_add(1) << 32) | next;
            if self
                .free_head
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Some(idx);
            }
        }
        let idx = self.high_water.fetch_add(1, Ordering::Relaxed);
        if idx < self.capacity() {
            return Some(idx);
        }
        self.high_water.fetch_sub(1, Ordering::Relaxed);
        None
    }

    pub(super) fn release(&self, idx: u32) {
        let e = &self.entries[idx as usize];
        // Seqlock writer side: the state change that freed the entry must be visible
        // to any reader that sees the link word change below.
        fence(Ordering::Release);
        loop {
            let head = self.free_head.load(Ordering::Acquire);
            e.link.store(head & 0xffff_ffff, Ordering::Relaxed);
            let new = ((head >> 32).wrapping_add(1) << 32) | u64::from(idx + 1);
            if self
                .free_head
                .compare_exchange_weak(head, new, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Fills a freshly allocated entry, with its transform, and makes it active (not
    /// yet indexed): a reader that finds it sees the transform too.
    pub(super) fn fill(&self, idx: u32, key: &FlowKey, value: FlowValue, reverse: Option<u32>, transform: u64) -> u32 {
        let e = &self.entries[idx as usize];
        let seq = e.state.load(Ordering::Relaxed) >> 2;
        e.state.store((seq << 2) | WRITING, Ordering::Relaxed);
        fence(Ordering::Release);
        for (slot, w) in e.key.iter().zip(key.words()) {
            slot.store(w, Ordering::Relaxed);
        }
        e.data.store(value.data, Ordering::Relaxed);
        e.link.store(
            u64::from(value.generation) << 32 | u64::from(reverse.map_or(0, |r| r + 1)),
            Ordering::Relaxed,
        );
        let st = &self.stats[idx as usize];
        st.extra.store(u64::from(value.owner), Ordering::Relaxed);
        st.packets.store(0, Ordering::Relaxed);
        st.transform.store(transform, Ordering::Relaxed);
        st.bytes.store(0, Ordering::Relaxed);
        e.last_seen.store(self.now(), Ordering::Relaxed);
        let version = ((seq + 1) << 2) | ACTIVE;
        e.state.store(version, Ordering::Release);
        version
    }

    /// Deactivates entry `idx` if it still has `version`; true if this call did it.
    pub(super) fn deactivate(&self, idx: u32, version: u32) -> bool {
        let e = &self.entries[idx as usize];
        let next = (((version >> 2) + 1) << 2) | FREE;
        e.state
            .compare_exchange(version, next, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Indexes active entry `idx` under `key`; returns the surviving entry for the key
    /// (`idx` itself, or an earlier copy, in which case `idx` was dropped).
    /// Both buckets full: one entry moves to its other bucket ([`FlowTable::make_room`])
    /// and the claim is tried again, twice at most.
    pub(super) fn index(&self, key: &FlowKey, hash: u64, idx: u32) -> Result<u32, ()> {
        for attempt in 0..3 {
            if let Some(claimed) = self.claim(key, hash, idx) {
                return Ok(claimed);
            }
            if attempt == 2 || !self.make_room(hash) {
                break;
            }
        }
        Err(())
    }

    /// One pass over the key's buckets: claims a free slot for `idx` (and returns the
    /// surviving entry), or returns an existing entry of the key; `None` when full.
    fn claim(&self, key: &FlowKey, hash: u64, idx: u32) -> Option<u32> {
        let tag = tag_of(hash);
        let word = tag << 32 | u64::from(idx + 1);
        for b in self.buckets_of(hash) {
            for s in 0..SLOTS {
                let slot = &self.buckets[b].0[s];
                let mut current = slot.load(Ordering::Acquire);
                if current == 0 {
                    match slot.compare_exchange(0, word, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => {
                            self.counters.active.fetch_add(1, Ordering::Relaxed);
                            self.counters.created.fetch_add(1, Ordering::Relaxed);
                            return Some(self.reconcile(key, hash, (b, s), idx));
                        }
                        Err(now) => current = now,
                    }
                }
                if current >> 32 == tag {
                    let other = current as u32 - 1;
                    if self.read(other).is_some_and(|r| r.key == *key) {
                        return Some(other);
                    }
                }
            }
        }
        None
    }

    /// After claiming `pos` for `idx`: if another copy of the key exists, the one at
    /// the lower position survives and the other is removed.
    pub(super) fn reconcile(&self, key: &FlowKey, hash: u64, pos: (usize, usize), idx: u32) -> u32 {
        let mut survivor = idx;
        for (b, s, other) in self.candidates(hash) {
            if other == idx {
                continue;
            }
            let Some(r) = self.read(other).filter(|r| r.key == *key) else {
                continue;
            };
            if (b, s) < pos {
                survivor = other;
            } else {
                self.remove_at(b, s, &r);
            }
        }
        if survivor != idx {
            let version = self.entries[idx as usize].state.load(Ordering::Acquire);
            let (b, s) = pos;
            if let Some(r) = self.read(idx).filter(|r| r.version == version) {
                self.remove_at(b, s, &r);
            }
        }
        survivor
    }

    /// Removes the entry `r` indexed at `(b, s)`.
    pub(super) fn remove_at(&self, b: usize, s: usize, r: &FlowRef) {
        if !self.deactivate(r.index, r.version) {
            return;
        }
        let word = tag_of(r.key.hash()) << 32 | u64::from(r.index + 1);
        let _ = self.buckets[b].0[s].compare_exchange(word, 0, Ordering::AcqRel, Ordering::Relaxed);
        self.release(r.index);
        self.counters.active.fetch_sub(1, Ordering::Relaxed);
        self.counters.deleted.fetch_add(1, Ordering::Relaxed);
    }

    /// Removes the entry `r` (as found by a lookup); false if it changed or was gone.
    pub fn remove(&self, r: &FlowRef) -> bool {
        let hash = r.key.hash();
        let word = tag_of(hash) << 32 | u64::from(r.index + 1);
        for b in self.buckets_of(hash) {
            for s in 0..SLOTS {
                if self.buckets[b].0[s].load(Ordering::Acquire) == word {
                    let before = self.counters.deleted.load(Ordering::Relaxed);
                    self.remove_at(b, s, r);
                    return self.counters.deleted.load(Ordering::Relaxed) != before;
                }
            }
        }
        false
    }

    /// Creates both directions of a flow, linked to each other. Returns the existing
    /// forward entry if another worker created it first; the forward entry alone if
    /// another entry holds the reverse key ([`Insert::Alone`]); `Full` (and counts it)
    /// if there is no room, leaving nothing behind.
    pub fn insert_pair(&self, forward: (&FlowKey, FlowValue), reverse: (&FlowKey, FlowValue)) -> Insert {
        self.insert_pair_transformed(forward, reverse, (0, 0))
    }

    /// [`FlowTable::insert_pair`] with each direction's transform (see
    /// [`FlowTable::transform`]) in place before either entry can be found.
    pub fn insert_pair_transformed(
        &self,
        forward: (&FlowKey, FlowValue),
        reverse: (&FlowKey, FlowValue),
        transforms: (u64, u64),
    ) -> Insert {
        let (fk, fv) = forward;
        let (rk, rv) = reverse;
        let (fh, rh) = (fk.hash(), rk.hash());
        if let Some(found) = self.lookup(fk, fh) {
            return Insert::Exists(found);
        }
        let Some(fi) = self.alloc() else {
            self.counters.full.fetch_add(1, Ordering::Relaxed);
            return Insert::Full;
        };
        let Some(ri) = self.alloc() else {
            self.release(fi);
            self.counters.full.fetch_add(1, Ordering::Relaxed);
            return Insert::Full;
        };
        let fver = self.fill(fi, fk, fv, Some(ri), transforms.0);
        let rver = self.fill(ri, rk, rv, Some(fi), transforms.1);
        match self.index(fk, fh, fi) {
            Ok(winner) if winner == fi => {}
            Ok(winner) => {
                self.discard(ri, rver);
                self.discard(fi, fver);
                return self
                    .read(winner)
                    .map_or_else(|| self.existing_or_full(fk, fh), Insert::Exists);
            }
            Err(()) => {
                self.counters.full.fetch_add(1, Ordering::Relaxed);
                self.discard(ri, rver);
                self.discard(fi, fver);
                return Insert::Full;
            }
        }
        match self.index(rk, rh, ri) {
            Ok(winner) if winner == ri => {}
            // The reverse key exists (the flow was seen from the other side in the
            // same instant): keep the forward entry, linked to nothing.
            Ok(_) => {
                self.discard(ri, rver);
                self.unlink(fi);
            }
            Err(()) => {
                self.counters.full.fetch_add(1, Ordering::Relaxed);
                self.discard(ri, rver);
                if let Some(f) = self.read(fi).filter(|f| f.version == fver) {
                    self.remove(&f);
                }
                return Insert::Full;
            }
        }
        // Both ours and linked: inserted. A reverse entry discarded above may already
        // be another insert's (the free list hands it out again): that is no pair.
        match (self.read(fi), self.read(ri)) {
            (Some(forward), Some(reverse))
                if forward.version == fver && reverse.version == rver && forward.reverse == Some(ri) =>
            {
                Insert::Inserted { forward, reverse }
            }
            (Some(forward), _) if forward.version == fver && forward.reverse.is_none() => Insert::Alone(forward),
            _ => self.existing_or_full(fk, fh),
        }
    }

    pub(super) fn existing_or_full(&self, key: &FlowKey, hash: u64) -> Insert {
        self.lookup(key, hash).map_or(Insert::Full, Insert::Exists)
    }

    /// Frees an entry filled by this thread that holds no slot, unless it changed
    /// since (then someone else already removed and maybe reused it).
    pub(super) fn discard(&self, idx: u32, version: u32) {
        if self.deactivate(idx, version) {
            self.release(idx);
        }
    }

    /// Clears the reverse link (a single word: readers see it before or after).
    pub(super) fn unlink(&self, idx: u32) {
        let e = &self.entries[idx as usize];
        let link = e.link.load(Ordering::Relaxed);
        e.link.store(link & !0xffff_ffff, Ordering::Relaxed);
    }
}

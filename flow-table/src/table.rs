//! The concurrent table: an index of 8-slot buckets (one cache line each, two
//! candidate buckets per key) over a slab of entries.
//!
//! Slot word: `tag << 32 | (entry + 1)`, 0 when empty. Entry state word:
//! `seq << 2 | status`; `seq` grows on every change, so a reader that copied an entry
//! can tell whether it changed under it (a seqlock), and a recycled entry never passes
//! for the one that was deleted (the generation scheme that makes reuse safe without
//! epochs: entries are recycled, never unmapped).
//!
//! Inserts claim an empty slot by CAS. Two workers inserting the same key race only
//! when a deletion in the same bucket opens a hole between their scans; every inserter
//! re-scans after claiming, and the copy at the lowest position survives.

use crate::key::FlowKey;
use crate::sync::{fence, AtomicU32, AtomicU64, Ordering};

mod insert;
mod relocate;

const SLOTS: usize = 8;
const FREE: u32 = 0;
const ACTIVE: u32 = 1;
const WRITING: u32 = 2;
const STATUS_MASK: u32 = 3;
/// Tries before a reader gives up on an entry that keeps changing.
const READ_RETRIES: usize = 8;

/// What the table stores for a flow besides its key: the caller's decision word and
/// the forwarding-state generation it was made under, and the interface that created
/// the flow (for per-interface limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowValue {
    /// The caller's encoded decision.
    pub data: u64,
    /// Generation of the forwarding state the decision was made under.
    pub generation: u32,
    /// The interface the flow's first packet came from.
    pub owner: u32,
}

/// A found entry: where it is, which version was read, and what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRef {
    /// Entry index.
    pub index: u32,
    /// The state word read (for updates that must not hit a recycled entry).
    pub version: u32,
    /// The key.
    pub key: FlowKey,
    /// The value.
    pub value: FlowValue,
    /// The reverse entry, if linked.
    pub reverse: Option<u32>,
}

/// The outcome of [`FlowTable::insert_pair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Both directions were created.
    Inserted {
        /// The forward entry.
        forward: FlowRef,
        /// The reverse entry.
        reverse: FlowRef,
    },
    /// The forward key was present already (another worker won the race).
    Exists(FlowRef),
    /// The forward entry was created, but another entry holds the reverse key (the
    /// flow seen from the other side in the same instant, or, for a translated flow,
    /// another flow's reply tuple): the forward entry stands alone, linked to nothing.
    /// A caller for whom that is no flow removes it.
    Alone(FlowRef),
    /// No room: a flow that cannot be set up is dropped by the caller.
    Full,
}

/// Table-wide counters.
#[derive(Debug, Default)]
struct Counters {
    active: AtomicU64,
    created: AtomicU64,
    deleted: AtomicU64,
    full: AtomicU64,
}

/// A point-in-time copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TableStats {
    /// Entries in use (each direction counts).
    pub active: u64,
    /// Entries ever created.
    pub created: u64,
    /// Entries ever deleted.
    pub deleted: u64,
    /// Pair insertions refused for lack of room.
    pub full: u64,
    /// Entry capacity.
    pub capacity: u64,
}

/// The hot part of an entry: exactly one cache line, read by every lookup.
#[derive(Debug)]
#[repr(C, align(64))]
struct Entry {
    state: AtomicU32,
    last_seen: AtomicU32,
    key: [AtomicU64; 5],
    data: AtomicU64,
    /// `reverse + 1` in the low half, generation in the high half; the next free
    /// entry while free.
    link: AtomicU64,
}

impl Entry {
    fn new() -> Self {
        Self {
            state: AtomicU32::new(FREE),
            last_seen: AtomicU32::new(0),
            key: [
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
                AtomicU64::new(0),
            ],
            data: AtomicU64::new(0),
            link: AtomicU64::new(0),
        }
    }
}

/// The per-packet counters of an entry, apart from the hot line so that counting
/// does not invalidate other workers' cached copies of the key; 32 bytes, aligned,
/// so that an entry's counters never straddle two cache lines.
#[derive(Debug, Default)]
#[repr(align(32))]
struct EntryStats {
    /// Owner interface in the low half, TCP flags seen in bits 32..40.
    extra: AtomicU64,
    packets: AtomicU64,
    bytes: AtomicU64,
    /// The caller's reference to the flow's transform (see [`FlowTable::transform`]).
    transform: AtomicU64,
}

/// One cache line of slots.
#[derive(Debug)]
#[repr(align(64))]
struct Bucket([AtomicU64; SLOTS]);

/// The flow table. Shared by reference (`Arc`) between workers and the control side;
/// every method takes `&self`.
#[derive(Debug)]
pub struct FlowTable {
    buckets: Box<[Bucket]>,
    entries: Box<[Entry]>,
    stats: Box<[EntryStats]>,
    bucket_mask: u64,
    free_head: AtomicU64,
    high_water: AtomicU32,
    now: AtomicU32,
    counters: Counters,
}

#[inline]
fn tag_of(hash: u64) -> u64 {
    (hash >> 32) | 1
}

impl FlowTable {
    /// A table for `capacity` entries (each direction of a flow is one entry). The
    /// index gets about 1.6 slots per entry, rounded to a power of two of buckets.
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.max(2);
        let buckets = Self::buckets_for(capacity);
        Self {
            buckets: crate::memory::boxed_slice(buckets as usize, || {
                Bucket(std::array::from_fn(|_| AtomicU64::new(0)))
            }),
            entries: crate::memory::boxed_slice(capacity as usize, Entry::new),
            stats: crate::memory::boxed_slice(capacity as usize, EntryStats::default),
            bucket_mask: buckets - 1,
            free_head: AtomicU64::new(0),
            high_water: AtomicU32::new(0),
            now: AtomicU32::new(0),
            counters: Counters::default(),
        }
    }

    /// Entry capacity.
    pub fn capacity(&self) -> u32 {
        self.entries.len() as u32
    }

    fn buckets_for(capacity: u32) -> u64 {
        ((u64::from(capacity.max(2)) * 8 / 5).div_ceil(SLOTS as u64))
            .next_power_of_two()
            .max(2)
    }

    /// The memory [`FlowTable::new`] allocates for `capacity` entries (to check
    /// before allocating: an allocation that fails aborts the process).
    pub fn memory_bytes_for(capacity: u32) -> usize {
        let capacity = capacity.max(2);
        Self::buckets_for(capacity) as usize * std::mem::size_of::<Bucket>()
            + capacity as usize * (std::mem::size_of::<Entry>() + std::mem::size_of::<EntryStats>())
    }

    /// Bytes of memory the table holds.
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.buckets)
            + std::mem::size_of_val(&*self.entries)
            + std::mem::size_of_val(&*self.stats)
    }

    /// The two candidate buckets of a hash.
    #[inline]
    fn buckets_of(&self, hash: u64) -> [usize; 2] {
        let b1 = hash & self.bucket_mask;
        let mut b2 = tag_of(hash).wrapping_mul(0x9e37_79b9) & self.bucket_mask;
        if b2 == b1 {
            b2 = (b1 + 1) & self.bucket_mask;
        }
        [b1 as usize, b2 as usize]
    }

    /// Hints the CPU to load the home bucket of `hash` (batched lookups hash first,
    /// prefetch, then probe). Only the home bucket: inserts fill it first, so at the
    /// table's load factor nearly every key is found there, and a second prefetch
    /// per packet would spend a memory transfer that is almost never used.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        crate::prefetch::read(&self.buckets[self.buckets_of(hash)[0]]);
    }

    /// Second prefetch stage: with the key's home bucket already in cache, hints the
    /// CPU to load the entry (and its counters) whose tag matches.
    #[inline]
    pub fn prefetch_entry(&self, hash: u64) {
        if let Some(idx) = self.first_candidate(hash) {
            crate::prefetch::read(&self.entries[idx as usize]);
            crate::prefetch::read(&self.stats[idx as usize]);
        }
    }

    /// The coarse clock workers stamp flows with (set by the control side).
    #[inline]
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }

    /// Advances the coarse clock.
    pub fn set_now(&self, now: u32) {
        self.now.store(now, Ordering::Relaxed);
    }

    /// Reads entry `index` if it is active, consistently (seqlock).
    fn read(&self, index: u32) -> Option<FlowRef> {
        let e = self.entries.get(index as usize)?;
        for _ in 0..READ_RETRIES {
            let s1 = e.state.load(Ordering::Acquire);
            match s1 & STATUS_MASK {
                ACTIVE => {}
                WRITING => {
                    std::hint::spin_loop();
                    continue;
                }
                _ => return None,
            }
            let words: [u64; 5] = std::array::from_fn(|i| e.key[i].load(Ordering::Relaxed));
            let data = e.data.load(Ordering::Relaxed);
            let link = e.link.load(Ordering::Relaxed);
            let owner = self.stats[index as usize].extra.load(Ordering::Relaxed) as u32;
            fence(Ordering::Acquire);
            if e.state.load(Ordering::Relaxed) != s1 {
                continue;
            }
            return Some(FlowRef {
                index,
                version: s1,
                key: FlowKey::from_words(words),
                value: FlowValue {
                    data,
                    generation: (link >> 32) as u32,
                    owner,
                },
                reverse: (link as u32).checked_sub(1),
            });
        }
        None
    }

    /// Reads entry `index` if it is active and holds exactly `words` (the lookup
    /// fast path: compares word by word, stops at the first difference, and does
    /// not read the owner, which lives off the hot line).
    #[inline(always)]
    fn read_if(&self, index: u32, key: &FlowKey, words: &[u64; 5]) -> Option<FlowRef> {
        let e = self.entries.get(index as usize)?;
        for _ in 0..READ_RETRIES {
            let s1 = e.state.load(Ordering::Acquire);
            match s1 & STATUS_MASK {
                ACTIVE => {}
                WRITING => {
                    std::hint::spin_loop();
                    continue;
                }
                _ => return None,
            }
            if e.key.iter().zip(words).any(|(a, w)| a.load(Ordering::Relaxed) != *w) {
                // A reuse in progress cannot turn another key into ours: the new
                // key is published only with the state change checked below.
                fence(Ordering::Acquire);
                if e.state.load(Ordering::Relaxed) == s1 {
                    return None;
                }
                continue;
            }
            let data = e.data.load(Ordering::Relaxed);
            let link = e.link.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if e.state.load(Ordering::Relaxed) != s1 {
                continue;
            }
            return Some(FlowRef {
                index,
                version: s1,
                key: *key,
                value: FlowValue {
                    data,
                    generation: (link >> 32) as u32,
                    owner: 0,
                },
                reverse: (link as u32).checked_sub(1),
            });
        }
        None
    }

    /// Every occupied slot of the key's buckets whose tag matches, in position order.
    #[inline]
    fn candidates(&self, hash: u64) -> impl Iterator<Item = (usize, usize, u32)> + '_ {
        let tag = tag_of(hash);
        self.buckets_of(hash).into_iter().flat_map(move |b| {
            (0..SLOTS).filter_map(move |s| {
                let slot = self.buckets[b].0[s].load(Ordering::Acquire);
                (slot != 0 && slot >> 32 == tag).then(|| (b, s, (slot as u32) - 1))
            })
        })
    }

    /// Finds the entry for `key` (`hash` = `key.hash()`). The returned
    /// `value.owner` is not filled in (use [`FlowTable::get`] for it).
    #[inline(always)]
    pub fn lookup(&self, key: &FlowKey, hash: u64) -> Option<FlowRef> {
        let words = key.words();
        let tag = tag_of(hash);
        for b in self.buckets_of(hash) {
            for slot in &self.buckets[b].0 {
                let word = slot.load(Ordering::Acquire);
                if word != 0 && word >> 32 == tag {
                    if let Some(r) = self.read_if((word as u32) - 1, key, &words) {
                        return Some(r);
                    }
                }
            }
        }
        None
    }

    /// The first entry of the key's home bucket whose tag matches, if any.
    #[inline]
    fn first_candidate(&self, hash: u64) -> Option<u32> {
        let tag = tag_of(hash);
        let b = self.buckets_of(hash)[0];
        self.buckets[b]
            .0
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .find(|w| *w != 0 && *w >> 32 == tag)
            .map(|w| (w as u32) - 1)
    }

    /// Looks up many keys with the memory accesses of different keys overlapped:
    /// hash all and prefetch their home buckets; scan the buckets and prefetch the
    /// candidate entries; then verify. `out[i]` answers `keys[i]`; `hashes` is
    /// scratch space at least as long as `keys`.
    pub fn lookup_batch(&self, keys: &[FlowKey], hashes: &mut [u64], out: &mut [Option<FlowRef>]) {
        for (k, h) in keys.iter().zip(hashes.iter_mut()) {
            *h = k.hash();
            crate::prefetch::read(&self.buckets[self.buckets_of(*h)[0]]);
        }
        let mut candidates = [u32::MAX; 64];
        for (i, h) in hashes.iter().take(keys.len()).enumerate() {
            if let Some(idx) = self.first_candidate(*h) {
                crate::prefetch::read(&self.entries[idx as usize]);
                if let Some(c) = candidates.get_mut(i) {
                    *c = idx;
                }
            }
        }
        for (i, ((k, h), o)) in keys.iter().zip(hashes.iter()).zip(out.iter_mut()).enumerate() {
            let words = k.words();
            *o = match candidates.get(i) {
                Some(&idx) if idx != u32::MAX => self.read_if(idx, k, &words).or_else(|| self.lookup(k, *h)),
                _ => self.lookup(k, *h),
            };
        }
    }

    /// Replaces the value of a flow if it is still the version that was read
    /// (re-evaluation after a forwarding-state change). False if it changed meanwhile.
    pub fn update(&self, r: &FlowRef, value: FlowValue) -> bool {
        if !self.lock(r.index, r.version) {
            return false;
        }
        let e = &self.entries[r.index as usize];
        fence(Ordering::Release);
        e.data.store(value.data, Ordering::Relaxed);
        let link = e.link.load(Ordering::Relaxed);
        e.link.store(
            u64::from(value.generation) << 32 | (link & 0xffff_ffff),
            Ordering::Relaxed,
        );
        self.unlock(r.index, r.version);
        true
    }

    /// Takes entry `index`'s write lock if it is still `version`: readers retry and
    /// removals (which deactivate `version`) fail until [`FlowTable::unlock`].
    pub(super) fn lock(&self, index: u32, version: u32) -> bool {
        let writing = (version & !STATUS_MASK) | WRITING;
        self.entries[index as usize]
            .state
            .compare_exchange(version, writing, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    }

    /// Releases a lock taken at `version`, publishing the next version.
    pub(super) fn unlock(&self, index: u32, version: u32) {
        self.entries[index as usize]
            .state
            .store((((version >> 2) + 1) << 2) | ACTIVE, Ordering::Release);
    }

    /// Counts a packet of `bytes` on the flow and stamps it with the coarse clock.
    #[inline(always)]
    pub fn touch(&self, index: u32, bytes: u32) {
        if let (Some(e), Some(st)) = (self.entries.get(index as usize), self.stats.get(index as usize)) {
            // Plain loads and stores, not locked read-modify-writes: one direction of
            // a flow arrives on one queue (RSS keeps a flow on a queue), so one worker
            // counts it, and a locked instruction per counter would stall the batch's
            // outstanding cache misses on every packet.
            st.packets
                .store(st.packets.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            st.bytes
                .store(st.bytes.load(Ordering::Relaxed) + u64::from(bytes), Ordering::Relaxed);
            let now = self.now();
            if e.last_seen.load(Ordering::Relaxed) != now {
                e.last_seen.store(now, Ordering::Relaxed);
            }
        }
    }

    /// The transform reference of entry `index` (0: none; 0 for an index out of
    /// range). Its meaning is the caller's: the vrouter will name a NAT rewrite or a
    /// policy rule in a table of its own. It sits beside the counters, which every
    /// packet of the flow writes anyway, so reading it costs no extra cache line.
    #[inline]
    pub fn transform(&self, index: u32) -> u64 {
        self.stats
            .get(index as usize)
            .map_or(0, |st| st.transform.load(Ordering::Acquire))
    }

    /// Sets the transform reference of entry `index`; the flow's setup sets it before
    /// the decision that uses it is published (an insert starts every entry at 0).
    #[inline]
    pub fn set_transform(&self, index: u32, transform: u64) {
        if let Some(st) = self.stats.get(index as usize) {
            st.transform.store(transform, Ordering::Release);
        }
    }

    /// Records TCP flags seen on the flow (SYN, FIN, RST: the ones aging cares about).
    #[inline]
    pub fn mark_tcp_flags(&self, index: u32, flags: u8) {
        if let Some(st) = self.stats.get(index as usize) {
            st.extra.fetch_or(u64::from(flags) << 32, Ordering::Relaxed);
        }
    }

    /// Calls `f` for every active entry with its clock stamp, packet and byte counts
    /// and TCP flags seen (for aging and listing; not for the per-packet path).
    pub fn for_each(&self, mut f: impl FnMut(&FlowRef, FlowActivity)) {
        self.scan(0, |r, a| {
            f(r, a);
            std::ops::ControlFlow::Continue(())
        });
    }

    /// Like [`FlowTable::for_each`], from entry index `from` on, until `f` breaks
    /// (a bounded listing reads only what it answers).
    pub fn scan(&self, from: u32, mut f: impl FnMut(&FlowRef, FlowActivity) -> std::ops::ControlFlow<()>) {
        let end = self.high_water.load(Ordering::Acquire).min(self.capacity());
        for idx in from..end {
            if let Some(r) = self.read(idx) {
                if f(&r, self.activity(idx)).is_break() {
                    return;
                }
            }
        }
    }

    /// The activity counters of entry `index` (zero for an index out of range).
    pub fn activity(&self, index: u32) -> FlowActivity {
        let (Some(e), Some(st)) = (self.entries.get(index as usize), self.stats.get(index as usize)) else {
            return FlowActivity::default();
        };
        FlowActivity {
            last_seen: e.last_seen.load(Ordering::Relaxed),
            packets: st.packets.load(Ordering::Relaxed),
            bytes: st.bytes.load(Ordering::Relaxed),
            tcp_flags: (st.extra.load(Ordering::Relaxed) >> 32) as u8,
        }
    }

    /// The entry at `index`, if active.
    pub fn get(&self, index: u32) -> Option<FlowRef> {
        self.read(index)
    }

    /// Counters.
    pub fn stats(&self) -> TableStats {
        TableStats {
            active: self.counters.active.load(Ordering::Relaxed),
            created: self.counters.created.load(Ordering::Relaxed),
            deleted: self.counters.deleted.load(Ordering::Relaxed),
            full: self.counters.full.load(Ordering::Relaxed),
            capacity: u64::from(self.capacity()),
        }
    }
}

/// How busy a flow has been.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowActivity {
    /// Coarse clock value of the last packet.
    pub last_seen: u32,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
    /// TCP flags seen (OR of all packets that carried SYN, FIN or RST).
    pub tcp_flags: u8,
}

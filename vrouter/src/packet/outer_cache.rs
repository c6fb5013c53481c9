//! A worker's outer-header templates, one per tunnel next hop in use, valid for the
//! snapshot generation they were made under.
//!
//! A tunnel's outer headers are the same for every packet but for lengths, checksum,
//! entropy port and MPLS TTL; writing them from a template is a copy and five
//! patches instead of a header built and checksummed field by field.

use nexthop::encap::{Outer, OuterTemplate};
use nexthop::NextHopId;

/// Slots (a power of two), indexed by next hop id: 64 tunnels in use stay cached.
const SLOTS: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u64,
    nh: NextHopId,
    template: OuterTemplate,
}

/// The cache (one per worker, in its pipeline context).
#[derive(Debug)]
pub struct OuterCache {
    slots: Box<[Option<Slot>]>,
}

impl Default for OuterCache {
    fn default() -> Self {
        Self {
            slots: vec![None; SLOTS].into_boxed_slice(),
        }
    }
}

impl OuterCache {
    /// The template of next hop `nh` under `generation`, made from `outer()` when this
    /// generation has not made it yet.
    #[inline]
    pub(super) fn template(&mut self, generation: u64, nh: NextHopId, outer: impl FnOnce() -> Outer) -> &OuterTemplate {
        let slot = &mut self.slots[nh.index() & (SLOTS - 1)];
        if !matches!(slot, Some(s) if s.generation == generation && s.nh == nh) {
            *slot = None;
        }
        &slot
            .get_or_insert_with(|| Slot {
                generation,
                nh,
                template: outer().template(),
            })
            .template
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexthop::encap::Encap;

    fn outer(label: u32) -> Outer {
        Outer {
            encap: Encap::MplsOverUdp,
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: [198, 18, 0, 1].into(),
            dst: [198, 18, 0, 2].into(),
            label,
            entropy: 0,
            ttl: 0,
        }
    }

    #[test]
    fn templates_are_per_next_hop_and_generation() {
        let mut cache = OuterCache::default();
        let made = std::cell::Cell::new(0);
        let get = |cache: &mut OuterCache, generation, nh, label| {
            *cache.template(generation, nh, || {
                made.set(made.get() + 1);
                outer(label)
            })
        };
        assert_eq!(get(&mut cache, 1, NextHopId(5), 17), outer(17).template());
        assert_eq!(
            get(&mut cache, 1, NextHopId(5), 99),
            outer(17).template(),
            "same generation: reused"
        );
        // Next hop 69 shares the slot of 5: it evicts, never aliases.
        assert_eq!(
            get(&mut cache, 1, NextHopId(5 + SLOTS as u32), 18),
            outer(18).template()
        );
        assert_eq!(get(&mut cache, 1, NextHopId(5), 17), outer(17).template());
        // A new generation may have changed the next hop: made again.
        assert_eq!(get(&mut cache, 2, NextHopId(5), 19), outer(19).template());
        assert_eq!(made.get(), 4);
    }
}

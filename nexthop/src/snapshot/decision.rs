//! How long a flow's cached decision holds: the snapshot's side of route slots and
//! their stamps (see [`crate::Route`]).

use super::Snapshot;
use crate::route::RouteSlot;

impl Snapshot {
    /// True when a decision made in generation `made` (its low 32 bits) from the
    /// route in `slot` still holds in this snapshot.
    ///
    /// Generations are compared by their distance back from this one, so the 32-bit
    /// wrap is harmless as long as the flow epoch is renewed at least every 2^31
    /// generations (the snapshot builder does so).
    #[inline(always)]
    pub fn decision_holds(&self, made: u32, slot: RouteSlot) -> bool {
        let current = self.generation as u32;
        if made == current {
            return true;
        }
        let age = current.wrapping_sub(made);
        age <= current.wrapping_sub(self.flow_epoch as u32)
            && self
                .route_stamps
                .get(slot as usize)
                .is_some_and(|stamp| age <= current.wrapping_sub(*stamp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(generation: u64, epoch: u64, stamps: Vec<u32>) -> Snapshot {
        Snapshot {
            generation,
            flow_epoch: epoch,
            route_stamps: stamps,
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_decision_holds_until_its_slot_or_the_epoch_moves_past_it() {
        let snap = at(10, 2, vec![10, 4, 7]);
        assert!(snap.decision_holds(10, 0), "made in this generation");
        assert!(!snap.decision_holds(9, 0), "the volatile slot changes every generation");
        assert!(snap.decision_holds(5, 1), "slot 1 last changed in 4");
        assert!(snap.decision_holds(4, 1), "made in the generation that changed it");
        assert!(!snap.decision_holds(3, 1), "made before slot 1 changed");
        assert!(!snap.decision_holds(6, 2));
        assert!(snap.decision_holds(7, 2));
        assert!(!snap.decision_holds(1, 1), "made before the flow epoch");
        assert!(!snap.decision_holds(9, 3), "a slot this snapshot does not have");
        assert!(
            !snap.decision_holds(11, 1),
            "made in a generation this snapshot has not seen"
        );
    }

    #[test]
    fn the_32_bit_wrap_is_harmless() {
        let base = u64::from(u32::MAX) - 2;
        let snap = at(base + 6, base, vec![0, (base + 1) as u32, (base + 4) as u32]);
        assert!(snap.decision_holds((base + 2) as u32, 1));
        assert!(!snap.decision_holds((base + 3) as u32, 2));
        assert!(snap.decision_holds((base + 5) as u32, 2));
    }
}

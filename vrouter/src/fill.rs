//! How a worker shares its UMEM among its sockets' fill rings (the frames the kernel
//! receives into).
//!
//! Frames put in a socket's fill ring cannot be taken back: only traffic on that
//! socket returns them. So a share handed out while few ports were attached stays
//! with an idle port, and shares sized by the number of ports at the time starved
//! ports attached later. Here every socket is always given `floor` frames (a worker
//! admits at most `umem / (4 * floor)` sockets, a quarter of the UMEM), and a socket
//! that received in its last poll may borrow more, up to its ring, from a loan budget
//! of another quarter; what an idle socket keeps of a loan is bounded by that budget.
//! So fill rings never hold more than half the UMEM; the other half is for frames in
//! flight (in RX rings, being forwarded, in TX rings), which traffic, not this
//! accounting, bounds: under overload the pool can run dry for a moment, but no
//! socket is starved for good by frames idle sockets hold.

/// Polls without a packet after which a socket counts as idle: a flow's gaps (a
/// sender's window, a worker sharing its core) do not cost it its loan, which would
/// leave it only its floor when the next burst comes.
pub const ACTIVE_POLLS: u32 = 4096;

/// The fill-ring shares of one worker's sockets, by slot.
#[derive(Debug, Clone)]
pub struct FillShares {
    floor: u32,
    ring: u32,
    capacity: usize,
    budget: u32,
    lent: u32,
    /// Per slot: frames above the floor in its fill ring at the last refill.
    loans: Vec<u32>,
    /// Per slot: polls left before it counts as idle (reset when it receives).
    active: Vec<u32>,
}

impl FillShares {
    /// Shares of a UMEM of `umem_frames` frames among sockets with rings of `ring`
    /// entries, each given `floor` frames.
    pub fn new(umem_frames: u32, floor: u32, ring: u32) -> Self {
        let quarter = umem_frames / 4;
        Self {
            floor,
            ring,
            capacity: (quarter / floor.max(1)) as usize,
            budget: quarter,
            lent: 0,
            loans: Vec::new(),
            active: Vec::new(),
        }
    }

    /// The most sockets the worker takes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn grow(&mut self, slot: usize) {
        if self.loans.len() <= slot {
            self.loans.resize(slot + 1, 0);
            self.active.resize(slot + 1, 0);
        }
    }

    /// How full the fill ring of `slot` should be: its floor when idle; when it
    /// received within its last [`ACTIVE_POLLS`] polls, also what it holds on loan and
    /// what the budget has left, up to its ring.
    #[inline]
    pub fn target(&self, slot: usize) -> u32 {
        if self.active.get(slot).copied().unwrap_or(0) == 0 {
            return self.floor;
        }
        let own = self.loans.get(slot).copied().unwrap_or(0);
        let free = self.budget.saturating_sub(self.lent);
        (self.floor + own + free).min(self.ring)
    }

    /// Records that the fill ring of `slot` holds `held` frames after its refill.
    #[inline]
    pub fn record(&mut self, slot: usize, held: u32) {
        self.grow(slot);
        let loan = held.saturating_sub(self.floor);
        self.lent = self.lent - self.loans[slot] + loan;
        self.loans[slot] = loan;
    }

    /// Records whether `slot` received in its poll.
    #[inline]
    pub fn set_active(&mut self, slot: usize, received: bool) {
        self.grow(slot);
        self.active[slot] = if received {
            ACTIVE_POLLS
        } else {
            self.active[slot].saturating_sub(1)
        };
    }

    /// The socket of `slot` closed: its frames are back in the pool.
    pub fn release(&mut self, slot: usize) {
        self.grow(slot);
        self.lent -= self.loans[slot];
        self.loans[slot] = 0;
        self.active[slot] = 0;
    }

    /// Frames lent out now.
    pub fn lent(&self) -> u32 {
        self.lent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn idle_sockets_get_their_floor_and_busy_ones_borrow_up_to_the_ring() {
        let mut s = FillShares::new(16384, 128, 2048);
        assert_eq!(s.capacity(), 32);
        assert_eq!(s.target(0), 128, "a new socket gets its floor");
        s.record(0, 128);
        s.set_active(0, true);
        assert_eq!(s.target(0), 2048, "a busy socket borrows up to its ring");
        s.record(0, 2048);
        s.set_active(1, true);
        s.record(1, 2048);
        assert_eq!(s.lent(), 2 * 1920);
        // The budget (4096) has 256 left for a third busy socket.
        s.set_active(2, true);
        assert_eq!(s.target(2), 128 + 256);
        // A gap of one empty poll keeps a busy socket's loan.
        s.set_active(0, false);
        assert!(s.target(0) > 128, "one empty poll made it idle");
        // A socket gone idle keeps its loan (frames in a fill ring stay) but is not
        // topped up beyond its floor; its loan shrinks as traffic consumes it.
        for _ in 1..ACTIVE_POLLS {
            s.set_active(0, false);
        }
        assert_eq!(s.target(0), 128);
        s.record(0, 500);
        assert_eq!(s.lent(), 372 + 1920);
        s.release(1);
        assert_eq!(s.lent(), 372);
    }

    proptest! {
        /// Whatever the sequence of refills and polls, the frames held in fill rings
        /// never exceed the floors of the admitted sockets plus the loan budget: half
        /// the UMEM, so a new socket's floor and the frames in flight always fit.
        #[test]
        fn fill_rings_never_hold_more_than_half_the_umem(
            steps in proptest::collection::vec((0usize..32, any::<bool>(), 0u32..2048), 1..400),
        ) {
            let (umem, floor, ring) = (16384u32, 128u32, 2048u32);
            let mut s = FillShares::new(umem, floor, ring);
            let mut held = [0u32; 32];
            for (slot, received, consumed) in steps {
                // The kernel consumes some of what the ring held, then the worker
                // refills to the target (never more than the target; never takes
                // back what is already there).
                held[slot] = held[slot].saturating_sub(consumed);
                let target = s.target(slot);
                held[slot] = held[slot].max(target);
                s.record(slot, held[slot]);
                s.set_active(slot, received);
                let total: u32 = held.iter().sum();
                prop_assert!(total <= umem / 2, "{total} frames in fill rings");
                prop_assert!(s.lent() <= umem / 4);
            }
        }
    }
}

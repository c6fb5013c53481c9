//! Policing of exception traffic per port: ARP, neighbour discovery and echo requests
//! to the gateway are answered by the vrouter itself, so a pod that floods them costs
//! every other pod forwarding time. Each port gets a token bucket per worker; what
//! exceeds it is dropped cheaply and counted (`exception_rate`).

use nexthop::Vif;
use std::time::Instant;

/// Exception packets per second a port may send, by default (per worker).
pub const DEFAULT_EXCEPTION_RATE: u32 = 1000;

/// The buckets of one worker, one per vif; refilled lazily when a port sends.
#[derive(Debug)]
pub struct ExceptionPolicer {
    per_second: u32,
    origin: Instant,
    now_us: u64,
    tokens: Box<[u32]>,
    last_us: Box<[u64]>,
    /// Packets dropped by the policer.
    pub dropped: u64,
}

impl ExceptionPolicer {
    /// Buckets for `vifs` ports, `per_second` packets each with a burst of as many
    /// (0: no policing).
    pub fn new(vifs: usize, per_second: u32) -> Self {
        Self {
            per_second,
            origin: Instant::now(),
            now_us: 0,
            tokens: vec![per_second; vifs].into_boxed_slice(),
            last_us: vec![0; vifs].into_boxed_slice(),
            dropped: 0,
        }
    }

    /// Sets the clock; workers call it once per batch.
    #[inline]
    pub fn refill(&mut self, now: Instant) {
        self.now_us = now.saturating_duration_since(self.origin).as_micros() as u64;
    }

    /// Takes a token for an exception packet from `vif`; false (counted) when its
    /// bucket is empty.
    #[inline]
    pub fn allow(&mut self, vif: Vif) -> bool {
        if self.per_second == 0 {
            return true;
        }
        let i = vif.index();
        let (Some(tokens), Some(last)) = (self.tokens.get_mut(i), self.last_us.get_mut(i)) else {
            return true;
        };
        let earned = self.now_us.saturating_sub(*last) * u64::from(self.per_second) / 1_000_000;
        if earned > 0 {
            *tokens = (u64::from(*tokens) + earned).min(u64::from(self.per_second)) as u32;
            *last = self.now_us;
        }
        if *tokens == 0 {
            self.dropped += 1;
            return false;
        }
        *tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_flooding_port_is_held_to_its_rate_and_others_are_not() {
        let mut p = ExceptionPolicer::new(4, 100);
        let t0 = Instant::now();
        p.refill(t0);
        assert_eq!(
            (0..1000).filter(|_| p.allow(Vif(1))).count(),
            100,
            "the burst, then nothing"
        );
        assert_eq!(
            (0..10).filter(|_| p.allow(Vif(2))).count(),
            10,
            "another port is unaffected"
        );
        p.refill(t0 + Duration::from_millis(500));
        assert_eq!(
            (0..1000).filter(|_| p.allow(Vif(1))).count(),
            50,
            "half a second earns 50"
        );
        assert_eq!(p.dropped, 900 + 950);
        let mut off = ExceptionPolicer::new(4, 0);
        assert!((0..10_000).all(|_| off.allow(Vif(1))));
    }
}

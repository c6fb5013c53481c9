//! CPU cycle accounting for the polling loops, as Open vSwitch's `pmd-stats-show`
//! reports it: busy and idle loop cycles read from the time stamp counter.
//!
//! The counter is the TSC where the CPU has an invariant one (read through `quanta`,
//! which checks for it); elsewhere it falls back to a monotonic nanosecond clock and
//! [`cycles_per_second`] says 1e9, so that conversions stay right either way.

use std::sync::OnceLock;

/// The shared clock (calibrated once per process).
fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// The cycle counter now (TSC ticks on x86 with an invariant TSC).
#[inline]
pub fn now() -> u64 {
    clock().raw()
}

/// How many counter ticks make a second, from quanta's calibration of the counter
/// against the OS clock (done once per process, robust to preemption).
pub fn cycles_per_second() -> f64 {
    const TICKS: u64 = 1 << 40;
    TICKS as f64 * 1e9 / clock().delta_as_nanos(0, TICKS).max(1) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counter_advances_at_the_calibrated_rate() {
        let hz = super::cycles_per_second();
        assert!(hz > 1e8, "{hz} ticks per second is no CPU clock");
        // Keep the closest of a few tries, so that a preemption between two reads
        // cannot skew the comparison.
        let best = (0..5)
            .map(|_| {
                let wall = std::time::Instant::now();
                let start = super::now();
                std::thread::sleep(std::time::Duration::from_millis(50));
                let ticks = super::now() - start;
                let ns = wall.elapsed().as_nanos() as f64;
                (ticks as f64 * 1e9 / hz - ns).abs() / ns
            })
            .fold(f64::MAX, f64::min);
        assert!(
            best < 0.05,
            "the counter and the OS clock differ by {:.1} %",
            best * 100.0
        );
    }
}

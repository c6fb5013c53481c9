//! CPU cycle accounting for the polling loops, as Open vSwitch's `pmd-stats-show`
//! reports it: busy and idle loop cycles read from the time stamp counter.
//!
//! The counter is the TSC where the CPU has an invariant one (read through `quanta`,
//! which checks for it); elsewhere it falls back to a monotonic nanosecond clock and
//! [`cycles_per_second`] says 1e9, so that conversions stay right either way.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// How many counter ticks make a second, measured once against the OS clock over
/// 20 ms.
pub fn cycles_per_second() -> f64 {
    static HZ: OnceLock<f64> = OnceLock::new();
    *HZ.get_or_init(|| {
        let (wall, ticks) = (Instant::now(), now());
        while wall.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        let (elapsed, ticks) = (wall.elapsed().as_secs_f64(), now().wrapping_sub(ticks));
        ticks as f64 / elapsed.max(1e-9)
    })
}

/// Converts counter ticks to nanoseconds.
pub fn to_ns(cycles: u64) -> u64 {
    (cycles as f64 * 1e9 / cycles_per_second()) as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_counter_advances_at_the_calibrated_rate() {
        let hz = super::cycles_per_second();
        assert!(hz > 1e8, "{hz} ticks per second is no CPU clock");
        let (wall, start) = (std::time::Instant::now(), super::now());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (ns, ticks) = (wall.elapsed().as_nanos() as f64, super::now() - start);
        let measured = super::to_ns(ticks) as f64;
        assert!(
            (measured - ns).abs() / ns < 0.1,
            "{measured} ns by the counter vs {ns} by the OS"
        );
    }
}

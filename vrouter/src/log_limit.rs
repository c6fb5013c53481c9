//! Rate limits for log lines that outside input can trigger (packets, a control
//! node's stanzas and changes): at most so many lines a second per site, and one line
//! saying how many were held back when the second is over, so a flood of bad input
//! costs a bounded log, never an unbounded one, and is still visible.

use std::sync::Mutex;

/// One site's limit.
#[derive(Debug, Clone)]
pub struct LogLimit {
    per_second: u32,
    second: u64,
    written: u32,
    suppressed: u64,
}

impl LogLimit {
    /// At most `per_second` lines a second.
    pub const fn new(per_second: u32) -> Self {
        Self {
            per_second,
            second: 0,
            written: 0,
            suppressed: 0,
        }
    }

    /// True if a line may be written in second `now` (any clock in seconds). When a
    /// new second starts after lines were held back, `what`'s count of them is logged.
    pub fn admit(&mut self, now: u64, what: &str) -> bool {
        if now != self.second {
            if self.suppressed != 0 {
                tracing::warn!(
                    suppressed = self.suppressed,
                    "{what}: log lines held back by the rate limit"
                );
            }
            self.second = now;
            self.written = 0;
            self.suppressed = 0;
        }
        if self.written >= self.per_second {
            self.suppressed += 1;
            return false;
        }
        self.written += 1;
        true
    }
}

/// A limit shared by threads or tasks (control paths, not the forwarding path).
#[derive(Debug)]
pub struct SharedLogLimit(Mutex<LogLimit>);

impl SharedLogLimit {
    /// At most `per_second` lines a second.
    pub const fn new(per_second: u32) -> Self {
        Self(Mutex::new(LogLimit::new(per_second)))
    }

    /// True if a line may be written now.
    pub fn admit(&self, what: &str) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.0.lock().unwrap_or_else(|p| p.into_inner()).admit(now, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_writes_the_limit_per_second_then_resumes() {
        let mut l = LogLimit::new(3);
        let first: Vec<bool> = (0..10).map(|_| l.admit(5, "test")).collect();
        assert_eq!(first.iter().filter(|a| **a).count(), 3);
        assert!(first[..3].iter().all(|a| *a), "the first lines pass");
        assert!(l.admit(6, "test"), "a new second starts afresh");
        let shared = SharedLogLimit::new(2);
        assert_eq!((0..5).filter(|_| shared.admit("test")).count(), 2);
    }
}

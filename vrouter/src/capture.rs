//! Packet capture (`vrouter capture`, Tungsten's vifdump): an operator asks for the
//! packets of one interface; each worker copies what it receives there (before any
//! rewrite, marked dropped with the reason if it drops it) and what it sends there
//! (after the rewrite) into a bounded ring of its own, and the API drains the rings.
//!
//! Off, it costs a worker one relaxed load per batch: the sessions are looked at only
//! while one is armed. A session nobody has read for [`IDLE_EXPIRY`] is dropped (a
//! capture whose reader died does not stay armed). A full ring counts what it could
//! not keep instead of blocking or growing.

use crate::drops::DropReason;
use arc_swap::ArcSwap;
use nexthop::Vif;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Packets each worker's ring of a session holds.
pub const RING_PACKETS: usize = 4096;
/// Bytes a session holds in all its rings (split between the workers): a reader
/// slower than the traffic costs this much memory at most, then packets are lost.
pub const SESSION_BYTES: usize = 32 << 20;
/// Sessions at once.
pub const MAX_SESSIONS: usize = 8;
/// A session not read for this long is dropped.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(5);
/// The most bytes of a packet kept.
pub const MAX_SNAPLEN: u32 = 65535;

/// Where in the vrouter a packet was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Received on the interface, as it arrived.
    Received,
    /// Received on the interface and dropped, for this reason.
    Dropped(DropReason),
    /// Sent on the interface, as it left (after rewrite or encapsulation).
    Sent,
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// When, ns since the Unix epoch.
    pub at_ns: u64,
    /// The worker that saw it.
    pub worker: u16,
    /// Where.
    pub stage: Stage,
    /// Its length on the wire.
    pub len: u32,
    /// Its first `snaplen` bytes.
    pub bytes: Vec<u8>,
}

/// One capture.
#[derive(Debug)]
pub struct Session {
    id: u64,
    vif: Vif,
    snaplen: usize,
    /// Each worker's packets and the bytes they hold.
    rings: Vec<Mutex<(VecDeque<Captured>, usize)>>,
    ring_bytes: usize,
    /// The ring a read starts with (each read starts one further, so none starves).
    next_ring: AtomicU64,
    lost: AtomicU64,
    read_at: Mutex<Instant>,
}

fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Session {
    /// The interface captured.
    pub fn vif(&self) -> Vif {
        self.vif
    }

    /// Keeps a copy of `frame` seen by `worker` at `stage`.
    pub fn record(&self, worker: usize, stage: Stage, frame: &[u8]) {
        let Some(ring) = self.rings.get(worker % self.rings.len().max(1)) else {
            return;
        };
        let kept = frame.len().min(self.snaplen);
        let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.0.len() >= RING_PACKETS || ring.1 + kept > self.ring_bytes {
            self.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        ring.1 += kept;
        ring.0.push_back(Captured {
            at_ns: unix_ns(),
            worker: worker as u16,
            stage,
            len: frame.len() as u32,
            bytes: frame[..kept].to_vec(),
        });
    }
}

/// The sessions of a vrouter; workers read them, the API changes them.
#[derive(Debug)]
pub struct Captures {
    armed: AtomicBool,
    sessions: ArcSwap<Vec<Arc<Session>>>,
    next_id: AtomicU64,
    workers: usize,
    change: Mutex<()>,
}

impl Default for Captures {
    fn default() -> Self {
        Self::new(1)
    }
}

/// Why a capture could not start or be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureError {
    /// [`MAX_SESSIONS`] run already.
    #[error("{MAX_SESSIONS} captures run already")]
    TooMany,
    /// No such session (stopped, or expired unread).
    #[error("no capture {0} (stopped, or not read for {IDLE_EXPIRY:?})")]
    NoSession(u64),
}

impl Captures {
    /// No sessions, for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            armed: AtomicBool::new(false),
            sessions: ArcSwap::from_pointee(Vec::new()),
            next_id: AtomicU64::new(1),
            workers: workers.max(1),
            change: Mutex::new(()),
        }
    }

    /// The sessions, if any is armed: what a worker asks once per batch.
    #[inline]
    pub fn tap(&self) -> Option<Arc<Vec<Arc<Session>>>> {
        if !self.armed.load(Ordering::Relaxed) {
            return None;
        }
        Some(self.sessions.load_full())
    }

    fn replace(&self, f: impl FnOnce(&mut Vec<Arc<Session>>)) {
        let mut list = Vec::clone(&self.sessions.load());
        f(&mut list);
        self.armed.store(!list.is_empty(), Ordering::Relaxed);
        self.sessions.store(Arc::new(list));
    }

    /// Starts capturing `vif`, keeping `snaplen` bytes of each packet.
    pub fn start(&self, vif: Vif, snaplen: u32) -> Result<u64, CaptureError> {
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        if self.sessions.load().len() >= MAX_SESSIONS {
            return Err(CaptureError::TooMany);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let session = Arc::new(Session {
            id,
            vif,
            snaplen: snaplen.clamp(64, MAX_SNAPLEN) as usize,
            rings: (0..self.workers).map(|_| Mutex::new((VecDeque::new(), 0))).collect(),
            ring_bytes: SESSION_BYTES / self.workers,
            next_ring: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            read_at: Mutex::new(Instant::now()),
        });
        self.replace(|l| l.push(session));
        Ok(id)
    }

    /// Takes up to `max` packets of session `id` (oldest first, per worker) and the
    /// count of those its rings had no room for since the last read.
    pub fn read(&self, id: u64, max: usize) -> Result<(Vec<Captured>, u64), CaptureError> {
        let sessions = self.sessions.load();
        let s = sessions
            .iter()
            .find(|s| s.id == id)
            .ok_or(CaptureError::NoSession(id))?;
        *s.read_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        let mut out = Vec::new();
        let count = s.rings.len();
        let first = s.next_ring.fetch_add(1, Ordering::Relaxed) as usize;
        // A fair share of every ring first (starting one further each read, so no
        // worker's packets wait behind another's), then what room is left.
        for fair in [true, false] {
            for k in 0..count {
                let room = max.saturating_sub(out.len());
                let share = if fair { (max / count).max(1).min(room) } else { room };
                if share == 0 {
                    break;
                }
                let ring = &s.rings[(first + k) % count];
                // The worker waits on this lock: take the ring whole (a swap) when it
                // fits, and copy no packet while holding it.
                let taken = {
                    let mut ring = ring.lock().unwrap_or_else(|p| p.into_inner());
                    if ring.0.len() <= share {
                        std::mem::take(&mut *ring).0
                    } else {
                        let part: VecDeque<Captured> = ring.0.drain(..share).collect();
                        ring.1 -= part.iter().map(|c| c.bytes.len()).sum::<usize>();
                        part
                    }
                };
                out.extend(taken);
            }
        }
        out.sort_by_key(|c| c.at_ns);
        Ok((out, s.lost.swap(0, Ordering::Relaxed)))
    }

    /// Stops session `id` (stopping one that is gone is not an error).
    pub fn stop(&self, id: u64) {
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        self.replace(|l| l.retain(|s| s.id != id));
    }

    /// Drops the sessions nobody read for [`IDLE_EXPIRY`].
    pub fn expire_unread(&self) {
        let _one_at_a_time = self.change.lock().unwrap_or_else(|p| p.into_inner());
        let stale = |s: &Arc<Session>| s.read_at.lock().map_or(true, |t| t.elapsed() >= IDLE_EXPIRY);
        if self.sessions.load().iter().any(stale) {
            self.replace(|l| l.retain(|s| !stale(s)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_keeps_what_fits_counts_the_rest_and_goes_when_stopped() {
        let c = Captures::new(2);
        assert!(c.tap().is_none(), "nothing armed: nothing to look at");
        let id = c.start(Vif(3), 64).unwrap();
        let tap = c.tap().expect("armed");
        assert_eq!(tap[0].vif(), Vif(3));
        tap[0].record(1, Stage::Dropped(DropReason::NoRoute), &[7u8; 100]);
        for _ in 0..RING_PACKETS + 5 {
            tap[0].record(0, Stage::Received, &[1u8; 10]);
        }
        let (first, lost) = c.read(id, 10).unwrap();
        assert_eq!((first.len(), lost), (10, 5));
        let dropped = first.iter().find(|p| p.worker == 1);
        let (all, _) = c.read(id, usize::MAX).unwrap();
        let dropped = dropped.or_else(|| all.iter().find(|p| p.worker == 1)).unwrap();
        assert_eq!((dropped.len, dropped.bytes.len()), (100, 64), "cut to the snaplen");
        assert_eq!(dropped.stage, Stage::Dropped(DropReason::NoRoute));
        c.stop(id);
        assert!(c.tap().is_none());
        assert_eq!(c.read(id, 1), Err(CaptureError::NoSession(id)));
        for _ in 0..MAX_SESSIONS {
            c.start(Vif(1), 100).unwrap();
        }
        assert_eq!(c.start(Vif(1), 100), Err(CaptureError::TooMany));
    }

    #[test]
    fn a_session_holds_a_bounded_number_of_bytes() {
        let c = Captures::new(16);
        let id = c.start(Vif(1), MAX_SNAPLEN).unwrap();
        let tap = c.tap().unwrap();
        for _ in 0..600 {
            tap[0].record(0, Stage::Received, &[0u8; 4096]);
        }
        // 32 MiB over 16 workers: 512 frames of 4 KiB in worker 0's ring.
        let (kept, lost) = c.read(id, usize::MAX).unwrap();
        assert_eq!((kept.len(), lost), (512, 88));
        tap[0].record(0, Stage::Received, &[0u8; 4096]);
        assert_eq!(c.read(id, usize::MAX).unwrap().0.len(), 1, "room again once read");
    }
}

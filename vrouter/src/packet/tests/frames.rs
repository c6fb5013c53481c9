//! A worker's frames in memory for the batch routine's tests: chunks with a free
//! list (and transmit metadata or not), transmit queues that keep what was queued.

use super::*;
use crate::batch::{BatchProcessor, Desc, FrameStore, TxQueues};
use crate::stats::WorkerStats;
use std::sync::Arc;

pub(super) const CHUNK: usize = 4096;

/// Chunks of memory with a free list that refuses a double release.
pub(super) struct Chunks {
    pub(super) mem: Vec<u8>,
    pub(super) free: Vec<u64>,
    /// Frames sent keep room for transmit metadata (a UMEM registered with it).
    pub(super) tx_metadata: bool,
}

impl Chunks {
    pub(super) fn new(count: usize) -> Self {
        Self {
            mem: vec![0; count * CHUNK],
            free: (0..count as u64).rev().map(|i| i * CHUNK as u64).collect(),
            tx_metadata: false,
        }
    }
}

impl FrameStore for Chunks {
    fn chunk_size(&self) -> u64 {
        CHUNK as u64
    }
    fn chunk_mut(&mut self, addr: u64) -> Option<&mut [u8]> {
        let start = (addr as usize / CHUNK) * CHUNK;
        self.mem.get_mut(start..start + CHUNK)
    }
    fn release(&mut self, addr: u64) {
        let base = addr - addr % CHUNK as u64;
        if base as usize >= self.mem.len() {
            return; // not one of ours: ignored, as the UMEM's pool ignores it
        }
        assert!(!self.free.contains(&base), "chunk {base} released twice");
        self.free.push(base);
    }
    fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }
    fn tx_metadata(&self) -> bool {
        self.tx_metadata
    }
}

/// Every queued packet: its queue and its chunks; and which asked for their checksum
/// to be finished.
#[derive(Default)]
pub(super) struct Queued(pub(super) Vec<(u16, Vec<Desc>)>, pub(super) Vec<bool>);

impl TxQueues for Queued {
    fn queue_of(&self, vif: Vif) -> Option<u16> {
        Some(vif.0 as u16)
    }
    fn push(&mut self, queue: u16, desc: Desc, checksum: bool) {
        self.0.push((queue, vec![desc]));
        self.1.push(checksum);
    }
    fn push_chain(&mut self, queue: u16, descs: &[Desc], checksum: bool) {
        self.0.push((queue, descs.to_vec()));
        self.1.push(checksum);
    }
}

/// `frame` as the kernel delivers it in chunks: 3840 bytes a chunk, after 256 of
/// headroom.
pub(super) fn received(store: &mut Chunks, frame: &[u8]) -> Vec<Desc> {
    frame
        .chunks(CHUNK - HEADROOM)
        .map(|piece| {
            let base = store.take().unwrap();
            store.chunk_mut(base).unwrap()[HEADROOM..HEADROOM + piece.len()].copy_from_slice(piece);
            Desc {
                addr: base + HEADROOM as u64,
                len: piece.len() as u32,
            }
        })
        .collect()
}

pub(super) fn bytes_of(store: &mut Chunks, descs: &[Desc]) -> Vec<u8> {
    let mut out = Vec::new();
    for d in descs {
        let offset = (d.addr % CHUNK as u64) as usize;
        out.extend_from_slice(&store.chunk_mut(d.addr).unwrap()[offset..offset + d.len as usize]);
    }
    out
}

pub(super) fn engine() -> BatchProcessor {
    BatchProcessor::new(PipelineContext::default(), Arc::new(WorkerStats::new(16)))
}

//! The batch routine: what a forwarding worker does with one received batch, behind
//! two small traits so that the same code runs over AF_XDP (the worker's UMEM and
//! transmit queues) and over the benchmark's in-memory port (as s2n-quic's receive
//! queue serves both AF_XDP and its test network). A benchmark of it measures the
//! worker, per-interface counters and transmit queueing included.
//!
//! Per batch: classify every frame (parse, flow key, hash, prefetch its bucket), then
//! prefetch the flow entries, then run each frame through the pipeline, count it, and
//! queue it for transmission, back to its sender (ICMP errors), as fragments, or free
//! it. No locks, allocation or system calls (a chained packet's buffers grow once,
//! then are reused).

use crate::capture::{Captures, Session, Stage};
use crate::packet::{self, Classified, DropReason, PacketBuf, PipelineContext, TunnelUse, Verdict};
use crate::stats::WorkerStats;
use nexthop::{Snapshot, Vif};
use std::sync::Arc;

mod chain;
mod tx_room;
pub use chain::MAX_CHAINED;
use tx_room::with_metadata_room;

/// A received or built frame: where it is (an address in the frame store) and its
/// length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    /// Address of the packet's first byte in the store.
    pub addr: u64,
    /// Packet length.
    pub len: u32,
}

/// Where the frames live: fixed-size chunks addressed by offset (a UMEM).
pub trait FrameStore {
    /// Bytes per chunk (a power of two).
    fn chunk_size(&self) -> u64;
    /// The whole chunk containing `addr`, if the worker holds it.
    fn chunk_mut(&mut self, addr: u64) -> Option<&mut [u8]>;
    /// Gives the chunk containing `addr` back.
    fn release(&mut self, addr: u64);
    /// A free chunk's address, if any.
    fn take(&mut self) -> Option<u64>;
    /// True if every frame sent must have [`xsk::TX_METADATA_LEN`] bytes before it in its
    /// chunk, which may ask for its checksum to be finished (see
    /// [`packet::tx_checksum`]).
    fn tx_metadata(&self) -> bool;
}

/// The transmit queues of the worker's ports.
pub trait TxQueues {
    /// The queue of port `vif`, if the worker has a socket for it.
    fn queue_of(&self, vif: Vif) -> Option<u16>;
    /// Queues `desc` on `queue`; `checksum`: the room before it asks for its
    /// checksum to be finished.
    fn push(&mut self, queue: u16, desc: Desc, checksum: bool);
    /// Queues the descriptors of one packet too large for a chunk on `queue`, in
    /// order, to leave as one (a chain: all but the last continued); `checksum`: the
    /// room before the first asks for the packet's checksum to be finished.
    fn push_chain(&mut self, queue: u16, descs: &[Desc], checksum: bool);
}

/// The bytes of `desc` within its chunk.
fn pkt_range(desc: Desc, chunk: u64) -> std::ops::Range<usize> {
    let offset = (desc.addr % chunk) as usize;
    offset..offset + desc.len as usize
}

/// A packet as it leaves, for the capture: its bytes, and, if the kernel is to
/// finish its transport checksum, whether the packet to finish is encapsulated.
#[derive(Debug, Clone, Copy)]
struct Sent<'a> {
    bytes: Option<&'a [u8]>,
    finished: Option<bool>,
}

/// Where fragments start in their chunks: room for the largest outer headers.
const FRAGMENT_HEADROOM: usize = 256;

/// A worker's per-batch state: the pipeline's context, the classification of the
/// batch, and its counters.
#[derive(Debug)]
pub struct BatchProcessor {
    /// The pipeline's per-worker state.
    pub ctx: PipelineContext,
    /// The worker's counters.
    pub stats: Arc<WorkerStats>,
    classified: Vec<Option<Classified>>,
    scratch: Vec<u8>,
    /// A chained packet gathered into one buffer.
    big: Vec<u8>,
    /// The chunks a packet is scattered into.
    scattered: Vec<Desc>,
    /// Packet capture: the sessions, this worker's number, the received copy, the
    /// sent copy with its transport checksum finished as the kernel will.
    captures: Arc<Captures>,
    worker: usize,
    captured: Vec<u8>,
    captured_sent: Vec<u8>,
}

impl BatchProcessor {
    /// A processor with `ctx`, counting into `stats`.
    pub fn new(ctx: PipelineContext, stats: Arc<WorkerStats>) -> Self {
        Self {
            ctx,
            stats,
            classified: Vec::with_capacity(256),
            scratch: Vec::with_capacity(4096),
            big: Vec::new(),
            scattered: Vec::new(),
            captures: Arc::new(Captures::default()),
            worker: 0,
            captured: Vec::new(),
            captured_sent: Vec::new(),
        }
    }

    /// Serves the capture sessions of `captures`, as worker `worker`.
    pub fn serve_captures(&mut self, captures: Arc<Captures>, worker: usize) {
        self.captures = captures;
        self.worker = worker;
    }

    /// Processes `rx`, received on port `in_vif` (transmit queue `in_queue`), against
    /// `snap`: every frame ends queued on `tx` or released to `frames`.
    #[inline]
    pub fn run(
        &mut self,
        snap: &Snapshot,
        in_vif: Vif,
        in_queue: u16,
        rx: &[Desc],
        frames: &mut impl FrameStore,
        tx: &mut impl TxQueues,
    ) {
        // Two prefetch passes so that the flow lookups of the last pass overlap their
        // cache misses: hash every packet's flow key and prefetch its bucket; then,
        // buckets in cache, prefetch the entries. The last pass reuses the hashes.
        self.classified.clear();
        self.ctx.transport_checksums_finished = frames.tx_metadata();
        let iface = snap.interface(in_vif);
        let chunk = frames.chunk_size();
        for desc in rx {
            let off = (desc.addr % chunk) as usize;
            let classified = iface.zip(frames.chunk_mut(desc.addr)).and_then(|(iface, frame)| {
                let d = frame.get(off..off + desc.len as usize)?;
                packet::classify(&self.ctx.flows, iface, d)
            });
            self.classified.push(classified);
        }
        for c in self.classified.iter().flatten() {
            packet::prefetch_flow_entry(&self.ctx.flows, c);
        }
        let stats = Arc::clone(&self.stats);
        let counters = stats.vifs.get(in_vif.index());
        // One relaxed load per batch while no capture runs.
        let tap = self.captures.tap();
        let tap = tap.as_deref().map(Vec::as_slice);
        for (i, desc) in rx.iter().enumerate() {
            if let Some(c) = counters {
                c.rx_packets.add(1);
                c.rx_bytes.add(u64::from(desc.len));
            }
            let classified = self.classified.get(i).copied().flatten();
            self.forward_one(snap, in_vif, in_queue, *desc, classified.as_ref(), tap, frames, tx);
        }
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn forward_one(
        &mut self,
        snap: &Snapshot,
        in_vif: Vif,
        in_queue: u16,
        desc: Desc,
        classified: Option<&Classified>,
        tap: Option<&[Arc<Session>]>,
        frames: &mut impl FrameStore,
        tx: &mut impl TxQueues,
    ) {
        let chunk = frames.chunk_size();
        let base = desc.addr & !(chunk - 1);
        let offset = (desc.addr - base) as usize;
        let tx_metadata = frames.tx_metadata();
        let Some(frame) = frames.chunk_mut(desc.addr) else {
            return;
        };
        let captured_in = match tap {
            Some(tap) => self.keep_received(tap, in_vif, frame, offset, desc.len),
            None => false,
        };
        let (verdict, start, len, encapsulated) = match PacketBuf::new(&mut *frame, offset, desc.len as usize) {
            Some(mut pkt) => {
                let outcome = packet::process_classified(snap, in_vif, &mut pkt, &mut self.ctx, classified);
                match outcome.tunnel {
                    Some(TunnelUse::Sent(remote)) => self.stats.count_tunnel(remote, true, pkt.len() as u32),
                    Some(TunnelUse::Received(remote)) => self.stats.count_tunnel(remote, false, desc.len),
                    None => {}
                }
                let encapsulated = matches!(outcome.tunnel, Some(TunnelUse::Sent(_)));
                (
                    outcome.verdict,
                    base + pkt.start() as u64,
                    pkt.len() as u32,
                    encapsulated,
                )
            }
            None => (Verdict::Drop(DropReason::Truncated), 0, 0, false),
        };
        if let Some(tap) = tap {
            let sent = frame.get(pkt_range(Desc { addr: start, len }, chunk));
            let sent = Sent {
                bytes: sent,
                finished: tx_metadata.then_some(encapsulated),
            };
            self.capture(tap, in_vif, captured_in, verdict, sent, tx);
        }
        let (queue, finish) = match verdict {
            Verdict::Transmit(out_vif) => match tx.queue_of(out_vif) {
                Some(q) => (q, true),
                None => {
                    self.stats.drop_packet(in_vif, DropReason::NoTxPort);
                    frames.release(desc.addr);
                    return;
                }
            },
            Verdict::DropWithError(reason) => {
                self.stats.drop_packet(in_vif, reason);
                self.stats.icmp_errors_sent.add(1);
                // An ICMP error: no transport checksum to finish.
                (in_queue, false)
            }
            Verdict::Drop(reason) => {
                self.stats.drop_packet(in_vif, reason);
                frames.release(desc.addr);
                return;
            }
            Verdict::Fragment(nh) => {
                self.send_fragments(snap, in_vif, (start, len), nh, tap, frames, tx);
                frames.release(desc.addr);
                return;
            }
        };
        if !tx_metadata {
            tx.push(queue, Desc { addr: start, len }, false);
            return;
        }
        // The chunk the pipeline rewrote in (an answer or an encapsulation stays in it).
        let Some((start, checksum)) =
            with_metadata_room(frame, (start - base) as usize, len as usize, finish, encapsulated)
        else {
            self.stats.drop_packet(in_vif, DropReason::NoFrame);
            frames.release(desc.addr);
            return;
        };
        self.stats.count_checksum_offload(checksum);
        tx.push(
            queue,
            Desc {
                addr: base + start as u64,
                len,
            },
            checksum,
        );
    }

    /// Copies the frame as received (the pipeline rewrites it in place) if a capture
    /// session wants `in_vif`; true if it did. Out of line: the forwarding path only
    /// tests whether a capture runs.
    #[cold]
    #[inline(never)]
    fn keep_received(&mut self, tap: &[Arc<Session>], in_vif: Vif, frame: &[u8], offset: usize, len: u32) -> bool {
        if !tap.iter().any(|s| s.vif() == in_vif) {
            return false;
        }
        self.captured.clear();
        if let Some(bytes) = frame.get(offset..offset + len as usize) {
            self.captured.extend_from_slice(bytes);
        }
        true
    }

    /// Keeps copies for the capture sessions of the receiving interface (as received,
    /// or dropped with the reason) and of the sending one (`sent`: the packet as it
    /// leaves).
    #[cold]
    #[inline(never)]
    fn capture(
        &mut self,
        tap: &[Arc<Session>],
        in_vif: Vif,
        captured_in: bool,
        verdict: Verdict,
        sent: Sent<'_>,
        tx: &impl TxQueues,
    ) {
        // As it ends: a port without a socket here is a drop, not a send.
        let verdict = match verdict {
            Verdict::Transmit(out) if tx.queue_of(out).is_none() => Verdict::Drop(DropReason::NoTxPort),
            v => v,
        };
        if captured_in {
            let stage = match verdict {
                Verdict::Drop(r) | Verdict::DropWithError(r) => Stage::Dropped(r),
                _ => Stage::Received,
            };
            tap.iter()
                .filter(|s| s.vif() == in_vif)
                .for_each(|s| s.record(self.worker, stage, &self.captured));
        }
        let out = match verdict {
            Verdict::Transmit(out) => out,
            // The ICMP error goes back where the packet came from.
            Verdict::DropWithError(_) => in_vif,
            _ => return,
        };
        let Some(mut bytes) = sent.bytes else { return };
        if !tap.iter().any(|s| s.vif() == out) {
            return;
        }
        // The kernel finishes the transport checksum as the frame leaves: the copy
        // shows the sum the wire carries, not the pseudo-header's (or the sender's
        // partial one, or one a translation left as it was).
        if let (Some(encapsulated), Verdict::Transmit(_)) = (sent.finished, verdict) {
            self.captured_sent.clear();
            self.captured_sent.extend_from_slice(bytes);
            packet::tx_checksum::complete(&mut self.captured_sent, encapsulated);
            bytes = &self.captured_sent;
        }
        tap.iter()
            .filter(|s| s.vif() == out)
            .for_each(|s| s.record(self.worker, Stage::Sent, bytes));
    }

    /// Builds the fragments of the frame at `addr` (left by a `Fragment` verdict),
    /// each in a chunk of its own, and queues them on the fabric (vif 0).
    #[allow(clippy::too_many_arguments)]
    fn send_fragments(
        &mut self,
        snap: &Snapshot,
        in_vif: Vif,
        (addr, len): (u64, u32),
        nh: nexthop::NextHopId,
        tap: Option<&[Arc<Session>]>,
        frames: &mut impl FrameStore,
        tx: &mut impl TxQueues,
    ) {
        let chunk = frames.chunk_size();
        let Some(frame) = frames.chunk_mut(addr) else { return };
        let offset = (addr % chunk) as usize;
        self.scratch.clear();
        self.scratch.extend_from_slice(&frame[offset..offset + len as usize]);
        self.fragment_scratch(snap, in_vif, nh, tap, frames, tx);
    }

    /// Builds the fragments of the packet in the scratch buffer, each in a chunk of
    /// its own, and queues them on the fabric (vif 0).
    fn fragment_scratch(
        &mut self,
        snap: &Snapshot,
        in_vif: Vif,
        nh: nexthop::NextHopId,
        tap: Option<&[Arc<Session>]>,
        frames: &mut impl FrameStore,
        tx: &mut impl TxQueues,
    ) {
        let chunk = frames.chunk_size();
        // Fragments leave one by one: where pods may have left a checksum for the
        // kernel to finish, it is finished here, over the whole datagram.
        if frames.tx_metadata() {
            packet::tx_checksum::complete(&mut self.scratch, false);
        }
        // Each fragment is built in a chunk of its own, after the headroom.
        let max_frame = (chunk as usize).saturating_sub(FRAGMENT_HEADROOM);
        let plan = packet::fragment_plan(snap, in_vif, nh, &self.scratch, max_frame);
        let (Some(plan), Some(queue)) = (plan, tx.queue_of(Vif(0))) else {
            self.stats.drop_packet(in_vif, DropReason::Mtu);
            return;
        };
        for index in 0..plan.count {
            let Some(base) = frames.take() else {
                self.stats.drop_packet(in_vif, DropReason::NoFrame);
                return;
            };
            let frame = frames.chunk_mut(base).expect("just taken");
            let mut pkt = PacketBuf::new(frame, FRAGMENT_HEADROOM, 0).expect("headroom fits a frame");
            if packet::build_fragment(snap, &plan, &self.scratch, index, &mut pkt) {
                let desc = Desc {
                    addr: base + pkt.start() as u64,
                    len: pkt.len() as u32,
                };
                if let Some(tap) = tap {
                    let built = frames.chunk_mut(base).and_then(|f| f.get(pkt_range(desc, chunk)));
                    if let Some(built) = built {
                        tap.iter()
                            .filter(|s| s.vif() == Vif(0))
                            .for_each(|s| s.record(self.worker, Stage::Sent, built));
                    }
                }
                tx.push(queue, desc, false);
            } else {
                frames.release(base);
                self.stats.drop_packet(in_vif, DropReason::Mtu);
                return;
            }
        }
    }
}

//! Packets larger than a chunk: received as a chain of descriptors (a pod or the
//! fabric with an MTU above what one UMEM chunk holds, the sockets bound with
//! scatter-gather), gathered into one buffer, taken through the same pipeline, and
//! scattered into chunks again when they leave as a chain. The common case, a packet
//! in one chunk, never comes here: it is forwarded in place.

use super::{BatchProcessor, Desc, FrameStore, Sent, TxQueues, FRAGMENT_HEADROOM};
use crate::packet::tx_checksum::ChecksumRequest;
use crate::packet::{self, DropReason, PacketBuf, TunnelUse, Verdict};
use nexthop::{Snapshot, Vif};
use xsk::{request_tx_checksum, TX_METADATA_LEN};

/// The largest packet a chain may carry (an IPv4 or IPv6 datagram's most, with its
/// Ethernet header); longer chains are dropped as truncated.
pub const MAX_CHAINED: usize = 65_535 + 14;

impl BatchProcessor {
    /// Forwards the packet whose descriptors are `chain`, received on `in_vif` /
    /// `in_queue`. The received chunks are released once copied out.
    pub fn forward_chain(
        &mut self,
        snap: &Snapshot,
        in_vif: Vif,
        in_queue: u16,
        chain: &[Desc],
        frames: &mut impl FrameStore,
        tx: &mut impl TxQueues,
    ) {
        let total: usize = chain.iter().map(|d| d.len as usize).sum();
        if let Some(c) = self.stats.vifs.get(in_vif.index()) {
            c.rx_packets.add(1);
            c.rx_bytes.add(total as u64);
        }
        self.stats.chains_received.add(1);
        let gathered = total <= MAX_CHAINED && self.gather(chain, frames);
        for d in chain {
            frames.release(d.addr);
        }
        if !gathered {
            self.stats.drop_packet(in_vif, DropReason::Truncated);
            return;
        }
        self.ctx.transport_checksums_finished = frames.tx_metadata();
        let mut big = std::mem::take(&mut self.big);
        let tap = self.captures.tap();
        let tap = tap.as_deref().map(Vec::as_slice);
        let captured_in = tap.is_some_and(|t| self.keep_received(t, in_vif, &big, FRAGMENT_HEADROOM, total as u32));
        let (verdict, start, len, encapsulated) = match PacketBuf::new(&mut big, FRAGMENT_HEADROOM, total) {
            Some(mut pkt) => {
                let outcome = packet::process_classified(snap, in_vif, &mut pkt, &mut self.ctx, None);
                match outcome.tunnel {
                    Some(TunnelUse::Sent(remote)) => self.stats.count_tunnel(remote, true, pkt.len() as u32),
                    Some(TunnelUse::Received(remote)) => self.stats.count_tunnel(remote, false, total as u32),
                    None => {}
                }
                let encapsulated = matches!(outcome.tunnel, Some(TunnelUse::Sent(_)));
                (outcome.verdict, pkt.start(), pkt.len(), encapsulated)
            }
            None => (Verdict::Drop(DropReason::Truncated), 0, 0, false),
        };
        if let Some(tap) = tap {
            let sent = Sent {
                bytes: Some(&big[start..start + len]),
                finished: frames.tx_metadata().then_some(encapsulated),
            };
            self.capture(tap, in_vif, captured_in, verdict, sent, tx);
        }
        let bytes = &mut big[start..start + len];
        match verdict {
            Verdict::Transmit(out) => match tx.queue_of(out) {
                Some(q) => {
                    let checksum = frames
                        .tx_metadata()
                        .then(|| packet::tx_checksum::prepare(bytes, encapsulated))
                        .flatten();
                    self.scatter(in_vif, q, bytes, checksum, frames, tx)
                }
                None => self.stats.drop_packet(in_vif, DropReason::NoTxPort),
            },
            Verdict::DropWithError(reason) => {
                self.stats.drop_packet(in_vif, reason);
                self.stats.icmp_errors_sent.add(1);
                self.scatter(in_vif, in_queue, bytes, None, frames, tx);
            }
            Verdict::Drop(reason) => self.stats.drop_packet(in_vif, reason),
            Verdict::Fragment(nh) => {
                self.scratch.clear();
                self.scratch.extend_from_slice(bytes);
                self.fragment_scratch(snap, in_vif, nh, tap, frames, tx);
            }
        }
        self.big = big;
    }

    /// Copies the chain's bytes into the gather buffer, after its headroom; false if
    /// a descriptor lies outside the chunks the worker holds.
    fn gather(&mut self, chain: &[Desc], frames: &mut impl FrameStore) -> bool {
        let chunk = frames.chunk_size();
        self.big.clear();
        self.big.resize(FRAGMENT_HEADROOM, 0);
        for d in chain {
            let offset = (d.addr % chunk) as usize;
            let Some(bytes) = frames
                .chunk_mut(d.addr)
                .and_then(|f| f.get(offset..offset + d.len as usize))
            else {
                return false;
            };
            self.big.extend_from_slice(bytes);
        }
        // Room behind the packet too: answers and encapsulations may grow it.
        self.big.resize(self.big.len() + FRAGMENT_HEADROOM, 0);
        true
    }

    /// Queues `bytes` on `queue` as a chain of whole chunks (one chunk if it fits),
    /// each after the room for transmit metadata if the frames have it; the first's
    /// asks for `checksum` if given.
    fn scatter(
        &mut self,
        in_vif: Vif,
        queue: u16,
        bytes: &[u8],
        checksum: Option<ChecksumRequest>,
        frames: &mut impl FrameStore,
        tx: &mut impl TxQueues,
    ) {
        let room = if frames.tx_metadata() { TX_METADATA_LEN } else { 0 };
        let chunk = frames.chunk_size() as usize - room;
        // Reused: no allocation per packet once the first chain has passed.
        let mut descs = std::mem::take(&mut self.scattered);
        descs.clear();
        for piece in bytes.chunks(chunk) {
            let taken = frames.take();
            let Some((base, frame)) = taken.and_then(|b| Some((b, frames.chunk_mut(b)?))) else {
                taken
                    .into_iter()
                    .chain(descs.iter().map(|d| d.addr))
                    .for_each(|a| frames.release(a));
                self.stats.drop_packet(in_vif, DropReason::NoFrame);
                self.scattered = descs;
                return;
            };
            frame[room..room + piece.len()].copy_from_slice(piece);
            if let (Some(r), true) = (checksum, descs.is_empty()) {
                if let Some(metadata) = frame.first_chunk_mut::<TX_METADATA_LEN>() {
                    request_tx_checksum(metadata, r.start, r.offset);
                }
            }
            descs.push(Desc {
                addr: base + room as u64,
                len: piece.len() as u32,
            });
        }
        if descs.len() > 1 {
            self.stats.chains_sent.add(1);
        }
        self.stats.count_checksum_offload(checksum.is_some());
        tx.push_chain(queue, &descs, checksum.is_some());
        self.scattered = descs;
    }
}

//! Packets larger than a chunk through the batch routine's chain path: the chunks
//! gathered, the same pipeline, the result scattered into whole chunks queued as one
//! chain, byte for byte what the pipeline gives the packet in one buffer; every
//! received chunk given back; an ICMP error for a too-big chain goes back where it
//! came from; a chain naming a chunk the worker does not hold is a counted drop.

use super::frames::{bytes_of, engine, received, Chunks, Queued, CHUNK};
use super::*;
use crate::batch::{Desc, FrameStore};

/// Pods a and b in VRF red, b with MTU `b_mtu`, a with 9000.
fn jumbo_snapshot(b_mtu: u16) -> Snapshot {
    let mut s = state();
    set_mtus(&mut s, &[("a", 9000), ("b", b_mtu)]);
    s.build(1, MacAddr(ROUTER))
}

/// An 8000-byte UDP datagram from pod a to pod b.
fn jumbo_udp() -> Vec<u8> {
    let payload: Vec<u8> = (0..8000u32).map(|i| (i * 7) as u8).collect();
    udp4(MAC_A, ROUTER, A4, B4, 64, &payload)
}

/// `frame` as the pipeline forwards it in one buffer (to `out`, asserted).
fn through_the_pipeline(snap: &Snapshot, frame: &[u8], out: Vif) -> Vec<u8> {
    let mut big = vec![0u8; frame.len() + 2 * HEADROOM];
    big[HEADROOM..HEADROOM + frame.len()].copy_from_slice(frame);
    let mut pkt = PacketBuf::new(&mut big, HEADROOM, frame.len()).unwrap();
    assert_eq!(
        process(snap, Vif(1), &mut pkt, &mut PipelineContext::default()),
        Verdict::Transmit(out)
    );
    pkt.data().to_vec()
}

#[test]
fn a_chain_is_forwarded_as_the_one_buffer_pipeline_forwards_it() {
    let snap = jumbo_snapshot(9000);
    let frame = jumbo_udp();
    let b = snap.interface_by_name("b").unwrap().vif;
    let want = through_the_pipeline(&snap, &frame, b);

    let mut store = Chunks::new(8);
    let chain = received(&mut store, &frame);
    assert_eq!(chain.len(), 3);
    let mut engine = engine();
    let mut queued = Queued::default();
    engine.forward_chain(&snap, Vif(1), 1, &chain, &mut store, &mut queued);
    assert_eq!(queued.0.len(), 1, "one packet queued");
    let (queue, out) = queued.0.pop().unwrap();
    assert_eq!(queue, b.0 as u16);
    assert_eq!(out.len(), want.len().div_ceil(CHUNK), "whole chunks");
    assert_eq!(bytes_of(&mut store, &out), want);
    for d in &out {
        store.release(d.addr);
    }
    assert_eq!(store.free.len(), 8, "every chunk given back once");
    assert_eq!(
        (engine.stats.chains_received.get(), engine.stats.chains_sent.get()),
        (1, 1)
    );
}

#[test]
fn a_too_big_chain_gets_its_icmp_error_back_and_a_foreign_chunk_is_a_drop() {
    let snap = jumbo_snapshot(1500);
    let frame = udp4(MAC_A, ROUTER, A4, B4, 64, &[5u8; 8000]);
    let mut store = Chunks::new(8);
    let chain = received(&mut store, &frame);
    let mut engine = engine();
    let mut queued = Queued::default();
    engine.forward_chain(&snap, Vif(1), 1, &chain, &mut store, &mut queued);
    let (queue, out) = queued.0.pop().expect("the ICMP error");
    assert_eq!((queue, out.len()), (1, 1), "back to the sender, in one chunk");
    let error = bytes_of(&mut store, &out);
    assert_eq!(&error[..6], &MAC_A, "to pod a");
    assert_eq!(
        (error[ETH_LEN + 20], error[ETH_LEN + 21]),
        (3, 4),
        "fragmentation needed"
    );
    assert_eq!(u16::from_be_bytes([error[ETH_LEN + 26], error[ETH_LEN + 27]]), 1500);
    store.release(out[0].addr);
    assert_eq!(store.free.len(), 8);

    // A descriptor outside the store: the chain is a truncated drop, and its own
    // chunks are given back.
    let mut chain = received(&mut store, &frame);
    chain.push(Desc {
        addr: 1 << 40,
        len: 100,
    });
    let before = engine.stats.drops[DropReason::Truncated.index()].get();
    engine.forward_chain(&snap, Vif(1), 1, &chain, &mut store, &mut queued);
    assert_eq!(engine.stats.drops[DropReason::Truncated.index()].get(), before + 1);
    assert!(queued.0.is_empty(), "nothing queued");
    assert_eq!(store.free.len(), 8);
}

#[test]
fn with_transmit_metadata_a_chain_leaves_after_the_room_and_asks_for_its_checksum() {
    use xsk::TX_METADATA_LEN;
    let snap = jumbo_snapshot(9000);
    let frame = jumbo_udp();
    let want = through_the_pipeline(&snap, &frame, snap.interface_by_name("b").unwrap().vif);

    let mut store = Chunks::new(8);
    store.tx_metadata = true;
    let chain = received(&mut store, &frame);
    let mut engine = engine();
    let mut queued = Queued::default();
    engine.forward_chain(&snap, Vif(1), 1, &chain, &mut store, &mut queued);
    let (_, out) = queued.0.pop().unwrap();
    assert_eq!(queued.1, [true], "the packet asks for its checksum");
    for d in &out {
        assert_eq!(d.addr % CHUNK as u64, TX_METADATA_LEN as u64, "after the room");
        assert!(d.len as usize <= CHUNK - TX_METADATA_LEN);
    }
    // The room of the first chunk: the checksum flag, the UDP header's offset in the
    // frame (Ethernet + IPv4) and the field's in it.
    let room = &store.chunk_mut(out[0].addr).unwrap()[..TX_METADATA_LEN];
    assert_eq!(u64::from_ne_bytes(room[..8].try_into().unwrap()), 1 << 1);
    let (start, offset) = (
        u16::from_ne_bytes([room[8], room[9]]) as usize,
        u16::from_ne_bytes([room[10], room[11]]) as usize,
    );
    assert_eq!((start, offset), (ETH_LEN + 20, 6));
    // Finished as the kernel finishes it, the packet is what the pipeline gave.
    let mut sent = bytes_of(&mut store, &out);
    let sum = checksum::finish(checksum::sum(&sent[start..], 0));
    sent[start + offset..start + offset + 2].copy_from_slice(&sum.to_be_bytes());
    assert_eq!(sent, want);
    assert_eq!(engine.stats.checksum_offloads.get(), 1);
}

//! A translated flow through the batch routine of a worker whose frames leave with
//! their transport checksums finished by the kernel (a UMEM with transmit metadata):
//! each frame asks for its checksum, and once finished as the kernel finishes it is
//! byte for byte what the pipeline gives with every checksum updated in software,
//! both ways and on every packet (the first, which sets the flow up, and the
//! established ones); a capture of the sending interface shows those finished bytes.

use super::frames::{bytes_of, engine, received, Chunks, Queued, CHUNK};
use super::services::{with_services, SVC4};
use super::*;
use crate::batch::{Desc, FrameStore};
use crate::capture::{Captures, Stage};
use std::sync::Arc;
use xsk::TX_METADATA_LEN;

/// The frame `desc` holds once the kernel finished the checksum its room asks for.
fn as_the_kernel_finishes(store: &mut Chunks, desc: Desc) -> Vec<u8> {
    let mut frame = bytes_of(store, &[desc]);
    let offset = (desc.addr % CHUNK as u64) as usize;
    let room = &store.chunk_mut(desc.addr).unwrap()[offset - TX_METADATA_LEN..offset];
    assert_eq!(
        u64::from_ne_bytes(room[..8].try_into().unwrap()),
        1 << 1,
        "a checksum request"
    );
    let (start, field) = (
        usize::from(u16::from_ne_bytes([room[8], room[9]])),
        usize::from(u16::from_ne_bytes([room[10], room[11]])),
    );
    let sum = checksum::finish(checksum::sum(&frame[start..], 0));
    frame[start + field..start + field + 2].copy_from_slice(&sum.to_be_bytes());
    frame
}

#[test]
fn a_translated_flow_leaves_its_checksum_to_the_kernel_and_sends_the_same_bytes() {
    let (_, snap) = with_services(&[B4], false);
    let vif = |name: &str| snap.interface_by_name(name).unwrap().vif;
    let (a, b) = (vif("a"), vif("b"));
    let to_service = tcp4(MAC_A, ROUTER, A4, SVC4, (40_000, 80), 64);
    let reply = tcp4(MAC_B, ROUTER, B4, A4, (9376, 40_000), 64);
    let mut software = PipelineContext::default();
    let (verdict, want_there) = run_in(&snap, a, &to_service, &mut software);
    assert_eq!(verdict, Verdict::Transmit(b));
    let (verdict, want_back) = run_in(&snap, b, &reply, &mut software);
    assert_eq!(verdict, Verdict::Transmit(a));

    let mut store = Chunks::new(8);
    store.tx_metadata = true;
    let mut engine = engine();
    let captures = Arc::new(Captures::new(1));
    let capture = captures.start(b, 2048).unwrap();
    engine.serve_captures(Arc::clone(&captures), 0);
    let mut queued = Queued::default();
    for round in 0..3 {
        for (frame, from, to, want) in [(&to_service, a, b, &want_there), (&reply, b, a, &want_back)] {
            let rx = received(&mut store, frame);
            engine.run(&snap, from, 0, &rx, &mut store, &mut queued);
            let (queue, out) = queued.0.pop().unwrap();
            assert_eq!((queue, queued.1.pop()), (to.0 as u16, Some(true)), "round {round}");
            assert_eq!(&as_the_kernel_finishes(&mut store, out[0]), want, "round {round}");
            store.release(out[0].addr);
        }
    }
    let (packets, _) = captures.read(capture, 100).unwrap();
    let sent: Vec<&[u8]> = packets
        .iter()
        .filter(|p| p.stage == Stage::Sent)
        .map(|p| &p.bytes[..])
        .collect();
    assert_eq!(sent, [&want_there[..]; 3], "the capture shows the bytes on the wire");
}

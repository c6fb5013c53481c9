//! A translated flow through the batch routine of a worker whose frames leave with
//! their transport checksums finished by the kernel (a UMEM with transmit metadata):
//! each frame asks for its checksum, and once finished as the kernel finishes it is
//! byte for byte what the pipeline gives with every checksum updated in software,
//! both ways and on every packet (the first, which sets the flow up, and the
//! established ones); a capture of the sending interface shows those finished bytes.
//! Into a tunnel, the request is the inner packet's; a datagram the vrouter cuts into
//! fragments has its checksum finished in software, over all of it, first.

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

#[test]
fn a_translated_flow_into_a_tunnel_asks_for_the_inner_checksum_and_sends_the_same_bytes() {
    // Backend b on node 2, behind an MPLSoUDP tunnel.
    let mut s = super::tunnel::tunnel_state(1500, None);
    s.add_service(web_service("default/web", SVC4, B4)).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let a = snap.interface_by_name("a").unwrap().vif;
    let segment = tcp4(MAC_A, ROUTER, A4, SVC4, (40_000, 80), 64);
    let (verdict, want) = run_in(&snap, a, &segment, &mut PipelineContext::default());
    assert_eq!(verdict, Verdict::Transmit(Vif(0)), "to node 2");
    // Behind the outer Ethernet, IPv4, UDP and MPLS headers: the inner packet.
    const OUTER: usize = ETH_LEN + 20 + 8 + 4;

    let mut store = Chunks::new(8);
    store.tx_metadata = true;
    let mut engine = engine();
    let mut queued = Queued::default();
    for round in 0..3 {
        let rx = received(&mut store, &segment);
        engine.run(&snap, a, 0, &rx, &mut store, &mut queued);
        let (queue, out) = queued.0.pop().unwrap();
        assert_eq!((queue, queued.1.pop()), (0, Some(true)), "round {round}");
        let sent = as_the_kernel_finishes(&mut store, out[0]);
        assert_eq!(sent.len(), want.len(), "round {round}");
        assert_eq!(&sent[OUTER..], &want[OUTER..], "round {round}: the inner packet");
        store.release(out[0].addr);
    }
}

#[test]
fn a_translated_datagram_the_vrouter_fragments_has_its_checksum_finished_over_all_of_it() {
    // Backend b on node 2 behind MPLSoUDP with a 1500-byte fabric: a 1500-byte
    // datagram without DF from pod a to the service is cut into fragments, each
    // sent on its own, so its checksum is finished here, over the whole datagram.
    let mut s = super::tunnel::tunnel_state(1500, None);
    let mut spec = web_service("default/dns", SVC4, B4);
    spec.ports[0] = control_client::ServicePort {
        protocol: control_client::L4Protocol::Udp,
        port: 53,
        target_port: 5353,
        node_port: None,
    };
    s.add_service(spec).unwrap();
    let snap = s.build(1, MacAddr(ROUTER));
    let a = snap.interface_by_name("a").unwrap().vif;
    let payload: Vec<u8> = (0..1472u32).map(|i| (i * 13) as u8).collect();
    let mut datagram = Vec::new();
    PacketBuilder::ethernet2(MAC_A, ROUTER)
        .ipv4(A4, SVC4, 64)
        .udp(40_000, 53)
        .write(&mut datagram, &payload)
        .unwrap();
    datagram[ETH_LEN + 6] &= !0x40;
    datagram[ETH_LEN + 10..ETH_LEN + 12].fill(0);
    let check = checksum::checksum(&datagram[ETH_LEN..ETH_LEN + 20]);
    datagram[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&check.to_be_bytes());
    let (verdict, want) = run_in(&snap, a, &datagram, &mut PipelineContext::default());
    assert!(matches!(verdict, Verdict::Fragment(_)), "{verdict:?}");
    // The UDP datagram as translated, its checksum updated in software.
    let want_udp = &want[ETH_LEN + 20..];

    let mut store = Chunks::new(8);
    store.tx_metadata = true;
    let mut engine = engine();
    let mut queued = Queued::default();
    let rx = received(&mut store, &datagram);
    engine.run(&snap, a, 0, &rx, &mut store, &mut queued);
    assert!(queued.0.len() >= 2, "fragments: {}", queued.0.len());
    assert!(queued.1.iter().all(|asked| !asked), "fragments ask for nothing");
    // The inner fragments behind their outer headers, put back together.
    const INNER: usize = ETH_LEN + 20 + 8 + 4;
    let mut udp = vec![0u8; want_udp.len()];
    for (queue, descs) in std::mem::take(&mut queued.0) {
        assert_eq!(queue, 0, "on the fabric");
        let frame = bytes_of(&mut store, &descs);
        let ip = &frame[INNER..];
        let offset = usize::from(u16::from_be_bytes([ip[6] & 0x1f, ip[7]])) * 8;
        let part = &ip[20..usize::from(u16::from_be_bytes([ip[2], ip[3]]))];
        udp[offset..offset + part.len()].copy_from_slice(part);
    }
    assert_eq!(
        &udp[..],
        want_udp,
        "the datagram, checksum included, as the pipeline gives it"
    );
}

//! Records follow a flow's life with deltas that sum to its counts; IPFIX messages
//! are well formed, bounded and numbered.

use super::ipfix::{encode, MAX_MESSAGE, TEMPLATE_V4, TEMPLATE_V6};
use super::tracker::{EndReason, FlowTracker};
use super::*;
use flow_table::{FlowActivity, FlowKey, FlowRef, FlowValue};

fn entry(index: u32, src_port: u16) -> FlowRef {
    FlowRef {
        index,
        version: 0,
        key: FlowKey::v4(1, [198, 18, 1, 2].into(), [198, 18, 1, 3].into(), 6, src_port, 80),
        value: FlowValue {
            data: 0,
            generation: 1,
            owner: 3,
        },
        reverse: None,
    }
}

/// A record of one packet of 100 bytes of the flow from `src_port`.
fn record(src_port: u16, event: FlowEvent) -> FlowRecord {
    FlowRecord {
        key: entry(0, src_port).key,
        owner: 3,
        data: 0,
        transform: None,
        packets: 1,
        bytes: 100,
        total_packets: 1,
        total_bytes: 100,
        start_ms: 1,
        end_ms: 2,
        event,
    }
}

fn activity(packets: u64, bytes: u64, last_seen: u32) -> FlowActivity {
    FlowActivity {
        last_seen,
        packets,
        bytes,
        tcp_flags: 0,
    }
}

#[test]
fn records_follow_a_flow_and_their_deltas_sum_to_its_counts() {
    let mut t = FlowTracker::new(3600, 1 << 16);
    t.begin_pass(10);
    t.visit(&entry(7, 1000), activity(5, 500, 10), || None);
    t.visit(&entry(8, 2000), activity(1, 60, 9), || None);
    let first = t.end_pass();
    assert_eq!(first.len(), 2);
    assert!(first.iter().all(|r| r.event == FlowEvent::Created));
    assert_eq!((first[0].packets, first[0].bytes), (5, 500));

    // Going on (no active timeout yet): no record; entry 8 vanished (re-steered).
    t.begin_pass(11);
    t.visit(&entry(7, 1000), activity(9, 900, 11), || None);
    let second = t.end_pass();
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0].event, FlowEvent::Ended(EndReason::Forced));
    assert_eq!(second[0].key.src_port(), 2000);
    assert_eq!(
        (second[0].packets, second[0].bytes),
        (0, 0),
        "nothing new since its first record"
    );

    // Aged out as TCP closed: the rest of its counts.
    t.begin_pass(12);
    t.visit(&entry(7, 1000), activity(12, 1200, 12), || None);
    t.removed(7, EndReason::EndOfFlow);
    let third = t.end_pass();
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].event, FlowEvent::Ended(EndReason::EndOfFlow));
    let total: (u64, u64) = [&first[0], &third[0]]
        .iter()
        .fold((0, 0), |s, r| (s.0 + r.packets, s.1 + r.bytes));
    assert_eq!(total, (12, 1200));
    assert!(t.is_empty());

    // An index reused by another flow between passes ends the old one.
    t.begin_pass(13);
    t.visit(&entry(9, 1), activity(1, 10, 13), || None);
    t.end_pass();
    t.begin_pass(14);
    t.visit(&entry(9, 2), activity(2, 20, 14), || None);
    let events: Vec<(u16, FlowEvent)> = t.end_pass().iter().map(|r| (r.key.src_port(), r.event)).collect();
    assert!(events.contains(&(1, FlowEvent::Ended(EndReason::Forced))), "{events:?}");
    assert!(events.contains(&(2, FlowEvent::Created)), "{events:?}");
    assert_eq!(t.end_all().len(), 1);
}

#[test]
fn the_tracker_stays_within_the_memory_it_states_for_its_table() {
    const ENTRIES: u32 = 1000;
    let mut t = FlowTracker::new(3600, ENTRIES);
    let translated = || Some(Translation { nat: 42, pair: None });
    // The table full of translated flows, half of them ended, the table full again
    // with others: every vector at its most.
    t.begin_pass(1);
    for i in 0..ENTRIES {
        t.visit(&entry(i, i as u16), activity(1, 100, 1), translated);
    }
    t.end_pass();
    for i in (0..ENTRIES).step_by(2) {
        t.removed(i, EndReason::Idle);
    }
    t.end_pass();
    t.begin_pass(2);
    for i in 0..ENTRIES {
        t.visit(&entry(i, (i + ENTRIES) as u16), activity(1, 100, 2), translated);
    }
    t.end_pass();
    assert_eq!(t.len(), ENTRIES as usize);
    assert!(
        t.memory_bytes() <= FlowTracker::memory_bytes_for(ENTRIES),
        "{} > {}",
        t.memory_bytes(),
        FlowTracker::memory_bytes_for(ENTRIES)
    );
}

#[test]
fn a_long_flow_gets_periodic_records() {
    let mut t = FlowTracker::new(1, 1 << 16);
    t.begin_pass(1);
    t.visit(&entry(1, 1), activity(1, 100, 1), || None);
    t.end_pass();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    t.begin_pass(2);
    t.visit(&entry(1, 1), activity(3, 300, 2), || None);
    let r = t.end_pass();
    assert_eq!(r.len(), 1);
    assert_eq!((r[0].event, r[0].packets, r[0].bytes), (FlowEvent::Updated, 2, 200));
}

#[test]
fn an_idle_long_flow_gets_no_record_until_it_sends_again() {
    let mut t = FlowTracker::new(5, 1 << 16);
    let translated = || Some(Translation { nat: 42, pair: None });
    t.begin_pass(1);
    t.visit(&entry(1, 1), activity(1, 100, 1), translated);
    assert_eq!(t.end_pass()[0].transform.map(|x| x.nat), Some(42));
    // Past the active timeout with nothing new: no record, pass after pass.
    for now in 6..9 {
        t.begin_pass(now);
        t.visit(&entry(1, 1), activity(1, 100, 1), || panic!("asked for no record"));
        assert!(t.end_pass().is_empty());
    }
    // It sends again: its periodic record at once, with the translation it had.
    t.begin_pass(9);
    t.visit(&entry(1, 1), activity(4, 400, 9), translated);
    let r = t.end_pass();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(
        (r[0].event, r[0].packets, r[0].total_packets),
        (FlowEvent::Updated, 3, 4)
    );
    // Many flows, some gone by another path: each ends once, the others stay.
    t.begin_pass(10);
    t.visit(&entry(1, 1), activity(4, 400, 9), || None);
    for i in 2..1000 {
        t.visit(&entry(i, i as u16), activity(1, 10, 10), || None);
    }
    assert_eq!(t.end_pass().len(), 998);
    t.begin_pass(11);
    for i in (1..1000).filter(|i| i % 3 != 0) {
        t.visit(&entry(i, i as u16), activity(1 + u64::from(i == 1) * 3, 10, 11), || {
            None
        });
    }
    let ended = t.end_pass();
    assert_eq!(ended.len(), 333, "{}", ended.len());
    assert!(ended
        .iter()
        .all(|r| r.event == FlowEvent::Ended(EndReason::Forced) && r.key.src_port() % 3 == 0));
    assert_eq!(t.len(), 666);
}

#[test]
fn messages_are_well_formed_bounded_and_numbered() {
    let snap = nexthop::Snapshot::default();
    let v6 = FlowKey::v6(
        1,
        "2001:db8::1".parse().unwrap(),
        "2001:db8::2".parse().unwrap(),
        17,
        5,
        53,
    );
    let mut records: Vec<FlowRecord> = (0..100u16).map(|i| record(i, FlowEvent::Created)).collect();
    let first = records[0];
    records.extend((0..10).map(|_| FlowRecord { key: v6, ..first }));
    let mut sequence = 40;
    let messages = encode(&records, &snap, 7, 1000, &mut sequence, true);
    assert_eq!(sequence, 150);
    let mut seen = 0u32;
    let mut data_records = 0;
    for (i, m) in messages.iter().enumerate() {
        assert!(m.len() <= MAX_MESSAGE);
        assert_eq!(u16::from_be_bytes([m[0], m[1]]), 10);
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len());
        assert_eq!(u32::from_be_bytes([m[8], m[9], m[10], m[11]]), 40 + seen, "sequence");
        assert_eq!(u32::from_be_bytes([m[12], m[13], m[14], m[15]]), 7, "domain");
        // Walk the sets: they tile the message.
        let mut at = 16;
        while at < m.len() {
            let id = u16::from_be_bytes([m[at], m[at + 1]]);
            let len = usize::from(u16::from_be_bytes([m[at + 2], m[at + 3]]));
            assert!(len >= 4 && at + len <= m.len());
            let per = match id {
                2 => {
                    assert_eq!(i, 0, "templates lead the first message only");
                    0
                }
                TEMPLATE_V4 => 67,
                TEMPLATE_V6 => 115,
                other => panic!("set {other}"),
            };
            if per > 0 {
                assert_eq!((len - 4) % per, 0);
                seen += ((len - 4) / per) as u32;
                data_records += (len - 4) / per;
            }
            at += len;
        }
    }
    assert_eq!(data_records, 110);
    // Nothing to send and templates due: the templates alone.
    let alone = encode(&[], &snap, 7, 1000, &mut sequence, true);
    assert_eq!(alone.len(), 1);
    assert_eq!(u16::from_be_bytes([alone[0][16], alone[0][17]]), 2);
}

#[test]
fn a_watcher_gets_what_came_after_its_last_record_and_learns_what_it_missed() {
    use super::recent::RecentRecords;
    let snap = nexthop::Snapshot::default();
    let ring = RecentRecords::new(4);
    let record = |port| record(port, FlowEvent::Ended(EndReason::Idle));
    // Only new ones: nothing yet, and the cursor is the newest.
    let start = ring.since(u64::MAX, 10);
    assert!(start.records.is_empty() && start.enabled);
    ring.push(&[record(1), record(2)], &snap);
    let first = ring.since(start.last, 10);
    assert_eq!(first.records.iter().map(|r| r.src_port).collect::<Vec<_>>(), [1, 2]);
    assert_eq!((first.lost, first.records[0].end_reason.as_deref()), (0, Some("idle")));
    ring.push(&[record(3), record(4), record(5), record(6), record(7)], &snap);
    // Record 3 was pushed out of the ring of 4 (now 4 to 7) before it was read.
    let second = ring.since(first.last, 2);
    assert_eq!(second.lost, 1);
    assert_eq!(second.records.iter().map(|r| r.src_port).collect::<Vec<_>>(), [4, 5]);
    let third = ring.since(second.last, 10);
    assert_eq!((third.lost, third.records.len()), (0, 2));
    assert!(!RecentRecords::new(0).since(0, 10).enabled);
    // More at once than the ring holds: the newest are kept, the rest counted lost.
    let batch: Vec<FlowRecord> = (10..20).map(record).collect();
    ring.push(&batch, &snap);
    let fourth = ring.since(third.last, 10);
    assert_eq!(
        fourth.records.iter().map(|r| r.src_port).collect::<Vec<_>>(),
        [16, 17, 18, 19]
    );
    assert_eq!((fourth.lost, fourth.records[0].seq), (6, 7 + 10 - 3));
}

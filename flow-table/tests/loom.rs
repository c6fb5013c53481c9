//! Loom models of the races that matter, on a tiny table: concurrent inserts of one
//! key, insert against lookup, remove against lookup, an entry moving to its other
//! bucket against lookup and against removal. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p flow-table --test loom --release`.
#![cfg(loom)]

use flow_table::{FlowKey, FlowTable, FlowValue, Insert};
use loom::sync::Arc;
use std::net::Ipv4Addr;

fn key(n: u8) -> FlowKey {
    FlowKey::v4(1, Ipv4Addr::new(198, 18, 0, n), Ipv4Addr::new(198, 18, 1, 1), 17, 1, 2)
}

fn v(n: u64) -> FlowValue {
    FlowValue {
        data: n,
        generation: 1,
        owner: 1,
    }
}

#[test]
fn concurrent_inserts_of_one_key_leave_one_pair() {
    loom::model(|| {
        let t = Arc::new(FlowTable::new(4));
        let t2 = Arc::clone(&t);
        let k = key(1);
        let h = loom::thread::spawn(move || {
            matches!(
                t2.insert_pair((&k, v(1)), (&k.reversed(), v(2))),
                Insert::Inserted { .. }
            )
        });
        let mine = matches!(
            t.insert_pair((&k, v(1)), (&k.reversed(), v(2))),
            Insert::Inserted { .. }
        );
        let theirs = h.join().unwrap();
        let mut keys = Vec::new();
        t.for_each(|r, _| keys.push(r.key));
        keys.sort();
        assert_eq!(keys.len(), 2, "{keys:?}");
        assert_ne!(keys[0], keys[1]);
        assert!(mine || theirs, "nobody inserted");
    });
}

#[test]
fn lookup_during_insert_sees_nothing_or_the_whole_entry() {
    loom::model(|| {
        let t = Arc::new(FlowTable::new(4));
        let t2 = Arc::clone(&t);
        let k = key(2);
        let h = loom::thread::spawn(move || {
            t2.insert_pair((&k, v(7)), (&k.reversed(), v(8)));
        });
        if let Some(r) = t.lookup(&k, k.hash()) {
            assert_eq!((r.key, r.value.data, r.value.generation), (k, 7, 1));
        }
        h.join().unwrap();
        assert!(t.lookup(&k, k.hash()).is_some());
    });
}

#[test]
fn remove_and_reuse_during_lookup_never_returns_a_wrong_key() {
    loom::model(|| {
        let t = Arc::new(FlowTable::new(2));
        let a = key(3);
        let b = key(4);
        let Insert::Inserted { forward, reverse } = t.insert_pair((&a, v(1)), (&a.reversed(), v(2))) else {
            panic!()
        };
        let t2 = Arc::clone(&t);
        let h = loom::thread::spawn(move || {
            t2.remove(&forward);
            t2.remove(&reverse);
            t2.insert_pair((&b, v(3)), (&b.reversed(), v(4)));
        });
        if let Some(r) = t.lookup(&a, a.hash()) {
            assert_eq!((r.key, r.value.data, r.value.generation), (a, 1, 1));
        }
        h.join().unwrap();
        assert!(t.lookup(&a, a.hash()).is_none());
    });
}

/// A key whose two buckets differ (so that its entry can move between them).
fn movable() -> FlowKey {
    (10..=250u8)
        .map(key)
        .find(|k| {
            let probe = FlowTable::new(4);
            probe.insert_pair((k, v(0)), (&k.reversed(), v(0)));
            probe.move_for_model(k)
        })
        .expect("some key has two distinct buckets")
}

/// A table holding one flow whose forward entry another thread is moving.
fn start_move() -> (Arc<FlowTable>, FlowKey, loom::thread::JoinHandle<bool>) {
    let t = Arc::new(FlowTable::new(4));
    let a = movable();
    t.insert_pair((&a, v(1)), (&a.reversed(), v(2)));
    let t2 = Arc::clone(&t);
    (t, a, loom::thread::spawn(move || t2.move_for_model(&a)))
}

#[test]
fn an_entry_moving_between_buckets_is_never_another_flow_and_ends_indexed_once() {
    loom::model(|| {
        let (t, a, h) = start_move();
        // A lookup during the move may miss (the entry is being written, as during an
        // update), but never returns something else.
        if let Some(r) = t.lookup(&a, a.hash()) {
            assert_eq!((r.key, r.value.data), (a, 1));
        }
        h.join().unwrap();
        assert_eq!(t.lookup(&a, a.hash()).map(|r| r.value.data), Some(1));
        assert_eq!(t.occupied_slots(), 2, "one slot per direction");
    });
}

#[test]
fn a_removal_racing_a_move_leaves_no_slot_behind() {
    loom::model(|| {
        let (t, a, h) = start_move();
        // Aging's way: a removal that loses to a concurrent write is retried later.
        let mut removed = false;
        for _ in 0..3 {
            if let Some(f) = t.lookup(&a, a.hash()) {
                removed = t.remove(&f);
                if removed {
                    break;
                }
            }
            loom::thread::yield_now();
        }
        h.join().unwrap();
        if !removed {
            let f = t.lookup(&a, a.hash()).expect("still indexed");
            assert!(t.remove(&f));
        }
        assert!(t.lookup(&a, a.hash()).is_none());
        assert_eq!(t.occupied_slots(), 1, "only the reverse direction's slot");
    });
}

//! Loom models of the races that matter, on a tiny table: concurrent inserts of one
//! key, insert against lookup, remove against lookup. Run with
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

//! Many threads insert, look up and remove at once; the result is checked against
//! oracles: no key twice, every pair linked, counters equal to what is stored, and
//! per-thread histories replayed exactly.
#![cfg(not(loom))]

use flow_table::{FlowKey, FlowTable, FlowValue, Insert};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

fn key(thread: u32, n: u32) -> FlowKey {
    FlowKey::v4(
        thread as u16,
        Ipv4Addr::from(0xc612_0000 | n),
        Ipv4Addr::new(198, 19, 0, 1),
        6,
        1000 + (n % 50_000) as u16,
        80,
    )
}

fn contents(t: &FlowTable) -> HashMap<FlowKey, u64> {
    let mut seen = HashMap::new();
    t.for_each(|r, _| {
        assert!(
            seen.insert(r.key, r.value.data).is_none(),
            "key stored twice: {:?}",
            r.key
        );
        let rev = r.reverse.and_then(|i| t.get(i)).expect("every entry is linked");
        assert_eq!(rev.key, r.key.reversed());
    });
    assert_eq!(t.stats().active as usize, seen.len());
    seen
}

#[test]
fn racing_inserts_of_the_same_keys_keep_one_copy() {
    let t = Arc::new(FlowTable::new(40_000));
    let threads: Vec<_> = (0..4)
        .map(|id| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let mut won = 0;
                // Every thread inserts the same keys, in a different order.
                for i in 0..5_000u32 {
                    let n = if id % 2 == 0 { i } else { 4_999 - i };
                    let k = key(0, n);
                    if let Insert::Inserted { .. } = t.insert_pair(
                        (
                            &k,
                            FlowValue {
                                data: u64::from(n),
                                ..Default::default()
                            },
                        ),
                        (&k.reversed(), FlowValue::default()),
                    ) {
                        won += 1;
                    }
                }
                won
            })
        })
        .collect();
    let won: u32 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    let stored = contents(&t);
    assert_eq!(stored.len(), 10_000);
    assert_eq!(won, 5_000, "each flow set up exactly once");
}

#[test]
fn concurrent_insert_remove_matches_per_thread_oracles() {
    let t = Arc::new(FlowTable::new(60_000));
    let threads: Vec<_> = (0..4u32)
        .map(|id| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                let mut oracle: HashSet<u32> = HashSet::new();
                let mut x = 0x1234_5678u32 ^ id;
                for _ in 0..40_000 {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let n = x % 6_000;
                    let k = key(id + 1, n);
                    if x & 0x300 == 0 {
                        if let Some(f) = t.lookup(&k, k.hash()) {
                            let r = f.reverse.and_then(|i| t.get(i)).expect("linked");
                            assert!(t.remove(&f) && t.remove(&r));
                            assert!(oracle.remove(&n));
                        } else {
                            assert!(!oracle.contains(&n));
                        }
                    } else {
                        match t.insert_pair(
                            (
                                &k,
                                FlowValue {
                                    data: u64::from(n),
                                    ..Default::default()
                                },
                            ),
                            (&k.reversed(), FlowValue::default()),
                        ) {
                            Insert::Inserted { .. } | Insert::Alone(_) => assert!(oracle.insert(n)),
                            Insert::Exists(e) => {
                                assert!(oracle.contains(&n));
                                assert_eq!(e.value.data, u64::from(n));
                            }
                            Insert::Full => panic!("table full at {} entries", t.stats().active),
                        }
                    }
                }
                (id, oracle)
            })
        })
        .collect();
    let mut expected = HashMap::new();
    for h in threads {
        let (id, oracle) = h.join().unwrap();
        for n in oracle {
            let k = key(id + 1, n);
            expected.insert(k, u64::from(n));
            expected.insert(k.reversed(), 0);
        }
    }
    assert_eq!(contents(&t), expected);
}

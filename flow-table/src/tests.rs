use super::*;
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;

fn key(n: u32) -> FlowKey {
    FlowKey::v4(
        1,
        Ipv4Addr::from(0xc612_0000 | (n & 0xffff)),
        Ipv4Addr::new(198, 19, 0, 1),
        17,
        (n >> 16) as u16 + 1000,
        53,
    )
}

fn val(n: u64) -> FlowValue {
    FlowValue {
        data: n,
        generation: 7,
        owner: 0,
    }
}

#[test]
fn pair_is_linked_both_ways() {
    let t = FlowTable::new(64);
    let k = key(1);
    let Insert::Inserted { forward, reverse } = t.insert_pair((&k, val(10)), (&k.reversed(), val(11))) else {
        panic!()
    };
    assert_eq!(forward.reverse, Some(reverse.index));
    assert_eq!(reverse.reverse, Some(forward.index));
    let f = t.lookup(&k, k.hash()).unwrap();
    assert_eq!((f.key, f.value), (k, val(10)));
    let r = t.lookup(&k.reversed(), k.reversed().hash()).unwrap();
    assert_eq!(r.value, val(11));
    assert_eq!(t.stats().active, 2);
    let owned = FlowKey::v4(2, Ipv4Addr::new(198, 18, 9, 9), Ipv4Addr::new(198, 18, 9, 8), 6, 1, 2);
    let v = FlowValue {
        data: 1,
        generation: 1,
        owner: 5,
    };
    let Insert::Inserted { forward: o, .. } = t.insert_pair((&owned, v), (&owned.reversed(), v)) else {
        panic!()
    };
    assert_eq!(
        t.get(o.index).unwrap().value.owner,
        5,
        "owner kept off the hot line, read by get"
    );
    assert_eq!(t.lookup(&owned, owned.hash()).unwrap().value.data, 1);
    assert!(matches!(t.insert_pair((&k, val(99)), (&k.reversed(), val(99))), Insert::Exists(e) if e.value == val(10)));
}

#[test]
fn full_table_refuses_and_leaves_nothing() {
    let t = FlowTable::new(10);
    for n in 0..5 {
        let k = key(n);
        assert!(matches!(
            t.insert_pair((&k, val(1)), (&k.reversed(), val(2))),
            Insert::Inserted { .. }
        ));
    }
    let k = key(100);
    assert_eq!(t.insert_pair((&k, val(1)), (&k.reversed(), val(2))), Insert::Full);
    assert!(t.lookup(&k, k.hash()).is_none());
    assert_eq!(t.stats().active, 10);
    assert_eq!(t.stats().full, 1);
    // Existing flows are untouched, and room comes back when flows go.
    for n in 0..5 {
        assert!(t.lookup(&key(n), key(n).hash()).is_some());
    }
    let f = t.lookup(&key(0), key(0).hash()).unwrap();
    let r = t.get(f.reverse.unwrap()).unwrap();
    assert!(t.remove(&f) && t.remove(&r));
    assert!(matches!(
        t.insert_pair((&k, val(1)), (&k.reversed(), val(2))),
        Insert::Inserted { .. }
    ));
}

#[test]
fn removed_and_reused_entries_are_not_mistaken() {
    let t = FlowTable::new(4);
    let k = key(1);
    let Insert::Inserted { forward, .. } = t.insert_pair((&k, val(1)), (&k.reversed(), val(2))) else {
        panic!()
    };
    assert!(t.remove(&forward));
    assert!(!t.remove(&forward), "removed twice");
    assert!(t.lookup(&k, k.hash()).is_none());
    let k2 = key(2);
    let Insert::Inserted {
        forward: f2,
        reverse: r2,
    } = t.insert_pair((&k2, val(5)), (&k2.reversed(), val(6)))
    else {
        panic!()
    };
    assert!(
        f2.index == forward.index || r2.index == forward.index,
        "freed entry reused"
    );
    // A stale handle can neither update nor remove the new occupant.
    assert!(!t.update(&forward, val(77)));
    assert!(!t.remove(&forward));
    assert_eq!(t.lookup(&k2, k2.hash()).unwrap().value, val(5));
}

#[test]
fn update_changes_value_once_per_version() {
    let t = FlowTable::new(8);
    let k = key(3);
    let Insert::Inserted { forward, .. } = t.insert_pair((&k, val(1)), (&k.reversed(), val(2))) else {
        panic!()
    };
    assert!(t.update(
        &forward,
        FlowValue {
            data: 9,
            generation: 8,
            owner: 0
        }
    ));
    assert!(!t.update(&forward, val(10)), "stale version accepted");
    let now = t.lookup(&k, k.hash()).unwrap();
    assert_eq!(
        now.value,
        FlowValue {
            data: 9,
            generation: 8,
            owner: 0
        }
    );
    assert_eq!(now.reverse, forward.reverse);
    t.set_now(42);
    t.touch(now.index, 100);
    t.mark_tcp_flags(now.index, 0x02);
    let mut seen = Vec::new();
    t.for_each(|r, a| seen.push((r.key, a)));
    let (_, a) = seen.iter().find(|(kk, _)| *kk == k).unwrap();
    assert_eq!((a.packets, a.bytes, a.last_seen, a.tcp_flags), (1, 100, 42, 0x02));
}

#[test]
fn batch_lookup_matches_single() {
    let t = FlowTable::new(1000);
    for n in 0..200 {
        let k = key(n);
        t.insert_pair((&k, val(u64::from(n))), (&k.reversed(), val(0)));
    }
    let keys: Vec<FlowKey> = (150..250).map(key).collect();
    let mut hashes = vec![0; keys.len()];
    let mut out = vec![None; keys.len()];
    t.lookup_batch(&keys, &mut hashes, &mut out);
    for (k, o) in keys.iter().zip(&out) {
        assert_eq!(o.map(|r| r.key), t.lookup(k, k.hash()).map(|r| r.key));
    }
    assert_eq!(out.iter().filter(|o| o.is_some()).count(), 50);
}

#[test]
fn memory_per_entry_is_bounded() {
    let t = FlowTable::new(1 << 16);
    assert_eq!(
        t.memory_bytes(),
        FlowTable::memory_bytes_for(1 << 16),
        "the estimate is what is allocated"
    );
    let per_entry = t.memory_bytes() / (1 << 16);
    assert!(per_entry <= 128, "{per_entry} bytes per entry");
    // The target: 4M entries, transform room included, within 512 MiB.
    assert!(FlowTable::memory_bytes_for(4 << 20) <= 512 << 20);
}

#[test]
fn an_entry_keeps_its_transform_until_it_is_reused() {
    let t = FlowTable::new(64);
    let k = key(1);
    let Insert::Inserted { forward, reverse } = t.insert_pair((&k, val(1)), (&k.reversed(), val(2))) else {
        panic!("room for a pair");
    };
    assert_eq!(t.transform(forward.index), 0, "no transform unless set");
    t.set_transform(forward.index, 0x1234_5678_9abc);
    assert_eq!(t.transform(forward.index), 0x1234_5678_9abc);
    assert_eq!(t.transform(reverse.index), 0, "per direction");
    assert_eq!(t.transform(u32::MAX), 0);
    assert!(t.remove(&t.lookup(&k, k.hash()).unwrap()));
    let Insert::Inserted { forward: again, .. } = t.insert_pair((&key(2), val(1)), (&key(2).reversed(), val(2))) else {
        panic!("room for a pair");
    };
    assert_eq!(t.transform(again.index), 0, "a reused entry starts without one");
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u32),
    Remove(u32),
    Lookup(u32),
}

proptest! {
    /// Single-threaded against a HashMap oracle, in a table small enough to fill.
    #[test]
    fn matches_hashmap_oracle(ops in proptest::collection::vec(prop_oneof![
        (0u32..40).prop_map(Op::Insert), (0u32..40).prop_map(Op::Remove), (0u32..40).prop_map(Op::Lookup)], 1..200)) {
        let t = FlowTable::new(24);
        let mut oracle: HashMap<FlowKey, u64> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(n) => {
                    let k = key(n);
                    match t.insert_pair((&k, val(u64::from(n))), (&k.reversed(), val(0))) {
                        Insert::Inserted { .. } => {
                            prop_assert!(!oracle.contains_key(&k));
                            oracle.insert(k, u64::from(n));
                            oracle.insert(k.reversed(), 0);
                        }
                        Insert::Exists(e) => prop_assert_eq!(oracle.get(&k), Some(&e.value.data)),
                        Insert::Alone(_) => {
                            prop_assert!(oracle.contains_key(&k.reversed()));
                            oracle.insert(k, u64::from(n));
                        }
                        Insert::Full => prop_assert!(oracle.len() + 2 > 24 || !oracle.contains_key(&k)),
                    }
                }
                Op::Remove(n) => {
                    let k = key(n);
                    if let Some(f) = t.lookup(&k, k.hash()) {
                        let r = f.reverse.and_then(|i| t.get(i));
                        prop_assert!(t.remove(&f));
                        oracle.remove(&k);
                        if let Some(r) = r {
                            prop_assert!(t.remove(&r));
                            oracle.remove(&r.key);
                        }
                    } else {
                        prop_assert!(!oracle.contains_key(&k));
                    }
                }
                Op::Lookup(n) => {
                    let k = key(n);
                    prop_assert_eq!(t.lookup(&k, k.hash()).map(|r| r.value.data), oracle.get(&k).copied());
                }
            }
            prop_assert_eq!(t.stats().active as usize, oracle.len());
        }
    }
}

/// Inserts fill a key's home bucket first; when both of a key's buckets are full, an
/// entry moves to its other bucket. Without that, a table at half its slots refused a
/// few flows in every thousand; with it, only running out of entries refuses one.
#[test]
fn a_flow_is_refused_only_when_the_entries_run_out() {
    let t = FlowTable::new(4096);
    let mut inserted = 0u32;
    for n in 0..t.capacity() {
        let k = key(n);
        match t.insert_pair((&k, val(1)), (&k.reversed(), val(2))) {
            Insert::Inserted { .. } => inserted += 1,
            Insert::Exists(_) | Insert::Alone(_) => panic!("distinct keys"),
            Insert::Full => break,
        }
    }
    assert_eq!(inserted, t.capacity() / 2, "every entry used before a refusal");
    // Every flow is still found, wherever it was moved.
    for n in 0..inserted {
        let k = key(n);
        let f = t.lookup(&k, k.hash()).expect("indexed");
        assert_eq!(f.value.data, 1);
        assert!(t.lookup(&k.reversed(), k.reversed().hash()).is_some());
    }
}

#[test]
fn a_pair_is_found_with_its_transforms_in_place() {
    let t = FlowTable::new(64);
    let k = key(3);
    let Insert::Inserted { forward, reverse } =
        t.insert_pair_transformed((&k, val(1)), (&k.reversed(), val(2)), (0xaa, 0xbb))
    else {
        panic!("room for a pair");
    };
    assert_eq!((t.transform(forward.index), t.transform(reverse.index)), (0xaa, 0xbb));
    // A second insert of the same key finds the first, transforms untouched.
    let Insert::Exists(f) = t.insert_pair_transformed((&k, val(1)), (&k.reversed(), val(2)), (0xcc, 0xdd)) else {
        panic!("exists");
    };
    assert_eq!(t.transform(f.index), 0xaa);
}

/// A pair whose reverse key another entry holds: the forward entry is created alone,
/// said so, and the holder keeps its key and its own pair.
#[test]
fn a_pair_whose_reverse_key_is_held_leaves_its_forward_entry_alone_and_says_so() {
    let t = FlowTable::new(64);
    let (held, other) = (key(1), key(2));
    let Insert::Inserted { forward: holder, .. } = t.insert_pair((&held, val(1)), (&held.reversed(), val(2))) else {
        panic!("room for a pair");
    };
    let Insert::Alone(alone) = t.insert_pair((&other, val(3)), (&held, val(4))) else {
        panic!("the reverse key is held");
    };
    assert_eq!((alone.key, alone.reverse, alone.value), (other, None, val(3)));
    let still = t.lookup(&held, held.hash()).expect("the holder keeps its key");
    assert_eq!(
        (still.index, still.value, still.reverse.is_some()),
        (holder.index, val(1), true)
    );
    assert_eq!(t.stats().active, 3);
    // A second try finds the forward entry it left.
    assert!(matches!(t.insert_pair((&other, val(3)), (&held, val(4))), Insert::Exists(f) if f.index == alone.index));
}

//! ECMP member selection by rendezvous (highest random weight) hashing.
//!
//! Every member has a stable identity (its remote address and label, or its local
//! interface); a flow goes to the member whose identity, mixed with the flow's hash,
//! weighs most. Removing a member moves only the flows it had; adding one takes about
//! 1/N of the flows and moves no others, where the modulo scheme moves (N-1)/N.

/// The most members a composite next hop may have.
pub const MAX_MEMBERS: usize = 128;

#[inline]
fn weight(member: u64, flow: u64) -> u64 {
    let mut x = member ^ flow.rotate_left(17);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The index of the member `flow_hash` goes to; `None` when there is no member.
#[inline]
pub fn select(members: &[u64], flow_hash: u64) -> Option<usize> {
    members
        .iter()
        .enumerate()
        .max_by_key(|(_, m)| weight(**m, flow_hash))
        .map(|(i, _)| i)
}

/// A stable identity for a member from the words that define it.
pub fn member_id(words: &[u64]) -> u64 {
    words.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, w| weight(h, *w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(n: u64) -> impl Iterator<Item = u64> {
        (0..n).map(|i| weight(i, 0x5151))
    }

    #[test]
    fn spreads_evenly_and_only_removed_members_flows_move() {
        let members: Vec<u64> = (1..=3).map(|i| member_id(&[i, 0xbeef])).collect();
        let before: Vec<usize> = flows(1000).map(|h| select(&members, h).unwrap()).collect();
        for m in 0..3 {
            let share = before.iter().filter(|x| **x == m).count();
            assert!(
                (267..=400).contains(&share),
                "member {m} got {share} of 1000 (more than 20 % off 333)"
            );
        }
        // Member 1 goes away: its flows move, nobody else's.
        let remaining = [members[0], members[2]];
        for (h, was) in flows(1000).zip(&before) {
            let now = select(&remaining, h).unwrap();
            let now_id = remaining[now];
            if *was != 1 {
                assert_eq!(now_id, members[*was], "a flow of a surviving member moved");
            }
        }
    }

    #[test]
    fn remapping_beats_modulo() {
        let n = 16u64;
        let members: Vec<u64> = (0..n).map(|i| member_id(&[i])).collect();
        let fewer: Vec<u64> = members.iter().copied().filter(|m| *m != members[5]).collect();
        let (mut hrw_moved, mut mod_moved) = (0, 0);
        let total = 100_000u64;
        for h in flows(total) {
            let a = members[select(&members, h).unwrap()];
            let b = fewer[select(&fewer, h).unwrap()];
            hrw_moved += (a != b) as u64;
            mod_moved += (members[(h % n) as usize] != fewer[(h % (n - 1)) as usize]) as u64;
        }
        let hrw = hrw_moved as f64 / total as f64;
        let modulo = mod_moved as f64 / total as f64;
        // One of 16 members removed: HRW moves its 1/16; modulo moves about 15/16.
        eprintln!(
            "remapped when 1 of 16 members goes: rendezvous {:.1} %, modulo {:.1} %",
            hrw * 100.0,
            modulo * 100.0
        );
        assert!(hrw < 0.08, "rendezvous moved {hrw}");
        assert!(modulo > 0.8, "modulo moved {modulo}");
    }

    #[test]
    fn empty_has_no_member() {
        assert_eq!(select(&[], 7), None);
    }
}

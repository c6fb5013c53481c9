//! Route changes published as patches: the same forwarding as a full build, the same
//! stamps for the flows, and in place when no reader holds the spare copy.

use super::*;
use crate::{Publication, SnapshotPublisher};

/// What a packet to `dst` in VRF red meets, by value (ids differ between builders):
/// the next hop, with a composite's members spelled out, or nothing.
fn meets(snap: &Snapshot, dst: Ipv4Addr) -> Option<(NextHop, Vec<NextHop>)> {
    let red = snap.vrf_by_name("red")?;
    let (_, route) = red.v4.lookup(u32::from(dst))?;
    let nh = snap.nexthops[route.nexthop.index()];
    let members = match nh {
        NextHop::Composite { id } => snap.composites[id as usize]
            .members
            .iter()
            .map(|m| snap.nexthops[m.index()])
            .collect(),
        _ => Vec::new(),
    };
    let nh = match nh {
        NextHop::Composite { .. } => NextHop::Composite { id: 0 },
        other => other,
    };
    Some((nh, members))
}

/// The prefix a route change of the property tests touches.
fn prefix_of(c: &Change) -> Option<IpNet> {
    match *c {
        Change::AddRoute { net, len, .. } | Change::RemoveRoute { net, len } => {
            Some(format!("198.18.{}.0/{len}", net * 32).parse().unwrap())
        }
        _ => None,
    }
}

/// Publishes `state` as the control side does after changes to the routes for
/// `prefixes` in red (none: another change): one patch when the builder makes one,
/// a full build otherwise.
fn publish(prefixes: &[IpNet], state: &DesiredState, builder: &mut SnapshotBuilder, publication: &mut Publication) {
    let changed: Vec<(&str, IpNet)> = prefixes.iter().map(|p| ("red", *p)).collect();
    let current = publication.publisher().load_full();
    let patch = (!changed.is_empty())
        .then(|| builder.patch_routes(state, &changed, &current))
        .flatten();
    match patch {
        Some(patch) => {
            drop(current);
            publication.publish_patch(patch);
        }
        None => publication.publish(builder.build(state, MAC)),
    }
}

/// Probe destinations in and around the routes the changes touch.
fn destinations(probes: &[u8]) -> Vec<Ipv4Addr> {
    const NETS: [u8; 12] = [0, 1, 8, 9, 32, 33, 64, 96, 128, 160, 192, 224];
    probes
        .iter()
        .map(|p| Ipv4Addr::new(198, 18, NETS[usize::from(p % 12)], p.rotate_left(3)))
        .collect()
}

/// A flow decision: generation, destination, the answer and its slot.
type Made = (
    u32,
    Ipv4Addr,
    Option<(NextHopId, NextHop, Option<Composite>)>,
    RouteSlot,
);

/// Checks the published snapshot after `what`: every destination meets what a full
/// build of `state` gives it, and every earlier decision that still holds by its
/// slot is the decision made again; then records this snapshot's decisions.
fn check_published(
    publication: &Publication,
    state: &DesiredState,
    dsts: &[Ipv4Addr],
    made: &mut Vec<Made>,
    what: &dyn std::fmt::Debug,
) -> Result<(), TestCaseError> {
    let snap = publication.publisher().load_full();
    let full = state.build(snap.generation, MAC);
    for dst in dsts {
        prop_assert_eq!(meets(&snap, *dst), meets(&full, *dst), "{} after {:?}", dst, what);
    }
    for (generation, dst, then, slot) in made.iter() {
        if snap.decision_holds(*generation, *slot) {
            prop_assert_eq!(then, &decide(&snap, *dst).0, "{} from generation {}", dst, generation);
        }
    }
    for dst in dsts {
        let (then, slot) = decide(&snap, *dst);
        made.push((snap.generation as u32, *dst, then, slot));
    }
    Ok(())
}

proptest! {
    /// After any sequence of changes published as the control side publishes them,
    /// every destination meets what a full build of the same state gives it, and a
    /// flow decision that still holds by its slot is the decision made again.
    #[test]
    fn patched_snapshots_forward_as_full_builds_and_keep_flows_right(
        changes in proptest::collection::vec(change(), 1..40),
        probes in proptest::collection::vec(any::<u8>(), 8..24),
    ) {
        let dsts = destinations(&probes);
        let mut state = node();
        let mut builder = SnapshotBuilder::new(1);
        let mut publication = Publication::new(SnapshotPublisher::new(builder.build(&state, MAC)));
        let mut made = Vec::new();
        for c in &changes {
            apply(&mut state, c);
            let touched: Vec<IpNet> = prefix_of(c).into_iter().collect();
            publish(&touched, &state, &mut builder, &mut publication);
            check_published(&publication, &state, &dsts, &mut made, c)?;
        }
        let stats = publication.stats();
        let route_changes = changes
            .iter()
            .filter(|c| matches!(c, Change::AddRoute { .. } | Change::RemoveRoute { .. }))
            .count() as u64;
        prop_assert!(stats.patched_in_place + stats.patched_copy <= route_changes);
        // No reader holds the spare: only the first patch after a full build copies.
        prop_assert!(stats.patched_copy <= stats.full + 1, "{:?}", stats);
    }
}

#[test]
fn a_route_added_and_removed_is_patched_in_place_with_its_stamps() {
    let mut state = node();
    let mut builder = SnapshotBuilder::new(1);
    let mut publication = Publication::new(SnapshotPublisher::new(builder.build(&state, MAC)));
    let first = publication.publisher().load_full();
    let (parent, _) = answer(&first, [198, 18, 8, 5]).unwrap();
    let (other, _) = answer(&first, [198, 18, 9, 5]).unwrap();
    drop(first);
    let add = Change::AddRoute {
        net: 0,
        len: 26,
        target: 3,
    };
    // 198.18.0.0/26: no parent, so "no route" answers change.
    apply(&mut state, &add);
    publish(
        &prefix_of(&add).into_iter().collect::<Vec<_>>(),
        &state,
        &mut builder,
        &mut publication,
    );
    let more_specific = route("198.18.8.128/25", tunnel(2, 21));
    state.add_route(more_specific.clone()).unwrap();
    let current = publication.publisher().load_full();
    let patch = builder
        .patch_route(&state, "red", more_specific.prefix, &current)
        .unwrap();
    drop(current);
    publication.publish_patch(patch);
    let third = publication.publisher().load_full();
    assert_eq!(third.generation, 3);
    assert!(!third.decision_holds(2, parent.slot), "the /25 takes from the /24");
    assert!(third.decision_holds(1, other.slot), "an unrelated route holds");
    assert!(matches!(
        third.route4(nexthop::VrfId(1), Ipv4Addr::new(198, 18, 8, 200)),
        Some(NextHop::Tunnel { label: 21, .. })
    ));
    drop(third);
    state.remove_route("red", more_specific.prefix).unwrap();
    let current = publication.publisher().load_full();
    let (added, _) = answer(&current, [198, 18, 8, 200]).unwrap();
    let patch = builder
        .patch_route(&state, "red", more_specific.prefix, &current)
        .unwrap();
    drop(current);
    publication.publish_patch(patch);
    let fourth = publication.publisher().load_full();
    assert!(
        !fourth.decision_holds(3, added.slot),
        "a removed route's flows re-resolve"
    );
    assert_eq!(
        fourth.route4(nexthop::VrfId(1), Ipv4Addr::new(198, 18, 8, 200)),
        fourth.route4(nexthop::VrfId(1), Ipv4Addr::new(198, 18, 8, 5))
    );
    let stats = publication.stats();
    assert_eq!((stats.full, stats.patched_copy), (0, 1), "the first patch copies");
    assert_eq!(stats.patched_in_place, 2);
}

#[test]
fn a_spare_still_read_is_not_patched_and_a_pod_route_takes_a_full_build() {
    let mut state = node();
    let mut builder = SnapshotBuilder::new(1);
    let mut publication = Publication::new(SnapshotPublisher::new(builder.build(&state, MAC)));
    let reader = publication.publisher().load_full();
    let add = route("198.18.50.0/24", RouteTarget::Discard);
    state.add_route(add.clone()).unwrap();
    let patch = builder.patch_route(&state, "red", add.prefix, &reader).unwrap();
    publication.publish_patch(patch);
    let second = route("198.18.51.0/24", RouteTarget::Discard);
    state.add_route(second.clone()).unwrap();
    let current = publication.publisher().load_full();
    let patch = builder.patch_route(&state, "red", second.prefix, &current).unwrap();
    drop(current);
    // `reader` still holds generation 1, the spare: the patch goes to a copy.
    publication.publish_patch(patch);
    assert_eq!(publication.stats().patched_copy, 2);
    assert_eq!(reader.generation, 1);
    assert!(reader
        .route4(nexthop::VrfId(1), Ipv4Addr::new(198, 18, 50, 1))
        .is_none());
    // A route over a pod's own address (198.18.1.2) replaces a table entry the
    // interface made: only a full build knows what is under it once it goes.
    let over_pod = route("198.18.1.2/32", RouteTarget::Discard);
    state.add_route(over_pod.clone()).unwrap();
    let current = publication.publisher().load_full();
    assert!(builder.patch_route(&state, "red", over_pod.prefix, &current).is_none());
    // A snapshot that is not the builder's last is refused too.
    assert!(builder.patch_route(&state, "red", add.prefix, &reader).is_none());
}

proptest! {
    /// Several route changes published as one patch (a control node's message)
    /// forward as a full build does, and held decisions stay right.
    #[test]
    fn one_patch_for_a_burst_of_route_changes_forwards_as_a_full_build(
        rounds in proptest::collection::vec(proptest::collection::vec((0u8..8, 20u8..=26, 0u8..7), 1..6), 1..8),
        probes in proptest::collection::vec(any::<u8>(), 8..24),
    ) {
        let dsts = destinations(&probes);
        let mut state = node();
        let mut builder = SnapshotBuilder::new(1);
        let mut publication = Publication::new(SnapshotPublisher::new(builder.build(&state, MAC)));
        let mut made = Vec::new();
        for round in &rounds {
            let mut touched = Vec::new();
            for &(net, len, target) in round {
                // Target 6 removes; the others add or replace as `apply` does.
                let c = if target == 6 {
                    Change::RemoveRoute { net, len }
                } else {
                    Change::AddRoute { net, len, target }
                };
                apply(&mut state, &c);
                touched.extend(prefix_of(&c));
            }
            publish(&touched, &state, &mut builder, &mut publication);
            check_published(&publication, &state, &dsts, &mut made, round)?;
        }
        prop_assert!(publication.stats().patched_in_place + publication.stats().patched_copy > 0);
    }
}

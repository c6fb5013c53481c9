//! Routes learned from control nodes, kept apart from the operator's: per VRF and
//! prefix, one path per control node. Both control nodes reflect the same routes, so
//! their paths merge into one route (the lowest-numbered node's path is used); an
//! operator's route for the same prefix wins over them. They are not recorded in the
//! state directory: a control node sends them again when its channel comes back.
//! A learned route lives as long as its VRF does (the VRF is this node's, because a
//! local interface is in it); it goes with the VRF, and with the interface it names.

use super::{DesiredState, ModelError, RouteSpec};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A control node, by its place in the configuration (0 or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct PeerId(pub u8);

/// The bit that marks a control node's EVPN paths.
const EVPN: u8 = 0x80;

impl PeerId {
    /// The path source of this control node's EVPN routes: kept apart from its inet
    /// routes (the same address may come both ways, and a retract of one must not
    /// remove the other); its inet path wins when both exist.
    pub fn evpn(self) -> PeerId {
        PeerId(self.0 | EVPN)
    }

    /// This control node's path sources: inet and EVPN.
    fn sources(self) -> [PeerId; 2] {
        [PeerId(self.0 & !EVPN), self.evpn()]
    }
}

/// A control node's path for one VRF and prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Path {
    /// The route as it came.
    pub route: RouteSpec,
    /// Leaked into its VRF from another network (a service chain's, a policy's):
    /// its virtual network is not the VRF's.
    pub leaked: bool,
}

/// Each control node's path for one VRF and prefix.
pub(super) type Paths = BTreeMap<PeerId, Path>;

impl DesiredState {
    /// Sets `peer`'s path for a route, validated as an operator's route is (its VRF
    /// must exist here, its target be usable).
    pub fn learn_route(&mut self, peer: PeerId, route: RouteSpec) -> Result<(), ModelError> {
        self.learn(peer, route, false)
    }

    /// Sets `peer`'s path for a route leaked into its VRF from another network (its
    /// virtual network is another's: a service chain's or a policy's route a control
    /// node re-originated). It forwards as any route, but a service chain here
    /// neither leaks it on (no chain of chains) nor yields to it: two instances of
    /// one chain on two nodes each keep their own, where the other would otherwise
    /// withdraw it and both flap.
    pub fn learn_leaked_route(&mut self, peer: PeerId, route: RouteSpec) -> Result<(), ModelError> {
        self.learn(peer, route, true)
    }

    /// The learned path in effect for `vrf` and `prefix` (no operator route shadows
    /// it), and whether it was leaked from another network (see
    /// [`DesiredState::learn_leaked_route`]).
    pub(super) fn learned_in_effect(&self, vrf: &str, prefix: IpNet) -> Option<(&RouteSpec, bool)> {
        let key = (vrf.to_string(), prefix.trunc());
        if self.route_index.contains_key(&key) {
            return None;
        }
        let path = self.best_source(&key, self.learned.get(&key)?)?;
        Some((&path.route, path.leaked))
    }

    fn learn(&mut self, peer: PeerId, route: RouteSpec, leaked: bool) -> Result<(), ModelError> {
        let route = self.checked_route(route)?;
        let key = (route.vrf.clone(), route.prefix);
        if let Some(stale) = self.stale.get_mut(&peer) {
            stale.remove(&key);
        }
        let vrf = key.0.clone();
        if self
            .learned
            .entry(key)
            .or_default()
            .insert(peer, Path { route, leaked })
            .is_none()
        {
            *self.learned_counts.entry((peer, vrf)).or_default() += 1;
        }
        Ok(())
    }

    /// Paths each control node taught, per VRF (its inet and EVPN paths together).
    pub fn learned_per_peer(&self) -> BTreeMap<(PeerId, String), usize> {
        let mut out: BTreeMap<(PeerId, String), usize> = BTreeMap::new();
        for ((source, vrf), n) in &self.learned_counts {
            *out.entry((PeerId(source.0 & !EVPN), vrf.clone())).or_default() += n;
        }
        out
    }

    /// Paths control node `peer` taught in VRF `vrf` (inet and EVPN together).
    pub fn learned_count_of(&self, peer: PeerId, vrf: &str) -> usize {
        peer.sources()
            .iter()
            .filter_map(|s| self.learned_counts.get(&(*s, vrf.to_string())))
            .sum()
    }

    /// One path of `source` in `vrf` is gone.
    fn uncount(counts: &mut BTreeMap<(PeerId, String), usize>, source: PeerId, vrf: &str) {
        let key = (source, vrf.to_string());
        if let Some(n) = counts.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&key);
            }
        }
    }

    /// Marks every route `peer` taught as stale (its channel went down, or came back
    /// and what it does not send again before its end-of-RIB is swept then:
    /// [`DesiredState::sweep_stale`]); a fresh path of another node wins over a
    /// stale one, and a stale one keeps forwarding when it is all there is. Returns
    /// the routes marked.
    pub fn mark_stale(&mut self, peer: PeerId) -> Vec<(String, IpNet)> {
        let mut touched = Vec::new();
        for source in peer.sources() {
            let keys: std::collections::BTreeSet<(String, IpNet)> = self
                .learned
                .iter()
                .filter(|(_, paths)| paths.contains_key(&source))
                .map(|(key, _)| key.clone())
                .collect();
            touched.extend(keys.iter().cloned());
            self.stale.insert(source, keys);
        }
        touched
    }

    /// Removes `peer`'s paths it did not send again since [`DesiredState::mark_stale`];
    /// returns the VRF and prefix of each.
    pub fn sweep_stale(&mut self, peer: PeerId) -> Vec<(String, IpNet)> {
        let mut swept = Vec::new();
        for source in peer.sources() {
            let keys: Vec<(String, IpNet)> = self.stale.remove(&source).unwrap_or_default().into_iter().collect();
            swept.extend(
                keys.into_iter()
                    .filter(|(vrf, prefix)| self.forget_route(source, vrf, *prefix)),
            );
        }
        swept
    }

    /// Removes `peer`'s path for a route; true if it had one.
    pub fn forget_route(&mut self, peer: PeerId, vrf: &str, prefix: IpNet) -> bool {
        let key = (vrf.to_string(), prefix.trunc());
        let Some(paths) = self.learned.get_mut(&key) else {
            return false;
        };
        let had = paths.remove(&peer).is_some();
        if had {
            Self::uncount(&mut self.learned_counts, peer, vrf);
        }
        if let Some(stale) = self.stale.get_mut(&peer) {
            stale.remove(&key);
        }
        if paths.is_empty() {
            self.learned.remove(&key);
        }
        had
    }

    /// Removes every path of `peer` (its channel is gone and its routes are swept);
    /// returns the VRF and prefix of each route that lost a path.
    pub fn forget_peer(&mut self, peer: PeerId) -> Vec<(String, IpNet)> {
        let sources = peer.sources();
        for source in &sources {
            self.stale.remove(source);
        }
        let mut touched = Vec::new();
        self.learned.retain(|key, paths| {
            let before = paths.len();
            paths.retain(|p, _| !sources.contains(p));
            if paths.len() != before {
                touched.push(key.clone());
            }
            !paths.is_empty()
        });
        self.learned_counts.retain(|(source, _), _| !sources.contains(source));
        touched
    }

    /// The learned route for a VRF and prefix.
    pub(super) fn learned_route(&self, vrf: &str, prefix: IpNet) -> Option<&RouteSpec> {
        let key = (vrf.to_string(), prefix);
        self.best_path(&key, self.learned.get(&key)?)
    }

    /// The path in effect among control nodes' paths for `key`: the lowest-numbered
    /// node whose path is fresh (a node that went away, or came back and has not sent
    /// it again, is stale), else the lowest-numbered stale one; of that node's inet
    /// and EVPN paths, the one whose encapsulation comes first in this node's
    /// priority list (the inet path when they tie).
    fn best_path<'a>(&self, key: &(String, IpNet), paths: &'a Paths) -> Option<&'a RouteSpec> {
        self.best_source(key, paths).map(|path| &path.route)
    }

    /// [`DesiredState::best_path`] with whether it was leaked.
    fn best_source<'a>(&self, key: &(String, IpNet), paths: &'a Paths) -> Option<&'a Path> {
        let stale = |peer: &PeerId| self.stale.get(peer).is_some_and(|keys| keys.contains(key));
        let any_fresh = paths.keys().any(|p| !stale(p));
        let eligible = |p: &PeerId| !any_fresh || !stale(p);
        let node = paths.keys().filter(|p| eligible(p)).map(|p| p.0 & !EVPN).min()?;
        paths
            .iter()
            .filter(|(p, _)| eligible(p) && p.0 & !EVPN == node)
            .min_by_key(|(p, path)| (self.encap_rank(&path.route.target), p.0))
            .map(|(_, path)| path)
    }

    /// Where a target's best encapsulation stands in this node's priority list (0
    /// for a target that is not a tunnel).
    fn encap_rank(&self, target: &super::RouteTarget) -> usize {
        match target {
            super::RouteTarget::Tunnel { encaps, .. } => self
                .encap_priority
                .iter()
                .position(|e| encaps.contains(e))
                .unwrap_or(usize::MAX),
            super::RouteTarget::Ecmp { members } => members.iter().map(|m| self.encap_rank(m)).min().unwrap_or(0),
            _ => 0,
        }
    }

    /// The learned routes in effect: those no operator route shadows.
    pub(super) fn effective_learned(&self) -> impl Iterator<Item = &RouteSpec> + '_ {
        self.effective_learned_paths().map(|path| &path.route)
    }

    /// [`DesiredState::effective_learned`], each with whether it was leaked.
    pub(super) fn effective_learned_paths(&self) -> impl Iterator<Item = &Path> + '_ {
        self.learned
            .iter()
            .filter(|(key, _)| !self.route_index.contains_key(*key))
            .filter_map(|(key, paths)| self.best_source(key, paths))
    }

    /// True if some control node has a path for this route.
    pub fn has_learned_route(&self, vrf: &str, prefix: IpNet) -> bool {
        self.learned_route(vrf, prefix.trunc()).is_some()
    }

    /// Routes with at least one learned path.
    pub fn learned_count(&self) -> usize {
        self.learned.len()
    }

    /// Drops the learned routes of VRF `vrf` (it is gone) or naming interface
    /// `interface` (it is gone), and their stale marks.
    pub(super) fn drop_learned(&mut self, vrf: Option<&str>, interface: Option<&str>) {
        let stale = &mut self.stale;
        let counts = &mut self.learned_counts;
        self.learned.retain(|key, paths| {
            paths.retain(|peer, path| {
                let target = &path.route.target;
                let keep = !interface.is_some_and(|name| target.mentions(name)) && vrf != Some(key.0.as_str());
                if !keep {
                    if let Some(keys) = stale.get_mut(peer) {
                        keys.remove(key);
                    }
                    Self::uncount(counts, *peer, &key.0);
                }
                keep
            });
            !paths.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InterfaceSpec, RouteTarget};
    use nexthop::encap::Encap;
    use nexthop::MacAddr;

    fn pod(name: &str, vrf: &str, last: u8) -> InterfaceSpec {
        InterfaceSpec {
            name: name.into(),
            vrf: vrf.into(),
            mac: MacAddr([2, 0, 0, 0, 0, last]),
            ..InterfaceSpec::default()
        }
    }

    fn route(vrf: &str, prefix: &str, target: RouteTarget) -> RouteSpec {
        RouteSpec {
            vrf: vrf.into(),
            prefix: prefix.parse().unwrap(),
            target,
        }
    }

    #[test]
    fn learned_routes_go_with_their_vrf_and_with_the_interface_they_name() {
        let mut s = DesiredState::new(16);
        s.set_fabric("fabric0");
        s.add_interface(pod("a", "red", 2)).unwrap();
        s.add_interface(pod("b", "red", 3)).unwrap();
        s.add_interface(pod("c", "blue", 4)).unwrap();
        let to_b = RouteTarget::Interface { name: "b".into() };
        s.learn_route(PeerId(0), route("red", "198.19.1.0/24", to_b)).unwrap();
        s.learn_route(PeerId(1), route("red", "198.19.2.0/24", RouteTarget::Discard))
            .unwrap();
        s.learn_route(PeerId(0), route("blue", "198.19.3.0/24", RouteTarget::Discard))
            .unwrap();
        let to_a_from_blue = route("blue", "198.19.4.0/24", RouteTarget::Interface { name: "a".into() });
        assert!(matches!(
            s.learn_route(PeerId(0), to_a_from_blue),
            Err(ModelError::InterfaceInOtherVrf { .. })
        ));
        assert!(s
            .learn_route(PeerId(0), route("green", "198.19.5.0/24", RouteTarget::Discard))
            .is_err());
        assert_eq!(s.learned_count(), 3);
        let per_peer = s.learned_per_peer();
        assert_eq!(per_peer[&(PeerId(0), "red".to_string())], 1);
        assert_eq!(per_peer[&(PeerId(0), "blue".to_string())], 1);
        assert_eq!(per_peer[&(PeerId(1), "red".to_string())], 1);
        // Pod b goes: the route through it goes too; the VRF stays (pod a).
        s.remove_interface("b").unwrap();
        assert!(!s.has_learned_route("red", "198.19.1.0/24".parse().unwrap()));
        assert!(s.has_learned_route("red", "198.19.2.0/24".parse().unwrap()));
        assert_eq!(s.learned_count_of(PeerId(0), "red"), 0);
        // Blue's last pod goes: blue and its learned routes go.
        s.remove_interface("c").unwrap();
        assert_eq!(s.vrf_id("blue"), None);
        assert_eq!(s.learned_count(), 1);
        assert_eq!(s.learned_per_peer().len(), 1);
        assert_eq!(
            s.forget_peer(PeerId(1)),
            [("red".to_string(), "198.19.2.0/24".parse().unwrap())]
        );
        assert_eq!(s.learned_count(), 0);
        // A full build holds what is learned, under the operator's routes.
        s.learn_route(PeerId(0), route("red", "198.19.6.0/24", RouteTarget::Discard))
            .unwrap();
        let snap = s.build(1, MacAddr([0, 0, 0x5e, 0, 1, 0]));
        assert_eq!(
            snap.route4(s.vrf_id("red").unwrap(), [198, 19, 6, 1].into()),
            Some(&nexthop::NextHop::Discard)
        );
    }

    #[test]
    fn a_learned_path_for_a_local_address_wins_while_the_control_node_sends_it() {
        // An active-standby VIP on the standby: the control node sends the active's
        // path only while it is preferred to this node's own (see the reflector).
        let mut s = DesiredState::new(16);
        s.set_fabric("fabric0");
        let mut standby = pod("haproxy", "red", 2);
        standby.ipv4 = Some([198, 18, 100, 40].into());
        standby.local_preference = Some(100);
        s.add_interface(standby).unwrap();
        let vip: std::net::Ipv4Addr = [198, 18, 100, 40].into();
        let red = s.vrf_id("red").unwrap();
        let local = |s: &DesiredState| {
            matches!(
                s.build(1, MacAddr([2, 0, 0, 0, 0, 1])).route4(red, vip),
                Some(nexthop::NextHop::Interface { .. })
            )
        };
        assert!(local(&s));
        let to_active = RouteTarget::Tunnel {
            remote: [198, 18, 0, 1].into(),
            label: 30,
            encaps: vec![Encap::MplsOverUdp],
            mac: None,
        };
        s.learn_route(PeerId(0), route("red", "198.18.100.40/32", to_active))
            .unwrap();
        assert!(!local(&s), "the active's path is used");
        assert!(s.forget_route(PeerId(0), "red", "198.18.100.40/32".parse().unwrap()));
        assert!(
            local(&s),
            "the active withdrew: this node's own port holds the VIP again"
        );
    }

    #[test]
    fn a_control_nodes_evpn_and_inet_paths_for_one_address_are_kept_apart() {
        let mut s = DesiredState::new(16);
        s.set_fabric("fabric0");
        s.add_interface(pod("a", "red", 2)).unwrap();
        let tunnel = |label, encaps| RouteTarget::Tunnel {
            remote: [198, 18, 0, 9].into(),
            label,
            encaps,
            mac: None,
        };
        let (inet, evpn) = (PeerId(0), PeerId(0).evpn());
        let prefix: IpNet = "198.18.1.9/32".parse().unwrap();
        s.learn_route(
            inet,
            route("red", "198.18.1.9/32", tunnel(40, vec![Encap::MplsOverUdp])),
        )
        .unwrap();
        s.learn_route(evpn, route("red", "198.18.1.9/32", tunnel(5001, vec![Encap::Vxlan])))
            .unwrap();
        // The inet path is used while there; the EVPN retract leaves it alone.
        let used = |s: &DesiredState| match s.learned_route("red", prefix).map(|r| &r.target) {
            Some(RouteTarget::Tunnel { label, .. }) => Some(*label),
            _ => None,
        };
        assert_eq!(used(&s), Some(40));
        assert!(s.forget_route(evpn, "red", prefix));
        assert_eq!(used(&s), Some(40));
        s.learn_route(evpn, route("red", "198.18.1.9/32", tunnel(5001, vec![Encap::Vxlan])))
            .unwrap();
        assert!(s.forget_route(inet, "red", prefix));
        assert_eq!(used(&s), Some(5001), "the EVPN path carries on alone");
        // The control node's channel comes back and sends nothing: both kinds swept.
        s.learn_route(
            inet,
            route("red", "198.18.1.9/32", tunnel(40, vec![Encap::MplsOverUdp])),
        )
        .unwrap();
        assert_eq!(s.mark_stale(PeerId(0)).len(), 2);
        assert_eq!(s.sweep_stale(PeerId(0)).len(), 2);
        assert_eq!(used(&s), None);
        // And a node that goes away takes both.
        s.learn_route(evpn, route("red", "198.18.1.9/32", tunnel(5001, vec![Encap::Vxlan])))
            .unwrap();
        assert_eq!(s.learned_count_of(PeerId(0), "red"), 1);
        assert_eq!(s.forget_peer(PeerId(0)).len(), 1);
        assert_eq!(s.learned_count(), 0);
        assert_eq!(s.learned_count_of(PeerId(0), "red"), 0);
        // With VXLAN first in this node's priority list, the EVPN path wins.
        s.set_encap_priority(vec![Encap::Vxlan, Encap::MplsOverUdp]);
        s.learn_route(
            inet,
            route("red", "198.18.1.9/32", tunnel(40, vec![Encap::MplsOverUdp])),
        )
        .unwrap();
        s.learn_route(evpn, route("red", "198.18.1.9/32", tunnel(5001, vec![Encap::Vxlan])))
            .unwrap();
        assert_eq!(used(&s), Some(5001));
    }
}

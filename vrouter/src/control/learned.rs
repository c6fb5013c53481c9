//! Routes from control nodes (XMPP): a message's changes are applied to the desired
//! state and published together, as one patch; they are kept apart from the
//! operator's routes and not recorded in the state directory (the control node
//! sends them again when its channel comes back).

use super::Control;
use control_client::xmpp::routes::{self, RouteChange as LearnedChange};
use control_client::xmpp::RouteUpdate;
use control_client::PeerId;
use ipnet::IpNet;
use std::time::{Duration, Instant};

/// How long a lost control node's routes are kept while another one is up.
pub const DEFAULT_GRACEFUL_RESTART: Duration = Duration::from_secs(60);

/// Paths each control node taught, per VRF, for the `xmpp` view.
pub type LearnedView = std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<(u8, String), usize>>>;

impl Control {
    /// Shares the per-control-node route counts with the views.
    pub fn share_learned_view(&mut self, view: LearnedView) {
        self.learned_view = view;
        self.refresh_learned_view();
    }

    /// Recounts every control node's routes for the view (after a change that
    /// touches many: a sweep, a lost control node, a full build).
    pub(super) fn refresh_learned_view(&mut self) {
        let counts: std::collections::BTreeMap<(u8, String), usize> = self
            .model
            .learned_per_peer()
            .into_iter()
            .map(|((peer, vrf), n)| ((peer.0, vrf), n))
            .collect();
        if let Ok(mut view) = self.learned_view.lock() {
            *view = counts;
        }
    }

    /// Updates one control node's count in one VRF for the view (after a message).
    fn refresh_learned_count(&mut self, peer: PeerId, vrf: &str) {
        let n = self.model.learned_count_of(peer, vrf);
        if let Ok(mut view) = self.learned_view.lock() {
            let key = (peer.0, vrf.to_string());
            if n == 0 {
                view.remove(&key);
            } else {
                view.insert(key, n);
            }
        }
    }

    /// Sets how long a lost control node's routes are kept while another is up.
    pub fn set_graceful_restart(&mut self, time: Duration) {
        self.graceful_restart = time;
    }

    /// A control node's channel went down at `now`.
    pub fn peer_down(&mut self, peer: PeerId, now: Instant) {
        self.peers_up.remove(&peer);
        self.peers_down.insert(peer, now);
        // Its paths are stale now: another node's fresh path for a route wins.
        let touched = self.model.mark_stale(peer);
        if !touched.is_empty() {
            self.publish_routes(&touched);
        }
    }

    /// Sweeps the routes of control nodes lost for longer than the graceful-restart
    /// time, if another control node is up (the control task calls it between
    /// changes). With none up the vrouter is headless and keeps everything.
    pub fn sweep_lost_peers(&mut self, now: Instant) {
        if self.peers_up.is_empty() {
            return;
        }
        let expired: Vec<PeerId> = self
            .peers_down
            .iter()
            .filter(|(_, since)| now.saturating_duration_since(**since) >= self.graceful_restart)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in expired {
            self.peers_down.remove(&peer);
            tracing::info!(
                peer = peer.0,
                "control node lost for the graceful-restart time: its routes are swept"
            );
            self.forget_peer(peer);
        }
    }

    /// Applies a control node's route changes in one publication; returns the
    /// changes refused, each with why (the others apply).
    pub fn apply_learned(&mut self, peer: PeerId, changes: Vec<LearnedChange>) -> Vec<(String, String)> {
        let mut refused = Vec::new();
        let mut touched: Vec<(String, IpNet)> = Vec::new();
        for change in changes {
            let (spec, leaked) = match change {
                LearnedChange::Set(spec) => (spec, false),
                LearnedChange::Leaked(spec) => (spec, true),
                LearnedChange::Remove { vrf, prefix } => {
                    if self.model.forget_route(peer, &vrf, prefix) {
                        touched.push((vrf, prefix.trunc()));
                    }
                    continue;
                }
            };
            let key = (spec.vrf.clone(), spec.prefix.trunc());
            let full = self.model.routes().len() + self.model.learned_count() >= self.max_routes;
            let result = if full && !self.model.has_learned_route(&key.0, key.1) {
                Err(format!("tables.routes ({}) reached", self.max_routes))
            } else if leaked {
                self.model.learn_leaked_route(peer, spec).map_err(|e| e.to_string())
            } else {
                self.model.learn_route(peer, spec).map_err(|e| e.to_string())
            };
            match result {
                Ok(()) => touched.push(key),
                Err(why) => refused.push((format!("{} {}", key.0, key.1), why)),
            }
        }
        if !touched.is_empty() {
            self.publish_routes(&touched);
        }
        refused
    }

    /// Applies a control node's route message: its items and retracts become route
    /// changes (as [`control_client::xmpp::routes::changes`] maps them) applied in one
    /// publication. Returns how many were skipped or refused (each is logged).
    pub fn apply_route_update(&mut self, peer: PeerId, update: &RouteUpdate) -> usize {
        // An EVPN retract of a MAC that no longer holds the address (a pod that
        // came back elsewhere under the same IP, announced before the old one was
        // withdrawn) must not take the new route.
        let filtered;
        let update = if update.family == control_client::xmpp::Family::Evpn {
            filtered = self.evpn_current(peer, update);
            &filtered
        } else {
            update
        };
        let local = routes::Local {
            fabric_ip: self.model.fabric_info().ip,
            state: &self.model,
        };
        let (changes, skipped) = routes::changes(update, local);
        // EVPN paths are kept apart from the same control node's inet paths.
        let node = peer;
        let peer = match update.family {
            control_client::xmpp::Family::Evpn => peer.evpn(),
            _ => peer,
        };
        for s in &skipped {
            tracing::warn!(peer = peer.0, vrf = %update.vrf, item = %s.id, "route from a control node skipped: {}", s.why);
        }
        let refused = self.apply_learned(peer, changes);
        self.note_route_groups(peer, update);
        for (item, why) in &refused {
            tracing::warn!(peer = peer.0, %item, "route from a control node refused: {why}");
        }
        self.refresh_learned_count(node, &update.vrf);
        skipped.len() + refused.len()
    }

    /// `update` with its stale EVPN retracts left out, and the MACs now holding its
    /// items' addresses recorded.
    fn evpn_current(&mut self, peer: PeerId, update: &RouteUpdate) -> RouteUpdate {
        let mut update = update.clone();
        let key = |prefix: IpNet| (peer, update.vrf.clone(), prefix.trunc());
        update.retracts.retain(|id| {
            let (Some(prefix), Some(mac)) = (routes::evpn_prefix(id), routes::evpn_mac(id)) else {
                return true;
            };
            self.evpn_macs.get(&key(prefix)).is_none_or(|held| held == mac)
        });
        for id in &update.retracts {
            if let Some(prefix) = routes::evpn_prefix(id) {
                self.evpn_macs.remove(&key(prefix));
            }
        }
        for item in &update.items {
            let mac = item.mac.as_deref().or_else(|| routes::evpn_mac(&item.id));
            if let (Some(prefix), Some(mac)) = (item.prefix, mac) {
                self.evpn_macs.insert(key(prefix), mac.to_string());
            }
        }
        update
    }

    /// A control node's channel came (back) up: its routes are stale until it sends
    /// them again; they keep forwarding meanwhile.
    pub fn peer_up(&mut self, peer: PeerId) {
        self.peers_up.insert(peer);
        self.peers_down.remove(&peer);
        let touched = self.model.mark_stale(peer);
        if !touched.is_empty() {
            self.publish_routes(&touched);
        }
    }

    /// A control node sent its end-of-RIB (or its time for one ran out): the routes
    /// it did not send again are swept, in one publication.
    pub fn peer_synced(&mut self, peer: PeerId) {
        let touched = self.model.sweep_stale(peer);
        if !touched.is_empty() {
            tracing::info!(
                peer = peer.0,
                swept = touched.len(),
                "stale routes of a control node swept"
            );
            self.publish_routes(&touched);
            self.refresh_learned_view();
            self.prune_route_groups();
        }
    }

    /// Sweeps every route of a control node (its channel is gone and its routes'
    /// grace time is over), in one publication.
    pub fn forget_peer(&mut self, peer: PeerId) {
        let touched = self.model.forget_peer(peer);
        self.evpn_macs.retain(|(p, _, _), _| *p != peer);
        self.forget_route_groups(peer);
        if !touched.is_empty() {
            self.publish_routes(&touched);
            self.refresh_learned_view();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StateStore;
    use control_client::xmpp::{routes, Element, Incoming};
    use control_client::{DesiredState, InterfaceSpec, RouteSpec, RouteTarget, SnapshotPublisher};
    use nexthop::{MacAddr, NextHop, VrfId};

    fn control(dir: &std::path::Path, max_routes: usize) -> (Control, SnapshotPublisher) {
        let mut model = DesiredState::new(16);
        model.set_fabric("fabric0");
        let (mut control, publisher) = Control::detached(model, StateStore::open(dir).unwrap(), max_routes);
        let pod = InterfaceSpec {
            name: "p".into(),
            vrf: "red".into(),
            mac: MacAddr([2, 0, 0, 0, 0, 2]),
            mtu: Some(1500),
            ..InterfaceSpec::default()
        };
        control.add_interface(pod).unwrap();
        (control, publisher)
    }

    /// The changes of a control node's message of two items (a tunnel and ECMP).
    fn message() -> Vec<LearnedChange> {
        let stanza = r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="1/1/red">
            <item id="198.19.0.0/24"><entry><nlri><af>1</af><safi>1</safi><address>198.19.0.0/24</address></nlri><next-hops><next-hop><af>1</af><address>198.18.0.2</address><label>20</label><tunnel-encapsulation-list><tunnel-encapsulation>udp</tunnel-encapsulation></tunnel-encapsulation-list></next-hop></next-hops></entry></item>
            <item id="198.19.1.0/24"><entry><nlri><af>1</af><safi>1</safi><address>198.19.1.0/24</address></nlri><next-hops><next-hop><af>1</af><address>198.18.0.2</address><label>21</label></next-hop><next-hop><af>1</af><address>198.18.0.3</address><label>22</label></next-hop></next-hops></entry></item>
            </items></event></message>"#;
        let Incoming::Routes(update) = Incoming::decode(&Element::parse(stanza).unwrap()).unwrap() else {
            panic!("a route update")
        };
        let state = DesiredState::new(1);
        let local = routes::Local {
            fabric_ip: Some([198, 18, 0, 1].into()),
            state: &state,
        };
        routes::changes(&update, local).0
    }

    fn red_route(publisher: &SnapshotPublisher, dst: [u8; 4]) -> Option<NextHop> {
        publisher.load_full().route4(VrfId(1), dst.into()).copied()
    }

    #[test]
    fn a_message_is_one_publication_and_two_control_nodes_paths_merge() {
        let dir = tempfile::tempdir().unwrap();
        let (mut control, publisher) = control(dir.path(), 100);
        let before = control.publication_stats();
        let generation = publisher.load_full().generation;
        assert!(control.apply_learned(PeerId(0), message()).is_empty());
        assert_eq!(
            publisher.load_full().generation,
            generation + 1,
            "one publication for the message"
        );
        let after = control.publication_stats();
        assert_eq!(after.full, before.full, "patched, not rebuilt");
        assert!(matches!(
            red_route(&publisher, [198, 19, 0, 9]),
            Some(NextHop::Tunnel { label: 20, .. })
        ));
        assert!(matches!(
            red_route(&publisher, [198, 19, 1, 9]),
            Some(NextHop::Composite { .. })
        ));
        // The second control node reflects the same routes: still one route each.
        assert!(control.apply_learned(PeerId(1), message()).is_empty());
        let retract = LearnedChange::Remove {
            vrf: "red".into(),
            prefix: "198.19.0.0/24".parse().unwrap(),
        };
        control.apply_learned(PeerId(0), vec![retract]);
        assert!(
            matches!(
                red_route(&publisher, [198, 19, 0, 9]),
                Some(NextHop::Tunnel { label: 20, .. })
            ),
            "the other node's path remains"
        );
        control.forget_peer(PeerId(1));
        assert_eq!(red_route(&publisher, [198, 19, 0, 9]), None, "no path left");
        assert!(matches!(
            red_route(&publisher, [198, 19, 1, 9]),
            Some(NextHop::Composite { .. })
        ));
        // Nothing learned is in the state directory.
        assert!(!std::fs::read_to_string(dir.path().join("routes.journal"))
            .unwrap_or_default()
            .contains("198.19"));
    }

    #[test]
    fn a_control_node_coming_back_keeps_its_routes_until_its_end_of_rib_sweeps_the_stale() {
        let dir = tempfile::tempdir().unwrap();
        let (mut control, publisher) = control(dir.path(), 100);
        assert!(control.apply_learned(PeerId(0), message()).is_empty());
        control.peer_up(PeerId(0));
        assert!(
            matches!(red_route(&publisher, [198, 19, 0, 9]), Some(NextHop::Tunnel { .. })),
            "stale still forwards"
        );
        // It sends one of its two routes again, then its end-of-RIB.
        let again: Vec<LearnedChange> = message().into_iter().take(1).collect();
        assert!(control.apply_learned(PeerId(0), again).is_empty());
        control.peer_synced(PeerId(0));
        assert!(matches!(
            red_route(&publisher, [198, 19, 0, 9]),
            Some(NextHop::Tunnel { .. })
        ));
        assert_eq!(red_route(&publisher, [198, 19, 1, 9]), None, "not sent again: swept");
        // A second end-of-RIB sweeps nothing more.
        control.peer_synced(PeerId(0));
        assert!(matches!(
            red_route(&publisher, [198, 19, 0, 9]),
            Some(NextHop::Tunnel { .. })
        ));
    }

    #[test]
    fn a_lost_control_node_is_swept_after_the_graceful_restart_time_unless_headless() {
        let dir = tempfile::tempdir().unwrap();
        let (mut control, publisher) = control(dir.path(), 100);
        control.peer_up(PeerId(0));
        control.peer_up(PeerId(1));
        assert!(control.apply_learned(PeerId(0), message()).is_empty());
        // Node 1 has only the first route.
        assert!(control
            .apply_learned(PeerId(1), message().into_iter().take(1).collect())
            .is_empty());
        let t0 = Instant::now();
        control.peer_down(PeerId(0), t0);
        control.sweep_lost_peers(t0 + DEFAULT_GRACEFUL_RESTART - Duration::from_secs(1));
        assert!(
            red_route(&publisher, [198, 19, 1, 9]).is_some(),
            "kept within the graceful-restart time"
        );
        control.sweep_lost_peers(t0 + DEFAULT_GRACEFUL_RESTART);
        assert!(
            red_route(&publisher, [198, 19, 0, 9]).is_some(),
            "still taught by node 1"
        );
        assert_eq!(
            red_route(&publisher, [198, 19, 1, 9]),
            None,
            "only node 0 taught it: swept"
        );
        // Headless: with no control node up, nothing is swept, however long.
        control.peer_down(PeerId(1), t0);
        control.sweep_lost_peers(t0 + Duration::from_secs(3600));
        assert!(
            red_route(&publisher, [198, 19, 0, 9]).is_some(),
            "headless keeps the last state"
        );
    }

    #[test]
    fn a_fresh_path_wins_over_the_stale_path_of_a_node_that_went_away() {
        let dir = tempfile::tempdir().unwrap();
        let (mut control, publisher) = control(dir.path(), 100);
        control.peer_up(PeerId(0));
        control.peer_up(PeerId(1));
        assert!(control.apply_learned(PeerId(0), message()).is_empty());
        // Node 1 has the first route through another label.
        let mut other = message();
        other.truncate(1);
        if let LearnedChange::Set(RouteSpec {
            target: RouteTarget::Tunnel { label, .. },
            ..
        }) = &mut other[0]
        {
            *label = 99;
        }
        assert!(control.apply_learned(PeerId(1), other).is_empty());
        let label = |p: &SnapshotPublisher| match red_route(p, [198, 19, 0, 9]) {
            Some(NextHop::Tunnel { label, .. }) => label,
            other => panic!("{other:?}"),
        };
        assert_eq!(label(&publisher), 20, "node 0's path while both are up");
        control.peer_down(PeerId(0), Instant::now());
        assert_eq!(label(&publisher), 99, "node 1's fresh path once node 0 is gone");
        assert!(
            red_route(&publisher, [198, 19, 1, 9]).is_some(),
            "node 0's stale path where it is the only one"
        );
    }

    #[test]
    fn an_operators_route_wins_and_refusals_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let (mut control, publisher) = control(dir.path(), 3);
        let operator = RouteSpec {
            vrf: "red".into(),
            prefix: "198.19.0.0/24".parse().unwrap(),
            target: RouteTarget::Discard,
        };
        control.add_route(operator).unwrap();
        assert!(control.apply_learned(PeerId(0), message()).is_empty());
        assert_eq!(red_route(&publisher, [198, 19, 0, 9]), Some(NextHop::Discard));
        control.remove_route("red", "198.19.0.0/24".parse().unwrap()).unwrap();
        assert!(
            matches!(red_route(&publisher, [198, 19, 0, 9]), Some(NextHop::Tunnel { .. })),
            "the learned path shows once the operator's goes"
        );
        let another = RouteSpec {
            vrf: "red".into(),
            prefix: "198.19.9.0/24".parse().unwrap(),
            target: RouteTarget::Discard,
        };
        control.add_route(another).unwrap();
        let unknown_vrf = LearnedChange::Set(RouteSpec {
            vrf: "green".into(),
            prefix: "198.19.7.0/24".parse().unwrap(),
            target: RouteTarget::Discard,
        });
        let over_limit = LearnedChange::Set(RouteSpec {
            vrf: "red".into(),
            prefix: "198.19.8.0/24".parse().unwrap(),
            target: RouteTarget::Discard,
        });
        let refused = control.apply_learned(PeerId(0), vec![unknown_vrf, over_limit]);
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(refused[1].1.contains("tables.routes"), "{refused:?}");
    }

    /// A control node's EVPN message for VRF red.
    fn evpn(body: &str) -> RouteUpdate {
        let stanza = format!(
            r#"<message><event xmlns="http://jabber.org/protocol/pubsub"><items node="25/242/red">{body}</items></event></message>"#
        );
        let Incoming::Routes(update) = Incoming::decode(&Element::parse(&stanza).unwrap()).unwrap() else {
            panic!("a route update")
        };
        update
    }

    fn evpn_item(mac: &str, remote: &str) -> String {
        format!(
            "<item id=\"7-{mac},198.19.0.9/32\"><entry><nlri><af>25</af><safi>242</safi><ethernet-tag>7</ethernet-tag><mac>{mac}</mac><address>198.19.0.9/32</address></nlri><next-hops><next-hop><af>1</af><address>{remote}</address><label>7</label><tunnel-encapsulation-list><tunnel-encapsulation>vxlan</tunnel-encapsulation></tunnel-encapsulation-list></next-hop></next-hops></entry></item>"
        )
    }

    #[test]
    fn a_stale_evpn_retract_does_not_take_the_address_from_its_new_mac() {
        let dir = tempfile::tempdir().unwrap();
        let (mut control, publisher) = control(dir.path(), 100);
        let remote = |p: &SnapshotPublisher| match red_route(p, [198, 19, 0, 9]) {
            Some(NextHop::Tunnel { remote, .. }) => Some(remote),
            _ => None,
        };
        // The address on node .2 under one MAC, then on node .3 under another (a pod
        // that came back elsewhere), announced before the old item's retract.
        control.apply_route_update(PeerId(0), &evpn(&evpn_item("02:00:00:00:00:aa", "198.18.0.2")));
        control.apply_route_update(PeerId(0), &evpn(&evpn_item("02:00:00:00:00:bb", "198.18.0.3")));
        assert_eq!(remote(&publisher), Some([198, 18, 0, 3].into()));
        control.apply_route_update(PeerId(0), &evpn(r#"<retract id="7-02:00:00:00:00:aa,198.19.0.9/32"/>"#));
        assert_eq!(
            remote(&publisher),
            Some([198, 18, 0, 3].into()),
            "the old MAC's retract is stale"
        );
        control.apply_route_update(PeerId(0), &evpn(r#"<retract id="7-02:00:00:00:00:bb,198.19.0.9/32"/>"#));
        assert_eq!(remote(&publisher), None);
        // The view counts the EVPN paths under control node 0.
        control.apply_route_update(PeerId(0), &evpn(&evpn_item("02:00:00:00:00:bb", "198.18.0.3")));
        let view = control.learned_view.lock().unwrap().clone();
        assert_eq!(view.get(&(0, "red".to_string())), Some(&1), "{view:?}");
    }
}

//! Security groups and networks' access control lists from the control node's
//! configuration, enforced as network policies (how:
//! [`control_client::contrail::security_groups`] and
//! [`control_client::contrail::network_acls`]), and the group membership the routes
//! of control nodes carry in their security group lists.
//!
//! - A route message records, per control node, VRF and prefix, the groups its item
//!   carries; a retract or a lost control node drops them. Only routes still learned
//!   count as members, so a swept or unsubscribed route stops allowing its address.
//! - A change of membership marks the configuration for reconciling, which the
//!   control task does once its queue is empty (a burst of routes costs one).
//! - The policies are named `config:sg:GROUP` and `config:vn:NETWORK`; an
//!   operator's policies are left alone. Until the initial configuration sync is
//!   over, such a policy is added or changed but never removed (as configured ports,
//!   services and floating IPs).

use crate::control::Control;
use control_client::contrail::security_groups::{policies, GroupMembers, POLICY_PREFIX};
use control_client::contrail::CompiledConfig;
use control_client::xmpp::{routes, RouteUpdate};
use control_client::{PeerId, PolicySpec};
use ipnet::IpNet;
use std::collections::BTreeMap;

/// The groups each control node's route carries, by (path source, VRF, prefix).
pub type RouteGroups = BTreeMap<(PeerId, String, IpNet), Vec<u32>>;

impl Control {
    /// Records the security group lists of a route message `peer` (the path source:
    /// a control node's inet or EVPN paths) sent.
    pub(in crate::control) fn note_route_groups(&mut self, peer: PeerId, update: &RouteUpdate) {
        let mut changed = false;
        for item in &update.items {
            let Some(prefix) = item.prefix else { continue };
            let key = (peer, update.vrf.clone(), prefix.trunc());
            let mut groups = item.security_groups.clone();
            groups.sort_unstable();
            groups.dedup();
            changed |= if groups.is_empty() {
                self.route_groups.remove(&key).is_some()
            } else {
                self.route_groups.insert(key, groups.clone()) != Some(groups)
            };
        }
        for id in &update.retracts {
            let prefix = id.parse::<IpNet>().ok().or_else(|| routes::evpn_prefix(id));
            if let Some(prefix) = prefix {
                changed |= self
                    .route_groups
                    .remove(&(peer, update.vrf.clone(), prefix.trunc()))
                    .is_some();
            }
        }
        self.group_membership_changed(changed);
    }

    /// Drops the group lists of a control node's routes (its channel is gone for
    /// good).
    pub(in crate::control) fn forget_route_groups(&mut self, peer: PeerId) {
        let before = self.route_groups.len();
        self.route_groups
            .retain(|(source, _, _), _| *source != peer && *source != peer.evpn());
        self.group_membership_changed(self.route_groups.len() != before);
    }

    /// Drops the group lists of routes no longer learned (swept).
    pub(in crate::control) fn prune_route_groups(&mut self) {
        let before = self.route_groups.len();
        let model = &self.model;
        self.route_groups
            .retain(|(_, vrf, prefix), _| model.has_learned_route(vrf, *prefix));
        self.group_membership_changed(self.route_groups.len() != before);
    }

    fn group_membership_changed(&mut self, changed: bool) {
        // Without configuration there is no group to enforce: nothing to reconcile.
        if changed && self.config.graph.object_count() > 0 {
            self.config.dirty = true;
        }
    }

    /// The addresses each group id stands for, from the routes still learned.
    fn group_members(&self) -> GroupMembers {
        let mut members = GroupMembers::new();
        for ((_, vrf, prefix), groups) in &self.route_groups {
            if !self.model.has_learned_route(vrf, *prefix) {
                continue;
            }
            for id in groups {
                members.entry(*id).or_default().insert(*prefix);
            }
        }
        members
    }

    /// Brings the policies of the bound ports' security groups in line with the
    /// configuration and the membership routes carry.
    pub(in crate::control) fn reconcile_security_groups(&mut self, compiled: &CompiledConfig) {
        let bound = self.config.bindings.values().map(|b| b.vmi).collect();
        let desired = policies(compiled, &bound, &self.group_members());
        let mut left_out = std::mem::take(&mut self.config.groups_left_out);
        self.reconcile_config_policies(POLICY_PREFIX, desired.policies, desired.left_out, &mut left_out);
        self.config.groups_left_out = left_out;
    }

    /// Brings the policies of the bound ports' networks (their access control
    /// lists) in line with the configuration.
    pub(in crate::control) fn reconcile_network_acls(&mut self, compiled: &CompiledConfig) {
        use control_client::contrail::network_acls;
        let bound = self.config.bindings.values().map(|b| b.vmi).collect();
        let desired = network_acls::policies(compiled, &bound);
        let mut left_out = std::mem::take(&mut self.config.acls_left_out);
        self.reconcile_config_policies(
            network_acls::POLICY_PREFIX,
            desired.policies,
            desired.left_out,
            &mut left_out,
        );
        self.config.acls_left_out = left_out;
    }

    /// Makes the policies named `prefix`… be `desired`: changed ones replaced, those
    /// no longer desired removed (once the initial sync is over), an operator's left
    /// alone. What was left out is logged when first seen (`logged` holds what the
    /// last reconcile reported).
    fn reconcile_config_policies(
        &mut self,
        prefix: &str,
        desired: BTreeMap<String, PolicySpec>,
        left_out: Vec<String>,
        logged: &mut Vec<String>,
    ) {
        for why in left_out.iter().filter(|w| !logged.contains(w)) {
            tracing::warn!("policy rule from the configuration not enforced as written: {why}");
        }
        *logged = left_out;
        let current: BTreeMap<String, PolicySpec> = self
            .model
            .policies()
            .filter(|p| p.name.starts_with(prefix))
            .map(|p| (p.name.clone(), p.clone()))
            .collect();
        let remove: Vec<String> = current
            .keys()
            .filter(|name| !desired.contains_key(*name) && self.config.synced)
            .cloned()
            .collect();
        let changed: Vec<PolicySpec> = desired
            .into_values()
            .filter(|spec| current.get(&spec.name) != Some(spec))
            .collect();
        if remove.is_empty() && changed.is_empty() {
            return;
        }
        tracing::info!(
            prefix,
            changed = changed.len(),
            removed = remove.len(),
            "policies from the configuration"
        );
        if let Err(e) = self.set_policies(changed.clone(), &remove) {
            // One refused policy must not hold back the others: each on its own.
            tracing::warn!("policies from the configuration not applied together ({e}): one by one");
            for name in &remove {
                if let Err(e) = self.remove_policy(name) {
                    tracing::warn!(policy = %name, "not removed: {e}");
                }
            }
            for spec in changed {
                let name = spec.name.clone();
                if let Err(e) = self.add_policy(spec) {
                    tracing::warn!(policy = %name, "policy from the configuration not applied: {e}");
                }
            }
        }
    }
}

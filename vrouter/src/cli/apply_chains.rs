//! The service chains of `vrouter apply`: a chain is put in
//! force on the node holding its instance, its interfaces found by network and
//! address among the node's (the instance's other node applies it there).

use super::apply::Applied;
use crate::api::{ApiClient, Request};
use std::collections::BTreeSet;
use vrouter_api::{InterfaceView, ServiceChainView};
use vrouter_k8s::{ChainEnd, ChainPlan};

/// The interface of `interfaces` in `end`'s network holding one of its addresses.
fn interface_of<'a>(interfaces: &'a [InterfaceView], end: &ChainEnd) -> Option<&'a InterfaceView> {
    interfaces.iter().find(|i| {
        let addresses = [i.ipv4.map(Into::into), i.ipv6.map(Into::into)];
        i.vrf == end.vrf && addresses.into_iter().flatten().any(|a| end.ips.contains(&a))
    })
}

/// Adds (or replaces) the chains whose instance is on this node; with `prune`,
/// removes the managed (`namespace/name`) chains the manifests no longer define.
pub fn apply(
    api: &ApiClient,
    plans: &[ChainPlan],
    interfaces: &[InterfaceView],
    prune: bool,
    managed: impl Fn(&str) -> bool,
    done: &mut Applied,
) -> anyhow::Result<()> {
    let mut here = BTreeSet::new();
    for plan in plans {
        let (left, right) = (
            interface_of(interfaces, &plan.left),
            interface_of(interfaces, &plan.right),
        );
        let (left, right) = match (left, right) {
            (Some(l), Some(r)) => (l, r),
            (None, None) => continue,
            (l, _) => {
                let (found, missing) = if l.is_some() {
                    ("left", &plan.right)
                } else {
                    ("right", &plan.left)
                };
                done.warnings.push(format!(
                    "service chain {}: its {found} interface is here, none in {} with {:?}: not applied",
                    plan.name, missing.vrf, missing.ips
                ));
                continue;
            }
        };
        let spec = control_client::ServiceChainSpec {
            name: plan.name.clone(),
            left_interface: left.name.clone(),
            right_interface: right.name.clone(),
        };
        let _: serde_json::Value = api
            .call(&Request::AddServiceChain { spec })
            .map_err(|e| anyhow::anyhow!("service chain {}: {e}", plan.name))?;
        done.service_chains.push(plan.name.clone());
        here.insert(plan.name.as_str());
    }
    if prune {
        let current: Vec<ServiceChainView> = api.call(&Request::ServiceChains)?;
        for name in current
            .into_iter()
            .map(|c| c.name)
            .filter(|n| managed(n) && !here.contains(n.as_str()))
        {
            let _: serde_json::Value = api.call(&Request::RemoveServiceChain { name: name.clone() })?;
            done.removed.push(format!("service chain {name}"));
        }
    }
    Ok(())
}

//! `vrouter ingress`: the ingresses the node holds (added with `vrouter apply`), with
//! this node's haproxy instance of each and where the VIP's traffic goes; or one
//! deleted (its instance, namespace and port go with it).

use super::views::print;
use crate::api::{ApiClient, Request};
use clap::Subcommand;
use vrouter_api::IngressView;

/// `ingress` actions.
#[derive(Debug, Subcommand)]
pub enum IngressAction {
    /// Ingresses: VIP, rules, this node's role and instance, where the VIP's traffic
    /// goes from here, haproxy's backend statistics.
    List,
    /// Remove an ingress.
    Delete {
        /// Its name (`namespace/name`).
        name: String,
    },
}

/// Runs an `ingress` action.
pub fn run(api: &ApiClient, json: bool, action: IngressAction) -> anyhow::Result<()> {
    match action {
        IngressAction::List => {
            let list: Vec<IngressView> = api.call(&Request::Ingresses)?;
            print(json, &list, |list| {
                for i in list {
                    let external = i.external_ip.map(|e| format!(" external {e}")).unwrap_or_default();
                    println!("{}  vip {} in {}{external}  -> {}", i.name, i.vip, i.vrf, i.vip_at);
                    for r in &i.rules {
                        println!("    {r}");
                    }
                    match (&i.role, &i.instance) {
                        (Some(role), Some(x)) => println!(
                            "    {role} instance {} ({}): {}{}, {} restarts, {} reloads, {} withdrawals",
                            x.port,
                            x.netns,
                            x.state,
                            if x.attached { ", VIP advertised" } else { "" },
                            x.restarts,
                            x.reloads,
                            x.withdrawals
                        ),
                        (Some(role), None) => println!("    {role} instance: not running"),
                        (None, _) => println!("    no instance on this node"),
                    }
                    for b in &i.backends {
                        println!(
                            "    backend {} {}: {} sessions now, {} in all, {} answered 2xx",
                            b.backend, b.status, b.current_sessions, b.total_sessions, b.responses_2xx
                        );
                    }
                }
            })
        }
        IngressAction::Delete { name } => {
            let _: serde_json::Value = api.call(&Request::RemoveIngress { name: name.clone() })?;
            print(json, &serde_json::Value::Null, |_| println!("ingress {name} removed"))
        }
    }
}

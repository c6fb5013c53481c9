//! `vrouter policy`: network policies with their selectors resolved (what
//! `vrouter apply` sends for a NetworkPolicy), listed, added from a JSON file, or
//! deleted.

use super::views::print;
use crate::api::{ApiClient, Request};
use clap::Subcommand;
use std::path::PathBuf;
use vrouter_api::PolicyView;

/// `policy` actions.
#[derive(Debug, Subcommand)]
pub enum PolicyAction {
    /// Every policy: its rules, the pods it selects here, the connections it denied.
    List,
    /// Add policies, or replace those of the same names, from a JSON file (one policy
    /// or a list; `-`: standard input).
    Add {
        /// The file.
        file: PathBuf,
    },
    /// Remove a policy.
    Delete {
        /// Its name.
        name: String,
    },
}

/// Runs a `policy` action.
pub fn run(api: &ApiClient, json: bool, action: PolicyAction) -> anyhow::Result<()> {
    match action {
        PolicyAction::List => {
            let list: Vec<PolicyView> = api.call(&Request::Policies)?;
            print(json, &list, |list| {
                println!(
                    "{:<32} {:<7} {:>8} {:>7} {:>5} {:>8}  local pods",
                    "name", "tier", "ingress", "egress", "pods", "denied"
                );
                let rules = |n: Option<usize>| n.map_or_else(|| "-".to_string(), |n| n.to_string());
                for p in list {
                    println!(
                        "{:<32} {:<7} {:>8} {:>7} {:>5} {:>8}  {}",
                        p.name,
                        p.tier.as_str(),
                        rules(p.ingress_rules),
                        rules(p.egress_rules),
                        p.pods,
                        p.denied,
                        p.local_pods.join(" ")
                    );
                }
            })
        }
        PolicyAction::Add { file } => {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
            };
            #[derive(serde::Deserialize)]
            #[serde(untagged)]
            enum OneOrMany {
                One(Box<control_client::PolicySpec>),
                Many(Vec<control_client::PolicySpec>),
            }
            let specs = match serde_json::from_str::<OneOrMany>(&text)
                .map_err(|e| anyhow::anyhow!("{}: not a policy or a list of policies: {e}", file.display()))?
            {
                OneOrMany::One(spec) => vec![*spec],
                OneOrMany::Many(specs) => specs,
            };
            let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
            for spec in specs {
                let _: serde_json::Value = api.call(&Request::AddPolicy { spec })?;
            }
            print(json, &names, |names| {
                for n in names {
                    println!("network policy {n} added");
                }
            })
        }
        PolicyAction::Delete { name } => {
            let _: serde_json::Value = api.call(&Request::RemovePolicy { name: name.clone() })?;
            print(json, &serde_json::Value::Null, |_| {
                println!("network policy {name} removed")
            })
        }
    }
}

//! `vrouter chain`: service chains (traffic between two networks steered through a
//! service instance's left and right interfaces), listed, added or deleted.

use super::views::print;
use crate::api::{ApiClient, Request};
use clap::Subcommand;
use vrouter_api::ServiceChainView;

/// `chain` actions.
#[derive(Debug, Subcommand)]
pub enum ChainAction {
    /// Service chains in force (both interfaces attached): their networks and the
    /// routes each side gained.
    List,
    /// Steer traffic between two networks through a service instance, or replace
    /// the chain of that name.
    Add {
        /// Its name.
        name: String,
        /// The instance's interface in the left network.
        #[arg(long)]
        left: String,
        /// The instance's interface in the right network.
        #[arg(long)]
        right: String,
    },
    /// Remove a service chain (the networks are apart again).
    Delete {
        /// Its name.
        name: String,
    },
}

/// Runs a `chain` action.
pub fn run(api: &ApiClient, json: bool, action: ChainAction) -> anyhow::Result<()> {
    match action {
        ChainAction::List => {
            let list: Vec<ServiceChainView> = api.call(&Request::ServiceChains)?;
            print(json, &list, |list| {
                println!(
                    "{:<24} {:<15} {:<20} {:<15} {:<20} {:>7} {:>7}",
                    "name", "left", "left vrf", "right", "right vrf", "routes<", "routes>"
                );
                for c in list {
                    println!(
                        "{:<24} {:<15} {:<20} {:<15} {:<20} {:>7} {:>7}",
                        c.name,
                        c.left_interface,
                        c.left_vrf,
                        c.right_interface,
                        c.right_vrf,
                        c.routes_in_left,
                        c.routes_in_right
                    );
                }
            })
        }
        ChainAction::Add { name, left, right } => {
            let spec = control_client::ServiceChainSpec {
                name: name.clone(),
                left_interface: left,
                right_interface: right,
            };
            let _: serde_json::Value = api.call(&Request::AddServiceChain { spec })?;
            print(json, &serde_json::Value::Null, |_| {
                println!("service chain {name} added")
            })
        }
        ChainAction::Delete { name } => {
            let _: serde_json::Value = api.call(&Request::RemoveServiceChain { name: name.clone() })?;
            print(json, &serde_json::Value::Null, |_| {
                println!("service chain {name} removed")
            })
        }
    }
}

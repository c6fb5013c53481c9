//! The local API: JSON lines over a Unix socket, served on the control thread.
//!
//! One request per line, one response per line: `{"ok": ...}` or `{"error": "..."}`.
//! The CLI, the lab, the tests and (later) the CNI plugin use it.

mod client;
mod server;

pub use client::ApiClient;
pub use server::serve;

use crate::stats::VifTotals;
use control_client::{InterfaceSpec, RouteSpec};
use ipnet::IpNet;
use nexthop::{InterfaceKind, MacAddr, NextHop};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Attach a pod interface.
    AddInterface {
        /// What to attach.
        spec: InterfaceSpec,
    },
    /// Detach a pod interface.
    RemoveInterface {
        /// Its name.
        name: String,
    },
    /// Add a route.
    AddRoute {
        /// The route.
        route: RouteSpec,
    },
    /// Remove a route.
    RemoveRoute {
        /// VRF.
        vrf: String,
        /// Prefix.
        prefix: IpNet,
    },
    /// Interfaces with counters (`vif --list`).
    Interfaces,
    /// Routes, of one VRF or all (`rt --dump`).
    Routes {
        /// Only this VRF.
        #[serde(default)]
        vrf: Option<String>,
    },
    /// Next hops (`nh --list`).
    NextHops,
    /// Drops by reason (`dropstats`).
    DropStats,
    /// Process status.
    Status,
}

/// One interface in the `vif` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceView {
    /// vif number.
    pub vif: u32,
    /// Linux name.
    pub name: String,
    /// Pod or fabric.
    pub kind: InterfaceKind,
    /// VRF name.
    pub vrf: String,
    /// The pod's MAC (the vrouter MAC for the fabric).
    pub mac: MacAddr,
    /// Pod IPv4.
    pub ipv4: Option<Ipv4Addr>,
    /// Pod IPv6.
    pub ipv6: Option<Ipv6Addr>,
    /// Gateway IPv4.
    pub gateway4: Option<Ipv4Addr>,
    /// Gateway IPv6.
    pub gateway6: Option<Ipv6Addr>,
    /// Counters.
    pub counters: VifTotals,
}

/// One route in the `rt` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteView {
    /// VRF name.
    pub vrf: String,
    /// Prefix.
    pub prefix: IpNet,
    /// Next hop id.
    pub nh: u32,
}

/// One next hop in the `nh` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextHopView {
    /// Id.
    pub id: u32,
    /// The next hop.
    pub nexthop: NextHop,
    /// Routes using it.
    pub routes: usize,
}

/// The `dropstats` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropStatsView {
    /// Count per reason label, every reason listed.
    pub reasons: Vec<(String, u64)>,
    /// ICMP errors generated.
    pub icmp_errors_sent: u64,
    /// ICMP errors suppressed by the rate limit.
    pub icmp_errors_suppressed: u64,
}

impl DropStatsView {
    /// The count for a reason label (0 if unknown).
    pub fn get(&self, label: &str) -> u64 {
        self.reasons.iter().find(|(l, _)| l == label).map_or(0, |(_, n)| *n)
    }
}

/// The `status` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusView {
    /// Snapshot generation.
    pub generation: u64,
    /// Cores of the forwarding workers.
    pub forwarding_cores: Vec<usize>,
    /// Interfaces (fabric included).
    pub interfaces: usize,
    /// VRFs (fabric included).
    pub vrfs: usize,
    /// Per-worker counters.
    pub workers: Vec<WorkerView>,
}

/// One forwarding worker in the `status` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerView {
    /// Worker number.
    pub index: usize,
    /// The core it is pinned to.
    pub core: usize,
    /// Loop iterations that found packets.
    pub busy_loops: u64,
    /// Loop iterations that found none.
    pub idle_loops: u64,
    /// Frames received, all ports.
    pub rx_packets: u64,
    /// Frames transmitted, all ports.
    pub tx_packets: u64,
    /// Frames dropped, all reasons.
    pub drops: u64,
}

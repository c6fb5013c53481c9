//! Flow records: what happened to each connection, exported as IPFIX (RFC 7011) to a
//! collector. The aging thread, which visits every flow entry once a second anyway,
//! tracks them ([`tracker`]): a flow's first record when it appears (NSEL's
//! firewallEvent "created", or "denied" for a drop decision), a periodic one for a
//! long flow, and a last one when it ends, with why (idle, TCP closed, removed).
//! Each record carries the packets and bytes since the flow's previous record, so a
//! collector's sum is the flow's total. Each direction of a connection is an entry of
//! the table and a flow of its own, as IPFIX flows are. The forwarding path does
//! nothing for this.

pub mod ipfix;
pub mod recent;
pub mod tracker;

use serde::{Deserialize, Serialize};

/// `[flow_export]`: where flow records go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowExportConfig {
    /// The IPFIX collector (UDP); unset: no records.
    #[serde(default)]
    pub ipfix_collector: Option<std::net::SocketAddr>,
    /// A record of a long flow at least this often.
    #[serde(default = "default_active_timeout_secs")]
    pub active_timeout_secs: u32,
    /// IPFIX observation domain of this node.
    #[serde(default)]
    pub observation_domain: u32,
    /// Latest records kept for `vrouter flow watch` (0: none, and no tracking
    /// without a collector).
    #[serde(default = "default_recent_records")]
    pub recent_records: u32,
}

fn default_recent_records() -> u32 {
    8192
}

impl FlowExportConfig {
    /// True if flows are tracked at all.
    pub fn tracking(&self) -> bool {
        self.ipfix_collector.is_some() || self.recent_records > 0
    }
}

fn default_active_timeout_secs() -> u32 {
    60
}

impl Default for FlowExportConfig {
    fn default() -> Self {
        Self {
            ipfix_collector: None,
            active_timeout_secs: default_active_timeout_secs(),
            observation_domain: 0,
            recent_records: default_recent_records(),
        }
    }
}

/// What a record says happened (NSEL's firewallEvent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowEvent {
    /// The flow appeared.
    Created,
    /// The flow appeared with a drop decision.
    Denied,
    /// A long flow's periodic record.
    Updated,
    /// The flow ended.
    Ended(tracker::EndReason),
}

/// One record of one flow entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord {
    /// The entry's key: VRF, addresses, protocol, ports as received.
    pub key: flow_table::FlowKey,
    /// The interface of its connection's first packet (for a reply entry: where the
    /// replies go).
    pub owner: u32,
    /// The entry's decision word ([`crate::flows::FlowAction`]).
    pub data: u64,
    /// The translation, if translated ([`nexthop::Nat`] encoded).
    pub transform: Option<u64>,
    /// Packets since the previous record of this flow.
    pub packets: u64,
    /// Bytes since the previous record.
    pub bytes: u64,
    /// Packets in all, up to this record.
    pub total_packets: u64,
    /// Bytes in all.
    pub total_bytes: u64,
    /// First packet, ms since the epoch (to the aging pass's second).
    pub start_ms: u64,
    /// Last packet so far.
    pub end_ms: u64,
    /// Why this record.
    pub event: FlowEvent,
}

/// The source and destination (address, port) of `r` after its translation: the
/// translated end rewritten, the other as received.
pub fn post_nat(r: &FlowRecord, snap: &nexthop::Snapshot) -> ((std::net::IpAddr, u16), (std::net::IpAddr, u16)) {
    let k = &r.key;
    let (mut src, mut dst) = ((k.src_addr(), k.src_port()), (k.dst_addr(), k.dst_port()));
    if let Some(nat) = r.transform.and_then(nexthop::Nat::decode) {
        // A target of the other family (NAT64 is not done) leaves the address.
        let to = snap
            .nat_target(nat.target)
            .filter(|a| a.is_ipv6() == k.src_addr().is_ipv6());
        let end = if nat.side.rewrites_destination() {
            &mut dst
        } else {
            &mut src
        };
        *end = (to.unwrap_or(end.0), nat.port);
    }
    (src, dst)
}

#[cfg(test)]
mod tests;

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
    /// The translation, if translated.
    pub transform: Option<Translation>,
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

/// A translated entry's translation, as a record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    /// How ([`nexthop::Nat`] encoded).
    pub nat: u64,
    /// Both ends translated: the key of the entry's pair when it was seen (its
    /// packets take that key's addresses and ports turned round).
    pub pair: Option<flow_table::FlowKey>,
}

/// An (address, port) end of a flow.
pub type End = (std::net::IpAddr, u16);

/// The source and destination of the packets of entry `key` after translation
/// `nat` (both ends: `pair`, its pair entry's key, turned round; one end: that end
/// rewritten, the other as received). `None` if the translation names no address
/// of the key's family (NAT64 is not done) or its pair is unknown.
pub fn translated_ends(
    snap: &nexthop::Snapshot,
    key: &flow_table::FlowKey,
    nat: nexthop::Nat,
    pair: Option<&flow_table::FlowKey>,
) -> Option<(End, End)> {
    if nat.side == nexthop::NatSide::Both {
        let pair = pair?;
        return Some(((pair.dst_addr(), pair.dst_port()), (pair.src_addr(), pair.src_port())));
    }
    let to = snap
        .nat_target(nat.target)
        .filter(|a| a.is_ipv6() == key.src_addr().is_ipv6())?;
    let (src, dst) = ((key.src_addr(), key.src_port()), (key.dst_addr(), key.dst_port()));
    Some(if nat.side.rewrites_destination() {
        (src, (to, nat.port))
    } else {
        ((to, nat.port), dst)
    })
}

/// How a flow view shows translation `nat` of entry `key` (see [`translated_ends`]):
/// the end it rewrites (the destination, for both ends, with the source beside).
pub fn nat_view(
    snap: &nexthop::Snapshot,
    key: &flow_table::FlowKey,
    nat: nexthop::Nat,
    pair: Option<&flow_table::FlowKey>,
) -> Option<vrouter_api::FlowNatView> {
    let (src, dst) = translated_ends(snap, key, nat, pair)?;
    let both = nat.side == nexthop::NatSide::Both;
    let destination = both || nat.side.rewrites_destination();
    let (ip, port) = if destination { dst } else { src };
    Some(vrouter_api::FlowNatView {
        destination,
        ip,
        port,
        source: both.then(|| std::net::SocketAddr::new(src.0, src.1)),
    })
}

/// The source and destination (address, port) of `r` after its translation (its
/// own where not translated, or where the translation cannot be shown).
pub fn post_nat(r: &FlowRecord, snap: &nexthop::Snapshot) -> (End, End) {
    let k = &r.key;
    r.transform
        .and_then(|t| translated_ends(snap, k, nexthop::Nat::decode(t.nat)?, t.pair.as_ref()))
        .unwrap_or(((k.src_addr(), k.src_port()), (k.dst_addr(), k.dst_port())))
}

#[cfg(test)]
mod tests;

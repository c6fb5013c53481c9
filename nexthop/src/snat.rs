//! Fabric source NAT: connections from pods to addresses outside the cluster (no
//! route in their VRF) leave from the node's fabric address and a port of a
//! per-protocol range, through the node's own interface; the replies, which arrive
//! on the fabric at that address and port, are translated back to the pod. A port is
//! taken per connection and destination (the reply's flow key is unique while the
//! connection lives), so a range of N ports carries N connections to each
//! destination address and port, and two nodes (two fabric addresses) never collide.
//! ICMP echo (ping) is translated the same way, its identifier standing for the port
//! (a range of identifiers of its own).

use crate::VrfId;
use std::net::Ipv4Addr;

/// An inclusive range of ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PortRange {
    /// The first port.
    pub first: u16,
    /// The last port (at least `first`).
    pub last: u16,
}

impl PortRange {
    /// How many ports it holds.
    pub fn len(self) -> u32 {
        u32::from(self.last.saturating_sub(self.first)) + 1
    }

    /// True if it holds `port`.
    pub fn contains(self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// Never empty: a range holds its first port.
    pub fn is_empty(self) -> bool {
        false
    }
}

/// Fabric source NAT as the packet path applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snat {
    /// The node's fabric address: the source of what leaves.
    pub addr: Ipv4Addr,
    /// The VRF whose pods' connections outside the cluster are translated.
    pub vrf: VrfId,
    /// TCP source ports.
    pub tcp: PortRange,
    /// UDP source ports.
    pub udp: PortRange,
    /// ICMP echo identifiers.
    pub icmp: PortRange,
}

impl Snat {
    /// The port range of IP protocol `proto` (TCP, UDP, or ICMP's echo identifiers).
    pub fn range(&self, proto: u8) -> Option<PortRange> {
        match proto {
            1 => Some(self.icmp),
            6 => Some(self.tcp),
            17 => Some(self.udp),
            _ => None,
        }
    }
}

/// The ranges of fabric source NAT, per protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnatRanges {
    /// TCP source ports.
    pub tcp: PortRange,
    /// UDP source ports.
    pub udp: PortRange,
    /// ICMP echo identifiers.
    pub icmp: PortRange,
}

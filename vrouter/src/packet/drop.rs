//! Drop reasons: every packet the vrouter does not forward is counted under one.

/// Why a packet was dropped. Small and `Copy`: the hot path returns it by value and
/// the worker bumps the matching counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// Arrived on an interface the forwarding state does not know (just removed).
    InvalidInterface,
    /// Shorter than the headers it claims.
    Truncated,
    /// IPv4/IPv6 header malformed: version, IHL, total or payload length.
    BadIpHeader,
    /// IPv4 header checksum wrong.
    BadChecksum,
    /// Ethernet destination is neither the vrouter MAC nor broadcast/multicast.
    WrongDestMac,
    /// An EtherType the vrouter does not route (including 802.1Q until nested mode).
    UnsupportedEtherType,
    /// Malformed ARP packet, or not an Ethernet/IPv4 request.
    InvalidArp,
    /// ARP or neighbour solicitation for the sender's own address (gratuitous, DAD).
    SelfSolicitation,
    /// ARP or neighbour solicitation for an address nothing in the VRF owns.
    NeighborUnknown,
    /// Broadcast or multicast IP traffic other than ARP and neighbour discovery.
    Multicast,
    /// TTL or hop limit expired.
    TtlExceeded,
    /// No route to the destination in the interface's VRF.
    NoRoute,
    /// The destination exists, but in another VRF: isolation at work.
    OtherVrf,
    /// The route is a discard (blackhole) route.
    Discard,
    /// Addressed to the vrouter itself, but not something it answers (only echo and ND).
    NoLocalService,
    /// ICMPv6 neighbour discovery message that is malformed or not answered
    /// (router solicitations, redirects).
    NdUnhandled,
    /// The transmit ring of the outgoing port was full.
    TxRingFull,
    /// No free UMEM frame to copy the packet into.
    NoFrame,
    /// The outgoing interface has no socket on this worker (being added or removed).
    NoTxPort,
    /// A new flow could not be set up: the flow table is full (established flows
    /// are not affected).
    FlowTableFull,
    /// A new flow could not be set up: its interface reached its flow limit.
    FlowLimit,
    /// A fabric frame that is not a well-formed tunnel packet for this node.
    BadTunnel,
    /// An MPLS label that names no local next hop.
    InvalidLabel,
    /// A VXLAN network identifier that names no VRF.
    InvalidVni,
    /// The tunnel's remote has no resolved MAC on the fabric yet.
    TunnelUnresolved,
    /// Too big for the fabric MTU once encapsulated, and must not be fragmented
    /// (an ICMP error goes back to the sender).
    Mtu,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 26] = [
        DropReason::InvalidInterface,
        DropReason::Truncated,
        DropReason::BadIpHeader,
        DropReason::BadChecksum,
        DropReason::WrongDestMac,
        DropReason::UnsupportedEtherType,
        DropReason::InvalidArp,
        DropReason::SelfSolicitation,
        DropReason::NeighborUnknown,
        DropReason::Multicast,
        DropReason::TtlExceeded,
        DropReason::NoRoute,
        DropReason::OtherVrf,
        DropReason::Discard,
        DropReason::NoLocalService,
        DropReason::NdUnhandled,
        DropReason::TxRingFull,
        DropReason::NoFrame,
        DropReason::NoTxPort,
        DropReason::FlowTableFull,
        DropReason::FlowLimit,
        DropReason::BadTunnel,
        DropReason::InvalidLabel,
        DropReason::InvalidVni,
        DropReason::TunnelUnresolved,
        DropReason::Mtu,
    ];
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Counter index.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The label shown by `vrouter dropstats`.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::InvalidInterface => "invalid_interface",
            DropReason::Truncated => "truncated",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadChecksum => "bad_checksum",
            DropReason::WrongDestMac => "wrong_dest_mac",
            DropReason::UnsupportedEtherType => "unsupported_ethertype",
            DropReason::InvalidArp => "invalid_arp",
            DropReason::SelfSolicitation => "self_solicitation",
            DropReason::NeighborUnknown => "neighbor_unknown",
            DropReason::Multicast => "multicast",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::NoRoute => "no_route",
            DropReason::OtherVrf => "other_vrf",
            DropReason::Discard => "discard",
            DropReason::NoLocalService => "no_local_service",
            DropReason::NdUnhandled => "nd_unhandled",
            DropReason::TxRingFull => "tx_ring_full",
            DropReason::NoFrame => "no_frame",
            DropReason::NoTxPort => "no_tx_port",
            DropReason::FlowTableFull => "flow_table_full",
            DropReason::FlowLimit => "flow_limit",
            DropReason::BadTunnel => "bad_tunnel",
            DropReason::InvalidLabel => "invalid_label",
            DropReason::InvalidVni => "invalid_vni",
            DropReason::TunnelUnresolved => "tunnel_unresolved",
            DropReason::Mtu => "mtu",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_all() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
        }
        let labels: std::collections::HashSet<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), DropReason::COUNT);
    }
}

//! Drop reasons: every packet the vrouter does not forward is counted under one.
//!
//! The reasons are declared once, in the table below: the enum, [`DropReason::ALL`]
//! (counter order) and the labels `vrouter dropstats` shows are generated from it.

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident = $label:literal,)+) => {
        /// Why a packet was dropped. Small and `Copy`: the hot path returns it by value
        /// and the worker bumps the matching counter.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $($(#[doc = $doc])* $name,)+
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)+];

            /// The label shown by `vrouter dropstats`.
            pub fn label(self) -> &'static str {
                match self {
                    $(DropReason::$name => $label,)+
                }
            }
        }
    };
}

drop_reasons! {
    /// Arrived on an interface the forwarding state does not know (just removed).
    InvalidInterface = "invalid_interface",
    /// Shorter than the headers it claims.
    Truncated = "truncated",
    /// IPv4/IPv6 header malformed: version, IHL, total or payload length.
    BadIpHeader = "bad_ip_header",
    /// IPv4 header checksum wrong.
    BadChecksum = "bad_checksum",
    /// Ethernet destination is neither the vrouter MAC nor broadcast/multicast.
    WrongDestMac = "wrong_dest_mac",
    /// An EtherType the vrouter does not route (802.1Q tags are VLAN sub-interfaces'
    /// frames: `unknown_vlan`).
    UnsupportedEtherType = "unsupported_ethertype",
    /// Malformed ARP packet, or not an Ethernet/IPv4 request.
    InvalidArp = "invalid_arp",
    /// ARP or neighbour solicitation for the sender's own address (gratuitous, DAD).
    SelfSolicitation = "self_solicitation",
    /// ARP or neighbour solicitation for an address nothing in the VRF owns.
    NeighborUnknown = "neighbor_unknown",
    /// Broadcast or multicast IP traffic other than ARP and neighbour discovery.
    Multicast = "multicast",
    /// TTL or hop limit expired.
    TtlExceeded = "ttl_exceeded",
    /// No route to the destination in the interface's VRF.
    NoRoute = "no_route",
    /// The destination exists, but in another VRF: isolation at work.
    OtherVrf = "other_vrf",
    /// The route is a discard (blackhole) route.
    Discard = "discard",
    /// Addressed to the vrouter itself, but not something it answers (only echo and ND).
    NoLocalService = "no_local_service",
    /// ICMPv6 neighbour discovery message that is malformed or not answered
    /// (router solicitations, redirects).
    NdUnhandled = "nd_unhandled",
    /// The transmit ring of the outgoing port was full.
    TxRingFull = "tx_ring_full",
    /// No free UMEM frame to copy the packet into.
    NoFrame = "no_frame",
    /// The outgoing interface has no socket on this worker (being added or removed).
    NoTxPort = "no_tx_port",
    /// A new flow could not be set up: the flow table is full (established flows
    /// are not affected).
    FlowTableFull = "flow_table_full",
    /// A new flow could not be set up: its interface reached its flow limit.
    FlowLimit = "flow_limit",
    /// A fabric frame that is not a well-formed tunnel packet for this node.
    BadTunnel = "bad_tunnel",
    /// An MPLS label that names no local next hop.
    InvalidLabel = "invalid_label",
    /// A VXLAN network identifier that names no VRF.
    InvalidVni = "invalid_vni",
    /// The tunnel's remote has no resolved MAC on the fabric yet.
    TunnelUnresolved = "tunnel_unresolved",
    /// Too big for the fabric MTU once encapsulated, and must not be fragmented
    /// (an ICMP error goes back to the sender).
    Mtu = "mtu",

    /// An MPLS-labelled packet whose inner destination does not route to the
    /// label's interface in that interface's VRF (a stale or forged label must
    /// not carry traffic across VRFs).
    LabelMismatch = "label_mismatch",
    /// A pod sent from an address or MAC that is not its own (spoofing), or from a
    /// martian source (loopback, multicast, broadcast, unspecified, the gateway).
    SourceMismatch = "source_mismatch",
    /// ARP, neighbour discovery or an echo request to the gateway beyond the port's
    /// exception rate (`dataplane.exception_rate`): a flood policed per port.
    ExceptionRate = "exception_rate",
    /// An 802.1Q-tagged frame whose VLAN is no sub-interface of the port it came in
    /// on (nested mode), or a tag inside a sub-interface's frame.
    UnknownVlan = "unknown_vlan",
    /// A new connection to a service port that has no backends (refused with an ICMP
    /// port unreachable, not dropped silently).
    ServiceNoBackend = "service_no_backend",
    /// A packet on the fabric that is no tunnel and that the vrouter does not claim:
    /// no flow it holds, no node port or external IP (the steering program sends only
    /// those; a packet crafted past it is dropped here).
    FabricUnclaimed = "fabric_unclaimed",
    /// A pod's new connection out of the cluster found no free fabric source NAT port
    /// for its destination (`host.snat_tcp_ports`, `host.snat_udp_ports`).
    SnatExhausted = "snat_exhausted",
    /// A new connection to a service whose replies would carry the same addresses
    /// and ports as a live connection's (the same client port balanced to the same
    /// backend through another service address, a node port or an external IP):
    /// refused with a port unreachable, since its replies would be translated for
    /// the other. What is over (a closed TCP connection, an idle datagram flow)
    /// gives way instead.
    NatClash = "nat_clash",
    /// Denied by network policy: no rule of the policies that select the sending
    /// pod (egress) or the receiving pod (ingress) allows the connection.
    Policy = "policy",
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = Self::ALL.len();

    /// Counter index.
    #[inline]
    pub fn index(self) -> usize {
        self as usize
    }

    /// The reason with this label, if any.
    pub fn from_label(label: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.label() == label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_follow_all() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            assert_eq!(DropReason::from_label(r.label()), Some(*r));
        }
        let labels: std::collections::HashSet<_> = DropReason::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), DropReason::COUNT);
    }
}

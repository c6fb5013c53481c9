//! Typed answers of the views.

use ipnet::IpNet;
use nexthop::{InterfaceKind, MacAddr, NextHop};
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The answer to `add_interface`: the port's identity, kept for its lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedView {
    /// The vrouter's interface index.
    pub vif: u32,
    /// The MPLS label other nodes reach it by.
    pub label: u32,
}

/// One flow entry in the `flow` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowView {
    /// Entry index.
    pub index: u32,
    /// The reverse entry.
    pub reverse: Option<u32>,
    /// VRF name.
    pub vrf: String,
    /// Source address.
    pub src: std::net::IpAddr,
    /// Destination address.
    pub dst: std::net::IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// Source port (ICMP: identifier).
    pub src_port: u16,
    /// Destination port (ICMP: identifier).
    pub dst_port: u16,
    /// The cached decision.
    pub action: FlowActionView,
    /// The translation its packets get (a flow to a service: the destination; its
    /// reply entry: the source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat: Option<FlowNatView>,
    /// The interface that created the flow.
    pub interface: u32,
    /// Snapshot generation of the decision.
    pub generation: u32,
    /// True if a publication since it was made changed its route (it is re-evaluated
    /// on its next packet).
    pub stale: bool,
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
    /// The network policy verdict on its connection, when policies are in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<FlowPolicyView>,
    /// Seconds since the last packet.
    pub idle_secs: u32,
    /// TCP flags seen (FIN 1, SYN 2, RST 4).
    pub tcp_flags: u8,
}

/// A flow's cached decision, with the next hop it names resolved in the same snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FlowActionView {
    /// Delivered to a local interface.
    ToInterface {
        /// The next hop id.
        nexthop: u32,
        /// The interface.
        vif: u32,
    },
    /// Encapsulated to a remote node.
    ToTunnel {
        /// The next hop id.
        nexthop: u32,
        /// The remote node's fabric address.
        remote: Ipv4Addr,
        /// The MPLS label or VNI the remote advertised.
        label: u32,
    },
    /// Forwarded through a next hop of another kind (the gateway's receive, a
    /// composite resolved per packet), or one no longer in the snapshot.
    Forward {
        /// The next hop id.
        nexthop: u32,
    },
    /// Dropped and counted under this reason (its label in the drop statistics).
    Drop {
        /// The drop reason's label.
        reason: String,
    },
    /// An entry word this version does not decode.
    Unknown,
}

impl std::fmt::Display for FlowActionView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FlowActionView::ToInterface { nexthop, vif } => write!(f, "forward nh {nexthop} vif {vif}"),
            FlowActionView::ToTunnel { nexthop, remote, label } => {
                write!(f, "forward nh {nexthop} tunnel {remote} label {label}")
            }
            FlowActionView::Forward { nexthop } => write!(f, "forward nh {nexthop}"),
            FlowActionView::Drop { reason } => write!(f, "drop {reason}"),
            FlowActionView::Unknown => f.write_str("unknown"),
        }
    }
}

/// A flow's translation in the `flow` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowNatView {
    /// True when the destination is rewritten, false for the source.
    pub destination: bool,
    /// The address it becomes.
    pub ip: std::net::IpAddr,
    /// The port it becomes.
    pub port: u16,
    /// Both ends translated (a pod behind a floating IP reaching a service of the
    /// floating address's network): the source address and port it becomes too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<std::net::SocketAddr>,
}

/// One flow record (`flow watch`): a flow entry appeared, went on, or ended. Each
/// direction of a connection is an entry of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecordView {
    /// Its place in the vrouter's sequence of records (ask for records after it).
    pub seq: u64,
    /// `created`, `denied` (appeared with a drop decision), `updated` (a long flow's
    /// periodic record) or `ended`.
    pub event: String,
    /// Why it ended: `idle`, `tcp_closed`, `removed` (re-steered, port detached, the
    /// vrouter stopping); none before the end.
    pub end_reason: Option<String>,
    /// VRF of the packets.
    pub vrf: String,
    /// Source address as received.
    pub src: std::net::IpAddr,
    /// Destination address as received.
    pub dst: std::net::IpAddr,
    /// IP protocol.
    pub proto: u8,
    /// Source port (ICMP: the echo identifier).
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The vif of the connection's first packet (for the reply direction: the vif
    /// the replies go to).
    pub interface: u32,
    /// `forward`, or `drop <reason>`.
    pub action: String,
    /// Its translation, if translated.
    pub nat: Option<FlowNatView>,
    /// The network policy verdict on its connection; none without policies.
    pub policy: Option<FlowPolicyView>,
    /// Packets since this flow's previous record.
    pub packets: u64,
    /// Bytes since the previous record.
    pub bytes: u64,
    /// Packets in all, up to this record.
    pub total_packets: u64,
    /// Bytes in all.
    pub total_bytes: u64,
    /// First packet, ms since the Unix epoch (to the aging pass's second).
    pub start_ms: u64,
    /// Last packet so far.
    pub end_ms: u64,
}

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacketView {
    /// When, ns since the Unix epoch.
    pub at_ns: u64,
    /// The worker that saw it.
    pub worker: u16,
    /// `received` (as it arrived), `dropped` (received and dropped), `sent` (as it
    /// left, after rewrite).
    pub stage: String,
    /// Why it was dropped.
    pub drop_reason: Option<String>,
    /// Its length.
    pub len: u32,
    /// Its first bytes (the capture's snaplen), in hex.
    pub hex: String,
}

/// What a capture read takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedPacketsView {
    /// Packets, oldest first.
    pub packets: Vec<CapturedPacketView>,
    /// Packets the capture had no room for since the previous read.
    pub lost: u64,
}

/// Hex of `bytes`, as [`CapturedPacketView::hex`] carries them.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// Bytes of `hex`; `None` if it is not hex of whole bytes.
pub fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An answer of `flow watch`: the records after the one asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecordsView {
    /// Records, oldest first.
    pub records: Vec<FlowRecordView>,
    /// Ask for the records after this one next.
    pub last: u64,
    /// Records made after the one asked for that are no longer kept (the reader was
    /// too slow for `flow_export.recent_records`).
    pub lost: u64,
    /// False when the vrouter keeps no records (`flow_export.recent_records` = 0).
    pub enabled: bool,
}

/// The network policy verdict on a flow's connection, in the `flow` view: each side
/// as `open` (no policy selects that pod that way), `allowed by NAME rule N`, or
/// `denied by NAME (no rule matches)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowPolicyView {
    /// True unless a side denies.
    pub allowed: bool,
    /// The sending pod's egress side.
    pub egress: String,
    /// The receiving pod's ingress side.
    pub ingress: String,
}

/// A network policy in the `policy` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyView {
    /// Its name (`namespace/name`).
    pub name: String,
    /// Its tier: `pod` (NetworkPolicies, security groups, the operator's) or
    /// `network` (a network's access control list); a flow must pass both.
    #[serde(default)]
    pub tier: control_client::PolicyTier,
    /// The rules of each direction it restricts (`None`: it does not restrict it).
    pub ingress_rules: Option<usize>,
    /// Egress rules.
    pub egress_rules: Option<usize>,
    /// Pods it selects, in the whole cluster.
    pub pods: usize,
    /// Those of them attached to this node (`VRF/address`).
    pub local_pods: Vec<String>,
    /// Connections it denied since it came (per this node).
    pub denied: u64,
}

/// One service port in the `service` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// The service's name.
    pub name: String,
    /// VRF name.
    pub vrf: String,
    /// The service address.
    pub ip: std::net::IpAddr,
    /// IP protocol (6 TCP, 17 UDP).
    pub proto: u8,
    /// The service port.
    pub port: u16,
    /// The port on the backends.
    pub target_port: u16,
    /// The backends' addresses.
    pub backends: Vec<std::net::IpAddr>,
    /// Backends its health check took out (no new flows go to them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<std::net::IpAddr>,
    /// Client-address affinity timeout in seconds (`sessionAffinity: ClientIP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_timeout_secs: Option<u32>,
    /// Connections (flows) to this service port in the flow table now.
    #[serde(default)]
    pub flows: u64,
    /// Packets of those flows, both directions.
    #[serde(default)]
    pub packets: u64,
    /// Bytes of those flows, both directions.
    #[serde(default)]
    pub bytes: u64,
}

/// The flow statistics view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowStatsView {
    /// Entry capacity.
    pub capacity: u64,
    /// Entries in use (two per flow).
    pub active_entries: u64,
    /// Entries ever created.
    pub created_entries: u64,
    /// Entries ever deleted.
    pub deleted_entries: u64,
    /// Flows (pairs) removed by aging.
    pub aged_flows: u64,
    /// New flows dropped because the table was full.
    pub refused_table_full: u64,
    /// New flows dropped by the per-interface limit.
    pub refused_interface_limit: u64,
    /// Flows set up per second since the previous query.
    pub setup_rate_per_sec: f64,
    /// Memory held by the table.
    pub memory_bytes: u64,
    /// Fragmented IPv4 datagrams whose first fragment's ports are held for their
    /// later fragments now.
    #[serde(default)]
    pub fragment_records: u64,
    /// What happened to fragments: first fragments recorded, later fragments that
    /// followed their first, later fragments without a record (forwarded by their
    /// addresses), first fragments not recorded for want of room.
    #[serde(default)]
    pub fragments: FragmentCounts,
}

/// Counts of the fragment table (see [`FlowStatsView::fragments`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentCounts {
    /// First fragments recorded.
    pub recorded: u64,
    /// Later fragments that took their first fragment's ports.
    pub followed: u64,
    /// Later fragments with no record of their first.
    pub unmatched: u64,
    /// First fragments not recorded: the fragment table was full.
    pub refused_full: u64,
}

/// One interface in the `vif` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceView {
    /// vif number.
    pub vif: u32,
    /// The MPLS label other nodes reach it by (pods; kept across restarts).
    #[serde(default)]
    pub label: Option<u32>,
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
    /// A VLAN sub-interface's parent vif and tag (nested mode); its frames are
    /// counted on the parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<nexthop::VlanTag>,
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
    /// True once the state directory has been restored: the ports and routes of
    /// before the start are back (or recorded as waiting).
    #[serde(default)]
    pub ready: bool,
    /// Snapshot generation.
    pub generation: u64,
    /// Cores of the forwarding workers.
    pub forwarding_cores: Vec<usize>,
    /// Interfaces (fabric included).
    pub interfaces: usize,
    /// VRFs (fabric included).
    pub vrfs: usize,
    /// Ticks per second of the cycle counter the workers' busy and idle cycles are
    /// counted in (the TSC frequency; 1e9 where the counter is a nanosecond clock).
    pub cycles_per_second: u64,
    /// Per-worker counters.
    pub workers: Vec<WorkerView>,
}

impl StatusView {
    /// True if every worker asks the kernel to finish the checksums of what it
    /// sends: pods may then keep their transmit checksum offload on (their frames'
    /// TCP and UDP checksums hold only the pseudo-header's sum).
    pub fn checksum_offload(&self) -> bool {
        !self.workers.is_empty() && self.workers.iter().all(|w| w.tx_checksum_offload)
    }
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
    /// Cycles (TSC ticks) spent in loop iterations that found packets.
    pub busy_cycles: u64,
    /// Cycles spent in loop iterations that found none.
    pub idle_cycles: u64,
    /// Drops by reason on this worker (only reasons that occurred).
    #[serde(default)]
    pub drops_by_reason: Vec<(String, u64)>,
    /// Packets received as a chain of descriptors (larger than one UMEM chunk).
    #[serde(default)]
    pub chains_received: u64,
    /// Packets sent as a chain.
    #[serde(default)]
    pub chains_sent: u64,
    /// True if the worker's frames may ask the kernel to finish their checksums
    /// (AF_XDP transmit metadata: `dataplane.tx_checksum_offload` and Linux 6.11+).
    #[serde(default)]
    pub tx_checksum_offload: bool,
    /// TCP and UDP packets sent with their checksum left for the kernel (or the
    /// device) to finish.
    #[serde(default)]
    pub checksum_offloads: u64,
    /// Frames given back to the free list while already in it (ignored, so no frame
    /// is used twice): a bug in the vrouter if ever above 0.
    #[serde(default)]
    pub frame_double_releases: u64,
}

impl WorkerView {
    /// Busy cycles per received packet (Open vSwitch's "avg processing cycles per
    /// packet").
    pub fn busy_cycles_per_packet(&self) -> f64 {
        self.busy_cycles as f64 / self.rx_packets.max(1) as f64
    }
}

/// A snapshot of one interface's counters, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VifTotals {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Frames received and dropped.
    pub drops: u64,
    /// Frames dropped on a full TX ring.
    pub tx_ring_full: u64,
    /// Kernel drops before the RX ring.
    pub kernel_rx_dropped: u64,
    /// Kernel RX ring full events.
    pub kernel_rx_ring_full: u64,
    /// Kernel fill ring empty events.
    pub kernel_fill_ring_empty: u64,
    /// Drops of frames received here, by reason (only reasons that occurred).
    #[serde(default)]
    pub drops_by_reason: Vec<(String, u64)>,
}

/// One channel to a control node (`xmpp` view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XmppChannelView {
    /// Routes (paths) this control node taught, per VRF (inet and EVPN together).
    #[serde(default)]
    pub routes_per_vrf: std::collections::BTreeMap<String, usize>,
    /// The control node's place in `xmpp.servers`.
    pub peer: u8,
    /// Its address.
    pub server: String,
    /// Both streams are open.
    pub up: bool,
    /// Seconds since it came up (while up).
    pub up_for_secs: Option<u64>,
    /// Times it came up.
    pub established: u64,
    /// Route messages received.
    pub route_messages: u64,
    /// Stanzas that could not be used.
    pub unusable: u64,
    /// Hold time in seconds.
    pub hold_time_secs: u64,
    /// Why it last went down or failed to come up.
    pub last_error: Option<String>,
    /// The latest stanzas each way, oldest first: `>` sent, `<` received; each cut
    /// at 1 KiB, at most 32.
    pub trace: Vec<String>,
}

/// The traffic with one remote node, summed over workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelTotals {
    /// The remote's fabric address.
    pub remote: Ipv4Addr,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
}

/// The configuration view (`config`): what the control node configured and the ports
/// bound to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigView {
    /// The control node serving configuration (its place in `xmpp.servers`), if any.
    pub server: Option<u8>,
    /// Its initial configuration has arrived (a quiet period passed after it).
    pub synced: bool,
    /// Objects held.
    pub objects: usize,
    /// Links held.
    pub links: usize,
    /// Config entries skipped as unreadable, since start.
    pub skipped_entries: u64,
    /// Config updates refused (the graph was full), since start.
    pub refused_updates: u64,
    /// The bound ports.
    pub ports: Vec<PortBindingView>,
    /// Every virtual machine interface the configuration has (bound or not), with
    /// what kube-manager assigned it: what the CNI plugin takes a pod's addresses
    /// from (`"ipam": {"type": "vrouter"}`).
    #[serde(default)]
    pub interfaces: Vec<ConfigInterfaceView>,
}

/// A virtual machine interface of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigInterfaceView {
    /// Its UUID.
    pub vmi: String,
    /// Its virtual machine's UUID (a Kubernetes pod's UID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<String>,
    /// Its routing instance (VRF).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Its MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Its addresses with their subnets' prefix lengths, and each one's gateway.
    #[serde(default)]
    pub addresses: Vec<(ipnet::IpNet, Option<std::net::IpAddr>)>,
    /// Set for a nested-mode sub-interface: its 802.1Q tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

/// One bound port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBindingView {
    /// Linux interface name.
    pub name: String,
    /// Its virtual machine interface's UUID.
    pub vmi: String,
    /// The virtual machine interface's name in the configuration, once known.
    pub config_name: Option<String>,
    /// The VRF it is attached to, when attached.
    pub vrf: Option<String>,
    /// Attached now.
    pub attached: bool,
    /// Why it is not attached (configuration incomplete, or refused).
    pub waiting_for: Option<String>,
}

/// One floating IP in the `fip` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIpView {
    /// Its name.
    pub name: String,
    /// The VRF of the floating address.
    pub vrf: String,
    /// The floating address.
    pub ip: std::net::IpAddr,
    /// The pod interface it is given to.
    pub interface: String,
    /// The pod's VRF.
    pub pod_vrf: String,
    /// The pod's address it maps to.
    pub pod_ip: std::net::IpAddr,
}

/// One service chain in force in the `chain` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceChainView {
    /// Its name.
    pub name: String,
    /// The instance's interface in the left network, and that network's VRF.
    pub left_interface: String,
    /// The left VRF.
    pub left_vrf: String,
    /// The instance's interface in the right network.
    pub right_interface: String,
    /// The right VRF.
    pub right_vrf: String,
    /// Prefixes of the right network routed in the left into the instance.
    pub routes_in_left: u32,
    /// Prefixes of the left network routed in the right into the instance.
    pub routes_in_right: u32,
}

/// Fabric source NAT in the `snat` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnatView {
    /// The node's fabric address connections leave from; none: no source NAT.
    pub address: Option<std::net::Ipv4Addr>,
    /// The VRF whose pods it serves.
    pub vrf: Option<String>,
    /// TCP ports.
    pub tcp: Option<SnatPortsView>,
    /// UDP ports.
    pub udp: Option<SnatPortsView>,
    /// ICMP echo identifiers (pings), as ports.
    #[serde(default)]
    pub icmp: Option<SnatPortsView>,
    /// New connections refused for want of a free port.
    pub exhausted: u64,
}

/// One protocol's source NAT ports in the `snat` view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SnatPortsView {
    /// The first port of the range.
    pub first: u16,
    /// The last port.
    pub last: u16,
    /// Connections translated now.
    pub connections: u64,
    /// Distinct ports they use (a port serves one connection per destination).
    pub ports_in_use: u64,
    /// The most connections to one destination (address and port): what runs out
    /// first, at the range's size.
    pub busiest_destination: u64,
}

/// One ingress in the `ingress` view, with this node's instance of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressView {
    /// Its name.
    pub name: String,
    /// Its VRF.
    pub vrf: String,
    /// Its VIP.
    pub vip: std::net::Ipv4Addr,
    /// Its external IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_ip: Option<std::net::Ipv4Addr>,
    /// Its host-and-path rules, as `host/path -> service:port` (`*` for any host).
    pub rules: Vec<String>,
    /// This node's role for it: `active`, `standby`, or none (no instance here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Where the VIP's traffic goes from this node now: `this node` (its own
    /// instance holds the VIP), the remote node's fabric address, or `nowhere`.
    pub vip_at: String,
    /// This node's instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<IngressInstanceView>,
    /// haproxy's own statistics of its backends (`show stat`): one line each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<IngressBackendStats>,
}

/// This node's haproxy instance of an ingress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressInstanceView {
    /// Its vrouter port (the veth's host end).
    pub port: String,
    /// Its network namespace.
    pub netns: String,
    /// `starting`, `serving`, or what is wrong.
    pub state: String,
    /// Its port is attached: its VIP is advertised (with the role's preference).
    pub attached: bool,
    /// Times haproxy was started again (it exited, or was killed for failing probes).
    pub restarts: u64,
    /// Configuration reloads.
    pub reloads: u64,
    /// Times it gave up the VIP.
    pub withdrawals: u64,
    /// From the first failed probe to giving up the VIP, the last time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_withdrawal_ms: Option<u64>,
    /// Its haproxy configuration file.
    pub config: String,
}

/// One backend of an haproxy instance, as its stats socket reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngressBackendStats {
    /// The backend (service and port).
    pub backend: String,
    /// `UP`, `DOWN`, ...
    pub status: String,
    /// Sessions now.
    pub current_sessions: u64,
    /// Sessions in all.
    pub total_sessions: u64,
    /// HTTP responses 2xx.
    pub responses_2xx: u64,
}
